// §4.3 QoS 1/2 flows, §4.9 Flow Control (Receive Maximum both ways), §3.1.2.11.4 / §3.2.2.3.6 Maximum Packet Size both ways.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { conformanceGateway, rawAs, collect, sleep, type Conformance } from './setup.ts'
import { waitFor } from '../helpers/gateway.ts'

let g: Conformance
before(async () => { g = await conformanceGateway({ maxInflightQos2: 5, maxPacketBytes: 16 * 1024 }) })
after(async () => { await g.close() })

for (const v of [4, 5] as const) {
  test(`[§4.3.2] [§4.3.3] (receiver and sender side) v${v}: QoS 1 is answered by PUBACK, QoS 2 by PUBREC then PUBCOMP, with the same Packet Identifier; delivered once`, async () => {
    const { peer: sub } = await rawAs(g.t, g.controller, { v })
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${g.data}/flow${v}`, qos: 2 }] })
    assert.deepEqual((await sub.next('suback')).granted, [2])
    const { peer } = await rawAs(g.t, g.agent, { v })
    peer.send({ cmd: 'publish', topic: `${g.data}/flow${v}`, payload: 'one', qos: 1, messageId: 11, retain: false, dup: false })
    assert.equal((await peer.next('puback')).messageId, 11)
    peer.send({ cmd: 'publish', topic: `${g.data}/flow${v}`, payload: 'two', qos: 2, messageId: 12, retain: false, dup: false })
    assert.equal((await peer.next('pubrec')).messageId, 12)
    // §4.3.3: a duplicate PUBLISH before PUBREL is not delivered again
    peer.send({ cmd: 'publish', topic: `${g.data}/flow${v}`, payload: 'two', qos: 2, messageId: 12, retain: false, dup: true })
    await peer.next('pubrec')
    peer.send({ cmd: 'pubrel', messageId: 12 })
    assert.equal((await peer.next('pubcomp')).messageId, 12)
    const m1 = await sub.next('publish', 3000)
    assert.equal(m1.qos, 1)
    sub.send({ cmd: 'puback', messageId: m1.messageId })
    const m2 = await sub.next('publish', 3000)
    assert.equal(m2.qos, 2)
    sub.send({ cmd: 'pubrec', messageId: m2.messageId })
    assert.equal((await sub.next('pubrel', 3000)).messageId, m2.messageId)
    sub.send({ cmd: 'pubcomp', messageId: m2.messageId })
    assert.deepEqual(await collect(sub, 'publish', 500), [])
    peer.end(); sub.end()
  })
}

test('[MQTT-3.3.4-7] [MQTT-3.3.4-8] v5: the gateway sends no more unacknowledged QoS 1 PUBLISHes than the client\'s Receive Maximum; the rest follow the PUBACKs, in order', async () => {
  const { peer: sub } = await rawAs(g.t, g.controller, { v: 5, properties: { receiveMaximum: 2 } })
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${g.data}/rm`, qos: 1 }] })
  await sub.next('suback')
  const { peer } = await rawAs(g.t, g.agent, { v: 5 })
  for (let i = 0; i < 5; i++) {
    peer.send({ cmd: 'publish', topic: `${g.data}/rm`, payload: `m${i}`, qos: 1, messageId: 20 + i, retain: false, dup: false })
    await peer.next('puback')
  }
  const first = await collect(sub, 'publish', 700)
  assert.deepEqual(first.map(p => p.payload.toString()), ['m0', 'm1'])
  const seen = first.map(p => p.payload.toString())
  let pending = first
  while (seen.length < 5) {
    for (const p of pending) sub.send({ cmd: 'puback', messageId: p.messageId })
    pending = await collect(sub, 'publish', 500)
    assert.ok(pending.length > 0 && pending.length <= 2, `at most Receive Maximum in flight (got ${pending.length})`)
    seen.push(...pending.map(p => p.payload.toString()))
  }
  assert.deepEqual(seen, ['m0', 'm1', 'm2', 'm3', 'm4'])
  peer.end(); sub.end()
})

test('[MQTT-3.3.4-9] v5: more unacknowledged QoS 2 PUBLISHes than the CONNACK Receive Maximum: one DISCONNECT 0x93, then the connection closes', async () => {
  const { peer, connack } = await rawAs(g.t, g.agent, { v: 5 })
  assert.equal(connack.properties.receiveMaximum, 5)
  for (let i = 1; i <= 60; i++) peer.send({ cmd: 'publish', topic: `${g.data}/flood`, payload: 'x', qos: 2, messageId: i, retain: false, dup: false })
  await peer.closed
  const disconnects = peer.received.filter(p => p.cmd === 'disconnect')
  assert.equal(disconnects.length + (await collect(peer, 'disconnect', 10)).length >= 1, true)
  assert.equal(disconnects.length <= 1, true, `one DISCONNECT, got ${disconnects.length}`)
  assert.equal((disconnects[0] ?? { reasonCode: 0x93 }).reasonCode, 0x93)
})

test('[MQTT-3.1.2-24] [MQTT-3.1.2-25] v5: a PUBLISH larger than the client\'s Maximum Packet Size is not sent to it (and counted); smaller ones still are', async () => {
  const { peer: sub } = await rawAs(g.t, g.controller, { v: 5, properties: { maximumPacketSize: 512 } })
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${g.data}/mps`, qos: 1 }] })
  await sub.next('suback')
  const { peer } = await rawAs(g.t, g.agent, { v: 5 })
  peer.send({ cmd: 'publish', topic: `${g.data}/mps`, payload: Buffer.alloc(2000, 1), qos: 1, messageId: 31, retain: false, dup: false })
  await peer.next('puback')
  peer.send({ cmd: 'publish', topic: `${g.data}/mps`, payload: 'small', qos: 1, messageId: 32, retain: false, dup: false })
  await peer.next('puback')
  const got = await collect(sub, 'publish', 800)
  assert.deepEqual(got.map(p => p.payload.toString()), ['small'])
  await waitFor(async () => /uspgate_messages_dropped_total\{[^}]*reason="client\.max_packet_size"[^}]*\} 1\b/.test(await g.t.gw.metrics.registry.metrics()))
  peer.end(); sub.end()
})

test('[MQTT-3.2.2-15] [§4.13 0x95] v5: a packet above the gateway\'s Maximum Packet Size gets one DISCONNECT 0x95 and the connection closes', async () => {
  const { peer } = await rawAs(g.t, g.agent, { v: 5 })
  for (let i = 0; i < 3; i++) peer.send({ cmd: 'publish', topic: `${g.data}/big`, payload: Buffer.alloc(20 * 1024), qos: 0, retain: false, dup: false })
  await peer.closed
  const d = peer.received.filter(p => p.cmd === 'disconnect')
  assert.equal(d.length, 1)
  assert.equal(d[0].reasonCode, 0x95)
})

test('[MQTT-3.2.2-15] v3.1.1: a packet above the Maximum Packet Size closes the connection', async () => {
  const { peer } = await rawAs(g.t, g.agent, { v: 4 })
  peer.send({ cmd: 'publish', topic: `${g.data}/big`, payload: Buffer.alloc(20 * 1024), qos: 0, retain: false, dup: false })
  await peer.closed
  await sleep(10)
  assert.equal(peer.received.filter(p => p.cmd === 'disconnect').length, 0)
})
