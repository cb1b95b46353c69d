// MQTT over WebSocket and secure WebSocket: real mqtt.js clients over ws:// and wss:// get exactly the
// identity, isolation, events and revocation of the TCP listener.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import WebSocket from 'ws'
import { startGateway, provision, connect, waitFor, waitForEvent, closeClient, removeDir, sleep, type TestGateway } from '../helpers/gateway.ts'

let t: TestGateway
let agent: { username: string, secret: string }
let ctrl: { username: string, secret: string }
let other: { username: string, secret: string }
const AGENT = 'os::00256D-WS01'
let rootCa = ''

before(async () => {
  t = await startGateway({ ws: true, wss: true })
  agent = await provision(t, 'acme', AGENT, 'agent')
  ctrl = await provision(t, 'acme', 'self::ctrl-ws', 'controller')
  other = await provision(t, 'globex', 'os::00256D-GLOBEX', 'agent')
  rootCa = await t.gw.certificates.trustBundlePem()
})
after(async () => { await t.close(); await removeDir(t.dataDir) })

function wsConnect (url: string, opts: IClientOptions): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts })
    const fail = (err: Error): void => { c.end(true); reject(err) }
    c.once('connect', () => { c.off('error', fail); resolve(c) })
    c.once('error', fail)
    c.once('close', () => fail(Object.assign(new Error('closed before CONNACK'), { code: 'closed' })))
  })
}
const wsUrl = (): string => `ws://127.0.0.1:${t.wsPort}/mqtt`
const wssUrl = (): string => `wss://127.0.0.1:${t.wssPort}/mqtt`

for (const v of [4, 5] as const) {
  test(`ws, MQTT ${v === 5 ? '5' : '3.1.1'}: an agent and a controller on WebSocket exchange messages with a TCP controller, in their tenant`, async () => {
    const a = await wsConnect(wsUrl(), { protocolVersion: v, username: agent.username, password: agent.secret, clientId: `ws-agent-${v}` })
    const wsCtrl = await wsConnect(wsUrl(), { protocolVersion: v, username: ctrl.username, password: ctrl.secret, clientId: `ws-ctrl-${v}` })
    const tcpCtrl = await connect(t, { v: 5, username: ctrl.username, password: ctrl.secret, clientId: `tcp-ctrl-${v}` })
    const overWs: string[] = []
    const overTcp: string[] = []
    wsCtrl.on('message', (topic, payload) => overWs.push(`${topic}=${payload.toString()}`))
    tcpCtrl.on('message', (topic, payload) => overTcp.push(`${topic}=${payload.toString()}`))
    await wsCtrl.subscribeAsync('acme/bulkdata/#', { qos: 1 })
    await tcpCtrl.subscribeAsync('acme/bulkdata/#', { qos: 1 })
    await a.publishAsync(`acme/bulkdata/${AGENT}/stats`, `from-ws-${v}`, { qos: 1 })
    await waitFor(() => overWs.length > 0 && overTcp.length > 0, 5000, 'delivery to both controllers')
    assert.deepEqual(overWs, [`acme/bulkdata/${AGENT}/stats=from-ws-${v}`])
    assert.deepEqual(overTcp, overWs)
    const sessions = (await t.api('GET', '/v1/sessions?tenant=acme')).body.sessions as Array<{ clientId: string, listener: string, remoteAddress: string }>
    const s = sessions.find(x => x.clientId === `ws-agent-${v}`)!
    assert.equal(s.listener, 'ws')
    assert.equal(s.remoteAddress, '127.0.0.1')
    await closeClient(a); await closeClient(wsCtrl); await closeClient(tcpCtrl)
  })
}

test('ws: a bare username is refused with auth.bare_username, like on TCP', async () => {
  await assert.rejects(wsConnect(wsUrl(), { protocolVersion: 5, username: AGENT, password: agent.secret, clientId: 'ws-bare' }), (err: { code?: number }) => err.code === 0x86)
  const ev = await waitForEvent(t, { code: 'auth.bare_username', clientId: 'ws-bare' })
  assert.equal(ev.remoteAddress, '127.0.0.1')
})

