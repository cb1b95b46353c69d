// Issue 14 (fairness): a tenant's connection quota, set through the admin API, holds across the
// cluster, not per node. Two real gateway nodes on one real redis-server: with a quota of 2, one
// connection on each node fills it, a third on either node is refused with limits.tenant_connections,
// and once one goes a new one is accepted. The count of a node that died (heartbeat expired) is
// dropped by its peers; with Redis gone, a CONNECT to a tenant with a quota is refused (fail closed).
// The subscription quota counts the subscriptions held on both nodes (synchronised once a second).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { startGateway, provision, connect, closeClient, removeDir, waitFor, waitForEvent, refusedWith, type TestGateway } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

const cleanup: Array<() => Promise<void>> = []
after(async () => { for (const f of cleanup.reverse()) await f().catch(() => {}) })

const PREFIX = 'cq:'
const TENANT = 'cq'
const HASH = `${PREFIX}quota:{${TENANT}}:connections`

async function node (url: string, nodeId: string): Promise<TestGateway> {
  const g = await startGateway({ redis: { url, prefix: PREFIX }, nodeId })
  cleanup.push(async () => { await g.close(); await removeDir(g.dataDir) })
  return g
}

const total = async (db: Redis): Promise<number> => Object.values(await db.hgetall(HASH)).reduce((s, v) => s + Number(v), 0)

test('cluster: a tenant connection quota of 2 counts connections on both nodes; a third is refused on either, a freed place is taken again', async () => {
  const redis = await startRedis()
  cleanup.push(() => redis.stop())
  const db = new Redis(redis.url)
  db.on('error', () => {}) // Redis is killed below
  cleanup.push(async () => { db.disconnect() })
  const A = await node(redis.url, 'cq-a')
  const B = await node(redis.url, 'cq-b')
  const creds: Array<{ username: string, secret: string }> = []
  for (let i = 1; i <= 4; i++) creds.push(await provision(A, TENANT, `os::00256D-CQ000${i}`))
  const other = await provision(A, 'cqother', 'os::00256D-CO0001')
  const r = await A.api('PATCH', `/v1/tenants/${TENANT}`, { quotas: { maxConnections: 2 } })
  assert.equal(r.status, 200, JSON.stringify(r.body))
  await waitFor(() => B.gw.store.getTenant(TENANT)?.quotas?.maxConnections === 2, 5000, 'quota on node B')
  await waitFor(() => B.gw.store.getCredential(TENANT, 'os::00256D-CQ0004'), 5000, 'credentials on node B')

  const onA = await connect(A, { username: creds[0]!.username, password: creds[0]!.secret, clientId: 'cq-1' })
  const onB = await connect(B, { username: creds[1]!.username, password: creds[1]!.secret, clientId: 'cq-2' })

  // the third, on either node: each node alone holds one, below the quota; the cluster holds two
  assert.equal(await refusedWith(A, { username: creds[2]!.username, password: creds[2]!.secret, clientId: 'cq-3a' }), 0x97, 'MQTT 5: Quota exceeded')
  assert.equal(await refusedWith(B, { v: 4, username: creds[2]!.username, password: creds[2]!.secret, clientId: 'cq-3b' }), 3, 'MQTT 3.1.1: server unavailable')
  const evA = await waitForEvent(A, { code: 'limits.tenant_connections', clientId: 'cq-3a' })
  assert.equal(evA.tenant, TENANT)
  assert.match(evA.reason ?? '', /across the cluster/)
  await waitForEvent(B, { code: 'limits.tenant_connections', clientId: 'cq-3b' })
  assert.deepEqual(await db.hgetall(HASH), { 'cq-a': '1', 'cq-b': '1' }, 'each node counts its own connection in Redis')
  assert.equal(await total(db), 2, 'a refused CONNECT is not counted')
  // another tenant is not limited by this one's quota
  const o = await connect(B, { username: other.username, password: other.secret, clientId: 'cq-other' })

  // one goes: its place is free on the other node too
  await closeClient(onA)
  await waitFor(async () => await total(db) === 1, 5000, 'the closed connection released in Redis')
  const again = await connect(B, { username: creds[3]!.username, password: creds[3]!.secret, clientId: 'cq-4' })
  assert.deepEqual(await db.hgetall(HASH), { 'cq-b': '2' })
  assert.equal(await refusedWith(A, { username: creds[2]!.username, password: creds[2]!.secret, clientId: 'cq-3c' }), 0x97)

  // everything released
  await closeClient(onB); await closeClient(again); await closeClient(o)
  await waitFor(async () => await total(db) === 0, 5000, 'all released')
})

