import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, provision, connect, refusedWith, waitForEvent, closeClient, removeDir, sleep, waitFor, type TestGateway } from '../helpers/gateway.ts'

let t: TestGateway
before(async () => { t = await startGateway() })
after(async () => { await t.close(); await removeDir(t.dataDir) })

test('another identity presenting a live client id cannot take over the session (same tenant and cross-tenant)', async () => {
  const owner = await provision(t, 'acme', 'os::00256D-0101')
  const sameTenant = await provision(t, 'acme', 'os::00256D-0102')
  const otherTenant = await provision(t, 'beta', 'os::00256D-0101')
  const a = await connect(t, { v: 5, username: owner.username, password: owner.secret, clientId: 'os::00256D-0101' })
  let kicked = false
  a.on('disconnect', () => { kicked = true })
  a.on('close', () => { kicked = true })
  for (const [who, v] of [[sameTenant, 5], [otherTenant, 4]] as const) {
    const code = await refusedWith(t, { v, username: who.username, password: who.secret, clientId: 'os::00256D-0101' })
    assert.equal(code, v === 5 ? 0x85 : 2)
  }
  const evs = t.gw.events.query({ code: 'session.takeover_blocked' })
  assert.equal(evs.length, 2)
  assert.deepEqual(evs.map(e => e.tenant).sort(), ['acme', 'beta'])
  await sleep(100)
  assert.equal(kicked, false)
  assert.equal(a.connected, true)
  await closeClient(a)
})

test('the same identity reconnecting with its client id takes its session over (MQTT 5 0x8E to the old one)', async () => {
  const cred = await provision(t, 'acme', 'os::00256D-0103')
  const first = await connect(t, { v: 5, username: cred.username, password: cred.secret, clientId: 'dev-0103' })
  const reason = new Promise<number | undefined>(resolve => first.once('disconnect', p => resolve(p.reasonCode)))
  const second = await connect(t, { v: 5, username: cred.username, password: cred.secret, clientId: 'dev-0103' })
  assert.equal(await reason, 0x8e)
  assert.equal(second.connected, true)
  await closeClient(first); await closeClient(second)
})

test('a persistent session is never resumed by another identity using the same client id', async () => {
  const a = await provision(t, 'acme', 'os::00256D-0104')
  const b = await provision(t, 'acme', 'os::00256D-0105')
  // a's persistent session subscribes a's inbox; USP inspection is off so plain payloads flow
  assert.equal((await t.api('PATCH', '/v1/tenants/acme', { usp: { inspection: 'off' } })).status, 200)
  const ctrl = await provision(t, 'acme', 'self::ctrl-0104', 'controller')
  const inbox = 'acme/usp/agent/os::00256D-0104'
  const s1 = await connect(t, { v: 4, username: a.username, password: a.secret, clientId: 'shared-id', clean: false })
  await new Promise<void>((resolve, reject) => s1.subscribe(inbox, { qos: 1 }, (err, g) => err || g?.[0]?.qos !== 1 ? reject(err ?? new Error('refused')) : resolve()))
  await closeClient(s1)
  // b presents the same client id while a is offline: b gets a fresh, empty session of its own
  const s2 = await connect(t, { v: 4, username: b.username, password: b.secret, clientId: 'shared-id', clean: false })
  const present = await new Promise<boolean>(resolve => { resolve((s2 as unknown as { _resubscribeTopics: object }) !== undefined && s2.connected) })
  assert.equal(present, true)
  const got: string[] = []
  s2.on('message', tp => got.push(tp))
  const pub = await connect(t, { v: 5, username: ctrl.username, password: ctrl.secret })
  await new Promise<void>((resolve, reject) => pub.publish(inbox, 'x', { qos: 1 }, err => err ? reject(err) : resolve()))
  await sleep(200)
  assert.deepEqual(got, [], 'b received a message through a\'s stored subscription')
  // a comes back and finds its session (sessionPresent) with the queued message
  await closeClient(s2)
  const back = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
    import('mqtt').then(({ default: mqtt }) => {
      const c = mqtt.connect({ host: '127.0.0.1', port: t.mqttPort, protocolVersion: 4, clientId: 'shared-id', clean: false, username: a.username, password: a.secret, reconnectPeriod: 0 })
      c.once('connect', ack => { resolve({ sessionPresent: ack.sessionPresent }); c.end(true) })
      c.once('error', reject)
    }, reject)
  })
  assert.equal(back.sessionPresent, true)
  await closeClient(pub)
})

for (const v of [5, 4] as const) {
  test(`revoking a credential disconnects its live MQTT ${v === 5 ? '5' : '3.1.1'} session within 1 s and it cannot come back`, async () => {
    const cred = await provision(t, 'acme', `os::00256D-02${v}0`)
    const c = await connect(t, { v, username: cred.username, password: cred.secret, clientId: `rev-${v}` })
    const closedAt = new Promise<number>(resolve => c.once('close', () => resolve(Date.now())))
    const sessions = await t.api('GET', '/v1/sessions?tenant=acme')
    assert.ok(sessions.body.sessions.some((s: { clientId: string }) => s.clientId === `rev-${v}`))
    const start = Date.now()
    const res = await t.api('DELETE', `/v1/tenants/acme/credentials/${encodeURIComponent(`os::00256D-02${v}0`)}`)
    assert.equal(res.status, 200)
    assert.equal(res.body.disconnected, 1)
    assert.equal(res.body.revoked, true)
    const elapsed = (await closedAt) - start
    assert.ok(elapsed < 1000, `disconnected after ${elapsed} ms`)
    await waitForEvent(t, { code: 'credential.revoked', principal: `os::00256D-02${v}0` })
    assert.equal(await refusedWith(t, { v, username: cred.username, password: cred.secret, clientId: `rev-${v}` }), v === 5 ? 0x86 : 4)
    await waitFor(() => !t.gw.sessions.list('acme').some(s => s.clientId === `rev-${v}`))
    await closeClient(c)
  })
}
