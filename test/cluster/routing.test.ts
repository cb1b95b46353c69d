// The cluster route-table emitter on its own, two (or three) emitters on one real redis-server: a
// subscription made on node A is routable from node B within ROUTE_BOUND_MS of A's acknowledgement,
// unsubscribing removes the route (refcounted per filter), a crashed node's routes are gone once its
// heartbeat expired (and a restarted node gets them back), thousands of wildcard filters leave Redis
// with no PSUBSCRIBE pattern, a message is delivered once per node (no loop), and a Redis restart
// makes the emitter unready and then rebuilds the route table.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { RouteTableEmitter, routeKeys, type RoutedPacket } from '../../broker/cluster/routing/index.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { waitFor, sleep } from '../helpers/gateway.ts'

/** What the test promises: a route made on A is usable from B this soon after A acknowledged it (typically < 5 ms). */
const ROUTE_BOUND_MS = 1000
const TTL_MS = 1500
const MAINTAIN_MS = 200

let redis: TestRedis
let admin: Redis
const prefix = 'rt-test:'
const keys = routeKeys(prefix)
const emitters: RouteTableEmitter[] = []
/** Nodes whose heartbeat the test keeps writing (what Cluster does every 2 s with EXPIRE). */
const beating = new Set<string>()
let heartbeatTimer: NodeJS.Timeout

async function node (id: string): Promise<RouteTableEmitter> {
  beating.add(id)
  await admin.set(`${prefix}nodes:${id}`, '{}', 'PX', TTL_MS)
  const e = new RouteTableEmitter({ nodeId: id, prefix, redis: { host: '127.0.0.1', port: redis.port }, heartbeatKey: id => `${prefix}nodes:${id}`, heartbeatTtlMs: TTL_MS, maintainEveryMs: MAINTAIN_MS })
  emitters.push(e)
  await e.start()
  return e
}

function on (e: RouteTableEmitter, filter: string, got: string[]): Promise<(p: RoutedPacket, cb: () => void) => void> {
  const listener = (p: RoutedPacket, cb: () => void): void => { got.push(`${p.topic}=${String(p.payload)}`); cb() }
  return new Promise(resolve => e.on(filter, listener, () => resolve(listener)))
}

function emit (e: RouteTableEmitter, topic: string, payload: string): Promise<void> {
  return new Promise((resolve, reject) => e.emit({ topic, payload: Buffer.from(payload), qos: 0, retain: false }, err => err ? reject(err) : resolve()))
}

function close (e: RouteTableEmitter): Promise<void> {
  return new Promise(resolve => e.close(resolve))
}

before(async () => {
  redis = await startRedis()
  admin = new Redis({ port: redis.port })
  admin.on('error', () => {}) // the restart test takes Redis down on purpose
  heartbeatTimer = setInterval(() => {
    for (const id of beating) admin.set(`${prefix}nodes:${id}`, '{}', 'PX', TTL_MS).catch(() => {})
  }, 300)
})

after(async () => {
  clearInterval(heartbeatTimer)
  for (const e of emitters) { e.closed ? e.disconnect() : await close(e) }
  admin.disconnect()
  await redis.stop()
})

test('a subscription on A is routable from B within the bound; unsubscribe removes it; routes are refcounted', async () => {
  const A = await node('a1')
  const B = await node('b1')
  const got: string[] = []
  const filter = 'ta/usp/agent/os::00256D-0001/#'
  const listener = await on(A, filter, got)
  const acked = Date.now()
  const topic = 'ta/usp/agent/os::00256D-0001/reply-to=ta%2Fusp%2Fcontroller%2Fc1'
  await waitFor(() => B.table.match(topic).has('a1'), ROUTE_BOUND_MS, 'route of A on B')
  const routedAfter = Date.now() - acked
  assert.ok(routedAfter <= ROUTE_BOUND_MS, `routable after ${routedAfter} ms`)
  await emit(B, topic, 'hello')
  await waitFor(() => got.length === 1, ROUTE_BOUND_MS, 'delivery on A')
  assert.deepEqual(got, [`${topic}=hello`])
  // the route is in Redis under A's hash tag, and [MQTT-4.7.1-3] `<inbox>/#` also matches the inbox itself
  assert.deepEqual(await admin.smembers(`${prefix}routes:{a1}`), [filter])
  assert.ok(B.table.match('ta/usp/agent/os::00256D-0001').has('a1'))
  // a route never matches another tenant's topic
  assert.equal(B.table.match('tb/usp/agent/os::00256D-0001/x').size, 0)

  // a second local listener on the same filter: removing one keeps the route
  const other: string[] = []
  const second = await on(A, filter, other)
  await new Promise<void>(resolve => A.removeListener(filter, second, resolve))
  await sleep(100)
  assert.ok(B.table.match(topic).has('a1'), 'route kept while one listener remains')
  await new Promise<void>(resolve => A.removeListener(filter, listener, resolve))
  await waitFor(() => !B.table.match(topic).has('a1'), ROUTE_BOUND_MS, 'route removed on B')
  assert.deepEqual(await admin.smembers(`${prefix}routes:{a1}`), [])
  await emit(B, topic, 'after')
  await sleep(200)
  assert.deepEqual(got, [`${topic}=hello`], 'nothing delivered after unsubscribe')
  await close(A)
  await close(B)
  beating.delete('a1')
  beating.delete('b1')
})

