import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { startGateway, provision, connect, refusedWith, closeClient, removeDir, type TestGateway } from '../helpers/gateway.ts'

let t: TestGateway
before(async () => { t = await startGateway() })
after(async () => { await t.close(); await removeDir(t.dataDir) })

test('restart keeps tenants, credentials, revocations and security events', async () => {
  const live = await provision(t, 'acme', 'os::00256D-0301')
  const gone = await provision(t, 'acme', 'os::00256D-0302')
  await t.api('DELETE', '/v1/tenants/acme/credentials/os::00256D-0302')
  await refusedWith(t, { v: 5, username: 'nosuch:x', password: 'y', clientId: 'before-restart' })
  const eventsBefore = (await t.api('GET', '/v1/security-events?limit=1000')).body.events.length
  t = await t.restart()
  assert.deepEqual((await t.api('GET', '/v1/tenants')).body.tenants.map((x: { id: string }) => x.id), ['acme'])
  const c = await connect(t, { v: 5, username: live.username, password: live.secret })
  await closeClient(c)
  assert.equal(await refusedWith(t, { v: 5, username: gone.username, password: gone.secret, clientId: 'after-restart' }), 0x86)
  const events = (await t.api('GET', '/v1/security-events?limit=1000')).body.events
  assert.ok(events.length > eventsBefore)
  assert.ok(events.some((e: { clientId?: string, code: string }) => e.clientId === 'before-restart' && e.code === 'auth.unknown_tenant'))
  assert.ok(events.some((e: { clientId?: string, code: string }) => e.clientId === 'after-restart' && e.code === 'auth.revoked'))
  // state and audit files are private to the gateway
  for (const f of ['state.json', 'audit/security-events.ndjson']) {
    assert.equal((await stat(join(t.dataDir, f))).mode & 0o077, 0, `${f} is readable by others`)
  }
})

test('admin API: bearer token required; 401 is a problem+json body and a security event', async () => {
  const r = await t.api('GET', '/v1/tenants', undefined, { authorization: 'Bearer wrong-token-wrong-token-wrong' })
  assert.equal(r.status, 401)
  assert.match(r.headers.get('content-type')!, /application\/problem\+json/)
  assert.equal(r.body.status, 401)
  const none = await fetch(t.adminUrl + '/v1/tenants')
  assert.equal(none.status, 401)
  const ev = t.gw.events.query({ code: 'admin.auth_failed' })
  assert.ok(ev.length >= 2)
})

test('admin API: bad input gets a clear 4xx problem and changes nothing', async () => {
  const before = (await t.api('GET', '/v1/tenants')).body.tenants.length
  const cases: Array<[string, string, unknown, number]> = [
    ['POST', '/v1/tenants', '{"id": "bad json"', 400],
    ['POST', '/v1/tenants', { id: 'Upper_Case' }, 400],
    ['POST', '/v1/tenants', { id: 'os' }, 400],
    ['POST', '/v1/tenants', { id: 'ok-id', extra: 1 }, 400],
    ['POST', '/v1/tenants', { id: 'acme' }, 409],
    ['POST', '/v1/tenants/nosuch/credentials', { principal: 'x', role: 'agent' }, 404],
    ['POST', '/v1/tenants/acme/credentials', { principal: 'a/b#', role: 'agent' }, 400],
    ['POST', '/v1/tenants/acme/credentials', { principal: 'ok', role: 'root' }, 400],
    ['DELETE', '/v1/tenants/acme/credentials/nobody', undefined, 404],
    ['GET', '/v1/security-events?limit=5000', undefined, 400],
    ['GET', '/v1/security-events?since=yesterday', undefined, 400],
    ['GET', '/v1/nothing-here', undefined, 404]
  ]
  for (const [method, path, body, status] of cases) {
    const r = await t.api(method, path, body)
    assert.equal(r.status, status, `${method} ${path} ${JSON.stringify(body)} → ${r.status} ${JSON.stringify(r.body)}`)
    assert.match(r.headers.get('content-type')!, /application\/problem\+json/, `${method} ${path}`)
    assert.equal(typeof r.body.title, 'string')
  }
  const big = await t.api('POST', '/v1/tenants', { id: 'big', name: 'x'.repeat(100_000) })
  assert.equal(big.status, 413)
  assert.equal((await t.api('GET', '/v1/tenants')).body.tenants.length, before)
})

test('admin API: the secret is returned once; listings never contain it', async () => {
  const issued = await t.api('POST', '/v1/tenants/acme/credentials', { principal: 'os::00256D-0303', role: 'agent' })
  assert.equal(issued.status, 201)
  assert.match(issued.body.secret, /^usg_[A-Za-z0-9_-]{43}$/) // 256 random bits
  assert.equal(issued.headers.get('cache-control'), 'no-store')
  const list = await t.api('GET', '/v1/tenants/acme/credentials')
  assert.ok(!JSON.stringify(list.body).includes(issued.body.secret))
  assert.ok(!JSON.stringify(list.body).includes('sha256'))
  const again = await t.api('POST', '/v1/tenants/acme/credentials', { principal: 'os::00256D-0303', role: 'agent' })
  assert.equal(again.status, 409)
})

test('admin API: security events filter by tenant, code and since, newest first', async () => {
  await refusedWith(t, { v: 4, username: 'acme:nobody', password: 'x', clientId: 'ev-1' })
  await refusedWith(t, { v: 4, username: 'acme:nobody', password: 'x', clientId: 'ev-2' })
  const r = await t.api('GET', '/v1/security-events?tenant=acme&code=auth.bad_credentials&limit=2')
  assert.equal(r.status, 200)
  assert.deepEqual(r.body.events.map((e: { clientId: string }) => e.clientId), ['ev-2', 'ev-1'])
  const future = await t.api('GET', `/v1/security-events?since=${new Date(Date.now() + 60_000).toISOString()}`)
  assert.deepEqual(future.body.events, [])
})

test('probes and Prometheus metrics', async () => {
  assert.equal((await fetch(t.adminUrl + '/healthz')).status, 200)
  assert.equal((await fetch(t.adminUrl + '/readyz')).status, 200)
  const text = await (await fetch(t.adminUrl + '/metrics')).text()
  for (const name of ['uspgate_connections', 'uspgate_connect_total', 'uspgate_decisions_total', 'uspgate_messages_received_total',
    'uspgate_messages_sent_total', 'uspgate_bytes_received_total', 'uspgate_messages_dropped_total', 'uspgate_security_events_total',
    'process_cpu_seconds_total', 'nodejs_eventloop_lag_seconds']) {
    assert.ok(text.includes(name), `missing ${name}`)
  }
  assert.match(text, /uspgate_connect_total\{result="refused",reason="auth.bad_credentials",node="test-node"\} \d+/)
})
