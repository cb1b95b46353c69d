import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, provision, connect, refusedWith, waitForEvent, closeClient, removeDir, type TestGateway } from '../helpers/gateway.ts'

let t: TestGateway
let agent: { username: string, secret: string }

before(async () => {
  t = await startGateway({ limits: { authFailuresBeforeBackoff: 3, authMaxBackoffSeconds: 1 } })
  agent = await provision(t, 'acme', 'os::00256D-0001', 'agent')
  await provision(t, 'beta', 'os::00256D-0002', 'agent')
})
after(async () => { await t.close(); await removeDir(t.dataDir) })

test('a provisioned router connects as <tenant>:<endpoint-id> over MQTT 5 and 3.1.1', async () => {
  for (const v of [5, 4] as const) {
    const c = await connect(t, { v, username: agent.username, password: agent.secret, clientId: `ok-${v}` })
    assert.equal(c.connected, true)
    await closeClient(c)
  }
})

// Every credential failure gets the same answer (MQTT 5 0x86 / 3.1.1 code 4) so tenants
// and principals cannot be probed, but each is a distinct security event.
const cases = [
  { name: 'bare Endpoint ID as username', username: 'os::00256D-0001', password: 'x', code: 'auth.bare_username' },
  { name: 'username without tenant', username: 'router42', password: 'x', code: 'auth.bare_username' },
  { name: 'no username', username: undefined, password: undefined, code: 'auth.bare_username' },
  { name: 'empty tenant', username: ':os::00256D-0001', password: 'x', code: 'auth.bare_username' },
  { name: 'unknown tenant', username: 'nosuch:os::00256D-0001', password: 'x', code: 'auth.unknown_tenant' },
  { name: 'unknown principal', username: 'acme:os::00256D-9999', password: 'x', code: 'auth.bad_credentials' },
  { name: 'wrong secret', username: 'acme:os::00256D-0001', password: 'usg_wrong', code: 'auth.bad_credentials' }
]

for (const c of cases) {
  for (const v of [5, 4] as const) {
    test(`${c.name} is refused (MQTT ${v === 5 ? '5' : '3.1.1'}) with ${c.code}`, async () => {
      const clientId = `probe-${c.code}-${v}-${Math.random().toString(16).slice(2, 8)}`
      const opts = { v, clientId, ...(c.username !== undefined ? { username: c.username } : {}), ...(c.password !== undefined ? { password: c.password } : {}) }
      const code = await refusedWith(t, opts)
      assert.equal(code, v === 5 ? 0x86 : 4)
      const ev = await waitForEvent(t, { code: c.code, clientId })
      assert.equal(ev.action, 'connect')
      assert.equal(ev.remoteAddress, '127.0.0.1')
      assert.equal(ev.node, 'test-node')
      assert.ok(ev.reason && ev.reason.length > 0)
      // the attempted secret never reaches the event
      assert.ok(!JSON.stringify(ev).includes('usg_wrong'))
    })
  }
}

test('a revoked credential is refused with auth.revoked', async () => {
  const cred = await provision(t, 'acme', 'os::00256D-0003')
  assert.equal((await t.api('DELETE', '/v1/tenants/acme/credentials/os::00256D-0003')).status, 200)
  const code = await refusedWith(t, { v: 5, username: cred.username, password: cred.secret, clientId: 'revoked-1' })
  assert.equal(code, 0x86)
  await waitForEvent(t, { code: 'auth.revoked', clientId: 'revoked-1', tenant: 'acme' })
})

test('repeated failures put (username, address) into a temporary back-off, then the device gets back in', async () => {
  const cred = await provision(t, 'acme', 'os::00256D-0004')
  for (let i = 0; i < 3; i++) {
    assert.equal(await refusedWith(t, { v: 5, username: cred.username, password: 'usg_guess', clientId: `bf-${i}` }), 0x86)
  }
  // while locked, a wrong secret gets its own answer (0x9F Connection rate exceeded) and event (issue 14)
  assert.equal(await refusedWith(t, { v: 5, username: cred.username, password: 'usg_guess', clientId: 'bf-locked' }), 0x9f)
  await waitForEvent(t, { code: 'auth.throttled', clientId: 'bf-locked', tenant: 'acme', principal: 'os::00256D-0004' })
  // other usernames from the same address are not locked by this username's failures
  const other = await connect(t, { v: 5, username: agent.username, password: agent.secret, clientId: 'bf-other' })
  await closeClient(other)
  // the device with its right secret gets back in at once, lock or not
  const c = await connect(t, { v: 5, username: cred.username, password: cred.secret, clientId: 'bf-back' })
  assert.equal(c.connected, true)
  await closeClient(c)
})

test('secrets never appear in the log or the audit file', async () => {
  const { readFile } = await import('node:fs/promises')
  const audit = await readFile(t.gw.events.path, 'utf8')
  const log = t.logText()
  assert.ok(log.length > 0)
  for (const s of [agent.secret, t.token, 'usg_wrong', 'usg_guess']) {
    assert.ok(!log.includes(s), 'secret in log')
    assert.ok(!audit.includes(s), 'secret in audit file')
  }
})
