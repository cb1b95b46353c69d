// Regression tests for the security fixes of aedes 1.1.2-1.2.0 that the pinned
// 2.0.0-beta.1 lacks. Each attacks a running gateway over a real socket; the
// gateway runs in this process, so a crash (throw or unhandled rejection)
// fails the test run.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, provision, connect, closeClient, removeDir, waitFor, waitForEvent, sleep, type TestGateway } from '../helpers/gateway.ts'
import { rawConnect, rawPeer } from '../helpers/raw-mqtt.ts'

let t: TestGateway
// the attacker is an authenticated agent; its own bulkdata topics are allowed by the default policy
let cred: { username: string, secret: string }
let watcher: { username: string, secret: string }
const AGENT = 'os::00256D-A77'
const OWN = `acme/bulkdata/${AGENT}`
before(async () => {
  t = await startGateway({ limits: { maxInflightQos2: 20 } })
  cred = await provision(t, 'acme', AGENT, 'agent')
  watcher = await provision(t, 'acme', 'self::noc', 'controller')
})
after(async () => { await t.close(); await removeDir(t.dataDir) })

async function stillServes (): Promise<void> {
  const sub = await connect(t, { v: 5, username: watcher.username, password: watcher.secret })
  const got = new Promise<string>(resolve => sub.once('message', (_t, p) => resolve(p.toString())))
  await new Promise<void>((resolve, reject) => sub.subscribe('acme/bulkdata/#', { qos: 1 }, err => err ? reject(err) : resolve()))
  const pub = await connect(t, { v: 5, username: cred.username, password: cred.secret })
  pub.publish(`${OWN}/health`, 'alive', { qos: 1 })
  assert.equal(await got, 'alive')
  await closeClient(sub); await closeClient(pub)
}

test('GHSA-xxqp-5qx8-gj5q: topics deeper than qlobber\'s 100 levels do not kill the process', async () => {
  const deep = `${OWN}/` + Array.from({ length: 150 }, (_, i) => `l${i}`).join('/')
  for (const v of [4, 5] as const) {
    const peer = await rawConnect(t.mqttPort, cred.username, cred.secret, { protocolVersion: v })
    peer.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: deep + '/#', qos: 0 }] })
    peer.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [deep] })
    peer.send({ cmd: 'publish', topic: deep, payload: Buffer.from('x'), qos: 1, messageId: 3 })
    await Promise.race([peer.closed, sleep(500)])
    peer.end()
  }
  // a will with a deep topic is refused at CONNECT
  const willPeer = await rawPeer(t.mqttPort, 4)
  willPeer.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'deep-will', keepalive: 30, username: cred.username, password: Buffer.from(cred.secret), will: { topic: deep, payload: Buffer.from('x'), qos: 0, retain: false } })
  const ack = await willPeer.next('connack')
  assert.equal(ack.returnCode, 5)
  willPeer.end()
  await waitForEvent(t, { code: 'acl.invalid_topic', action: 'will' })
  await waitForEvent(t, { code: 'acl.invalid_topic' })
  await stillServes()
})

test('GHSA-5jvp-3p2v-5qgf: a QoS 2 flood that withholds PUBREL is cut off at the inflight cap', async () => {
  const peer = await rawConnect(t.mqttPort, cred.username, cred.secret, { clientId: 'qos2-flood' })
  for (let i = 1; i <= 200; i++) {
    peer.send({ cmd: 'publish', topic: `${OWN}/flood`, payload: Buffer.from('x'), qos: 2, messageId: i })
  }
  await Promise.race([peer.closed, sleep(3000)])
  assert.equal(peer.isClosed(), true, 'connection still open after 200 unreleased QoS 2 messages')
  const ev = await waitForEvent(t, { code: 'limits.qos2_inflight', clientId: 'qos2-flood' })
  assert.match(ev.reason!, /more than 20/)
  await stillServes()
})

test('QoS 2 with PUBREL below the cap keeps flowing (the cap counts only unreleased messages)', async () => {
  const peer = await rawConnect(t.mqttPort, cred.username, cred.secret, { clientId: 'qos2-ok' })
  for (let i = 1; i <= 60; i++) {
    peer.send({ cmd: 'publish', topic: `${OWN}/ok`, payload: Buffer.from('x'), qos: 2, messageId: i })
    await peer.next('pubrec')
    peer.send({ cmd: 'pubrel', messageId: i })
    await peer.next('pubcomp')
  }
  assert.equal(peer.isClosed(), false)
  peer.end()
})

