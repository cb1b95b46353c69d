// The retained-message patch of aedes-persistence-redis (broker/cluster/patches/retained-topic-index.ts)
// on a real redis-server: MQTT matching (checked against the in-memory index of single-node mode),
// set/replace/delete, `$` topics, the Redis commands a SUBSCRIBE costs (no HSCAN, the same with 10 or
// 3,000 unrelated retained messages, where the unpatched library scans them all), real aedes brokers
// across a node restart and a Redis restart, and the move of the unpatched library's `retained` hash.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { Aedes } from 'aedes'
import mqtt from 'mqtt'
import { indexRetainedInRedis, RetainedTopicIndex, RETAINED_BATCH, retainedKeys, type RetainedConnection } from '../../broker/cluster/patches/index.ts'
import { RetainedIndex } from '../../broker/mqtt/patches/retained-index.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

const require = createRequire(import.meta.url)
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const redisPersistence = require('aedes-persistence-redis') as (opts: Record<string, unknown>) => any
const fromPersistence = createRequire(require.resolve('aedes-persistence-redis'))
type Conn = RetainedConnection & { on(event: 'error', fn: (err: Error) => void): void, disconnect(): void, info(section: string): Promise<string>, exists(key: string): Promise<number>, hlen(key: string): Promise<number>, quit(): Promise<unknown> }
const PersistenceRedis = fromPersistence('ioredis') as new (opts: Record<string, unknown>) => Conn
const msgpack = fromPersistence('msgpack-lite') as { encode(v: unknown): Buffer, decode(b: Buffer): unknown }

let redis: TestRedis
const conns: Conn[] = []
const brokers: Aedes[] = []

