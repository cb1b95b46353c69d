// Admin roles over every route: a table of every operation in the OpenAPI
// document × every role. Allowed calls never get 401/403/5xx (they may well
// get 400/404/409: the point is the authorization layer let them through);
// forbidden calls get a 403 problem and an admin.forbidden audit record; every
// allowed state-changing call leaves an admin.action record with its request id.
import { execFileSync } from 'node:child_process'
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import { removeDir } from '../helpers/gateway.ts'
import { startAdminGateway, createToken, ADMIN_TOKEN, type AdminGateway, type AdminRoleName, type CreatedToken } from './helpers.ts'

/** A device's PKCS#10 request naming no endpoint (valid for any principal), made by openssl. */
const CSR = execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', '/dev/null', '-subj', '/O=uspgate-test'], { encoding: 'utf8' })

let g: AdminGateway
before(async () => { g = await startAdminGateway() })
after(async () => { await g.close(); await removeDir(g.dataDir) })

// The role table (README "Admin roles"), written out independently of broker/control/admin-roles.ts on purpose.
const GRANTS: Record<AdminRoleName, string[]> = {
  viewer: ['read'],
  security: ['read', 'credential.revoke', 'cert.revoke', 'ca.manage', 'policy.evaluate'],
  noc: ['read', 'tenant.write', 'credential.issue', 'cert.issue', 'policy.write', 'policy.evaluate', 'certify.run'],
  admin: ['read', 'tenant.write', 'credential.issue', 'credential.revoke', 'cert.issue', 'cert.revoke', 'ca.manage', 'policy.write', 'policy.evaluate', 'token.manage', 'certify.run']
}
const ROLES: AdminRoleName[] = ['viewer', 'security', 'noc', 'admin']

interface Fixture {
  permission: string
  action: string
  path: string | ((role: AdminRoleName) => string)
  body?: (role: AdminRoleName) => unknown
}

const read = (action: string, path: string): Fixture => ({ permission: 'read', action, path })
const FP = 'ab'.repeat(32)