test('GHSA-p8r9-qf8w-p73r: after a clean reconnect, a new QoS 2 message reusing an old id is delivered, not dropped', async () => {
  const sub = await connect(t, { v: 5, username: watcher.username, password: watcher.secret })
  const got: string[] = []
  sub.on('message', (_tp, p) => got.push(p.toString()))
  await new Promise<void>((resolve, reject) => sub.subscribe(`${OWN}/dedup`, { qos: 2 }, err => err ? reject(err) : resolve()))
  // first connection: QoS 2 message id 7, PUBREL withheld, connection dropped
  const first = await rawConnect(t.mqttPort, cred.username, cred.secret, { clientId: 'dedup-dev', clean: true })
  first.send({ cmd: 'publish', topic: `${OWN}/dedup`, payload: Buffer.from('old'), qos: 2, messageId: 7 })
  await first.next('pubrec')
  first.end()
  await waitFor(() => got.includes('old'))
  // clean reconnect: a NEW message with the same id must be delivered
  const second = await rawConnect(t.mqttPort, cred.username, cred.secret, { clientId: 'dedup-dev', clean: true })
  second.send({ cmd: 'publish', topic: `${OWN}/dedup`, payload: Buffer.from('new'), qos: 2, messageId: 7 })
  await second.next('pubrec')
  second.send({ cmd: 'pubrel', messageId: 7 })
  await second.next('pubcomp')
  await waitFor(() => got.includes('new'), 2000, 'the new message')
  second.end()
  await closeClient(sub)
})

test('GHSA-52qw-whmv-87c5: __proto__ / constructor client ids and filters cannot reach object keys', async () => {
  for (const v of [4, 5] as const) {
    const peer = await rawPeer(t.mqttPort, v)
    peer.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: v, clean: true, clientId: '__proto__', keepalive: 30, username: cred.username, password: Buffer.from(cred.secret) })
    const ack = await peer.next('connack')
    assert.equal(v === 5 ? ack.reasonCode : ack.returnCode, v === 5 ? 0x85 : 2)
    peer.end()
  }
  await waitForEvent(t, { code: 'session.invalid_client_id', clientId: '__proto__' })
  // "constructor" is an ordinary id here: sessions are keyed by identity-scoped ids in Maps
  const c = await connect(t, { v: 5, username: cred.username, password: cred.secret, clientId: 'constructor' })
  for (const f of ['__proto__', 'acme/__proto__', 'acme/__proto__/#', 'constructor', 'acme/constructor/prototype']) {
    await new Promise<void>(resolve => c.subscribe(f, { qos: 0 }, () => resolve()))
  }
  await closeClient(c)
  await waitForEvent(t, { code: 'acl.invalid_topic', topic: 'acme/__proto__' })
  await stillServes()
})

test('a racing duplicate PUBREL does not crash the gateway (aedes 1.2.0 fix)', async () => {
  // In production an unhandled rejection kills Node; here we catch and count them.
  const rejections: unknown[] = []
  const onRejection = (reason: unknown): void => { rejections.push(reason) }
  process.on('unhandledRejection', onRejection)
  const peer = await rawConnect(t.mqttPort, cred.username, cred.secret, { clientId: 'pubrel-race' })
  for (let round = 1; round <= 20; round++) {
    peer.send({ cmd: 'publish', topic: `${OWN}/race`, payload: Buffer.from('x'), qos: 2, messageId: round })
    await peer.next('pubrec')
    // two PUBRELs in one TCP segment: both find the packet, the second delete loses the race
    const { encode } = await import('../helpers/raw-mqtt.ts')
    peer.sendRaw(Buffer.concat([encode({ cmd: 'pubrel', messageId: round }), encode({ cmd: 'pubrel', messageId: round })]))
    await peer.next('pubcomp')
  }
  await sleep(200)
  process.off('unhandledRejection', onRejection)
  assert.deepEqual(rejections.map(String), [], 'duplicate PUBREL caused unhandled rejections')
  peer.end()
  await stillServes()
})
