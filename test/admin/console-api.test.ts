// The admin API calls the web console relies on, over a real gateway with real MQTT clients:
// cross-tenant events name the target tenant and reach its scoped tokens, multi-code / severity /
// principal / time-range event filters, the paged endpoint search, per-tenant security stats, /v1/me.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient } from 'mqtt'
import { startGateway, provision, connect, closeClient, removeDir, waitFor, waitForEvent, adminRequest, type TestGateway } from '../helpers/gateway.ts'

let t: TestGateway
const clients: MqttClient[] = []
const tok: Record<string, string> = {}
const AG = 'os::00256D-0001'

async function token (name: string, role: string, tenants?: string[]): Promise<string> {
  const r = await t.api('POST', '/v1/tokens', { name, role, ...(tenants ? { tenants } : {}) })
  assert.equal(r.status, 201, r.text)
  return r.body.token as string
}
const get = async (path: string, as = tok.admin!) => await adminRequest(t.adminUrl, 'GET', path, { token: as })

before(async () => {
  t = await startGateway({ limits: { publishRatePerSecond: 0 } })
  tok.admin = t.token
  const creds: Record<string, { username: string, secret: string }> = {}
  for (const tenant of ['red', 'blue', 'green']) creds[tenant] = await provision(t, tenant, AG)
  for (let i = 0; i < 7; i++) await provision(t, 'green', `os::00256D-10${i}`)
  tok.blue = await token('blue-soc', 'viewer', ['blue'])
  tok.red = await token('red-soc', 'viewer', ['red'])
  tok.green = await token('green-soc', 'security', ['green'])
  // red attacks blue: a publish and a subscribe into blue's namespace
  const red = await connect(t, { username: creds.red!.username, password: creds.red!.secret })
  clients.push(red)
  await new Promise<void>(resolve => red.publish('blue/usp/agent/x', 'x', { qos: 1 }, () => resolve()))
  await new Promise<void>(resolve => red.subscribe('blue/#', { qos: 1 }, () => resolve()))
  // and a will aimed at blue (refused at CONNECT)
  await connect(t, { username: creds.red!.username, password: creds.red!.secret, clientId: 'red-will', will: { topic: 'blue/usp/status/x', payload: Buffer.from('0'), qos: 0, retain: false } })
    .then(c => { clients.push(c); assert.fail('a will into another tenant was accepted') }, () => {})
  for (const tenant of ['blue', 'green']) clients.push(await connect(t, { username: creds[tenant]!.username, password: creds[tenant]!.secret }))
  await waitForEvent(t, { code: 'acl.cross_tenant', action: 'subscribe' })
})
after(async () => {
  for (const c of clients) await closeClient(c)
  await t.close()
  await removeDir(t.dataDir)
})

test('cross-tenant attempts name the target tenant; its scoped token sees them, an unrelated tenant\'s does not', async () => {
  const all = (await get('/v1/security-events?code=acl.cross_tenant')).body.events
  assert.deepEqual(all.map((e: { action: string, tenant: string, targetTenant: string }) => [e.action, e.tenant, e.targetTenant]).sort(),
    [['publish', 'red', 'blue'], ['subscribe', 'red', 'blue'], ['will', 'red', 'blue']])
  for (const who of ['blue', 'red']) {
    const seen = (await get('/v1/security-events?code=acl.cross_tenant', tok[who])).body.events
    assert.equal(seen.length, 3, `${who} sees the three attempts`)
  }
  assert.equal((await get('/v1/security-events?code=acl.cross_tenant', tok.green)).body.events.length, 0)
  // ?tenant=blue matches the attempts aimed at blue; blue's token may ask, red's may not ask for blue
  assert.equal((await get('/v1/security-events?tenant=blue&code=acl.cross_tenant', tok.blue)).body.events.length, 3)
  assert.equal((await get('/v1/security-events?tenant=blue', tok.red)).status, 403)
  // blue's token still sees nothing else of red
  const blueView = (await get('/v1/security-events?limit=1000', tok.blue)).body.events
  assert.ok(blueView.every((e: { tenant?: string, targetTenant?: string }) => e.tenant === 'blue' || e.targetTenant === 'blue'))
})