/** One entry per operation of the OpenAPI document under /v1 (the test fails if one is missing). */
const ROUTES: Record<string, Fixture> = {
  'POST /v1/tenants': { permission: 'tenant.write', action: 'tenant.create', path: '/v1/tenants', body: r => ({ id: `made-by-${r}` }) },
  'GET /v1/tenants': read('tenant.list', '/v1/tenants'),
  'PATCH /v1/tenants/{tenant}': { permission: 'tenant.write', action: 'tenant.update', path: '/v1/tenants/acme', body: r => ({ name: `ACME (${r})` }) },
  'GET /v1/tenants/{tenant}/endpoints': read('endpoint.list', '/v1/tenants/acme/endpoints'),
  'GET /v1/tenants/{tenant}/endpoints/{endpointId}': read('endpoint.get', '/v1/tenants/acme/endpoints/os::00256D-0001'),
  'GET /v1/tenants/{tenant}/endpoints/{endpointId}/presence': read('endpoint.presence', '/v1/tenants/acme/endpoints/os::00256D-0001/presence'),
  'GET /v1/tenants/{tenant}/usp-audit': read('usp-audit.list', '/v1/tenants/acme/usp-audit?limit=5'),
  'POST /v1/tenants/{tenant}/credentials': { permission: 'credential.issue', action: 'credential.issue', path: '/v1/tenants/acme/credentials', body: r => ({ principal: `os::00256D-${r}`, role: 'agent' }) },
  'GET /v1/tenants/{tenant}/credentials': read('credential.list', '/v1/tenants/acme/credentials'),
  'DELETE /v1/tenants/{tenant}/credentials/{principal}': { permission: 'credential.revoke', action: 'credential.revoke', path: '/v1/tenants/acme/credentials/os::00256D-0001' },
  'GET /v1/sessions': read('session.list', '/v1/sessions'),
  'GET /v1/security-events': read('security-event.list', '/v1/security-events?limit=1'),
  'GET /v1/security-events/stream': read('security-event.stream', '/v1/security-events/stream?maxSeconds=0'),
  'POST /v1/tokens': { permission: 'token.manage', action: 'token.create', path: '/v1/tokens', body: r => ({ name: `made by ${r}`, role: 'viewer' }) },
  'GET /v1/tokens': { permission: 'token.manage', action: 'token.list', path: '/v1/tokens' },
  'DELETE /v1/tokens/{id}': { permission: 'token.manage', action: 'token.revoke', path: '/v1/tokens/tok-0000000000000000' },
  'GET /v1/policies': read('policy.list', '/v1/policies'),
  'POST /v1/policies': { permission: 'policy.write', action: 'policy.upload', path: '/v1/policies?notes=junk', body: () => new Uint8Array([1, 2, 3, 4]) },
  'POST /v1/policies/rollback': { permission: 'policy.write', action: 'policy.rollback', path: '/v1/policies/rollback', body: () => ({ reason: 'role table' }) },
  'POST /v1/policies/{revision}/shadow': { permission: 'policy.write', action: 'policy.shadow', path: '/v1/policies/no-such-rev/shadow' },
  'POST /v1/policies/{revision}/canary': { permission: 'policy.write', action: 'policy.canary', path: '/v1/policies/no-such-rev/canary', body: () => ({ tenants: ['acme'] }) },
  'POST /v1/policies/{revision}/promote': { permission: 'policy.write', action: 'policy.promote', path: '/v1/policies/no-such-rev/promote' },
  'GET /v1/policies/{revision}/diff': read('policy.diff', '/v1/policies/no-such-rev/diff'),
  'GET /v1/policies/history': read('policy.history', '/v1/policies/history?limit=5'),
  'GET /v1/policies/bundle': read('policy.bundle', '/v1/policies/bundle'),
  'GET /v1/policies/compare': read('policy.compare', '/v1/policies/compare?from=no-such-rev&to=other-rev'),
  'POST /v1/policies/evaluate': { permission: 'policy.evaluate', action: 'policy.evaluate', path: '/v1/policies/evaluate', body: () => ({ input: { action: 'connect', client: { tenant: 'acme', principal: 'os::00256D-0001', role: 'agent', client_id: 'c', protocol: 5, auth: 'password', listener: 'mqtt' } } }) },
  'GET /v1/policies/golden': read('policy.golden.get', '/v1/policies/golden'),
  // a case the stable policy does not reproduce: refused (400), nothing changes
  'PUT /v1/policies/golden': { permission: 'policy.write', action: 'policy.golden.set', path: '/v1/policies/golden', body: () => ({ golden: [{ input: { action: 'connect', client: { tenant: 'acme', principal: 'os::00256D-0001', role: 'agent', client_id: 'c', protocol: 5, auth: 'password', listener: 'mqtt' } }, expect: { allow: false } }] }) },
  'DELETE /v1/policies/golden': { permission: 'policy.write', action: 'policy.golden.reset', path: '/v1/policies/golden' },
  'POST /v1/tenants/{tenant}/certificates': { permission: 'cert.issue', action: 'cert.issue', path: '/v1/tenants/acme/certificates', body: r => ({ principal: `os::00256D-c${r}`, role: 'agent', validDays: 1 }) },
  'POST /v1/tenants/{tenant}/credentials:import': { permission: 'credential.issue', action: 'credential.import', path: '/v1/tenants/acme/credentials:import', body: r => [{ principal: `os::00256D-i${r}`, role: 'agent' }] },
  'POST /v1/tenants/{tenant}/certificates/csr': { permission: 'cert.issue', action: 'cert.sign_csr', path: '/v1/tenants/acme/certificates/csr', body: r => ({ principal: `os::00256D-s${r}`, role: 'agent', csr: CSR, validDays: 1 }) },
  'GET /v1/tenants/{tenant}/certificates': read('cert.list', '/v1/tenants/acme/certificates'),
  'DELETE /v1/tenants/{tenant}/certificates/{serial}': { permission: 'cert.revoke', action: 'cert.revoke', path: '/v1/tenants/acme/certificates/abcdef01?reason=keyCompromise' },
  'GET /v1/tenants/{tenant}/crl': read('crl.get', '/v1/tenants/acme/crl'),
  'GET /v1/tenants/{tenant}/ca': read('ca.get', '/v1/tenants/acme/ca'),
  'POST /v1/tenants/{tenant}/ca/import': { permission: 'ca.manage', action: 'ca.import', path: '/v1/tenants/acme/ca/import', body: () => ({ pem: 'not a certificate' }) },
  'GET /v1/tenants/{tenant}/ca/imported': read('ca.list_imported', '/v1/tenants/acme/ca/imported'),
  'DELETE /v1/tenants/{tenant}/ca/imported/{fingerprint}': { permission: 'ca.manage', action: 'ca.remove', path: `/v1/tenants/acme/ca/imported/${FP}` },
  'POST /v1/tenants/{tenant}/ca/revoke': { permission: 'ca.manage', action: 'ca.revoke', path: '/v1/tenants/acme/ca/revoke', body: () => ({ reason: 'superseded' }) },
  'GET /v1/ca': read('ca.trust_bundle', '/v1/ca'),
  'GET /v1/cluster': read('cluster.view', '/v1/cluster'),
  'GET /v1/me': read('token.self', '/v1/me'),
  'GET /v1/endpoints': read('endpoint.search', '/v1/endpoints?q=00256D&limit=5'),
  'GET /v1/security-stats': read('security-stats.get', '/v1/security-stats?window=7d'),
  'POST /v1/tenants/{tenant}/certifications': { permission: 'certify.run', action: 'certify.start', path: '/v1/tenants/acme/certifications', body: () => ({ endpointId: 'os::00256D-not-provisioned' }) },
  'GET /v1/tenants/{tenant}/certifications': read('certify.list', '/v1/tenants/acme/certifications'),
  'GET /v1/tenants/{tenant}/certifications/{id}': read('certify.get', '/v1/tenants/acme/certifications/cr-20260101000000-00000000'),
  'DELETE /v1/tenants/{tenant}/certifications/{id}': { permission: 'certify.run', action: 'certify.cancel', path: '/v1/tenants/acme/certifications/cr-20260101000000-00000000' },
  'POST /v1/tenants/{tenant}/certifications/{id}/resume': { permission: 'certify.run', action: 'certify.resume', path: '/v1/tenants/acme/certifications/cr-20260101000000-00000000/resume' },
  'GET /v1/tenants/{tenant}/certifications/{id}/evidence': read('certify.evidence', '/v1/tenants/acme/certifications/cr-20260101000000-00000000/evidence'),
  'GET /v1/certifications/matrix': read('certify.matrix', '/v1/certifications/matrix')
}