function connection (keyPrefix: string): Conn {
  const c = new PersistenceRedis({ port: redis.port, keyPrefix })
  c.on('error', () => {}) // refused while the Redis restart test has it down; ioredis reconnects
  conns.push(c)
  return c
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function patched (keyPrefix: string): { persistence: any, conn: Conn } {
  const conn = connection(keyPrefix)
  return { persistence: indexRetainedInRedis(redisPersistence({ conn }), conn, msgpack), conn }
}
const retained = (topic: string, payload = '1'): Record<string, unknown> => ({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: true, dup: false })
const clear = (topic: string): Record<string, unknown> => ({ cmd: 'publish', topic, payload: Buffer.alloc(0), qos: 0, retain: true, dup: false })

async function collect (stream: NodeJS.ReadableStream): Promise<string[]> {
  const out: string[] = []
  for await (const p of stream as AsyncIterable<{ topic: string, payload: Buffer }>) out.push(`${p.topic}=${p.payload.toString()}`)
  return out.sort()
}

/** Calls per command since the server started (INFO commandstats). */
async function commandCalls (conn: Conn): Promise<Map<string, number>> {
  const calls = new Map<string, number>()
  for (const m of (await conn.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1]!, Number(m[2]))
  return calls
}
/** The commands `fn` sends to Redis (nothing else may run meanwhile), without the INFO calls of the count itself. */
async function commandsOf (conn: Conn, fn: () => Promise<unknown>): Promise<Map<string, number>> {
  const a = await commandCalls(conn)
  await fn()
  const b = await commandCalls(conn)
  const delta = new Map<string, number>()
  for (const [cmd, n] of b) if (cmd !== 'info' && n - (a.get(cmd) ?? 0) > 0) delta.set(cmd, n - (a.get(cmd) ?? 0))
  return delta
}
const total = (m: Map<string, number>): number => [...m.values()].reduce((x, y) => x + y, 0)

async function broker (persistence: unknown): Promise<{ b: Aedes, url: string }> {
  const b = await Aedes.createBroker({ persistence: persistence as never })
  brokers.push(b)
  const { createServer } = await import('node:net')
  const server = createServer(b.handle)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  b.on('closed', () => server.close())
  return { b, url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}` }
}
async function closeBroker (b: Aedes): Promise<void> {
  await new Promise<void>(resolve => b.close(() => resolve()))
  brokers.splice(brokers.indexOf(b), 1)
}
/** Retained messages a fresh subscriber to `filter` receives (until none came for 300 ms after the SUBACK). */
async function retainedOnSubscribe (url: string, filter: string): Promise<string[]> {
  const c = await mqtt.connectAsync(url, { clientId: `sub-${Math.random()}`, reconnectPeriod: 0 })
  const got: string[] = []
  c.on('message', (topic, payload, packet) => { if (packet.retain) got.push(`${topic}=${payload.toString()}`) })
  try {
    await c.subscribeAsync(filter, { qos: 1 })
    let n = -1
    while (n !== got.length) { n = got.length; await new Promise(r => setTimeout(r, 300)) }
  } finally {
    await c.endAsync()
  }
  return got.sort()
}

before(async () => { redis = await startRedis() })
after(async () => {
  for (const b of [...brokers]) await closeBroker(b)
  for (const c of conns) c.disconnect()
  await redis.stop()
})

const TOPICS = ['acme/usp/status/a1', 'acme/usp/status/a2', 'acme/usp/agent/a1', 'acme/usp/agent/a1/reply-to=x', 'acme/usp/agent/a1-x/y', 'acme/usp/agent/a1.0', 'acme', 'acme/', 'beta/usp/status/a1',
  'a/b/c/d', 'a//x', 'sport/', '/lead', '$SYS/x', '$SYS', 't{x}/y', 'caf\u00e9/\u00fc', 'pct%/x', 'star*/[x]']
const FILTERS = ['acme/usp/status/a1', 'acme/usp/status/+', 'acme/usp/#', 'acme/#', '#', '+', '+/#', '+/usp/status/+', 'acme/+', 'acme/+/x', 'acme/usp/agent/a1/#', 'acme/usp/agent/a1',
  'a/+/c/#', 'a/+/x', 'nothing/#', 'acme/usp/status', 'sport/+', '+/x', '$SYS/#', '$SYS', '+/lead', '/#', 't{x}/#', 'caf\u00e9/+', 'pct%/#', 'star*/#']

test('matches as MQTT does (the in-memory index of single-node mode), after set, replace and delete', async () => {
  const { persistence: p } = patched('rt-match:')
  const reference = new RetainedIndex<{ topic: string, payload: Buffer }>()
  const check = async (when: string): Promise<void> => {
    for (const f of FILTERS) {
      const expected = [...reference.match(f)].map(x => `${x.topic}=${x.payload.toString()}`).sort()
      assert.deepEqual(await collect(p.createRetainedStream(f)), expected, `${when}: ${f}`)
    }
    // several filters of one SUBSCRIBE: every matching topic once
    const combi = ['acme/usp/status/+', 'acme/#', 'beta/#', 'acme/usp/status/a1', '#']
    const expected = new Map<string, string>()
    for (const f of combi) for (const x of reference.match(f)) expected.set(x.topic, `${x.topic}=${x.payload.toString()}`)
    assert.deepEqual(await collect(p.createRetainedStreamCombi(combi)), [...expected.values()].sort(), `${when}: combined`)
  }
  for (const topic of TOPICS) {
    await p.storeRetained(retained(topic, `v1 ${topic}`))
    reference.set({ topic, payload: Buffer.from(`v1 ${topic}`) })
  }
  await check('set')
  // replace
  for (const topic of ['acme/usp/status/a1', 'acme', '$SYS/x']) {
    await p.storeRetained(retained(topic, 'v2'))
    reference.set({ topic, payload: Buffer.from('v2') })
  }
  await check('replaced')
  // an empty payload deletes; deleting twice or an unknown topic is harmless
  for (const topic of ['acme/usp/status/a1', 'acme/usp/status/a1', 'acme', 'sport/', 'no/such/topic', '$SYS']) {
    await p.storeRetained(clear(topic))
    reference.delete(topic)
  }
  await check('deleted')
})

test('a wildcard SUBSCRIBE reads only its subtree: no HSCAN, the same commands with 10 or 3,000 unrelated retained messages (upstream scans them all)', async () => {
  const { persistence: mine, conn } = patched('rt-cost:')
  const upstream = redisPersistence({ conn: connection('rt-cost-upstream:') })
  // what an agent subscribes when it connects, and the retained presence messages of other agents
  const subscribe = ['fleet/usp/agent/os::17/#', 'fleet/usp/agent/os::17']
  const fill = async (p: { storeRetained(pkt: unknown): Promise<void> }, from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) await p.storeRetained(retained(`fleet/usp/status/os::${i}`))
  }
  await mine.storeRetained(retained('fleet/usp/agent/os::17/boot', 'mine'))
  await upstream.storeRetained(retained('fleet/usp/agent/os::17/boot', 'mine'))
  await fill(mine, 0, 10)
  await fill(upstream, 0, 10)
  const small = await commandsOf(conn, async () => assert.deepEqual(await collect(mine.createRetainedStreamCombi(subscribe)), ['fleet/usp/agent/os::17/boot=mine']))
  const upstreamSmall = await commandsOf(conn, async () => assert.deepEqual(await collect(upstream.createRetainedStreamCombi(subscribe)), ['fleet/usp/agent/os::17/boot=mine']))
  await fill(mine, 10, 3000)
  await fill(upstream, 10, 3000)
  const large = await commandsOf(conn, async () => assert.deepEqual(await collect(mine.createRetainedStreamCombi(subscribe)), ['fleet/usp/agent/os::17/boot=mine']))
  const upstreamLarge = await commandsOf(conn, async () => assert.deepEqual(await collect(upstream.createRetainedStreamCombi(subscribe)), ['fleet/usp/agent/os::17/boot=mine']))

  // the measurement sees the upstream scan grow with the retained messages (HSCAN pages of 10)...
  assert.ok((upstreamLarge.get('hscan') ?? 0) > 100, `upstream: ${JSON.stringify([...upstreamLarge])}`)
  assert.ok((upstreamLarge.get('hscan') ?? 0) > 10 * (upstreamSmall.get('hscan') ?? 0))
  // ...and the patched lookup does not depend on them at all
  assert.equal(large.get('hscan'), undefined, `patched: ${JSON.stringify([...large])}`)
  assert.deepEqual(large, small)
  assert.ok(total(large) <= 3, `patched: ${JSON.stringify([...large])}`)
  // a filter at the first level (a controller's `#`) reads every level's range, not the unrelated tenants' messages one by one
  await mine.storeRetained(retained('other/usp/status/x'))
  const all = await collect(mine.createRetainedStream('#'))
  assert.equal(all.length, 3000 + 2)
})

