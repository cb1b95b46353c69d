// A node that crashes (SIGKILL, child process running the real CLI) under a persistent QoS 1
// subscriber: its routes are dropped by the other nodes once its heartbeat expired (in memory and in
// Redis), and every message published for its persistent session, both while the dead node's routes
// were still known and after they were dropped, is queued and delivered when the session reconnects
// through another node. Nodes A and B run in this process on the same real redis-server.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import mqtt, { type MqttClient } from 'mqtt'
import { Redis } from 'ioredis'
import { startGateway, provision, waitFor, closeClient, removeDir, type TestGateway, untilConnected } from '../helpers/gateway.ts'
import { startCliNode, type CliNode } from '../helpers/cli-node.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { HEARTBEAT_TTL_S, HEARTBEAT_MS } from '../../broker/cluster/index.ts'

const prefix = 'uspgate-crash:'
const AG = 'os::00256D-00C1'
const CT = 'self::ctrl-c'
const N = 10

let redis: TestRedis
let admin: Redis
let A: TestGateway
let B: TestGateway
let child: CliNode | undefined
const clients: MqttClient[] = []
const creds: Record<string, { username: string, secret: string }> = {}

before(async () => {
  redis = await startRedis()
  admin = new Redis({ port: redis.port })
  A = await startGateway({ redis: { url: redis.url, prefix }, nodeId: 'node-a', limits: { publishRatePerSecond: 0 } })
  B = await startGateway({ redis: { url: redis.url, prefix }, nodeId: 'node-b', limits: { publishRatePerSecond: 0 } })
  creds.ag = await provision(A, 'ta', AG, 'agent')
  creds.ct = await provision(A, 'ta', CT, 'controller')
})

after(async () => {
  const proc = child?.proc
  if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  for (const c of clients) await closeClient(c)
  for (const t of [A, B]) { await t?.close(); if (t) await removeDir(t.dataDir) }
  if (child !== undefined) await removeDir(child.dataDir)
  admin?.disconnect()
  await redis?.stop()
})

function mqttClient (port: number, opts: Record<string, unknown>): Promise<MqttClient> {
  const m = mqtt.connect({ host: '127.0.0.1', port, reconnectPeriod: 0, connectTimeout: 5000, ...opts })
  clients.push(m)
  m.on('error', () => {})
  return untilConnected(m).then(() => m)
}

test("a crashed node's routes are gone after its heartbeat expires; messages for its persistent session are queued, not lost", async () => {
  const c = child = await startCliNode({ redisUrl: redis.url, prefix, nodeId: 'node-c' })
  const session = { protocolVersion: 5 as const, clientId: 'durable-c', clean: false, properties: { sessionExpiryInterval: 600 }, username: creds.ct!.username, password: creds.ct!.secret }
  const topic = `ta/bulkdata/${AG}/t`
  const sub = await mqttClient(c.port, session)
  await sub.subscribeAsync('ta/bulkdata/#', { qos: 1 })
  const routesOf = (t: TestGateway): Set<string> => t.gw.cluster!.mq.table.match(topic)
  // node A routes the topic to node C (and only there), and knows the persistent subscription
  await waitFor(() => routesOf(A).has('node-c'), 2000, "node C's route on node A")
  const persistenceA = (A.gw.broker as unknown as { persistence: { subscriptionsByTopic(t: string): Promise<Array<{ clientId: string }>> } }).persistence
  await waitFor(async () => (await persistenceA.subscriptionsByTopic(topic)).some(s => s.clientId.endsWith('|durable-c')), 5000, 'persistent subscription known on node A')

  // node C dies: no DISCONNECT, no goodbye on the route channel, its heartbeat is left to expire
  const exited = new Promise<void>(resolve => c.proc.once('exit', () => resolve()))
  const killedAt = Date.now()
  c.proc.kill('SIGKILL')
  await exited
  sub.end(true)
  const pub = await mqttClient(A.mqttPort, { protocolVersion: 5, clientId: 'pub-c', username: creds.ag!.username, password: creds.ag!.secret })
  // while node C's routes are still known: sent to its channel (nobody listens) and queued in Redis
  assert.ok(routesOf(A).has('node-c'))
  for (let i = 0; i < N / 2; i++) await pub.publishAsync(topic, `m${i}`, { qos: 1 })

  // heartbeat TTL, then one maintenance pass: gone on both nodes and in Redis
  const limitMs = HEARTBEAT_TTL_S * 1000 + 3 * HEARTBEAT_MS
  await waitFor(() => !routesOf(A).has('node-c') && !routesOf(B).has('node-c'), limitMs + 2000, "node C's routes dropped on A and B")
  const droppedAfter = Date.now() - killedAt
  assert.ok(droppedAfter <= limitMs, `routes dropped ${droppedAfter} ms after SIGKILL (limit ${limitMs})`)
  assert.equal(await admin.exists(`${prefix}routes:{node-c}`), 0, 'route set of node C removed from Redis')
  assert.equal(await admin.call('PUBSUB', 'NUMPAT'), 0)

  // after the routes are gone: not sent anywhere live, queued in Redis all the same
  for (let i = N / 2; i < N; i++) await pub.publishAsync(topic, `m${i}`, { qos: 1 })

  const got = new Set<string>()
  const m = mqtt.connect({ host: '127.0.0.1', port: B.mqttPort, reconnectPeriod: 0, connectTimeout: 5000, ...session })
  clients.push(m)
  m.on('error', () => {})
  m.on('message', (t, payload) => got.add(`${t}=${payload.toString()}`))
  await untilConnected(m)
  await waitFor(() => got.size >= N, 5000, `all ${N} queued messages through node B`)
  assert.deepEqual([...got].sort(), Array.from({ length: N }, (_, i) => `${topic}=m${i}`).sort())
  // and the session lives on node B now: routable from node A again
  await waitFor(() => routesOf(A).has('node-b'), 2000, "the resumed session's route on node A")
})