const tokens = new Map<AdminRoleName, CreatedToken>()

async function eventsOf (actor: string): Promise<Array<Record<string, unknown>>> {
  const r = await g.call('GET', `/v1/security-events?actor=${encodeURIComponent(actor)}&limit=1000`)
  assert.equal(r.status, 200)
  return r.body.events
}

test('every /v1 operation × every role: allowed → never 401/403/5xx and audited; forbidden → 403 problem and audited', async () => {
  assert.equal((await g.call('POST', '/v1/tenants', { body: { id: 'acme' } })).status, 201)
  assert.equal((await g.call('POST', '/v1/tenants/acme/credentials', { body: { principal: 'os::00256D-0001', role: 'agent' } })).status, 201)
  for (const role of ROLES) tokens.set(role, await createToken(g, `table ${role}`, role))

  const doc = (await g.call('GET', '/openapi.json', { token: null })).body
  const operations: string[] = []
  for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
    if (!path.startsWith('/v1/')) continue
    for (const method of Object.keys(ops)) operations.push(`${method.toUpperCase()} ${path}`)
  }
  assert.deepEqual([...operations].sort(), Object.keys(ROUTES).sort(), 'the table must name every /v1 operation of the OpenAPI document')

  let forbiddenCount = 0
  for (const role of ROLES) {
    const tok = tokens.get(role)!
    for (const [op, f] of Object.entries(ROUTES)) {
      const method = op.split(' ')[0]!
      const path = typeof f.path === 'function' ? f.path(role) : f.path
      const r = await g.call(method, path, { token: tok.token, ...(f.body !== undefined ? { body: f.body(role) } : {}) })
      const allowed = GRANTS[role].includes(f.permission)
      const what = `${role} ${op} → ${r.status} ${r.text.slice(0, 200)}`
      const requestId = r.headers.get('x-request-id')
      assert.ok(requestId, `${what}: x-request-id`)
      if (allowed) {
        assert.ok(r.status !== 401 && r.status !== 403 && r.status < 500, `allowed: ${what}`)
      } else {
        forbiddenCount++
        assert.equal(r.status, 403, `forbidden: ${what}`)
        assert.match(r.headers.get('content-type')!, /^application\/problem\+json/)
        assert.equal(r.body.status, 403)
        assert.match(r.body.detail, new RegExp(`role ${role} may not`))
      }
      const stateChanging = method !== 'GET'
      if (!allowed || stateChanging) {
        const ev = (await eventsOf(tok.id)).find(e => e.requestId === requestId)
        assert.ok(ev, `audit record for ${what}`)
        assert.equal(ev.code, allowed ? 'admin.action' : 'admin.forbidden', what)
        assert.equal(ev.action, f.action, what)
        assert.equal(ev.role, role, what)
        assert.equal(ev.status, r.status, what)
        assert.equal(ev.result, !allowed ? 'denied' : r.status < 400 ? 'ok' : 'error', what)
        assert.equal(ev.remoteAddress, '127.0.0.1', what)
        assert.equal(ev.target, path.split('?')[0], what)
      }
    }
  }
  assert.equal(forbiddenCount, 52) // 25 viewer + 19 security + 8 noc + 0 admin
})

