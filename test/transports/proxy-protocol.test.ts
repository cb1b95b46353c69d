// PROXY protocol v1 and v2 in front of the TCP, MQTTS and WebSocket listeners: from a trusted network
// the header's source address reaches sessions, events and throttling; from anywhere else a header is
// refused with proxy.untrusted; a broken header is refused with proxy.malformed.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import mqttPacket from 'mqtt-packet'
import * as pp from 'proxy-protocol-js'
import { startGateway, provision, waitFor, waitForEvent, removeDir, type TestGateway } from '../helpers/gateway.ts'

const gateways: TestGateway[] = []
after(async () => { for (const t of gateways) { await t.close(); await removeDir(t.dataDir) } })

async function gateway (proxyTrusted: string[], extra: { mtls?: boolean, ws?: boolean } = {}): Promise<TestGateway> {
  const t = await startGateway({ proxyTrusted, ...extra })
  gateways.push(t)
  return t
}

const v1 = (src: string): Buffer => Buffer.from(new pp.V1ProxyProtocol(src.includes(':') ? pp.INETProtocol.TCP6 : pp.INETProtocol.TCP4, new pp.Peer(src, 40000), new pp.Peer(src.includes(':') ? '::1' : '127.0.0.1', 1883)).build(), 'ascii')
const v2 = (src: number[]): Buffer => Buffer.from(new pp.V2ProxyProtocol(pp.Command.PROXY, pp.TransportProtocol.STREAM,
  new pp.IPv4ProxyAddress(pp.IPv4Address.createFrom(src), 40001, pp.IPv4Address.createFrom([127, 0, 0, 1]), 1883)).build())
const connectPacket = (username: string, password: string, clientId: string): Buffer =>
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 30, username, password: Buffer.from(password) } as any)

/** Sends `preface` then a CONNECT on a raw socket; resolves with the CONNACK return code, or 'closed'. */
function connectWith (socket: Socket, preface: Buffer, connect: Buffer): Promise<number | 'closed'> {
  return new Promise(resolve => {
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    parser.on('packet', (p: any) => { if (p.cmd === 'connack') resolve(p.returnCode) })
    socket.on('data', d => parser.parse(d))
    socket.on('error', () => {})
    socket.on('close', () => resolve('closed'))
    socket.write(Buffer.concat([preface, connect]))
  })
}
const raw = (port: number): Socket => tcpConnect(port, '127.0.0.1')

test('trusted balancer, v1 and v2: the source address of the header is the session\'s and the events\' remote address', async () => {
  const t = await gateway(['127.0.0.1/32'])
  const dev = await provision(t, 'acme', 'os::00256D-PP01', 'agent')
  // v1, good credential: the session shows the device's address
  const s1 = raw(t.mqttPort)
  assert.equal(await connectWith(s1, v1('198.51.100.7'), connectPacket(dev.username, dev.secret, 'pp-v1')), 0)
  const session = await waitFor(async () => ((await t.api('GET', '/v1/sessions?tenant=acme')).body.sessions as any[]).find(s => s.clientId === 'pp-v1'))
  assert.equal(session.remoteAddress, '198.51.100.7')
  s1.destroy()
  // v2, wrong secret: the security event names the device's address, not the balancer's
  const s2 = raw(t.mqttPort)
  assert.equal(await connectWith(s2, v2([203, 0, 113, 9]), connectPacket(dev.username, 'wrong', 'pp-v2')), 4)
  const ev = await waitForEvent(t, { code: 'auth.bad_credentials', clientId: 'pp-v2' })
  assert.equal(ev.remoteAddress, '203.0.113.9')
  s2.destroy()
  // a balancer health check without a header is an ordinary direct connection
  const s3 = raw(t.mqttPort)
  assert.equal(await connectWith(s3, Buffer.alloc(0), connectPacket(dev.username, dev.secret, 'pp-direct')), 0)
  s3.destroy()
})

test('throttling follows the real address: failures behind one balancer from one device do not lock out another', async () => {
  const t = await gateway(['127.0.0.1/32'])
  const dev = await provision(t, 'acme', 'os::00256D-PP02', 'agent')
  for (let i = 0; i < 8; i++) {
    const s = raw(t.mqttPort)
    await connectWith(s, v1('198.51.100.20'), connectPacket(dev.username, 'wrong', `pp-bad-${i}`))
    s.destroy()
  }
  const locked = raw(t.mqttPort)
  // while locked, a wrong secret is answered as throttled (3.1.1: 3 Server unavailable; issue 14)
  assert.equal(await connectWith(locked, v1('198.51.100.20'), connectPacket(dev.username, 'wrong', 'pp-locked')), 3)
  await waitForEvent(t, { code: 'auth.throttled', remoteAddress: '198.51.100.20' })
  locked.destroy()
  const fine = raw(t.mqttPort)
  assert.equal(await connectWith(fine, v1('198.51.100.21'), connectPacket(dev.username, dev.secret, 'pp-other-address')), 0)
  fine.destroy()
})