test('cluster: the count of a node that died is dropped when its heartbeat expires; Redis down refuses the CONNECT (fail closed)', async () => {
  const redis = await startRedis()
  cleanup.push(() => redis.stop())
  const db = new Redis(redis.url)
  db.on('error', () => {}) // Redis is killed below
  cleanup.push(async () => { db.disconnect() })
  // a node that crashed with 2 connections of the tenant counted: its route set and its field are in
  // Redis, its heartbeat key is not (expired)
  await db.sadd(`${PREFIX}routes:nodes`, 'cq-dead')
  await db.sadd(`${PREFIX}routes:{cq-dead}`, 'cq/bulkdata/#')
  await db.set(`${PREFIX}routes:{cq-dead}:meta`, 'dead-instance 1')
  await db.sadd(`${PREFIX}quota:tenants`, TENANT)
  await db.hset(HASH, 'cq-dead', 2)
  const A = await node(redis.url, 'cq-a')
  const cred = await provision(A, TENANT, 'os::00256D-CQ0101')
  assert.equal((await A.api('PATCH', `/v1/tenants/${TENANT}`, { quotas: { maxConnections: 2 } })).status, 200)
  assert.equal(await refusedWith(A, { username: cred.username, password: cred.secret, clientId: 'cq-d1' }), 0x97, 'the control: the dead node\'s count still fills the quota')
  // route-emitter drops a node whose heartbeat is missing for heartbeatTtlMs (10 s) after it was first seen
  await waitFor(async () => (await db.hget(HASH, 'cq-dead')) === null, 30_000, 'the dead node\'s count dropped')
  const c = await connect(A, { username: cred.username, password: cred.secret, clientId: 'cq-d2' })
  await closeClient(c)
  await waitFor(async () => await total(db) === 0, 5000, 'released')

  await redis.kill()
  const refused = await refusedWith(A, { username: cred.username, password: cred.secret, clientId: 'cq-d3' })
  assert.equal(refused, 0x88, 'MQTT 5: Server unavailable')
})

test('cluster: a tenant subscription quota of 3 counts the subscriptions held on both nodes (within the one-second sync)', async () => {
  const redis = await startRedis()
  cleanup.push(() => redis.stop())
  const A = await node(redis.url, 'cs-a')
  const B = await node(redis.url, 'cs-b')
  const ca = await provision(A, 'cs', 'self::cs-ctrl-a', 'controller')
  const cb = await provision(A, 'cs', 'self::cs-ctrl-b', 'controller')
  assert.equal((await A.api('PATCH', '/v1/tenants/cs', { quotas: { maxSubscriptions: 3 } })).status, 200)
  await waitFor(() => B.gw.store.getCredential('cs', 'self::cs-ctrl-b'), 5000, 'credential on node B')
  const viewOf = (g: TestGateway): number | undefined => g.gw.cluster!.tenantQuotas.otherSubscriptions('cs')
  // both nodes, not only B: until a node's first sync after the PATCH has read the tenant's counts it has
  // no view of them and refuses the tenant's new filters (fail closed), which raced node A's first SUBSCRIBE
  await waitFor(() => viewOf(A) === 0 && viewOf(B) === 0, 5000, 'both nodes count the tenant\'s subscriptions on the other nodes')

  const subs = async (c: Awaited<ReturnType<typeof connect>>, xs: string[]): Promise<number[]> =>
    await c.subscribeAsync(Object.fromEntries(xs.map(x => [`cs/bulkdata/${x}/#`, { qos: 0 as const }]))).then(
      gs => gs.map(g => g.qos), (err: { packet?: { granted: number[] } }) => { if (err.packet === undefined) throw err; return err.packet.granted })
  const onA = await connect(A, { username: ca.username, password: ca.secret, clientId: 'cs-a1' })
  const onB = await connect(B, { username: cb.username, password: cb.secret, clientId: 'cs-b1' })
  assert.deepEqual(await subs(onA, ['a', 'b']), [0, 0])
  await waitFor(() => viewOf(B) === 2, 10_000, 'node B sees node A\'s 2 subscriptions')
  assert.deepEqual(await subs(onB, ['c', 'd']), [0, 0x87], 'the tenant\'s fourth subscription, on the other node')
  const ev = await waitForEvent(B, { code: 'limits.tenant_subscriptions', topic: 'cs/bulkdata/d/#' })
  assert.match(ev.reason ?? '', /across the cluster/)
  // node A's client goes: its subscriptions free the quota on node B too
  await closeClient(onA)
  await waitFor(() => viewOf(B) === 0, 10_000, 'node B sees node A\'s subscriptions gone')
  assert.deepEqual(await subs(onB, ['e', 'f']), [0, 0])
  await closeClient(onB)
})