test('ws: a publish to another tenant is refused (PUBACK 0x87, acl.cross_tenant) and never delivered', async () => {
  const spy = await connect(t, { v: 5, username: other.username, password: other.secret, clientId: 'ws-spy' })
  const seen: string[] = []
  spy.on('message', topic => seen.push(topic))
  await spy.subscribeAsync('globex/usp/agent/os::00256D-GLOBEX/#', { qos: 1 })
  const a = await wsConnect(wsUrl(), { protocolVersion: 5, username: ctrl.username, password: ctrl.secret, clientId: 'ws-attacker' })
  const rc = await new Promise<number | undefined>(resolve => a.publish('globex/usp/agent/os::00256D-GLOBEX/x', 'attack', { qos: 1 }, (err) => resolve((err as { code?: number } | undefined)?.code)))
  assert.equal(rc, 0x87)
  await waitForEvent(t, { code: 'acl.cross_tenant', clientId: 'ws-attacker' })
  await sleep(200)
  assert.deepEqual(seen, [])
  await closeClient(a); await closeClient(spy)
})

test('ws: revoking the credential cuts the WebSocket session within a second', async () => {
  const dev = await provision(t, 'acme', 'os::00256D-WSREV', 'agent')
  const a = await wsConnect(wsUrl(), { protocolVersion: 5, username: dev.username, password: dev.secret, clientId: 'ws-rev' })
  const closed = new Promise<void>(resolve => a.once('close', () => resolve()))
  const started = Date.now()
  assert.equal((await t.api('DELETE', `/v1/tenants/acme/credentials/${encodeURIComponent('os::00256D-WSREV')}`)).status, 200)
  await closed
  assert.ok(Date.now() - started < 1000, 'cut within 1 s')
  await closeClient(a)
})

test('wss: TLS with the gateway CA, same login and delivery', async () => {
  const a = await wsConnect(wssUrl(), { protocolVersion: 5, username: agent.username, password: agent.secret, clientId: 'wss-agent', wsOptions: { ca: rootCa } } as IClientOptions)
  const c = await connect(t, { v: 4, username: ctrl.username, password: ctrl.secret, clientId: 'wss-ctrl' })
  const got: string[] = []
  c.on('message', topic => got.push(topic))
  await c.subscribeAsync('acme/bulkdata/#', { qos: 1 })
  await a.publishAsync(`acme/bulkdata/${AGENT}/x`, 'over-wss', { qos: 1 })
  await waitFor(() => got.length > 0, 5000, 'delivery from wss')
  assert.deepEqual(got, [`acme/bulkdata/${AGENT}/x`])
  await closeClient(a); await closeClient(c)
})

test('wss: a client that does not trust the gateway CA cannot connect', async () => {
  await assert.rejects(wsConnect(wssUrl(), { protocolVersion: 5, username: agent.username, password: agent.secret, clientId: 'wss-untrusting' }))
})

test('a WebSocket without the "mqtt" subprotocol or on another path is refused; plain HTTP gets 426', async () => {
  const refused = (url: string, protocols?: string[]): Promise<string> => new Promise(resolve => {
    const ws = new WebSocket(url, protocols)
    ws.on('open', () => { ws.close(); resolve('open') })
    ws.on('error', err => resolve(err.message))
  })
  assert.notEqual(await refused(wsUrl(), ['foo']), 'open')
  assert.notEqual(await refused(`ws://127.0.0.1:${t.wsPort}/other`, ['mqtt']), 'open')
  assert.equal(await refused(wsUrl(), ['mqtt']), 'open')
  const status = await new Promise<number>((resolve, reject) => {
    request({ host: '127.0.0.1', port: t.wsPort, path: '/mqtt' }, res => { res.resume(); resolve(res.statusCode ?? 0) }).on('error', reject).end()
  })
  assert.equal(status, 426)
})
