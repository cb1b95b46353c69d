// Holes 5 and 7 of issue 14 and the throttle fixes: failed CONNECTs with a fresh client id and
// username each are flood-controlled by remote address (events.suppressed accounts for every one);
// AUTH after CONNECT (and any packet a client may not send) is an event; auth.throttled carries tenant
// and principal, answers differently from a wrong password, and lets a fixed device in at once.
import { test, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, provision, connect, closeClient, removeDir, waitFor, waitForEvent, type TestGateway } from '../helpers/gateway.ts'
import { rawPeer, rawConnect } from '../helpers/raw-mqtt.ts'

let t: TestGateway
before(async () => { t = await startGateway() })
after(async () => { await t.close(); await removeDir(t.dataDir) })

async function failedConnect (i: number): Promise<void> {
  const p = await rawPeer(t.mqttPort, 4)
  p.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `flood-${i}-${Math.random().toString(36).slice(2)}`, keepalive: 30, username: `nosuch${i}:dev${i}`, password: Buffer.from('x') })
  await p.next('connack', 10_000).catch(() => undefined)
  p.end()
}

test('1,000 failed CONNECTs from one address with fresh client ids and usernames: at most 20 events per code per second are written, events.suppressed accounts for the rest', async () => {
  const ATTEMPTS = 1000
  const since = new Date().toISOString()
  const counted = (): number => t.gw.events.query({ since, limit: 1000 }).filter(e => e.code.startsWith('auth.') && e.remoteAddress === '127.0.0.1').length
  for (let i = 0; i < ATTEMPTS; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => failedConnect(i + j)))
  const written = counted()
  assert.ok(written < 200, `${written} events written for ${ATTEMPTS} failed CONNECTs from one address`)
  // every suppressed one is accounted for (the summary is written when the window closes)
  await waitFor(() => {
    const suppressed = t.gw.events.query({ since, code: 'events.suppressed', limit: 1000 }).filter(e => e.remoteAddress === '127.0.0.1').reduce((n, e) => n + (e.count ?? 0), 0)
    return written + suppressed === ATTEMPTS
  }, 15_000, 'events.suppressed summaries covering every refused CONNECT')
})

test('AUTH after CONNECT (and a server-to-client packet) is refused with a protocol.unexpected_packet event naming the client', async () => {
  const dev = await provision(t, 'pa', 'os::00256D-PA0001', 'agent')
  for (const cmd of ['auth', 'connack'] as const) {
    const peer = await rawConnect(t.mqttPort, dev.username, dev.secret, { protocolVersion: 5, clientId: `pa-${cmd}` })
    peer.send(cmd === 'auth' ? { cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'SCRAM-SHA-1' } } : { cmd: 'connack', returnCode: 0, reasonCode: 0, sessionPresent: false })
    await peer.closed
    const ev = await waitForEvent(t, { code: 'protocol.unexpected_packet', clientId: `pa-${cmd}` })
    assert.equal(ev.tenant, 'pa')
    assert.equal(ev.principal, 'os::00256D-PA0001')
    assert.equal(ev.action, cmd)
  }
})

test('a throttled device gets its own answer (0x9F / 3), its event names tenant and principal, and it gets back in as soon as its secret is right', async () => {
  // its own gateway: the flood test above has locked 127.0.0.1 as an address on the shared one
  const own = await startGateway()
  after(async () => { await own.close(); await removeDir(own.dataDir) })
  const dev = await provision(own, 'th', 'os::00256D-TH0001', 'agent')
  const wrong = { username: dev.username, password: 'wrong-secret', clientId: 'th-1' }
  for (let i = 0; i < 5; i++) assert.equal(await refused(own, 5, wrong), 0x86)
  assert.equal(await refused(own, 5, wrong), 0x9f, 'MQTT 5: Connection rate exceeded while throttled')
  assert.equal(await refused(own, 4, wrong), 3, 'MQTT 3.1.1: Server unavailable while throttled')
  const ev = await waitForEvent(own, { code: 'auth.throttled', clientId: 'th-1' })
  assert.equal(ev.tenant, 'th')
  assert.equal(ev.principal, 'os::00256D-TH0001')
  // the secret is fixed: in at once, though the lock has not run out
  const started = Date.now()
  const ok = await connect(own, { username: dev.username, password: dev.secret, clientId: 'th-1' })
  assert.ok(Date.now() - started < 3000)
  await closeClient(ok)
})

async function refused (g: TestGateway, v: 4 | 5, o: { username: string, password: string, clientId: string }): Promise<number> {
  const p = await rawPeer(g.mqttPort, v)
  p.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: v, clean: true, clientId: o.clientId, keepalive: 30, username: o.username, password: Buffer.from(o.password) })
  const ack = await p.next('connack')
  p.end()
  return v === 5 ? ack.reasonCode : ack.returnCode
}
