// §3.3.2.3.4 Topic Alias (client → server), §3.3.4 / §3.8.2.1.2 Subscription Identifiers, §3.14 DISCONNECT reason codes.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { conformanceGateway, rawAs, collect, TENANT, type Conformance } from './setup.ts'
import { waitForEvent, provision } from '../helpers/gateway.ts'

let g: Conformance
before(async () => { g = await conformanceGateway({ topicAliasMaximum: 4 }) })
after(async () => { await g.close() })

test('[MQTT-3.3.2-12] [MQTT-3.3.2-8] v5: a topic alias set by the client resolves on later PUBLISHes with an empty topic', async () => {
  const { peer: sub } = await rawAs(g.t, g.controller, { v: 5 })
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${g.data}/alias`, qos: 1 }] })
  await sub.next('suback')
  const { peer } = await rawAs(g.t, g.agent, { v: 5 })
  peer.send({ cmd: 'publish', topic: `${g.data}/alias`, payload: 'a1', qos: 1, messageId: 1, retain: false, dup: false, properties: { topicAlias: 1 } })
  await peer.next('puback')
  peer.send({ cmd: 'publish', topic: '', payload: 'a2', qos: 1, messageId: 2, retain: false, dup: false, properties: { topicAlias: 1 } })
  assert.equal((await peer.next('puback')).reasonCode ?? 0, 0)
  const got = await collect(sub, 'publish', 800)
  assert.deepEqual(got.map(p => [p.topic, p.payload.toString()]), [[`${g.data}/alias`, 'a1'], [`${g.data}/alias`, 'a2']])
  // the alias is connection-scoped: subscribers never see it [§3.3.2.3.4]
  assert.ok(got.every(p => p.properties?.topicAlias === undefined))
  sub.end(); peer.end()
})

test('[MQTT-3.3.2-12] tenant rules apply to the topic an alias resolves to: an alias of another tenant\'s topic is refused (0x87) and reported', async () => {
  const { peer } = await rawAs(g.t, g.agent, { v: 5 })
  peer.send({ cmd: 'publish', topic: 'othertenant/bulkdata/x', payload: 'no', qos: 1, messageId: 1, retain: false, dup: false, properties: { topicAlias: 2 } })
  assert.equal((await peer.next('puback')).reasonCode, 0x87)
  peer.send({ cmd: 'publish', topic: '', payload: 'no', qos: 1, messageId: 2, retain: false, dup: false, properties: { topicAlias: 2 } })
  assert.equal((await peer.next('puback')).reasonCode, 0x87)
  await waitForEvent(g.t, { code: 'acl.cross_tenant', topic: 'othertenant/bulkdata/x' })
  peer.end()
})

test('[MQTT-3.3.2-9] [§3.3.2.3.4 0x94] v5: a topic alias above the Topic Alias Maximum, or unknown, gets DISCONNECT 0x94', async () => {
  for (const [topic, alias] of [[`${g.data}/x`, 5], ['', 3]] as const) {
    const { peer } = await rawAs(g.t, g.agent, { v: 5 })
    peer.send({ cmd: 'publish', topic, payload: 'x', qos: 0, retain: false, dup: false, properties: { topicAlias: alias } })
    await peer.closed
    const d = peer.received.filter(p => p.cmd === 'disconnect')
    assert.equal(d.length, 1)
    assert.equal(d[0].reasonCode, 0x94)
  }
})

test('[MQTT-3.3.4-3] [MQTT-3.3.4-4] [MQTT-3.3.4-5] v5: one copy of a message matching overlapping subscriptions carries every matching Subscription Identifier', async () => {
  const { peer: sub } = await rawAs(g.t, g.controller, { v: 5 })
  sub.send({ cmd: 'subscribe', messageId: 1, properties: { subscriptionIdentifier: 7 }, subscriptions: [{ topic: `${g.data}/ids/#`, qos: 1 }] })
  await sub.next('suback')
  sub.send({ cmd: 'subscribe', messageId: 2, properties: { subscriptionIdentifier: 9 }, subscriptions: [{ topic: `${g.data}/ids/+`, qos: 0 }] })
  await sub.next('suback')
  sub.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: `${g.data}/+/a`, qos: 0 }] })
  await sub.next('suback')
  const { peer } = await rawAs(g.t, g.agent, { v: 5 })
  peer.send({ cmd: 'publish', topic: `${g.data}/ids/a`, payload: 'both', qos: 1, messageId: 1, retain: false, dup: false })
  await peer.next('puback')
  const got = await collect(sub, 'publish', 800)
  assert.equal(got.length, 1)
  const ids = [got[0].properties?.subscriptionIdentifier].flat().sort()
  assert.deepEqual(ids, [7, 9])
  assert.equal(got[0].qos, 1, 'the maximum QoS of the matching subscriptions [MQTT-3.3.4-2]')
  // a message matching only one identified subscription carries only that one
  peer.send({ cmd: 'publish', topic: `${g.data}/ids/a/deep`, payload: 'one', qos: 0, retain: false, dup: false })
  const one = await sub.next('publish', 3000)
  assert.equal(one.properties?.subscriptionIdentifier, 7)
  sub.end(); peer.end()
})

