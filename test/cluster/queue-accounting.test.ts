// The offline queue of a cluster node (aedes-persistence-redis 11 as the gateway wires it) on a real
// redis-server, driven through the calls aedes makes, in the order it makes them. A message queued
// for two persistent subscribers is stored once with a count of 2. When one subscriber receives it
// twice (live and from its queue, as happens when it reconnects while the message is published) and
// acknowledges both copies, the second acknowledgement used to decrement the count again: the
// message was deleted before the other subscriber read it (issue 8: lost after a node's SIGKILL).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import mqtt, { type MqttClient } from 'mqtt'
import { startGateway, provision, connect, closeClient, removeDir, sleep, waitFor, type TestGateway } from '../helpers/gateway.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

interface Queue {
  outgoingEnqueueCombi(subs: Array<{ clientId: string, topic: string, qos: number }>, packet: Record<string, unknown>): Promise<void>
  outgoingUpdate(client: { id: string }, packet: Record<string, unknown>): Promise<void>
  outgoingClearMessageId(client: { id: string }, packet: { messageId?: number }): Promise<Record<string, unknown> | undefined>
  outgoingStream(client: { id: string }): AsyncIterable<Record<string, unknown>>
}

let redis: TestRedis
let node: TestGateway
let queue: Queue

before(async () => {
  redis = await startRedis()
  node = await startGateway({ redis: { url: redis.url, prefix: 'uspgate-queue:' }, nodeId: 'node-q' })
  queue = (node.gw.broker as unknown as { persistence: Queue }).persistence
})
after(async () => {
  await node?.close(); if (node) await removeDir(node.dataDir)
  await redis?.stop()
})

async function queued (clientId: string): Promise<string[]> {
  const out: string[] = []
  for await (const p of queue.outgoingStream({ id: clientId })) out.push(Buffer.from(p.payload as Uint8Array).toString())
  return out
}

function packet (counter: number, payload: string): Record<string, unknown> {
  return { cmd: 'publish', brokerId: 'node-x', brokerCounter: counter, topic: 'ta/bulkdata/os::x/q', payload: Buffer.from(payload), qos: 1, retain: false, dup: false }
}

test('a subscriber acknowledging its duplicate copy does not delete the message another subscriber still has queued', async () => {
  const subs = ['ta:self::a|one', 'ta:self::a|two'].map(clientId => ({ clientId, topic: 'ta/bulkdata/#', qos: 1 }))
  await queue.outgoingEnqueueCombi(subs, packet(1, 'm1'))
  await queue.outgoingEnqueueCombi(subs, packet(2, 'm2'))
  const one = { id: subs[0]!.clientId }

  // subscriber one gets m1 twice under two message ids (live, then from its queue) and acks both
  await queue.outgoingUpdate(one, { ...packet(1, 'm1'), messageId: 101 })
  await queue.outgoingUpdate(one, { ...packet(1, 'm1'), messageId: 102 })
  assert.equal(Buffer.from((await queue.outgoingClearMessageId(one, { messageId: 101 }))!.payload as Uint8Array).toString(), 'm1')
  await queue.outgoingClearMessageId(one, { messageId: 102 })
  // an acknowledgement for an id this node never handed out changes nothing
  assert.equal(await queue.outgoingClearMessageId(one, { messageId: 999 }), undefined)

  assert.deepEqual(await queued(one.id), ['m2'])
  assert.deepEqual(await queued(subs[1]!.clientId), ['m1', 'm2'], 'the other subscriber still has both')

  // once both subscribers acknowledged it, the stored message is gone from Redis
  const two = { id: subs[1]!.clientId }
  await queue.outgoingUpdate(two, { ...packet(1, 'm1'), messageId: 7 })
  await queue.outgoingClearMessageId(two, { messageId: 7 })
  assert.deepEqual(await queued(two.id), ['m2'])
  const { Redis } = await import('ioredis')
  const r = new Redis(redis.url)
  try {
    assert.equal(await r.exists('uspgate-queue:aedes:packet:node-x:1'), 0, 'packet deleted after its last acknowledgement')
    assert.equal(await r.exists('uspgate-queue:aedes:packet:node-x:2'), 1, 'packet still queued for two subscribers')
    assert.equal(await r.get('uspgate-queue:aedes:packet:node-x:2:offlineCount'), '2')
  } finally {
    r.disconnect()
  }
})

test('a persistent QoS 2 session on Redis: queued messages arrive once each, and Redis keeps nothing after PUBCOMP', async () => {
  const ag = await provision(node, 'ta', 'os::00256D-0Q2', 'agent')
  const ct = await provision(node, 'ta', 'self::ctrl-q2', 'controller')
  const open = (onMessage?: (s: string) => void): Promise<MqttClient> => new Promise((resolve, reject) => {
    const m = mqtt.connect({ host: '127.0.0.1', port: node.mqttPort, protocolVersion: 5, clientId: 'q2', clean: false, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 0, username: ct.username, password: ct.secret })
    if (onMessage) m.on('message', (_t, payload) => onMessage(payload.toString()))
    m.once('connect', () => resolve(m))
    m.once('error', reject)
  })
  const first = await open()
  await first.subscribeAsync('ta/bulkdata/#', { qos: 2 })
  await closeClient(first)
  const pub = await connect(node, { v: 5, username: ag.username, password: ag.secret, clientId: 'q2-pub' })
  for (let i = 0; i < 5; i++) await pub.publishAsync('ta/bulkdata/os::00256D-0Q2/x', `e${i}`, { qos: 2 })
  await closeClient(pub)

  const got: string[] = []
  const again = await open(s => got.push(s))
  await waitFor(() => got.length >= 5, 3000, 'the five queued QoS 2 messages')
  await sleep(300) // PUBREC/PUBREL/PUBCOMP of the last ones
  assert.deepEqual(got, ['e0', 'e1', 'e2', 'e3', 'e4'], 'each exactly once, in order')
  await closeClient(again)

  const { Redis } = await import('ioredis')
  const r = new Redis(redis.url)
  try {
    const list = `uspgate-queue:aedes:outgoing:${encodeURIComponent('ta:self::ctrl-q2|q2')}`
    assert.deepEqual(await r.lrange(list, 0, -1), [], 'queue empty after PUBCOMP')
    assert.deepEqual(await r.keys('uspgate-queue:aedes:packet:node-q:*'), [], 'no stored packet left')
  } finally {
    r.disconnect()
  }
  const later: string[] = []
  const third = await open(s => later.push(s))
  await sleep(300)
  assert.deepEqual(later, [], 'nothing delivered twice')
  await closeClient(third)
})
