// Bulk provisioning: POST /v1/tenants/:tenant/credentials:import with a few thousand rows, bad rows
// included, as JSON and NDJSON; idempotent per principal; secrets once; factory hashes; cluster-wide.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startGateway, connect, refusedWith, closeClient, removeDir, waitFor, waitForEvent, adminRequest, type TestGateway } from '../helpers/gateway.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let t: TestGateway
before(async () => {
  t = await startGateway()
  assert.equal((await t.api('POST', '/v1/tenants', { id: 'acme' })).status, 201)
})
after(async () => { await t.close(); await removeDir(t.dataDir) })

const importJson = async (gw: TestGateway, tenant: string, rows: unknown): Promise<any> =>
  await adminRequest(gw.adminUrl, 'POST', `/v1/tenants/${tenant}/credentials:import`, { body: rows })

test('3,000 rows with bad ones mixed in: per-row results, secrets once, every created device logs in', async () => {
  const rows: unknown[] = []
  for (let i = 0; i < 3000; i++) rows.push({ principal: `os::00256D-IMP${String(i).padStart(5, '0')}`, role: i % 100 === 0 ? 'controller' : 'agent' })
  rows.push({ principal: 'bad principal with spaces', role: 'agent' })
  rows.push({ principal: 'os::00256D-IMPX', role: 'admin' })
  rows.push({ principal: 'os::00256D-IMP00001', role: 'agent' }) // duplicate of an earlier row
  rows.push({ principal: 'os::00256D-IMPY', role: 'agent', secretHash: 'md5:abc' })
  const r = await importJson(t, 'acme', rows)
  assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300))
  assert.equal(r.headers.get('cache-control'), 'no-store')
  const b = r.body
  assert.deepEqual([b.total, b.success, b.skipped, b.failed], [3004, 3000, 0, 4])
  assert.match(b.results[3000].reason, /principal must be/)
  assert.match(b.results[3001].reason, /role must be/)
  assert.match(b.results[3002].reason, /appears earlier/)
  assert.match(b.results[3003].reason, /secretHash/)
  const first = b.results[0]
  assert.equal(first.status, 'created')
  assert.match(first.secret, /^usg_/)
  // a created device logs in with its secret; the listing never shows secrets
  const c = await connect(t, { v: 5, username: `acme:${first.principal}`, password: first.secret })
  await closeClient(c)
  const listed = await t.api('GET', '/v1/tenants/acme/credentials')
  assert.equal(listed.body.credentials.length, 3000)
  assert.doesNotMatch(listed.text, /usg_|sha256:/)
  // one summary event, no secret in any event or log line
  const ev = await waitForEvent(t, { code: 'credential.imported', tenant: 'acme' })
  assert.match(ev.reason ?? '', /3000 created, 0 skipped, 4 failed of 3004/)
  const audit = await readFile(join(t.dataDir, 'audit', 'security-events.ndjson'), 'utf8')
  assert.doesNotMatch(audit + t.logText(), new RegExp(first.secret))
})

test('re-running the same import skips what exists (no new secrets); a revoked device is not brought back', async () => {
  const rows = [{ principal: 'os::00256D-IMP00002', role: 'agent' }, { principal: 'os::00256D-NEW1', role: 'agent' }]
  assert.equal((await t.api('DELETE', `/v1/tenants/acme/credentials/${encodeURIComponent('os::00256D-IMP00003')}`)).status, 200)
  rows.push({ principal: 'os::00256D-IMP00003', role: 'agent' })
  const r = await importJson(t, 'acme', rows)
  assert.deepEqual([r.body.success, r.body.skipped, r.body.failed], [1, 2, 0])
  assert.equal(r.body.results[0].secret, undefined)
  assert.match(r.body.results[2].reason, /revoked/)
  assert.notEqual(await refusedWith(t, { v: 5, username: 'acme:os::00256D-IMP00003', password: 'whatever' }), 0)
})

test('NDJSON body, and a factory-supplied secret hash: the device logs in with the secret the factory installed', async () => {
  const secret = 'factory_' + randomBytes(24).toString('hex')
  const hash = 'sha256:' + createHash('sha256').update(secret).digest('hex')
  const body = [JSON.stringify({ principal: 'os::00256D-FAC1', role: 'agent', secretHash: hash }), '', JSON.stringify({ principal: 'os::00256D-FAC2', role: 'agent' })].join('\n')
  const r = await adminRequest(t.adminUrl, 'POST', '/v1/tenants/acme/credentials:import', { body, headers: { 'content-type': 'application/x-ndjson' } })
  assert.equal(r.status, 200, r.text.slice(0, 300))
  assert.equal(r.body.success, 2)
  assert.equal(r.body.results[0].secret, undefined, 'a supplied hash: no secret to return')
  assert.match(r.body.results[1].secret, /^usg_/)
  const c = await connect(t, { v: 4, username: 'acme:os::00256D-FAC1', password: secret })
  await closeClient(c)
  // a broken line is a 400 naming it, and nothing is imported
  const bad = await adminRequest(t.adminUrl, 'POST', '/v1/tenants/acme/credentials:import', { body: '{"principal":"os::00256D-FAC3","role":"agent"}\n{nope', headers: { 'content-type': 'application/x-ndjson' } })
  assert.equal(bad.status, 400)
  assert.match(bad.body.detail, /line 2/)
  assert.equal((await t.api('GET', '/v1/tenants/acme/credentials')).body.credentials.some((x: { principal: string }) => x.principal === 'os::00256D-FAC3'), false)
})

test('authorization: a viewer token cannot import; an unknown tenant is 404; not an array is 400', async () => {
  const tok = await t.api('POST', '/v1/tokens', { name: 'v', role: 'viewer' })
  const r = await adminRequest(t.adminUrl, 'POST', '/v1/tenants/acme/credentials:import', { token: tok.body.token, body: [{ principal: 'os::00256D-V1', role: 'agent' }] })
  assert.equal(r.status, 403)
  assert.equal((await importJson(t, 'nosuch', [{ principal: 'os::00256D-V2', role: 'agent' }])).status, 404)
  assert.equal((await importJson(t, 'acme', { principal: 'os::00256D-V3' })).status, 400)
})

test('cluster mode: an import on node A is usable on node B at once (one control message per batch)', async () => {
  const redis: TestRedis = await startRedis()
  const opts = { redis: { url: redis.url, prefix: 'imp:' }, pkiMasterKey: 'import-test-master-key-0123456789' }
  const a = await startGateway({ ...opts, nodeId: 'imp-a' })
  const b = await startGateway({ ...opts, nodeId: 'imp-b' })
  try {
    assert.equal((await a.api('POST', '/v1/tenants', { id: 'acme' })).status, 201)
    const rows = Array.from({ length: 2500 }, (_, i) => ({ principal: `os::00256D-CL${i}`, role: 'agent' }))
    const r = await importJson(a, 'acme', rows)
    assert.equal(r.body.success, 2500)
    const last = r.body.results[2499]
    await waitFor(async () => (await b.api('GET', '/v1/tenants/acme/credentials')).body.credentials?.length === 2500, 10_000, 'node B sees every credential')
    const c = await connect(b, { v: 5, username: `acme:${last.principal}`, password: last.secret })
    await closeClient(c)
    // idempotent across nodes too
    const again = await importJson(b, 'acme', rows.slice(0, 10))
    assert.deepEqual([again.body.success, again.body.skipped], [0, 10])
  } finally {
    await a.close(); await b.close(); await removeDir(a.dataDir); await removeDir(b.dataDir); await redis.stop()
  }
})
