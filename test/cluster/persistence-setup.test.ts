// The start-up patch of aedes-persistence-redis (broker/cluster/patches/batched-persistence-setup.ts)
// on a real redis-server with real aedes brokers: a node starting on 2,500 stored persistent sessions
// loads exactly the subscriptions the unpatched library loads (more than one pipeline batch) without
// one-by-one HGETALLs, and a session stored while the node starts is not lost.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { Aedes } from 'aedes'
import { batchPersistenceSetup, SETUP_BATCH, type SetupConnection } from '../../broker/cluster/patches/index.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

const require = createRequire(import.meta.url)
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const redisPersistence = require('aedes-persistence-redis') as (opts: Record<string, unknown>) => any
const PersistenceRedis = createRequire(require.resolve('aedes-persistence-redis'))('ioredis') as new (opts: Record<string, unknown>) => SetupConnection & { disconnect(): void, info(section: string): Promise<string> }

const K = 2500
const keyPrefix = 'setup-test:aedes:'
let redis: TestRedis
const open: Array<{ close(cb?: () => void): void }> = []
const conns: Array<{ disconnect(): void }> = []

function connection (): InstanceType<typeof PersistenceRedis> {
  const c = new PersistenceRedis({ port: redis.port, keyPrefix })
  conns.push(c)
  return c
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function broker (persistence: any): Promise<void> {
  const b = await Aedes.createBroker({ persistence })
  open.push(b)
}

before(async () => { redis = await startRedis() })
after(async () => {
  for (const b of open) await new Promise<void>(resolve => b.close(() => resolve()))
  for (const c of conns) c.disconnect()
  await redis.stop()
})

test('a node starting on stored sessions loads every subscription the library would, in pipelines', async () => {
  assert.ok(K > SETUP_BATCH, 'more than one batch')
  const writer = redisPersistence({ conn: connection() })
  await broker(writer)
  for (let i = 0; i < K; i++) {
    await writer.addSubscriptions({ id: `ta:os::${i}|agent-${i}` }, [{ topic: `ta/usp/agent/os::${i}/#`, qos: 1 }, { topic: `ta/usp/agent/os::${i}`, qos: 1, rh: 0, rap: false, nl: false }])
  }

  const plain = redisPersistence({ conn: connection() })
  await broker(plain)
  const conn = connection()
  // one-by-one HGETALLs that reach Redis (the patch's pipelines do not go through this method)
  const hgetall = conn.hgetallBuffer.bind(conn)
  let oneByOne = 0
  const spy = async (key: string, ...rest: unknown[]): Promise<unknown> => { oneByOne++; return await hgetall(key, ...rest) }
  conn.hgetallBuffer = spy
  const patched = batchPersistenceSetup(redisPersistence({ conn }), conn)
  const calls = async (): Promise<number> => Number(/cmdstat_hgetall:calls=(\d+)/.exec(await conn.info('commandstats'))?.[1] ?? 0)
  const before = await calls()
  // a session stored while the node starts (after the patch's prefetch, before upstream's own SMEMBERS)
  // is not in the prefetch: upstream reads it from Redis as before
  const smembers = conn.smembers.bind(conn)
  let n = 0
  conn.smembers = async (key: string) => {
    if (++n === 2) await writer.addSubscriptions({ id: 'ta:os::late|late' }, [{ topic: 'ta/usp/agent/os::late/#', qos: 1 }])
    return await smembers(key)
  }
  await broker(patched)
  assert.equal(n, 2)
  assert.ok((await calls()) - before >= K + 1, 'every client hash was read')
  assert.equal(oneByOne, 1, 'only the late session was read one by one')

  const [mineCount, theirCount] = [await patched.countOffline(), await plain.countOffline()]
  assert.equal(theirCount.subsCount, 2 * K)
  assert.equal(mineCount.subsCount, 2 * K + 1)
  for (const i of [0, 1, SETUP_BATCH - 1, SETUP_BATCH, K - 1]) {
    const topic = `ta/usp/agent/os::${i}/reply-to=x`
    const mine = (await patched.subscriptionsByTopic(topic)).map((s: { clientId: string, topic: string, qos: number }) => `${s.clientId} ${s.topic} ${s.qos}`)
    const theirs = (await plain.subscriptionsByTopic(topic)).map((s: { clientId: string, topic: string, qos: number }) => `${s.clientId} ${s.topic} ${s.qos}`)
    assert.deepEqual(mine, theirs)
    assert.deepEqual(mine, [`ta:os::${i}|agent-${i} ta/usp/agent/os::${i}/# 1`])
  }
  assert.equal((await patched.subscriptionsByTopic('ta/usp/agent/os::late/x')).length, 1, 'the late session')
  assert.equal(conn.hgetallBuffer, spy, 'the connection is left as it was')
})
