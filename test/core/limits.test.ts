import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect as netConnect } from 'node:net'
import { startGateway, provision, connect, closeClient, removeDir, waitFor, waitForEvent, sleep, type TestGateway } from '../helpers/gateway.ts'
import { rawConnect } from '../helpers/raw-mqtt.ts'

let t: TestGateway
let cred: { username: string, secret: string }
let ctrl: { username: string, secret: string }
const OWN = 'acme/bulkdata/os::00256D-L1'
before(async () => {
  t = await startGateway({ limits: { maxPacketBytes: 64 * 1024, connectTimeoutSeconds: 1, publishRatePerSecond: 20, publishBurst: 20 } })
  cred = await provision(t, 'acme', 'os::00256D-L1', 'agent')
  ctrl = await provision(t, 'acme', 'self::noc', 'controller')
})
after(async () => { await t.close(); await removeDir(t.dataDir) })

test('an oversized packet is refused as soon as its header is read, before the body is buffered', async () => {
  const peer = await rawConnect(t.mqttPort, cred.username, cred.secret, { clientId: 'big-3' })
  // announce a 10 MB PUBLISH but send only its first bytes: the gateway must not wait for the rest
  const header = Buffer.from([0x30, 0x80, 0x80, 0x80, 0x05]) // remaining length 10,485,760
  peer.sendRaw(Buffer.concat([header, Buffer.alloc(1024, 1)]))
  await Promise.race([peer.closed, sleep(2000)])
  assert.equal(peer.isClosed(), true)
  await waitForEvent(t, { code: 'limits.packet_too_large', clientId: 'big-3' })
})

test('MQTT 5: an oversized publish gets DISCONNECT 0x95 and the limit is advertised in CONNACK', async () => {
  const c = await connect(t, { v: 5, username: cred.username, password: cred.secret, clientId: 'big-5' })
  const reason = new Promise<number | undefined>(resolve => c.once('disconnect', p => resolve(p.reasonCode)))
  c.publish(`${OWN}/big`, Buffer.alloc(100 * 1024), { qos: 0 })
  assert.equal(await reason, 0x95)
  await waitForEvent(t, { code: 'limits.packet_too_large', clientId: 'big-5' })
  await closeClient(c)
})

test('a socket that never sends CONNECT is closed after the connect timeout (slow-loris)', async () => {
  const sock = netConnect(t.mqttPort, '127.0.0.1')
  const closed = new Promise<number>(resolve => sock.once('close', () => resolve(Date.now())))
  sock.on('error', () => {})
  const start = Date.now()
  const elapsed = (await closed) - start
  assert.ok(elapsed >= 900 && elapsed < 3000, `closed after ${elapsed} ms`)
  await waitForEvent(t, { code: 'limits.connect_timeout' })
})

test('publishing above the per-client rate drops QoS 0 messages and reports limits.rate_limited', async () => {
  const sub = await connect(t, { v: 5, username: ctrl.username, password: ctrl.secret })
  let received = 0
  sub.on('message', () => { received++ })
  await new Promise<void>((resolve, reject) => sub.subscribe(`${OWN}/rate`, { qos: 0 }, err => err ? reject(err) : resolve()))
  const pub = await connect(t, { v: 5, username: cred.username, password: cred.secret, clientId: 'rate-pub' })
  const sentAt = Date.now()
  for (let i = 0; i < 200; i++) pub.publish(`${OWN}/rate`, 'x', { qos: 0 })
  // a loaded machine may take a while: wait for the burst, then until deliveries stop
  await waitFor(() => received >= 20, 15_000, 'the allowed burst')
  for (let last = -1; last !== received;) { last = received; await sleep(300) }
  // the bucket lets through its burst plus what it refilled meanwhile, never everything
  const allowed = 20 + 20 * (Date.now() - sentAt) / 1000
  assert.ok(received < 200 && received <= allowed, `received ${received} of 200 (at most ${Math.floor(allowed)} allowed)`)
  assert.equal(pub.connected, true)
  await waitForEvent(t, { code: 'limits.rate_limited', clientId: 'rate-pub' })
  // the event log is flood-controlled (at most 20 events of a kind per second per client); the drops
  // themselves are spread over the flood by the read backpressure (about one per pause, fairness.ts)
  const seconds = Math.ceil((Date.now() - sentAt) / 1000)
  const events = t.gw.events.query({ code: 'limits.rate_limited', limit: 1000 }).length
  assert.ok(events <= 20 * seconds, `${events} rate-limit events logged in ${seconds} s`)
  await closeClient(pub); await closeClient(sub)
})

test('malformed packets close the connection with protocol.error and never crash the gateway', async () => {
  const { rawPeer } = await import('../helpers/raw-mqtt.ts')
  const garbage = [
    Buffer.from([0x10, 0x02, 0xff, 0xff]), // CONNECT with a bogus body
    Buffer.from([0xf0, 0x00]), // reserved packet type 15
    Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  ]
  for (const g of garbage) {
    const p = await rawPeer(t.mqttPort)
    p.sendRaw(g)
    await Promise.race([p.closed, sleep(1500)])
    assert.equal(p.isClosed(), true)
  }
  await waitForEvent(t, { code: 'protocol.error' })
  const ok = await connect(t, { v: 5, username: cred.username, password: cred.secret })
  await closeClient(ok)
})
