// §3.1.2.5-3.1.2.7 / §3.1.3.2-3.1.3.3 Will Message: when it is sent, Will Delay Interval, will properties.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { conformanceGateway, rawAs, collect, sleep, type Conformance } from './setup.ts'

let g: Conformance
before(async () => { g = await conformanceGateway() })
after(async () => { await g.close() })

async function watcher (v: 4 | 5, filter: string): Promise<any> {
  const { peer } = await rawAs(g.t, g.controller, { v })
  peer.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] })
  await peer.next('suback')
  return peer
}

for (const v of [4, 5] as const) {
  test(`[MQTT-3.1.2-8] v${v}: the will is published when the network connection closes without DISCONNECT`, async () => {
    const topic = `${g.data}/will-${v}`
    const w = await watcher(v, topic)
    const { peer } = await rawAs(g.t, g.agent, { v, will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false } })
    peer.end()
    const msg = await w.next('publish', 5000)
    assert.equal(msg.payload.toString(), 'gone')
    w.end()
  })

  test(`[MQTT-3.1.2-10] [MQTT-3.14.4-3] v${v}: a normal DISCONNECT removes the will without publishing it`, async () => {
    const topic = `${g.data}/nowill-${v}`
    const w = await watcher(v, topic)
    const { peer } = await rawAs(g.t, g.agent, { v, will: { topic, payload: Buffer.from('no'), qos: 1, retain: false } })
    peer.send({ cmd: 'disconnect', ...(v === 5 ? { reasonCode: 0 } : {}) })
    await peer.closed
    assert.deepEqual(await collect(w, 'publish', 800), [])
    w.end()
  })
}

test('[§3.14.2.1 0x04] v5: DISCONNECT with reason 0x04 (Disconnect with Will Message) publishes the will', async () => {
  const topic = `${g.data}/will04`
  const w = await watcher(5, topic)
  const { peer } = await rawAs(g.t, g.agent, { v: 5, will: { topic, payload: Buffer.from('asked'), qos: 0, retain: false } })
  peer.send({ cmd: 'disconnect', reasonCode: 0x04 })
  const msg = await w.next('publish', 5000)
  assert.equal(msg.payload.toString(), 'asked')
  w.end()
})

test('[MQTT-3.1.3-9] [§2.2.2.2] v5: a will with a Will Delay Interval is published after the delay, without the Will Delay Interval property, with its PUBLISH properties', async () => {
  const topic = `${g.data}/delayed`
  const w = await watcher(5, topic)
  const { peer } = await rawAs(g.t, g.agent, {
    v: 5,
    properties: { sessionExpiryInterval: 60 },
    will: {
      topic,
      payload: Buffer.from('late'),
      qos: 1,
      retain: false,
      properties: { willDelayInterval: 1, contentType: 'text/plain', userProperties: { k: 'v' }, payloadFormatIndicator: true }
    }
  })
  const closedAt = Date.now()
  peer.end()
  assert.deepEqual(await collect(w, 'publish', 500), [], 'not before the delay')
  const msg = await w.next('publish', 5000)
  assert.ok(Date.now() - closedAt >= 900)
  assert.equal(msg.payload.toString(), 'late')
  assert.equal(msg.properties?.willDelayInterval, undefined)
  assert.equal(msg.properties?.contentType, 'text/plain')
  assert.deepEqual({ ...msg.properties?.userProperties }, { k: 'v' })
  assert.equal(msg.properties?.payloadFormatIndicator, true)
  w.end()
})

test('[MQTT-3.1.3-9] v5: reconnecting within the Will Delay Interval cancels the will', async () => {
  const topic = `${g.data}/cancelled`
  const w = await watcher(5, topic)
  const clientId = 'will-cancel'
  const first = await rawAs(g.t, g.agent, { v: 5, clientId, clean: true, properties: { sessionExpiryInterval: 60 }, will: { topic, payload: Buffer.from('x'), qos: 0, retain: false, properties: { willDelayInterval: 2 } } })
  first.peer.end()
  await first.peer.closed
  await sleep(200)
  const again = await rawAs(g.t, g.agent, { v: 5, clientId, clean: false, properties: { sessionExpiryInterval: 60 } })
  assert.deepEqual(await collect(w, 'publish', 2800), [])
  again.peer.end()
  w.end()
})

test('[MQTT-3.1.3-9] [§3.1.3.2.2 Will Delay > Session Expiry] v5: the will goes out when the session ends, even if its delay is longer', async () => {
  const topic = `${g.data}/session-ends`
  const w = await watcher(5, topic)
  const { peer } = await rawAs(g.t, g.agent, { v: 5, properties: { sessionExpiryInterval: 0 }, will: { topic, payload: Buffer.from('end'), qos: 0, retain: false, properties: { willDelayInterval: 30 } } })
  peer.end()
  const msg = await w.next('publish', 3000)
  assert.equal(msg.payload.toString(), 'end')
  w.end()
})

test('[MQTT-3.1.2-17] [MQTT-3.3.1-5] v5: a retained will with a Message Expiry Interval is stored, and expires', async () => {
  const topic = `${g.data}/will-retained`
  const { peer } = await rawAs(g.t, g.agent, { v: 5, will: { topic, payload: Buffer.from('r'), qos: 1, retain: true, properties: { messageExpiryInterval: 1, willDelayInterval: 0 } } })
  peer.end()
  await sleep(300)
  const early = await watcher(5, topic)
  const kept = await early.next('publish', 3000)
  assert.equal(kept.retain, true)
  assert.equal(kept.properties?.willDelayInterval, undefined)
  early.end()
  await sleep(1300)
  const late = await watcher(5, topic)
  assert.deepEqual(await collect(late, 'publish', 600), [])
  late.end()
})