test('a PROXY header from an untrusted address is refused with proxy.untrusted and admits nobody; plain MQTT still works', async () => {
  const t = await gateway(['10.0.0.0/8'])
  const dev = await provision(t, 'acme', 'os::00256D-PP03', 'agent')
  for (const header of [v1('192.0.2.1'), v2([192, 0, 2, 2])]) {
    const s = raw(t.mqttPort)
    assert.equal(await connectWith(s, header, connectPacket(dev.username, dev.secret, 'pp-spoof')), 'closed')
  }
  const ev = await waitForEvent(t, { code: 'proxy.untrusted' })
  assert.equal(ev.remoteAddress, '127.0.0.1')
  assert.equal(((await t.api('GET', '/v1/sessions?tenant=acme')).body.sessions as any[]).length, 0)
  const direct = raw(t.mqttPort)
  assert.equal(await connectWith(direct, Buffer.alloc(0), connectPacket(dev.username, dev.secret, 'pp-plain')), 0)
  direct.destroy()
})

test('a malformed header from a trusted balancer is refused with proxy.malformed', async () => {
  const t = await gateway(['127.0.0.1/32'])
  const s = raw(t.mqttPort)
  assert.equal(await connectWith(s, Buffer.from('PROXY TCP4 not-an-address 127.0.0.1 1 2\r\n'), Buffer.alloc(0)), 'closed')
  await waitForEvent(t, { code: 'proxy.malformed' })
  const s2 = raw(t.mqttPort)
  assert.equal(await connectWith(s2, Buffer.from('PROXY ' + 'x'.repeat(200)), Buffer.alloc(0)), 'closed')
})

test('MQTTS behind a trusted balancer: the header precedes the TLS handshake and its address reaches the session', async () => {
  const t = await gateway(['127.0.0.1/32'], { mtls: true })
  const dev = await provision(t, 'acme', 'os::00256D-PP04', 'agent')
  const ca = await t.gw.certificates.trustBundlePem()
  const socket = raw(t.mqttsPort)
  await new Promise<void>(resolve => socket.once('connect', () => resolve()))
  socket.write(v2([198, 51, 100, 44]))
  const tlsSocket = tlsConnect({ socket, ca, servername: 'localhost' })
  await new Promise<void>((resolve, reject) => { tlsSocket.once('secureConnect', () => resolve()); tlsSocket.once('error', reject) })
  assert.equal(await connectWith(tlsSocket as unknown as Socket, Buffer.alloc(0), connectPacket(dev.username, dev.secret, 'pp-tls')), 0)
  const session = await waitFor(async () => ((await t.api('GET', '/v1/sessions?tenant=acme')).body.sessions as any[]).find(s => s.clientId === 'pp-tls'))
  assert.equal(session.remoteAddress, '198.51.100.44')
  assert.equal(session.listener, 'mqtts')
  tlsSocket.destroy()
})

test('WebSocket behind a trusted balancer: the header\'s address reaches the session', async () => {
  const t = await gateway(['127.0.0.1/32'], { ws: true })
  const dev = await provision(t, 'acme', 'os::00256D-PP05', 'agent')
  const { default: WebSocket, createWebSocketStream } = await import('ws')
  const socket = raw(t.wsPort)
  await new Promise<void>(resolve => socket.once('connect', () => resolve()))
  socket.write(v1('198.51.100.55'))
  // ws over an already-open socket: the agent's createConnection hands it our socket
  const ws = new WebSocket(`ws://127.0.0.1:${t.wsPort}/mqtt`, ['mqtt'], { createConnection: () => socket } as any)
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
  const stream = createWebSocketStream(ws)
  assert.equal(await connectWith(stream as unknown as Socket, Buffer.alloc(0), connectPacket(dev.username, dev.secret, 'pp-ws')), 0)
  const session = await waitFor(async () => ((await t.api('GET', '/v1/sessions?tenant=acme')).body.sessions as any[]).find(s => s.clientId === 'pp-ws'))
  assert.equal(session.remoteAddress, '198.51.100.55')
  ws.terminate()
})

test('a trusted connection that sends nothing decisive is closed after the connect timeout, with an event', async () => {
  const t = await startGateway({ proxyTrusted: ['127.0.0.1/32'], limits: { connectTimeoutSeconds: 1 } })
  gateways.push(t)
  const s = raw(t.mqttPort)
  await new Promise<void>(resolve => s.once('connect', () => resolve()))
  s.write('PROXY TCP4 ')
  const closed = await new Promise<boolean>(resolve => { s.once('close', () => resolve(true)); setTimeout(() => resolve(false), 5000) })
  assert.equal(closed, true)
  await waitForEvent(t, { code: 'limits.connect_timeout' })
})

test('MQTTS from a trusted network without a header (a balancer health check, or a device on the inside) still completes TLS', async () => {
  const t = await gateway(['127.0.0.1/32'], { mtls: true })
  const dev = await provision(t, 'acme', 'os::00256D-PP06', 'agent')
  const ca = await t.gw.certificates.trustBundlePem()
  const tlsSocket = tlsConnect({ host: '127.0.0.1', port: t.mqttsPort, ca, servername: 'localhost' })
  await new Promise<void>((resolve, reject) => { tlsSocket.once('secureConnect', () => resolve()); tlsSocket.once('error', reject) })
  assert.equal(await connectWith(tlsSocket as unknown as Socket, Buffer.alloc(0), connectPacket(dev.username, dev.secret, 'pp-tls-direct')), 0)
  const session = await waitFor(async () => ((await t.api('GET', '/v1/sessions?tenant=acme')).body.sessions as any[]).find(s => s.clientId === 'pp-tls-direct'))
  assert.equal(session.remoteAddress, '127.0.0.1')
  tlsSocket.destroy()
})