test('a filter whose subtree holds more than one page of topics gets all of them, each once', async () => {
  const { persistence: p } = patched('rt-pages:')
  const n = 2 * RETAINED_BATCH + 7
  for (let i = 0; i < n; i++) await p.storeRetained(retained(`t/usp/status/${String(i).padStart(5, '0')}`))
  // topics below the prefix that the filter does not match, interleaved with those it does
  for (let i = 0; i < n; i++) await p.storeRetained(retained(`t/usp/status/${String(i).padStart(5, '0')}/deeper`))
  assert.equal((await collect(p.createRetainedStream('t/usp/status/+'))).length, n)
  assert.equal((await collect(p.createRetainedStream('t/usp/+/+/deeper'))).length, n)
  assert.equal((await collect(p.createRetainedStream('t/#'))).length, 2 * n)
  assert.equal((await collect(p.createRetainedStreamCombi(['t/usp/status/+', 't/#']))).length, 2 * n)
})

test('through real aedes brokers: a retained message set on one node reaches a subscriber on another, after a node restart and a Redis restart', async () => {
  const prefix = 'rt-broker:'
  const one = await broker(patched(prefix).persistence)
  const two = await broker(patched(prefix).persistence)
  const pub = await mqtt.connectAsync(one.url, { clientId: 'publisher', reconnectPeriod: 0 })
  await pub.publishAsync('acme/usp/status/a1', 'online', { qos: 1, retain: true })
  await pub.publishAsync('acme/usp/status/a2', 'online', { qos: 1, retain: true })
  await pub.publishAsync('acme/usp/status/a2', 'offline', { qos: 1, retain: true })
  await pub.publishAsync('acme/usp/status/a3', 'online', { qos: 1, retain: true })
  await pub.publishAsync('acme/usp/status/a3', '', { qos: 1, retain: true })
  await pub.publishAsync('beta/usp/status/b1', 'online', { qos: 1, retain: true })
  await pub.endAsync()
  const expected = ['acme/usp/status/a1=online', 'acme/usp/status/a2=offline']
  assert.deepEqual(await retainedOnSubscribe(two.url, 'acme/usp/status/+'), expected)
  assert.deepEqual(await retainedOnSubscribe(two.url, 'acme/#'), expected)
  // another tenant's message matches `#` too
  assert.deepEqual(await retainedOnSubscribe(two.url, '#'), [...expected, 'beta/usp/status/b1=online'])

  // node restart: a new broker on the same Redis
  await closeBroker(two.b)
  const three = await broker(patched(prefix).persistence)
  assert.deepEqual(await retainedOnSubscribe(three.url, 'acme/usp/status/+'), expected)

  // Redis restart with its data saved
  await closeBroker(one.b)
  await closeBroker(three.b)
  await redis.restart({ save: true })
  const four = await broker(patched(prefix).persistence)
  assert.deepEqual(await retainedOnSubscribe(four.url, 'acme/usp/status/+'), expected)
  await closeBroker(four.b)
})

