// Tenant disable / enable over a running gateway with real MQTT clients, golden decisions that belong
// to the deployment, the policy history, the running bundle, the comparison of two revisions and the
// dry-run evaluate call (bundles built by the real opa).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startGateway, provision, connect, refusedWith, waitFor, waitForEvent, closeClient, removeDir, adminRequest, type TestGateway } from '../helpers/gateway.ts'
import { buildTempBundle } from '../policies/helpers.ts'
import { POLICY_DIR } from '../../policies/index.ts'

const AG = 'os::00256D-0001'
let t: TestGateway
let creds: { username: string, secret: string }

before(async () => {
  t = await startGateway()
  // a deployment whose real tenant is called "acme", the name the shipped golden decisions use
  creds = await provision(t, 'acme', AG, 'agent')
  await provision(t, 'globex', AG, 'agent')
})
after(async () => { await t.close(); await removeDir(t.dataDir) })

test('disabling a tenant cuts its sessions and refuses its CONNECTs (events); enabling it lets them back; other tenants are untouched', async () => {
  const c = await connect(t, { v: 5, username: creds.username, password: creds.secret, clientId: 'acme-router' })
  const closed = new Promise<void>(resolve => c.once('close', () => resolve()))
  const g = await provision(t, 'globex', 'os::00256D-0003', 'agent')
  const globex = await connect(t, { v: 5, username: g.username, password: g.secret })

  const r = await t.api('PATCH', '/v1/tenants/acme', { disabled: true })
  assert.equal(r.status, 200, r.text)
  assert.equal(r.body.disabled, true)
  assert.equal(r.body.disconnected, 1)
  await closed
  const ev = await waitForEvent(t, { code: 'tenant.disabled', tenant: 'acme' })
  assert.equal(ev.actor, 'bootstrap')
  assert.match(ev.reason!, /^1 live session\(s\) disconnected/)

  // a correct secret is still refused: 0x87 Not authorized [MQTT-3.2.2-7], with an event
  assert.equal(await refusedWith(t, { v: 5, username: creds.username, password: creds.secret }), 0x87)
  assert.equal(await refusedWith(t, { v: 4, username: creds.username, password: creds.secret }), 5)
  const refused = await waitForEvent(t, { code: 'auth.tenant_disabled', tenant: 'acme', principal: AG })
  assert.equal(refused.action, 'connect')
  assert.equal(globex.connected, true, 'another tenant keeps its session')
  assert.equal((await t.api('GET', '/v1/tenants')).body.tenants.find((x: { id: string }) => x.id === 'acme').disabled, true)

  // reversible: the same credential works again
  const e = await t.api('PATCH', '/v1/tenants/acme', { disabled: false })
  assert.equal(e.status, 200)
  assert.equal(e.body.disabled, false)
  await waitForEvent(t, { code: 'tenant.enabled', tenant: 'acme' })
  const back = await connect(t, { v: 5, username: creds.username, password: creds.secret })
  await closeClient(back)
  await closeClient(globex)

  // bad input changes nothing
  assert.equal((await t.api('PATCH', '/v1/tenants/acme', { disabled: 'yes' })).status, 400)
  assert.equal((await t.api('PATCH', '/v1/tenants/nope', { disabled: true })).status, 404)
})

const AUTHZ = readFileSync(join(POLICY_DIR, 'authz.rego'), 'utf8')
// agents lose their own bulkdata: the shipped golden decisions refuse this bundle
const BAD_SRC = AUTHZ.replace('grants contains "agent_own_bulkdata" if {\n\trole == "agent"', 'grants contains "agent_own_bulkdata" if {\n\trole == "nobody"')

const bulkdataInput = (tenant: string) => ({
  action: 'publish', client: { tenant, principal: AG, role: 'agent', client_id: AG, protocol: 5, auth: 'password', listener: 'mqtt' }, topic: `${tenant}/bulkdata/${AG}/1`, qos: 1, retain: false
})

