// A gateway node dies abruptly (SIGKILL, no shutdown) under two persistent QoS 1 subscribers
// (MQTT 3.1.1 clean=false; MQTT 5 clean=false + sessionExpiryInterval 600). Node C runs as a child
// process (`node bin/uspgate.js start` in cluster mode); nodes A and B run in this process on the
// same real redis-server. Messages published through A while the subscribers are away must all reach
// them when they reconnect to B (at-least-once: the set is asserted, duplicates allowed), and C's
// heartbeat must leave GET /v1/cluster within its expiry.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import mqtt, { type MqttClient } from 'mqtt'
import { startGateway, provision, waitFor, closeClient, removeDir, sleep, type TestGateway, untilConnected } from '../helpers/gateway.ts'
import { startCliNode, type CliNode } from '../helpers/cli-node.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { HEARTBEAT_TTL_S } from '../../broker/cluster/index.ts'

const prefix = 'uspgate-kill:'
const AG = 'os::00256D-00K1'
const CT = 'self::ctrl-k'
const N = 20

let redis: TestRedis
let A: TestGateway
let B: TestGateway
let child: CliNode | undefined
const clients: MqttClient[] = []
const creds: Record<string, { username: string, secret: string }> = {}

function killChild (): void {
  const proc = child?.proc
  if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
}

before(async () => {
  redis = await startRedis()
  A = await startGateway({ redis: { url: redis.url, prefix }, nodeId: 'node-a', limits: { publishRatePerSecond: 0 } })
  B = await startGateway({ redis: { url: redis.url, prefix }, nodeId: 'node-b', limits: { publishRatePerSecond: 0 } })
  creds.ag = await provision(A, 'ta', AG, 'agent')
  creds.ct = await provision(A, 'ta', CT, 'controller')
})

after(async () => {
  killChild()
  for (const c of clients) await closeClient(c)
  for (const t of [A, B]) { await t?.close(); if (t) await removeDir(t.dataDir) }
  if (child !== undefined) await removeDir(child.dataDir)
  await redis?.stop()
})

test('SIGKILL of the node under persistent QoS 1 subscribers (MQTT 5 and 3.1.1): every message published meanwhile arrives through another node, CONNACK first; its heartbeat expires', async () => {
  const c = child = await startCliNode({ redisUrl: redis.url, prefix, nodeId: 'node-c' })
  // Two persistent subscribers on one topic share each queued message in Redis: this is the case
  // where a duplicate acknowledgement from one of them used to delete the other's copy.
  const sessions = {
    'MQTT 3.1.1': { protocolVersion: 4 as const, clientId: 'durable-k3', clean: false },
    'MQTT 5': { protocolVersion: 5 as const, clientId: 'durable-k5', clean: false, properties: { sessionExpiryInterval: 600 } }
  }
  type SessionOpts = (typeof sessions)[keyof typeof sessions]
  const open = (port: number, opts: SessionOpts, onMessage?: (s: string) => void): MqttClient => {
    const m = mqtt.connect({ host: '127.0.0.1', port, reconnectPeriod: 0, connectTimeout: 5000, username: creds.ct!.username, password: creds.ct!.secret, ...opts })
    clients.push(m)
    m.on('error', () => {})
    // the handler must be in place before CONNACK: queued messages follow it in the same read
    if (onMessage) m.on('message', (topic, payload) => onMessage(`${topic}=${payload.toString()}`))
    return m
  }

  // 1. both persistent subscribers on node C
  const onC = Object.values(sessions).map(opts => open(c.port, opts))
  await Promise.all(onC.map(untilConnected))
  for (const m of onC) await m.subscribeAsync('ta/bulkdata/#', { qos: 1 })
  // aedes-persistence-redis announces persistent subscriptions to the other nodes asynchronously;
  // node A only queues offline messages for subscriptions it has heard of. Wait for both.
  const persistenceA = (A.gw.broker as unknown as { persistence: { subscriptionsByTopic(t: string): Promise<Array<{ clientId: string }>> } }).persistence
  const topic = `ta/bulkdata/${AG}/k`
  const deadline = Date.now() + 5000
  for (;;) {
    const subs = await persistenceA.subscriptionsByTopic(topic)
    if (['|durable-k3', '|durable-k5'].every(id => subs.some(s => s.clientId.endsWith(id)))) break
    if (Date.now() > deadline) throw new Error(`node A never learned the persistent subscriptions (knows ${JSON.stringify(subs.map(s => s.clientId))})`)
    await sleep(20)
  }

  // 2. node C dies: no DISCONNECT, no flush, its heartbeat key is left to expire
  const closed = onC.map(m => new Promise<void>(resolve => m.once('close', () => resolve())))
  const killedAt = Date.now()
  const exited = new Promise<void>(resolve => c.proc.once('exit', () => resolve()))
  c.proc.kill('SIGKILL')
  await exited
  await Promise.all(closed)
  for (const m of onC) m.end(true)

  // 3. N messages through node A while both subscribers are offline
  const pub = await new Promise<MqttClient>((resolve, reject) => {
    const m = mqtt.connect({ host: '127.0.0.1', port: A.mqttPort, protocolVersion: 5, reconnectPeriod: 0, clientId: 'pub-k', username: creds.ag!.username, password: creds.ag!.secret })
    clients.push(m)
    m.once('connect', () => resolve(m))
    m.once('error', reject)
  })
  for (let i = 0; i < N; i++) await pub.publishAsync(topic, `m${i}`, { qos: 1 })
  const want = Array.from({ length: N }, (_, i) => `${topic}=m${i}`).sort()

  // 4. each reconnects to node B once: CONNACK is the first packet it receives [MQTT-3.2.0-1] (a
  //    live message used to overtake it, and a 3.1.1 client then never completed the connect),
  //    and the whole queue follows (at-least-once: the set is asserted, duplicates allowed)
  for (const [name, opts] of Object.entries(sessions)) {
    const got = new Set<string>()
    const m = open(B.mqttPort, opts, s => got.add(s))
    const order: string[] = []
    m.on('packetreceive', p => order.push(p.cmd))
    await untilConnected(m)
    assert.equal(order[0], 'connack', `${name}: first packet from node B`)
    await waitFor(() => got.size >= N, 5000, `${name}: all ${N} queued messages on the first reconnect to node B`)
    assert.deepEqual([...got].sort(), want, `${name}: every message published while node C was dead`)
  }

  // 5. node C's heartbeat (SET EX HEARTBEAT_TTL_S, refreshed every 2 s) disappears from GET /v1/cluster
  const limitMs = HEARTBEAT_TTL_S * 1000 + 2000
  let nodes: string[] = []
  for (;;) {
    const r = await A.api('GET', '/v1/cluster')
    assert.equal(r.status, 200)
    nodes = (r.body.nodes as Array<{ node: string }>).map(n => n.node)
    if (!nodes.includes('node-c')) break
    if (Date.now() - killedAt > limitMs) assert.fail(`node-c still listed ${Date.now() - killedAt} ms after SIGKILL: ${JSON.stringify(nodes)}`)
    await sleep(250)
  }
  assert.deepEqual(nodes, ['node-a', 'node-b'])
})