test('tenant-scoped tokens see and act on only their tenants; cross-tenant calls are 403 whether or not the tenant exists', async () => {
  for (const id of ['acme', 'globex']) {
    const r = await g.call('POST', '/v1/tenants', { body: { id } })
    assert.ok(r.status === 201 || r.status === 409)
  }
  const viewer = await createToken(g, 'acme viewer', 'viewer', ['acme'])
  const noc = await createToken(g, 'acme noc', 'noc', ['acme'])
  const admin = await createToken(g, 'acme admin', 'admin', ['acme'])
  const as = (tok: CreatedToken, method: string, path: string, body?: unknown): Promise<{ status: number, body: any }> =>
    g.call(method, path, { token: tok.token, ...(body !== undefined ? { body } : {}) })

  // live sessions in both tenants
  const clients: MqttClient[] = []
  for (const tenant of ['acme', 'globex']) {
    const c = await g.call('POST', `/v1/tenants/${tenant}/credentials`, { body: { principal: 'os::00256D-5C0P', role: 'agent' } })
    assert.equal(c.status, 201)
    clients.push(await new Promise<MqttClient>((resolve, reject) => {
      const cl = mqtt.connect({ host: '127.0.0.1', port: g.gw.mqttPort, username: c.body.username, password: c.body.secret, protocolVersion: 5, reconnectPeriod: 0 })
      cl.once('connect', () => resolve(cl))
      cl.once('error', reject)
      cl.once('close', () => reject(new Error(`${tenant} client closed before CONNACK`)))
    }))
  }
  try {
    const tenants = (await as(viewer, 'GET', '/v1/tenants')).body.tenants.map((t: { id: string }) => t.id)
    assert.deepEqual(tenants, ['acme'])
    assert.equal((await as(viewer, 'GET', '/v1/tenants/acme/credentials')).status, 200)
    for (const path of ['/v1/tenants/globex/credentials', '/v1/tenants/no-such-tenant/credentials', '/v1/tenants/globex/endpoints', '/v1/tenants/globex/usp-audit',
      '/v1/tenants/globex/certificates', '/v1/tenants/globex/crl', '/v1/tenants/globex/ca', '/v1/tenants/globex/ca/imported', '/v1/sessions?tenant=globex',
      '/v1/security-events?tenant=globex', '/v1/policies', '/v1/ca?scope=clients', '/v1/cluster']) {
      const r = await as(viewer, 'GET', path)
      assert.equal(r.status, 403, `viewer@acme GET ${path} → ${r.status}`)
      assert.equal(r.body.title, 'forbidden')
    }
    assert.equal((await as(viewer, 'GET', '/v1/ca')).status, 200) // the server root: no tenant data
    const sessions = (await as(viewer, 'GET', '/v1/sessions')).body.sessions
    assert.deepEqual(sessions.map((s: { tenant: string }) => s.tenant), ['acme'])
    const events = (await as(viewer, 'GET', '/v1/security-events?limit=1000')).body.events
    assert.ok(events.length > 0)
    assert.ok(events.every((e: { tenant?: string }) => e.tenant === 'acme'), 'a scoped token sees only its tenants\' events')

    // acting: in scope works, out of scope is 403 and changes nothing
    assert.equal((await as(noc, 'POST', '/v1/tenants/acme/credentials', { principal: 'os::00256D-5C01', role: 'agent' })).status, 201)
    assert.equal((await as(noc, 'POST', '/v1/tenants/globex/credentials', { principal: 'os::00256D-5C01', role: 'agent' })).status, 403)
    assert.equal((await g.call('GET', '/v1/tenants/globex/credentials')).body.credentials.length, 1)
    assert.equal((await as(noc, 'PATCH', '/v1/tenants/globex', { name: 'stolen' })).status, 403)
    assert.equal((await as(noc, 'POST', '/v1/tenants', { id: 'globex-2' })).status, 403)
    assert.equal((await as(noc, 'POST', '/v1/tenants', { id: 'acme' })).status, 409) // in scope: the ordinary answer
    assert.equal((await as(noc, 'POST', '/v1/policies/rollback', {})).status, 403) // policies span every tenant
    assert.equal((await as(admin, 'DELETE', '/v1/tenants/globex/credentials/os::00256D-5C0P')).status, 403)
    assert.equal((await as(admin, 'GET', '/v1/tokens')).status, 403)
    assert.equal((await as(admin, 'POST', '/v1/tokens', { name: 'escalate', role: 'admin' })).status, 403)
    assert.equal((await g.call('GET', '/v1/tenants/globex')).status, 404) // (no such route; sanity)
    assert.equal((await g.call('GET', '/v1/tenants')).body.tenants.some((t: { id: string }) => t.id === 'globex-2'), false)

    const denied = (await eventsOf(noc.id)).filter(e => e.code === 'admin.forbidden')
    assert.ok(denied.some(e => e.action === 'credential.issue' && e.tenant === 'globex' && /scoped to acme/.test(String(e.reason))))
  } finally {
    for (const c of clients) c.end(true)
  }
})

