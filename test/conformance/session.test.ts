// §3.1.2.4 Clean Start / Clean Session, §3.2.2.2 Session Present, §4.1 session state and resumption.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { conformanceGateway, rawAs, collect, type Conformance } from './setup.ts'

let g: Conformance
before(async () => { g = await conformanceGateway() })
after(async () => { await g.close() })

async function subscribe (peer: any, filter: string, qos: number, properties?: Record<string, unknown>): Promise<number[]> {
  peer.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }], ...(properties ? { properties } : {}) })
  return (await peer.next('suback')).granted
}

async function publishQos1 (v: 4 | 5, topic: string, payload: string): Promise<void> {
  const { peer } = await rawAs(g.t, g.agent, { v })
  peer.send({ cmd: 'publish', topic, payload, qos: 1, messageId: 7, retain: false, dup: false })
  await peer.next('puback')
  peer.end()
}

for (const v of [4, 5] as const) {
  test(`[MQTT-3.2.2-2] [MQTT-4.1.0-1] v${v}: a resumed session is Session Present and gets the QoS 1 messages queued while it was away`, async () => {
    const clientId = `resume-${v}`
    // v3.1.1 keeps a session with Clean Session 0; v5 with a Session Expiry Interval
    const first = await rawAs(g.t, g.controller, { v, clientId, clean: v === 5, ...(v === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}) })
    assert.equal(first.connack.sessionPresent, false) // [MQTT-3.2.2-3]: no session before
    await subscribe(first.peer, `${g.data}/resume${v}`, 1)
    first.peer.end()
    await first.peer.closed
    await publishQos1(v, `${g.data}/resume${v}`, 'queued')
    const again = await rawAs(g.t, g.controller, { v, clientId, clean: false, ...(v === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}) })
    assert.equal(again.connack.sessionPresent, true)
    const msg = await again.peer.next('publish', 5000)
    assert.equal(msg.payload.toString(), 'queued')
    assert.equal(msg.qos, 1)
    again.peer.send({ cmd: 'puback', messageId: msg.messageId })
    again.peer.end()
  })

  test(`[MQTT-3.1.2-4] [MQTT-3.2.2-1] v${v}: Clean ${v === 5 ? 'Start' : 'Session'} 1 discards the session: Session Present 0, nothing queued arrives`, async () => {
    const clientId = `discard-${v}`
    const first = await rawAs(g.t, g.controller, { v, clientId, clean: v === 5, ...(v === 5 ? { properties: { sessionExpiryInterval: 300 } } : {}) })
    await subscribe(first.peer, `${g.data}/discard${v}`, 1)
    first.peer.end()
    await first.peer.closed
    await publishQos1(v, `${g.data}/discard${v}`, 'stale')
    const again = await rawAs(g.t, g.controller, { v, clientId, clean: true })
    assert.equal(again.connack.sessionPresent, false)
    assert.deepEqual(await collect(again.peer, 'publish', 700), [])
    again.peer.end()
  })
}

test('[MQTT-4.6.0-6] [MQTT-4.1.0-1] v5: a resumed session gets every queued QoS 1 message once, in the order it was published (more than a stream buffer holds)', async () => {
  // 40 > 16, the object-mode high-water mark at which aedes' queue flush once stalled (aedes #583);
  // the flush is the code broker/mqtt/patches/aedes-source patches
  const clientId = 'resume-order'
  const props = { properties: { sessionExpiryInterval: 300 } }
  const first = await rawAs(g.t, g.controller, { v: 5, clientId, clean: true, ...props })
  await subscribe(first.peer, `${g.data}/order`, 1)
  first.peer.end()
  await first.peer.closed
  const { peer: publisher } = await rawAs(g.t, g.agent, { v: 5 })
  for (let i = 0; i < 40; i++) {
    publisher.send({ cmd: 'publish', topic: `${g.data}/order`, payload: `m${i}`, qos: 1, messageId: i + 1, retain: false, dup: false })
    await publisher.next('puback')
  }
  publisher.end()
  const again = await rawAs(g.t, g.controller, { v: 5, clientId, clean: false, ...props })
  assert.equal(again.connack.sessionPresent, true)
  const got: string[] = []
  for (let i = 0; i < 40; i++) {
    const msg = await again.peer.next('publish', 5000)
    got.push(msg.payload.toString())
    again.peer.send({ cmd: 'puback', messageId: msg.messageId })
  }
  assert.deepEqual(got, Array.from({ length: 40 }, (_, i) => `m${i}`))
  assert.deepEqual(await collect(again.peer, 'publish', 500), [], 'each queued message arrives once')
  again.peer.end()
})

