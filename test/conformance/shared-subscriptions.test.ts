// §4.8.2 Shared Subscriptions: `$share/<group>/<tenant>/...`, one member per group per message, groups
// scoped to the tenant, the filter under the tenant rules and the policy.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { conformanceGateway, rawAs, collect, type Conformance } from './setup.ts'
import { provision, waitForEvent } from '../helpers/gateway.ts'

let g: Conformance
let other: { username: string, secret: string }
before(async () => {
  g = await conformanceGateway()
  other = await provision(g.t, 'conf2', 'self::ctl', 'controller')
})
after(async () => { await g.close() })

async function member (v: 4 | 5, filter: string, who = g.controller): Promise<any> {
  const { peer } = await rawAs(g.t, who, { v })
  peer.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] })
  const suback = await peer.next('suback')
  return Object.assign(peer, { granted: suback.granted[0] })
}

async function publishMany (topic: string, n: number, retain = false): Promise<void> {
  const { peer } = await rawAs(g.t, g.agent, { v: 5 })
  for (let i = 0; i < n; i++) {
    peer.send({ cmd: 'publish', topic, payload: `m${i}`, qos: 1, messageId: i + 1, retain, dup: false })
    await peer.next('puback')
  }
  peer.end()
}

test('[§3.2.2.3.13] v5 CONNACK does not say Shared Subscription Available 0 (absent means available)', async () => {
  const { peer, connack } = await rawAs(g.t, g.controller, { v: 5 })
  assert.equal(connack.properties.sharedSubscriptionAvailable, undefined)
  peer.end()
})

for (const v of [5, 4] as const) {
  test(`[§4.8.2] v${v}: each message on a shared subscription goes to exactly one member of the group; a plain subscriber gets all`, async () => {
    const topic = `${g.data}/share${v}`
    const a = await member(v, `$share/workers/${topic}`)
    const b = await member(v, `$share/workers/${topic}`)
    const plain = await member(v, topic)
    assert.equal(a.granted, 1); assert.equal(b.granted, 1)
    await publishMany(topic, 10)
    const [ga, gb, gp] = await Promise.all([collect(a, 'publish', 1000), collect(b, 'publish', 1000), collect(plain, 'publish', 1000)])
    const got = [...ga, ...gb].map(p => p.payload.toString()).sort()
    assert.deepEqual(got, Array.from({ length: 10 }, (_, i) => `m${i}`).sort())
    assert.ok(ga.length > 0 && gb.length > 0, `both members take messages (${ga.length}/${gb.length})`)
    assert.equal(gp.length, 10)
    // the members see the plain topic, not the $share filter
    assert.ok(ga.every(p => p.topic === topic))
    a.end(); b.end(); plain.end()
  })
}

test('[§4.8.2] two groups each get every message once; after UNSUBSCRIBE of "$share/..." a member gets nothing', async () => {
  const topic = `${g.data}/groups`
  const x = await member(5, `$share/x/${topic}`)
  const y = await member(5, `$share/y/${topic}`)
  await publishMany(topic, 4)
  assert.equal((await collect(x, 'publish', 800)).length, 4)
  assert.equal((await collect(y, 'publish', 800)).length, 4)
  x.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [`$share/x/${topic}`] })
  await x.next('unsuback')
  await publishMany(topic, 2)
  assert.equal((await collect(x, 'publish', 600)).length, 0)
  assert.equal((await collect(y, 'publish', 600)).length, 2)
  x.end(); y.end()
})

test('[MQTT-4.8.2 context] groups are per tenant: the same group name in two tenants never mixes, and no tenant can share another tenant\'s filter', async () => {
  const topic = `${g.data}/tenants`
  const mine = await member(5, `$share/ops/${topic}`)
  // another tenant's controller, same group name, its own filter
  const theirs = await member(5, '$share/ops/conf2/bulkdata/#', other)
  assert.equal(theirs.granted, 1)
  // ... and the first tenant's filter under the same group name: refused (tenant rules on the filter part)
  const intruder = await member(5, `$share/ops/${topic}`, other)
  assert.equal(intruder.granted, 0x87)
  await waitForEvent(g.t, { code: 'acl.cross_tenant', topic })
  await publishMany(topic, 6)
  assert.equal((await collect(mine, 'publish', 800)).length, 6, 'the only member of its tenant\'s group takes all')
  assert.equal((await collect(theirs, 'publish', 300)).length, 0)
  assert.equal((await collect(intruder, 'publish', 300)).length, 0)
  mine.end(); theirs.end(); intruder.end()
})

test('[MQTT-4.8.2 context] the filter part obeys the policy: an Agent cannot share-subscribe to telemetry', async () => {
  const { peer } = await rawAs(g.t, g.agent, { v: 5 })
  peer.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `$share/g/${g.data}/#`, qos: 0 }] })
  assert.equal((await peer.next('suback')).granted[0], 0x87)
  peer.end()
})

test('[MQTT-4.8.2-1/2] v5: a malformed shared subscription ("$share/g" without a filter, a wildcard group) is refused', async () => {
  const { peer } = await rawAs(g.t, g.controller, { v: 5 })
  peer.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g', qos: 0 }, { topic: `$share/+/${g.data}/x`, qos: 0 }] })
  const granted = (await peer.next('suback')).granted
  assert.ok(granted.every((c: number) => c >= 0x80), JSON.stringify(granted))
  peer.end()
})

test('[§4.8.2] a retained message is not sent on SUBSCRIBE to a shared subscription', async () => {
  const topic = `${g.data}/shared-retained`
  await publishMany(topic, 1, true)
  const a = await member(5, `$share/r/${topic}`)
  assert.equal((await collect(a, 'publish', 600)).length, 0)
  a.end()
})
