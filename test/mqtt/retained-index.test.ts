// broker/mqtt/patches/retained-index.ts: retained messages looked up by topic level instead of
// testing every retained message per SUBSCRIBE (aedes-persistence 10 memory persistence).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import { Aedes } from 'aedes'
import memoryPersistence from 'aedes-persistence'
import mqtt from 'mqtt'
import { indexRetained, RetainedIndex } from '../../broker/mqtt/patches/retained-index.ts'

type Persistence = Parameters<typeof indexRetained>[0]
const fresh = (): Persistence => (memoryPersistence as unknown as () => Persistence)()

async function collect (stream: NodeJS.ReadableStream): Promise<string[]> {
  const topics: string[] = []
  for await (const p of stream as AsyncIterable<{ topic: string }>) topics.push(p.topic)
  return topics.sort()
}

const TOPICS = ['acme/usp/status/a1', 'acme/usp/status/a2', 'acme/usp/agent/a1', 'acme/usp/agent/a1/reply-to=x', 'acme', 'beta/usp/status/a1', 'a/b/c/d']
const FILTERS = ['acme/usp/status/a1', 'acme/usp/status/+', 'acme/usp/#', 'acme/#', '#', '+', '+/usp/status/+', 'acme/+', 'acme/+/x', 'acme/usp/agent/a1/#', 'a/+/c/#', 'nothing/#', 'acme/usp/status']

test('matches what the upstream memory persistence matches, for exact and wildcard filters', async () => {
  const upstream = fresh()
  const indexed = indexRetained(fresh())
  for (const topic of TOPICS) {
    const p = { cmd: 'publish', topic, payload: Buffer.from('1'), qos: 1, retain: true }
    await upstream.storeRetained(p)
    await indexed.storeRetained(p)
  }
  for (const f of FILTERS) {
    assert.deepEqual(await collect(indexed.createRetainedStream(f)), await collect(upstream.createRetainedStream(f)), f)
  }
  assert.deepEqual(await collect(indexed.createRetainedStreamCombi(['acme/usp/status/+', 'beta/#'])), await collect(upstream.createRetainedStreamCombi(['acme/usp/status/+', 'beta/#'])))
  // the uspgate_retained_messages gauge: one per topic, a replacement is not a second one
  await indexed.storeRetained({ cmd: 'publish', topic: 'acme', payload: Buffer.from('2'), qos: 1, retain: true })
  assert.equal(indexed.countRetained(), TOPICS.length)
  // an empty payload deletes; deleting twice or an unknown topic is harmless
  for (const p of [indexed, upstream]) {
    await p.storeRetained({ topic: 'acme/usp/status/a1', payload: Buffer.alloc(0) })
    await p.storeRetained({ topic: 'acme/usp/status/a1', payload: Buffer.alloc(0) })
    await p.storeRetained({ topic: 'no/such/topic', payload: Buffer.alloc(0) })
  }
  for (const f of FILTERS) assert.deepEqual(await collect(indexed.createRetainedStream(f)), await collect(upstream.createRetainedStream(f)), `after delete: ${f}`)
  assert.equal(indexed.countRetained(), TOPICS.length - 1)
})

test('a wildcard at the first level does not match $ topics [MQTT-4.7.2-1]; # includes the parent level [MQTT-4.7.1-2]; + matches an empty level', () => {
  const ix = new RetainedIndex<{ topic: string }>()
  for (const topic of ['$SYS/x', 'a', 'a/b', 'sport/', 'a//x']) ix.set({ topic })
  assert.deepEqual([...ix.match('a/+/x')].map(p => p.topic), ['a//x'])
  // MQTT 5 4.7.1.2: "sport/+" matches "sport/" (an empty level) but not "sport" (qlobber differs here)
  assert.deepEqual([...ix.match('sport/+')].map(p => p.topic), ['sport/'])
  assert.deepEqual([...ix.match('#')].map(p => p.topic).sort(), ['a', 'a//x', 'a/b', 'sport/'])
  assert.deepEqual([...ix.match('+/x')].map(p => p.topic), [])
  assert.deepEqual([...ix.match('$SYS/#')].map(p => p.topic), ['$SYS/x'])
  assert.deepEqual([...ix.match('a/#')].map(p => p.topic).sort(), ['a', 'a//x', 'a/b'])
  ix.delete('a/b')
  ix.delete('a')
  assert.equal(ix.size, 3)
})

test('a SUBSCRIBE to one inbox does not test every retained message (one retained presence message per agent)', async () => {
  // aedes-persistence tests each retained topic with a qlobber: count those tests
  const require = createRequire(import.meta.resolve('aedes-persistence'))
  const { QlobberTrue } = require('qlobber') as { QlobberTrue: { prototype: { test: (t: string) => boolean } } }
  const original = QlobberTrue.prototype.test
  let tests = 0
  QlobberTrue.prototype.test = function (this: unknown, t: string) { tests++; return original.call(this, t) }
  try {
    const p = indexRetained(fresh())
    for (let i = 0; i < 5000; i++) await p.storeRetained({ topic: `acme/usp/status/a${i}`, payload: Buffer.from('1') })
    assert.deepEqual(await collect(p.createRetainedStreamCombi(['acme/usp/agent/a17'])), [])
    assert.deepEqual(await collect(p.createRetainedStreamCombi(['acme/usp/status/a17'])), ['acme/usp/status/a17'])
    assert.equal(tests, 0, `${tests} retained messages tested for two single-topic SUBSCRIBEs`)
  } finally {
    QlobberTrue.prototype.test = original
  }
})

test('through a real aedes broker: a subscriber gets the matching retained messages, a cleared one no longer', async () => {
  const broker = new Aedes({ persistence: indexRetained(fresh()) as never })
  await broker.listen()
  const server = createServer(broker.handle)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const clients: mqtt.MqttClient[] = []
  try {
    const pub = await mqtt.connectAsync({ port, host: '127.0.0.1', protocolVersion: 5, reconnectPeriod: 0 })
    clients.push(pub)
    await pub.publishAsync('acme/usp/status/a1', '1', { qos: 1, retain: true })
    await pub.publishAsync('acme/usp/status/a2', '0', { qos: 1, retain: true })
    const received = async (filter: string): Promise<string[]> => {
      const sub = await mqtt.connectAsync({ port, host: '127.0.0.1', protocolVersion: 5, reconnectPeriod: 0 })
      clients.push(sub)
      const got: string[] = []
      sub.on('message', (topic, payload, packet) => { if (packet.retain) got.push(`${topic}=${payload.toString()}`) })
      await sub.subscribeAsync(filter, { qos: 1 })
      await new Promise(resolve => setTimeout(resolve, 300))
      return got.sort()
    }
    assert.deepEqual(await received('acme/usp/status/+'), ['acme/usp/status/a1=1', 'acme/usp/status/a2=0'])
    assert.deepEqual(await received('acme/usp/status/a2'), ['acme/usp/status/a2=0'])
    await pub.publishAsync('acme/usp/status/a2', '', { qos: 1, retain: true })
    assert.deepEqual(await received('acme/usp/status/#'), ['acme/usp/status/a1=1'])
  } finally {
    for (const c of clients) await c.endAsync(true)
    server.close()
    await new Promise<void>(resolve => broker.close(() => resolve()))
  }
})