test('a message reaches each node with a matching route exactly once, and never loops', async () => {
  const A = await node('a2')
  const B = await node('b2')
  const C = await node('c2')
  const onA: string[] = []
  const onB: string[] = []
  const onC: string[] = []
  await on(A, 'tx/bulkdata/#', onA)
  await on(B, 'tx/bulkdata/+/t', onB)
  await on(B, 'tx/bulkdata/#', onB) // two filters on B: still one copy for B's emitter, two local deliveries
  await on(C, 'ty/bulkdata/#', onC)
  await waitFor(() => A.table.match('tx/bulkdata/d/t').has('b2') && C.table.match('tx/bulkdata/d/t').size === 2, ROUTE_BOUND_MS)
  const publishes = async (): Promise<number> => Number(/cmdstat_publish:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0)
  const before = await publishes()
  await emit(A, 'tx/bulkdata/d/t', 'm1')
  await waitFor(() => onA.length === 1 && onB.length === 2, ROUTE_BOUND_MS)
  await sleep(200)
  assert.deepEqual(onA, ['tx/bulkdata/d/t=m1'])
  assert.deepEqual(onB, ['tx/bulkdata/d/t=m1', 'tx/bulkdata/d/t=m1'])
  assert.deepEqual(onC, [], 'C has no matching route: it is not sent the message')
  // one PUBLISH for the message: to B's channel (A delivered locally, C is not a target)
  assert.equal(await publishes() - before, 1)
  for (const e of [A, B, C]) await close(e)
  for (const id of ['a2', 'b2', 'c2']) beating.delete(id)
})

test('thousands of wildcard subscriptions hold no Redis pattern; delivery to one of them works', async () => {
  const A = await node('a3')
  const B = await node('b3')
  const K = 3000
  const got: string[] = []
  const listener = (p: RoutedPacket, cb: () => void): void => { got.push(p.topic); cb() }
  await Promise.all(Array.from({ length: K }, (_, i) => new Promise<void>(resolve => B.on(`ta/usp/agent/os::${i}/#`, listener, resolve))))
  await waitFor(() => A.stats().remoteRoutes >= K, 10_000, 'all routes on A')
  const numpat = await admin.call('PUBSUB', 'NUMPAT')
  assert.equal(numpat, 0)
  // exact channels only: each node's inbox and the route-change channel
  const channels = (await admin.call('PUBSUB', 'CHANNELS', `${prefix}*`)) as string[]
  assert.deepEqual(channels.sort(), [keys.changes, keys.inbox('a3'), keys.inbox('b3')].sort())
  assert.equal(await admin.scard(keys.routes('b3')), K)
  await emit(A, 'ta/usp/agent/os::1234/reply-to=x', 'r')
  await waitFor(() => got.length === 1, ROUTE_BOUND_MS)
  assert.deepEqual(got, ['ta/usp/agent/os::1234/reply-to=x'])
  await close(A)
  await close(B)
  beating.delete('a3')
  beating.delete('b3')
})

test("a crashed node's routes are gone after its heartbeat TTL; a restarted node gets them back", async () => {
  const A = await node('a4')
  const B = await node('b4')
  const got: string[] = []
  await on(A, 'tc/usp/agent/x/#', got)
  await waitFor(() => B.table.match('tc/usp/agent/x/m').has('a4'), ROUTE_BOUND_MS)
  // crash: connections cut, no goodbye, heartbeat no longer written
  A.closed = true
  A.disconnect()
  beating.delete('a4')
  const crashed = Date.now()
  await waitFor(() => !B.table.match('tc/usp/agent/x/m').has('a4'), TTL_MS * 2 + MAINTAIN_MS * 5, "dead node's route dropped")
  const droppedAfter = Date.now() - crashed
  assert.ok(droppedAfter >= TTL_MS / 2, `dropped ${droppedAfter} ms after the crash: not before the heartbeat expired`)
  // the route set and its meta go in one script, the registry entry right after (another key slot)
  await waitFor(async () => (await admin.exists(keys.routes('a4'), keys.meta('a4'))) === 0, ROUTE_BOUND_MS, "dead node's keys removed")
  await waitFor(async () => (await admin.sismember(keys.registry, 'a4')) === 0, ROUTE_BOUND_MS, 'dead node left the registry')

  // the node comes back (new process): its routes are routable again
  const A2 = await node('a4')
  const again: string[] = []
  await on(A2, 'tc/usp/agent/x/#', again)
  await waitFor(() => B.table.match('tc/usp/agent/x/m').has('a4'), ROUTE_BOUND_MS)
  await emit(B, 'tc/usp/agent/x/m', 'back')
  await waitFor(() => again.length === 1, ROUTE_BOUND_MS)
  assert.deepEqual(got, [])
  await close(A2)
  await close(B)
  beating.delete('a4')
  beating.delete('b4')
})

test('a Redis restart makes the emitter unready, then the route table is rebuilt and routing resumes', async () => {
  const A = await node('a5')
  const B = await node('b5')
  const got: string[] = []
  await on(A, 'td/usp/agent/y/#', got)
  await waitFor(() => B.table.match('td/usp/agent/y/z').has('a5'), ROUTE_BOUND_MS)
  assert.ok(A.ready && B.ready)
  const restarted = redis.restart({ downMs: 500 }) // comes back empty: no route set left in Redis
  await waitFor(() => !A.ready && !B.ready, 3000, 'unready while Redis is down')
  await restarted
  for (const id of ['a5', 'b5']) await admin.set(`${prefix}nodes:${id}`, '{}', 'PX', TTL_MS).catch(() => {})
  await waitFor(() => A.ready && B.ready, 10_000, 'ready again')
  assert.deepEqual(await admin.smembers(keys.routes('a5')), ['td/usp/agent/y/#'], 'A wrote its route set again')
  await waitFor(() => B.table.match('td/usp/agent/y/z').has('a5'), ROUTE_BOUND_MS)
  await emit(B, 'td/usp/agent/y/z', 'after-restart')
  await waitFor(() => got.length === 1, ROUTE_BOUND_MS)
  await close(A)
  await close(B)
  beating.delete('a5')
  beating.delete('b5')
})