test('[MQTT-3.2.2-2] [§3.1.2.11.2] v5: Clean Start 0 without Session Expiry Interval resumes the stored session: Session Present and its queued messages agree', async () => {
  const clientId = 'resume-no-expiry'
  const first = await rawAs(g.t, g.controller, { v: 5, clientId, clean: true, properties: { sessionExpiryInterval: 300 } })
  await subscribe(first.peer, `${g.data}/noexp`, 1)
  first.peer.end()
  await first.peer.closed
  await publishQos1(5, `${g.data}/noexp`, 'kept')
  const again = await rawAs(g.t, g.controller, { v: 5, clientId, clean: false })
  assert.equal(again.connack.sessionPresent, true)
  const msg = await again.peer.next('publish', 5000)
  assert.equal(msg.payload.toString(), 'kept')
  again.peer.send({ cmd: 'puback', messageId: msg.messageId })
  again.peer.end()
  await again.peer.closed
  // that connection's Session Expiry Interval was 0: the session ended with it [MQTT-3.1.2-11 context]
  const third = await rawAs(g.t, g.controller, { v: 5, clientId, clean: false })
  assert.equal(third.connack.sessionPresent, false)
  third.peer.end()
})

test('[MQTT-4.4.0-1] v5: an unacknowledged QoS 1 message is sent again, DUP set, when the session resumes', async () => {
  const clientId = 'redeliver-5'
  const first = await rawAs(g.t, g.controller, { v: 5, clientId, clean: true, properties: { sessionExpiryInterval: 300 } })
  await subscribe(first.peer, `${g.data}/redeliver`, 1)
  await publishQos1(5, `${g.data}/redeliver`, 'once')
  const m1 = await first.peer.next('publish', 5000)
  assert.equal(m1.dup, false)
  first.peer.end() // no PUBACK
  await first.peer.closed
  const again = await rawAs(g.t, g.controller, { v: 5, clientId, clean: false, properties: { sessionExpiryInterval: 300 } })
  const m2 = await again.peer.next('publish', 5000)
  assert.equal(m2.payload.toString(), 'once')
  assert.equal(m2.messageId, m1.messageId)
  assert.equal(m2.dup, true)
  again.peer.send({ cmd: 'puback', messageId: m2.messageId })
  again.peer.end()
})

for (const v of [4, 5] as const) {
  test(`[MQTT-3.2.2-2] [MQTT-3.2.2-3] v${v}: a kept session without subscriptions is Session Present too${v === 5 ? '; after its Session Expiry Interval it is gone' : ''}`, async () => {
    const clientId = `nosubs-${v}`
    const keep = v === 5 ? { clean: true, properties: { sessionExpiryInterval: 2 } } : { clean: false }
    const first = await rawAs(g.t, g.agent, { v, clientId, ...keep })
    assert.equal(first.connack.sessionPresent, false)
    first.peer.send({ cmd: 'disconnect' })
    await first.peer.closed
    const again = await rawAs(g.t, g.agent, { v, clientId, clean: false, ...(v === 5 ? { properties: { sessionExpiryInterval: 2 } } : {}) })
    assert.equal(again.connack.sessionPresent, true)
    again.peer.send({ cmd: 'disconnect' })
    await again.peer.closed
    if (v === 5) {
      await new Promise(resolve => setTimeout(resolve, 2600))
      const late = await rawAs(g.t, g.agent, { v, clientId, clean: false })
      assert.equal(late.connack.sessionPresent, false)
      late.peer.end()
    } else {
      // Clean Session 1 ends it [MQTT-3.1.2-6]
      const clean = await rawAs(g.t, g.agent, { v, clientId, clean: true })
      assert.equal(clean.connack.sessionPresent, false)
      clean.peer.send({ cmd: 'disconnect' })
      await clean.peer.closed
      const after = await rawAs(g.t, g.agent, { v, clientId, clean: false })
      assert.equal(after.connack.sessionPresent, false)
      after.peer.end()
    }
  })
}