test('event filters: several codes, code families, severities, principal and a time range; bad filters are 400', async () => {
  const codes = (r: { body: { events: Array<{ code: string }> } }) => new Set(r.body.events.map(e => e.code))
  assert.deepEqual(codes(await get('/v1/security-events?code=acl.cross_tenant,tenant.created&limit=1000')), new Set(['acl.cross_tenant', 'tenant.created']))
  assert.deepEqual(codes(await get('/v1/security-events?code=credential.,tenant.&limit=1000')), new Set(['credential.issued', 'tenant.created']))
  const critical = await get('/v1/security-events?severity=critical&limit=1000')
  assert.ok(critical.body.events.length >= 2 && critical.body.events.every((e: { severity: string }) => e.severity === 'critical'))
  const byPrincipal = await get(`/v1/security-events?principal=${encodeURIComponent('os::00256D-103')}`)
  assert.deepEqual(byPrincipal.body.events.map((e: { code: string, principal: string }) => [e.code, e.principal]), [['credential.issued', 'os::00256D-103']])
  const newest = (await get('/v1/security-events?limit=1')).body.events[0]
  const older = (await get(`/v1/security-events?until=${encodeURIComponent(newest.time)}&limit=1000`)).body.events
  assert.ok(older.length > 0 && older.every((e: { time: string }) => e.time < newest.time))
  const none = await get(`/v1/security-events?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)
  assert.deepEqual(none.body.events, [])
  for (const bad of ['code=acl.cross_tenant,,x', 'code=ACL', 'severity=severe', 'severity=info,', 'until=yesterday']) {
    const r = await get(`/v1/security-events?${bad}`)
    assert.equal(r.status, 400, bad)
    assert.equal(r.body.title, 'invalid request')
  }
})

test('GET /v1/endpoints searches and pages the registry across the tenants the token sees', async () => {
  await closeClient(clients[0]) // red's attacker goes away: red's endpoint is offline, blue's and green's online
  await waitFor(async () => (await get('/v1/endpoints?status=online')).body.total === 2, 5000, 'blue and green online')
  assert.deepEqual((await get('/v1/endpoints?status=offline')).body.endpoints.map((e: { tenant: string, online: boolean }) => [e.tenant, e.online]), [['red', false]])
  const all = await get('/v1/endpoints?limit=500')
  assert.equal(all.status, 200)
  assert.equal(all.headers.get('cache-control'), 'no-store')
  assert.deepEqual(all.body.endpoints.map((e: { tenant: string }) => e.tenant), ['blue', 'green', 'red'], 'only endpoints that connected, sorted by tenant')
  // green's agent is online; its other credentials never connected, so they are not endpoints yet
  const page1 = await get('/v1/endpoints?limit=2&offset=0')
  const page2 = await get('/v1/endpoints?limit=2&offset=2')
  assert.deepEqual([page1.body.total, page1.body.endpoints.length, page2.body.endpoints.length], [3, 2, 1])
  assert.equal((await get('/v1/endpoints?q=GREEN')).body.total, 1, 'search is case-insensitive over tenant and id')
  assert.deepEqual((await get('/v1/endpoints?status=online')).body.endpoints.map((e: { tenant: string }) => e.tenant), ['blue', 'green'])
  const scoped = await get('/v1/endpoints', tok.blue)
  assert.deepEqual(scoped.body.endpoints.map((e: { tenant: string }) => e.tenant), ['blue'])
  assert.equal((await get('/v1/endpoints?tenant=red', tok.blue)).status, 403)
  for (const bad of ['limit=0', 'limit=501', 'offset=-1', 'status=up', 'q=']) assert.equal((await get(`/v1/endpoints?${bad}`)).status, 400, bad)
})

test('GET /v1/security-stats counts per tenant, cross-tenant attempts by and against; scoped tokens see their tenant only', async () => {
  const r = await get('/v1/security-stats?window=24h')
  assert.equal(r.status, 200)
  const by = new Map(r.body.tenants.map((s: { tenant: string }) => [s.tenant, s]))
  assert.deepEqual([(by.get('red') as any).crossTenantBy, (by.get('red') as any).crossTenantAgainst], [3, 0])
  assert.deepEqual([(by.get('blue') as any).crossTenantBy, (by.get('blue') as any).crossTenantAgainst], [0, 3])
  assert.equal((by.get('green') as any).codes['credential.issued'], 8)
  const scoped = await get('/v1/security-stats?window=7d', tok.blue)
  assert.deepEqual(scoped.body.tenants.map((s: { tenant: string }) => s.tenant), ['blue'])
  assert.equal(scoped.body.tenants[0].crossTenantAgainst, 3)
  assert.equal((await get('/v1/security-stats?window=1y')).status, 400)
  assert.equal((await get('/v1/security-stats?tenant=red', tok.blue)).status, 403)
})

test('GET /v1/me names the token\'s role, scope and permissions, never the token', async () => {
  const me = await get('/v1/me', tok.green)
  assert.equal(me.status, 200)
  assert.deepEqual({ ...me.body, id: undefined }, { id: undefined, name: 'green-soc', role: 'security', tenants: ['green'], permissions: ['read', 'credential.revoke', 'cert.revoke', 'ca.manage', 'policy.evaluate'] })
  assert.ok(!me.text.includes(tok.green!))
  const admin = await get('/v1/me')
  assert.equal(admin.body.role, 'admin')
  assert.equal(admin.body.tenants, undefined)
  assert.equal((await adminRequest(t.adminUrl, 'GET', '/v1/me', { token: null })).status, 401)
})
