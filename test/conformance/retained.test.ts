// §3.3.1.3 RETAIN, §3.8.3.1 Retain Handling / Retain As Published, §3.8.4 delivered QoS of retained messages.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { conformanceGateway, rawAs, collect, type Conformance } from './setup.ts'

let g: Conformance
before(async () => { g = await conformanceGateway() })
after(async () => { await g.close() })

async function retain (topic: string, payload: string, qos: 0 | 1 | 2): Promise<void> {
  const { peer } = await rawAs(g.t, g.agent, { v: 5 })
  peer.send({ cmd: 'publish', topic, payload, qos, retain: true, dup: false, ...(qos > 0 ? { messageId: 3 } : {}) })
  if (qos === 1) await peer.next('puback')
  if (qos === 2) {
    await peer.next('pubrec')
    peer.send({ cmd: 'pubrel', messageId: 3 })
    await peer.next('pubcomp')
  }
  peer.end()
}

async function subscriber (v: 4 | 5, subs: Array<Record<string, unknown>>): Promise<any> {
  const { peer } = await rawAs(g.t, g.controller, { v })
  peer.send({ cmd: 'subscribe', messageId: 1, subscriptions: subs })
  await peer.next('suback')
  return peer
}

for (const v of [4, 5] as const) {
  test(`[MQTT-3.3.1-6] [MQTT-3.8.4-8] v${v}: a retained QoS 1 message reaches a QoS 0 subscription at QoS 0 (min of publish and granted QoS), also through a wildcard`, async () => {
    const topic = `${g.data}/rq${v}`
    await retain(topic, 'r1', 1)
    for (const filter of [topic, `${g.data}/+`]) {
      const s = await subscriber(v, [{ topic: filter, qos: 0 }])
      const msg = await s.next('publish', 3000)
      assert.equal(msg.payload.toString(), 'r1')
      assert.equal(msg.qos, 0, filter)
      assert.equal(msg.retain, true) // [MQTT-3.3.1-8]
      s.end()
    }
  })

  test(`[MQTT-3.8.4-8] [§3.3.5] v${v}: a QoS 2 message reaches a QoS 1 wildcard subscription at QoS 1`, async () => {
    const s = await subscriber(v, [{ topic: `${g.data}/live${v}/#`, qos: 1 }])
    const { peer } = await rawAs(g.t, g.agent, { v })
    peer.send({ cmd: 'publish', topic: `${g.data}/live${v}/a`, payload: 'q2', qos: 2, messageId: 9, retain: false, dup: false })
    await peer.next('pubrec')
    peer.send({ cmd: 'pubrel', messageId: 9 })
    await peer.next('pubcomp')
    const msg = await s.next('publish', 3000)
    assert.equal(msg.qos, 1)
    s.send({ cmd: 'puback', messageId: msg.messageId })
    peer.end(); s.end()
  })

  test(`[MQTT-3.3.1-10/11] v${v}: an empty retained message clears the retained message and is not stored`, async () => {
    const topic = `${g.data}/clear${v}`
    await retain(topic, 'x', 0)
    await retain(topic, '', 0)
    const s = await subscriber(v, [{ topic, qos: 1 }])
    assert.deepEqual(await collect(s, 'publish', 600), [])
    s.end()
  })
}

test('[MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] v5: Retain Handling 0 sends retained messages at every subscribe, 1 only for a new subscription, 2 never', async () => {
  const topic = `${g.data}/rh`
  await retain(topic, 'rh', 0)
  const { peer } = await rawAs(g.t, g.controller, { v: 5 })
  const sub = async (rh: number, id: number): Promise<number> => {
    peer.send({ cmd: 'subscribe', messageId: id, subscriptions: [{ topic, qos: 0, rh }] })
    await peer.next('suback')
    return (await collect(peer, 'publish', 500)).length
  }
  assert.equal(await sub(0, 1), 1)
  assert.equal(await sub(0, 2), 1)
  assert.equal(await sub(1, 3), 0, 'rh 1 on an existing subscription')
  peer.send({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: [topic] })
  await peer.next('unsuback')
  assert.equal(await sub(1, 5), 1, 'rh 1 on a new subscription')
  peer.send({ cmd: 'unsubscribe', messageId: 6, unsubscriptions: [topic] })
  await peer.next('unsuback')
  assert.equal(await sub(2, 7), 0)
  peer.end()
})

test('[MQTT-3.3.1-12] [MQTT-3.3.1-13] v5: Retain As Published keeps the RETAIN flag of live messages; without it the flag is 0', async () => {
  const a = await subscriber(5, [{ topic: `${g.data}/rap`, qos: 0, rap: true, rh: 2 }])
  const b = await subscriber(5, [{ topic: `${g.data}/rap`, qos: 0, rap: false, rh: 2 }])
  await retain(`${g.data}/rap`, 'live', 0)
  assert.equal((await a.next('publish', 3000)).retain, true)
  assert.equal((await b.next('publish', 3000)).retain, false)
  a.end(); b.end()
})
