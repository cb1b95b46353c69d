// broker/mqtt/patches/unread-sys.ts: aedes' $SYS announcements of connects, disconnects, SUBSCRIBEs and
// UNSUBSCRIBEs, which no gateway client can read, are not published; in cluster mode new/clients still
// is, because a client id taken over on another node is closed on this one through it. Plain aedes
// brokers with the patch, real sockets and real mqtt.js clients; two brokers share one emitter as the
// nodes of a cluster share Redis.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { Aedes } from 'aedes'
import mqemitter from 'mqemitter'
import mqtt from 'mqtt'
import { skipUnreadSysAnnouncements } from '../../broker/mqtt/patches/index.ts'

type Emitter = ReturnType<typeof mqemitter>

async function broker (id: string, cluster: boolean, mq: Emitter = mqemitter()): Promise<{ port: number, aedes: Aedes, server: Server, sys: string[] }> {
  const aedes = await Aedes.createBroker({ id, mq } as ConstructorParameters<typeof Aedes>[0])
  skipUnreadSysAnnouncements(aedes, { cluster })
  const sys: string[] = []
  mq.on('$SYS/#', (packet: { topic: string }, cb: () => void) => { sys.push(packet.topic); cb() })
  const server = createServer(socket => { aedes.handle(socket) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { port: (server.address() as AddressInfo).port, aedes, server, sys }
}

async function stop (b: { aedes: Aedes, server: Server }): Promise<void> {
  b.server.close()
  await new Promise<void>(resolve => b.aedes.close(() => resolve()))
}

test('single node: connect, SUBSCRIBE, UNSUBSCRIBE and disconnect publish no $SYS announcement; clients are served as before', async () => {
  const b = await broker('node-1', false)
  try {
    const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.port}`, { protocolVersion: 5, clientId: 'sub', reconnectPeriod: 0 })
    const granted = await sub.subscribeAsync('acme/usp/agent/a1', { qos: 1 })
    assert.equal(granted[0]!.qos, 1)
    const got = new Promise<[string, Buffer]>(resolve => sub.once('message', (t, p) => resolve([t, p])))
    const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.port}`, { protocolVersion: 4, clientId: 'pub', reconnectPeriod: 0 })
    await pub.publishAsync('acme/usp/agent/a1', 'record', { qos: 1 })
    const [topic, payload] = await got
    assert.deepEqual([topic, payload.toString()], ['acme/usp/agent/a1', 'record'])
    await sub.unsubscribeAsync('acme/usp/agent/a1')
    await sub.endAsync()
    await pub.endAsync()
    await sleep(100)
    assert.deepEqual(b.sys, [], 'nothing announced on $SYS')
    // anything else the broker publishes on $SYS still goes out
    await new Promise<void>((resolve, reject) => b.aedes.publish({ cmd: 'publish', topic: '$SYS/node-1/heartbeat', payload: Buffer.from('node-1'), qos: 0, retain: false, dup: false }, err => err ? reject(err) : resolve()))
    assert.deepEqual(b.sys, ['$SYS/node-1/heartbeat'])
  } finally {
    await stop(b)
  }
})

test('cluster: new/clients is still announced, so a client id taken over on the other node is closed here [MQTT-3.1.4-2]; the rest is not', async () => {
  const mq = mqemitter()
  const a = await broker('node-a', true, mq)
  const b = await broker('node-b', true, mq)
  try {
    const first = await mqtt.connectAsync(`mqtt://127.0.0.1:${a.port}`, { protocolVersion: 5, clientId: 'agent-1', reconnectPeriod: 0 })
    await first.subscribeAsync('acme/usp/agent/a1', { qos: 1 })
    const closed = new Promise<void>(resolve => first.once('close', () => resolve()))
    const second = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.port}`, { protocolVersion: 5, clientId: 'agent-1', reconnectPeriod: 0 })
    await closed
    assert.equal(first.connected, false, 'node A closed its copy of the taken-over client')
    assert.equal(second.connected, true)
    await second.endAsync()
    await sleep(100)
    // (node B's start announces its birth; the two emitters' listeners both see what either publishes)
    const announced = [...new Set(a.sys)].filter(t => !t.endsWith('/birth'))
    assert.deepEqual(announced, ['$SYS/node-a/new/clients', '$SYS/node-b/new/clients'])
  } finally {
    await stop(a)
    await stop(b)
  }
})

test('single-node settings on two brokers: without new/clients the other broker keeps its copy, which is why cluster mode keeps it', async () => {
  const mq = mqemitter()
  const a = await broker('node-a', false, mq)
  const b = await broker('node-b', false, mq)
  try {
    const first = await mqtt.connectAsync(`mqtt://127.0.0.1:${a.port}`, { protocolVersion: 5, clientId: 'agent-1', reconnectPeriod: 0 })
    const second = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.port}`, { protocolVersion: 5, clientId: 'agent-1', reconnectPeriod: 0 })
    await sleep(300)
    assert.equal(first.connected, true)
    assert.equal(second.connected, true)
    await first.endAsync()
    await second.endAsync()
  } finally {
    await stop(a)
    await stop(b)
  }
})