test('the unpatched library\'s retained hash is moved into the index at setup, once, without overwriting newer values', async () => {
  const prefix = 'rt-legacy:'
  const n = 1200 // a real hash table (more than hash-max-listpack-entries), several HSCAN pages
  const old = redisPersistence({ conn: connection(prefix) })
  for (let i = 0; i < n; i++) await old.storeRetained(retained(`acme/usp/status/a${i}`, 'old'))
  await old.storeRetained(retained('$SYS/legacy', 'old'))
  const { persistence: p, conn } = patched(prefix)
  // set through the index after the old hash was written (a patched node that ran meanwhile): kept
  await p.storeRetained(retained('acme/usp/status/a0', 'new'))
  assert.equal(await conn.hlen(retainedKeys.legacy), n + 1)

  // two indexes moving at once (nodes starting together) move each entry once
  const a = new RetainedTopicIndex(connection(prefix), msgpack)
  const b = new RetainedTopicIndex(connection(prefix), msgpack)
  const [movedA, movedB] = await Promise.all([a.migrateLegacy(), b.migrateLegacy()])
  assert.equal(movedA + movedB, n + 1)
  assert.equal(await conn.exists(retainedKeys.legacy), 0)
  assert.equal(await a.count(), n + 1)

  // and setup() of the patched persistence does it itself (here: nothing left to move)
  await old.storeRetained(retained('acme/usp/status/late', 'old'))
  const { url, b: node } = await broker(p)
  assert.equal(await conn.exists(retainedKeys.legacy), 0)
  const got = await retainedOnSubscribe(url, 'acme/usp/status/+')
  assert.equal(got.length, n + 1)
  assert.ok(got.includes('acme/usp/status/a0=new'))
  assert.ok(got.includes('acme/usp/status/a1=old'))
  assert.ok(got.includes('acme/usp/status/late=old'))
  assert.deepEqual(await collect(p.createRetainedStream('$SYS/#')), ['$SYS/legacy=old'])
  await closeBroker(node)
})