test('[§3.8.2.1.2] v5: a retained message sent on SUBSCRIBE carries that subscription\'s identifier', async () => {
  const { peer } = await rawAs(g.t, g.agent, { v: 5 })
  peer.send({ cmd: 'publish', topic: `${g.data}/ids-r`, payload: 'r', qos: 0, retain: true, dup: false })
  const { peer: sub } = await rawAs(g.t, g.controller, { v: 5 })
  sub.send({ cmd: 'subscribe', messageId: 1, properties: { subscriptionIdentifier: 42 }, subscriptions: [{ topic: `${g.data}/ids-r`, qos: 0 }] })
  await sub.next('suback')
  const m = await sub.next('publish', 3000)
  assert.equal(m.properties?.subscriptionIdentifier, 42)
  sub.end(); peer.end()
})

test('[MQTT-3.1.4-3] [§3.14.2.1 0x8E] v5: a second connection with the same client id takes over; the first gets DISCONNECT 0x8E once', async () => {
  const first = await rawAs(g.t, g.agent, { v: 5, clientId: 'takeover-5' })
  const second = await rawAs(g.t, g.agent, { v: 5, clientId: 'takeover-5' })
  await first.peer.closed
  const d = first.peer.received.filter(p => p.cmd === 'disconnect')
  assert.equal(d.length, 1)
  assert.equal(d[0].reasonCode, 0x8e)
  second.peer.end()
})

test('[§3.14.2.1 0x87] v5: revoking the credential of a connected client sends DISCONNECT 0x87 once', async () => {
  const other = await provision(g.t, TENANT, 'os::00256D-REV', 'agent')
  const { peer } = await rawAs(g.t, other, { v: 5 })
  const r = await g.t.api('DELETE', `/v1/tenants/${TENANT}/credentials/${encodeURIComponent('os::00256D-REV')}`)
  assert.ok(r.status < 300, `revoke: ${r.status} ${r.text}`)
  await peer.closed
  const d = peer.received.filter(p => p.cmd === 'disconnect')
  assert.equal(d.length, 1)
  assert.equal(d[0].reasonCode, 0x87)
})

test('[§3.14.2.1 0x8B] v5: a gateway shutting down sends DISCONNECT 0x8B', async () => {
  const own = await conformanceGateway()
  const { peer } = await rawAs(own.t, own.agent, { v: 5 })
  await own.close()
  await peer.closed
  const d = peer.received.filter(p => p.cmd === 'disconnect')
  assert.equal(d.length, 1)
  assert.equal(d[0].reasonCode, 0x8b)
})