test('admin tokens: shown once, stored as a hash, revoked at once, bootstrap not revocable, bad input refused, kept across restart', async () => {
  const r = await g.call('POST', '/v1/tokens', { body: { name: 'ci robot', role: 'security', tenants: ['acme'] } })
  assert.equal(r.status, 201)
  assert.match(r.body.token, /^usa_[A-Za-z0-9_-]{43}$/) // 256 random bits
  assert.equal(r.headers.get('cache-control'), 'no-store')
  assert.deepEqual({ role: r.body.role, tenants: r.body.tenants, revoked: r.body.revoked, createdBy: r.body.createdBy }, { role: 'security', tenants: ['acme'], revoked: false, createdBy: 'bootstrap' })
  const list = await g.call('GET', '/v1/tokens')
  assert.ok(list.body.tokens.some((t: { id: string }) => t.id === r.body.id))
  assert.ok(list.body.tokens.some((t: { id: string, bootstrap: boolean }) => t.id === 'bootstrap' && t.bootstrap))
  assert.ok(!list.text.includes(r.body.token) && !list.text.includes('sha256'))
  // the embedded store: snapshot + change log (broker/store/file-store.ts)
  const state = (await readFile(join(g.dataDir, 'state.json'), 'utf8')) + (await readFile(join(g.dataDir, 'state.log'), 'utf8'))
  assert.ok(state.includes(r.body.id), 'the token record is stored')
  assert.ok(!state.includes(r.body.token), 'only the hash is stored')
  assert.ok(!g.logText().includes(r.body.token), 'never logged')
  assert.ok(!(await readFile(join(g.dataDir, 'audit', 'security-events.ndjson'), 'utf8')).includes(r.body.token))

  assert.equal((await g.call('GET', '/v1/tenants/acme/credentials', { token: r.body.token })).status, 200)
  const del = await g.call('DELETE', `/v1/tokens/${r.body.id}`)
  assert.equal(del.status, 200)
  assert.equal(del.body.revoked, true)
  const after = await g.call('GET', '/v1/tenants/acme/credentials', { token: r.body.token })
  assert.equal(after.status, 401)
  assert.equal((await g.call('DELETE', `/v1/tokens/${r.body.id}`)).status, 200) // idempotent
  assert.equal((await g.call('DELETE', '/v1/tokens/bootstrap')).status, 409)
  assert.equal((await g.call('DELETE', '/v1/tokens/tok-nothere')).status, 404)
  assert.equal((await g.call('GET', '/v1/tenants', { token: ADMIN_TOKEN })).status, 200)

  for (const body of [{ name: 'x', role: 'root' }, { name: 'x', role: 'admin', extra: 1 }, { name: 'x', role: 'admin', tenants: [] },
    { name: 'x', role: 'admin', tenants: ['Not_A_Tenant'] }, { name: '', role: 'viewer' }, { name: 'line\nbreak', role: 'viewer' }, { role: 'viewer' }]) {
    const bad = await g.call('POST', '/v1/tokens', { body })
    assert.equal(bad.status, 400, JSON.stringify(body))
    assert.match(bad.headers.get('content-type')!, /problem\+json/)
  }
  const ev = (await g.call('GET', '/v1/security-events?code=admin.token_revoked')).body.events
  assert.ok(ev.some((e: { target?: string, actor?: string }) => e.target === r.body.id && e.actor === 'bootstrap'))

  const keep = await createToken(g, 'survivor', 'viewer')
  await g.close()
  g = await startAdminGateway(undefined, { dataDir: g.dataDir })
  assert.equal((await g.call('GET', '/v1/tenants', { token: keep.token })).status, 200)
  assert.equal((await g.call('GET', '/v1/tenants', { token: r.body.token })).status, 401)
})