test('golden decisions belong to the deployment: replace, validate against the active policy, reset to the shipped ones; every change in the history', async () => {
  assert.notEqual(BAD_SRC, AUTHZ)
  const bad = buildTempBundle({ files: { 'authz.rego': BAD_SRC } })
  const data = buildTempBundle({ files: { 'data.json': JSON.stringify({ tenants: { globex: { note: 'x' } } }) } })
  const stable = t.gw.policy.revision
  const upload = async (bytes: Buffer, notes: string) => await adminRequest(t.adminUrl, 'POST', `/v1/policies?notes=${encodeURIComponent(notes)}`, { body: new Uint8Array(bytes) })

  const shipped = await t.api('GET', '/v1/policies/golden')
  assert.equal(shipped.body.source, 'shipped')
  assert.ok(shipped.body.golden.length > 5)
  const refused = await upload(bad.bytes, 'bad')
  assert.equal(refused.status, 400)
  assert.match(refused.body.detail, /^golden_failed: /)

  // a golden set the running stable policy does not reproduce is refused, and changes nothing
  const wrong = [{ name: 'agent connect denied?', input: { action: 'connect', client: bulkdataInput('isp1').client }, expect: { allow: false } }]
  const w = await t.api('PUT', '/v1/policies/golden', { golden: wrong })
  assert.equal(w.status, 400)
  assert.match(w.body.detail, new RegExp(`^${stable} is active and fails 1 of 1 golden decisions`))
  assert.equal((await t.api('GET', '/v1/policies/golden')).body.source, 'shipped')

  // this deployment's own decisions (its tenant names, its rules)
  const mine = [{ name: 'isp1 agent connects', input: { action: 'connect', client: bulkdataInput('isp1').client }, expect: { allow: true, reason: 'connect_allowed' } }]
  const set = await t.api('PUT', '/v1/policies/golden', { golden: mine, reason: 'our own tenants' })
  assert.equal(set.status, 200, set.text)
  assert.deepEqual(set.body, { source: 'deployment', golden: mine })
  await waitForEvent(t, { code: 'policy.golden_changed', actor: 'bootstrap' })
  const accepted = await upload(bad.bytes, 'bad, now allowed by the deployment golden')
  assert.equal(accepted.status, 201, accepted.text)
  assert.equal((await upload(data.bytes, 'data only')).status, 201)

  // kept across a restart (stored beside the versions)
  t = await t.restart()
  assert.equal((await t.api('GET', '/v1/policies/golden')).body.source, 'deployment')
  const reset = await t.api('DELETE', '/v1/policies/golden')
  assert.equal(reset.status, 200)
  assert.equal(reset.body.source, 'shipped')

  // canary, promote and rollback of the data-only revision, each with who / when / why
  assert.equal((await t.api('POST', `/v1/policies/${data.revision}/canary`, { tenants: ['globex'], reason: 'try on globex' })).status, 200)
  assert.equal((await t.api('POST', `/v1/policies/${data.revision}/promote`, { reason: 'globex fine' })).status, 200)
  assert.equal((await t.api('POST', '/v1/policies/rollback', { reason: 'changed our mind' })).status, 200)
  const h = (await t.api('GET', '/v1/policies/history?limit=8')).body.history as Array<Record<string, unknown>>
  assert.deepEqual(h.map(e => e.action), ['rollback', 'promote', 'canary', 'golden', 'upload', 'upload', 'golden', 'promote'])
  for (const e of h.slice(0, 7)) {
    assert.equal(e.actor, 'bootstrap')
    assert.ok(Date.now() - Date.parse(e.time as string) < 600_000)
  }
  assert.equal(h[0]!.reason, `stable ${data.revision} → ${stable}: changed our mind`)
  assert.equal(h[0]!.stable, stable)
  assert.deepEqual([h[1]!.revision, h[1]!.reason, h[1]!.stable], [data.revision, 'globex fine', data.revision])
  assert.deepEqual([h[2]!.tenants, h[2]!.reason], [['globex'], 'try on globex'])
  assert.match(h[3]!.reason as string, /^the shipped golden decisions/)
  assert.equal(h[4]!.reason, 'data only')
  assert.match(h[6]!.reason as string, /^1 deployment golden decisions: our own tenants/)
  assert.deepEqual([h[7]!.actor, h[7]!.revision], ['system', stable]) // first start

  // the running bundle, byte for byte what is recorded; and any stored one
  const view = (await t.api('GET', '/v1/policies')).body
  const res = await fetch(`${t.adminUrl}/v1/policies/bundle`, { headers: { authorization: `Bearer ${t.token}` } })
  assert.equal(res.status, 200)
  assert.equal(res.headers.get('content-type'), 'application/gzip')
  assert.equal(res.headers.get('x-policy-revision'), stable)
  const bytes = Buffer.from(await res.arrayBuffer())
  assert.equal(createHash('sha256').update(bytes).digest('hex'), view.versions.find((v: { revision: string }) => v.revision === stable).sha256)
  const other = await fetch(`${t.adminUrl}/v1/policies/bundle?revision=${bad.revision}`, { headers: { authorization: `Bearer ${t.token}` } })
  assert.ok(Buffer.from(await other.arrayBuffer()).equals(bad.bytes))
  assert.equal((await t.api('GET', '/v1/policies/bundle?revision=nope')).status, 404)

  // compare: the Rego change as a unified diff, the data change as a path
  const cmp = await t.api('GET', `/v1/policies/compare?from=${stable}&to=${bad.revision}`)
  assert.equal(cmp.status, 200)
  assert.deepEqual(cmp.body.sources.map((s: { path: string, status: string }) => `${s.path} ${s.status}`), ['authz.rego changed'])
  assert.match(cmp.body.sources[0].diff, /\n-\trole == "agent"\n\+\trole == "nobody"\n/)
  assert.deepEqual(cmp.body.data, [])
  const cmpData = await t.api('GET', `/v1/policies/compare?from=${stable}&to=${data.revision}`)
  assert.deepEqual(cmpData.body.sources, [])
  assert.deepEqual(cmpData.body.data, [{ path: '/tenants/globex', after: { note: 'x' } }])
  assert.equal((await t.api('GET', `/v1/policies/compare?from=${stable}&to=nope`)).status, 404)

  // evaluate: a dry run against any stored revision
  const ok = await t.api('POST', '/v1/policies/evaluate', { input: bulkdataInput('acme') })
  assert.deepEqual(ok.body, { revision: stable, allow: true, reason: 'agent_own_bulkdata' })
  const no = await t.api('POST', '/v1/policies/evaluate', { revision: bad.revision, input: bulkdataInput('acme') })
  assert.equal(no.body.allow, false)
  assert.equal(no.body.revision, bad.revision)
  assert.equal((await t.api('POST', '/v1/policies/evaluate', { revision: 'nope', input: bulkdataInput('acme') })).status, 404)
  assert.equal((await t.api('POST', '/v1/policies/evaluate', { input: { action: 'fly' } })).status, 400)
  // role-gated: a viewer may read policies but not probe them
  const viewer = await t.api('POST', '/v1/tokens', { name: 'ro', role: 'viewer' })
  const denied = await adminRequest(t.adminUrl, 'POST', '/v1/policies/evaluate', { token: viewer.body.token, body: { input: bulkdataInput('acme') } })
  assert.equal(denied.status, 403)
  assert.equal((await adminRequest(t.adminUrl, 'GET', '/v1/policies/history', { token: viewer.body.token })).status, 200)
  await waitFor(() => t.gw.events.query({ code: 'admin.forbidden', limit: 100 }).some(e => e.action === 'policy.evaluate'), 3000, 'admin.forbidden')
})
