// Policy versions over a running gateway with real MQTT clients and bundles built by the real opa:
// upload (validated before it is stored), tenant canary, shadow diff, rollback on a live
// subscription, the automatic canary guard, promote, and restart keeping versions + assignment.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { MqttClient } from 'mqtt'
import { startGateway, provision, connect, waitFor, waitForEvent, closeClient, removeDir, sleep, type TestGateway } from '../helpers/gateway.ts'
import { buildTempBundle } from '../policies/helpers.ts'
import { POLICY_DIR, type PolicyInput } from '../../policies/index.ts'

const AUTHZ = readFileSync(join(POLICY_DIR, 'authz.rego'), 'utf8')

function editedAuthz (edits: Array<[string, string]>): string {
  let text = AUTHZ
  for (const [from, to] of edits) {
    assert.ok(text.includes(from), `fixture: ${from} not in authz.rego`)
    text = text.replace(from, to)
  }
  return text
}

// D: agents may not publish telemetry under ".../blocked", controllers get nothing under ".../hidden".
const DENY_SRC = editedAuthz([
  ['\tat_or_below(input.topic, concat("/", [tenant, "bulkdata", principal]))\n',
    '\tat_or_below(input.topic, concat("/", [tenant, "bulkdata", principal]))\n\tnot contains(input.topic, "/blocked")\n'],
  ['\tlevels[1] == "bulkdata"\n\tcount(levels) >= 3\n', '\tlevels[1] == "bulkdata"\n\tcount(levels) >= 3\n\tnot contains(input.topic, "/hidden")\n']
])
// BAD: agents lose their own bulkdata entirely — the golden decisions refuse it.
const BAD_SRC = editedAuthz([['grants contains "agent_own_bulkdata" if {\n\trole == "agent"', 'grants contains "agent_own_bulkdata" if {\n\trole == "nobody"']])

let t: TestGateway
let D: { bytes: Buffer, revision: string }
let BAD: { bytes: Buffer, revision: string }
let stable = ''
const AG = 'os::00256D-0001'
const CT = 'self::ctrl-1'
const creds: Record<string, { username: string, secret: string }> = {}
const clients: MqttClient[] = []

before(async () => {
  D = buildTempBundle({ files: { 'authz.rego': DENY_SRC } })
  BAD = buildTempBundle({ files: { 'authz.rego': BAD_SRC } })
  t = await startGateway({ limits: { publishRatePerSecond: 0 } })
  for (const tenant of ['ta', 'tb', 'tg']) creds[`${tenant}:${AG}`] = await provision(t, tenant, AG, 'agent')
  creds[`ta:${CT}`] = await provision(t, 'ta', CT, 'controller')
  stable = t.gw.policy.revision
  assert.notEqual(D.revision, stable)
})
after(async () => {
  for (const c of clients) await closeClient(c)
  await t.close()
  await removeDir(t.dataDir)
})

async function client (who: string): Promise<MqttClient> {
  const c = await connect(t, { v: 5, username: creds[who]!.username, password: creds[who]!.secret })
  clients.push(c)
  return c
}

/** PUBACK reason code of a QoS 1 publish (0 = accepted, 0x87 = not authorized). */
function publish (c: MqttClient, topic: string, payload = 'x'): Promise<number> {
  return new Promise(resolve => c.publish(topic, payload, { qos: 1 }, err => resolve(err ? (err as { code?: number }).code ?? -1 : 0)))
}

async function uploadBundle (bytes: Buffer, query = ''): Promise<{ status: number, body: any }> {
  const res = await fetch(`${t.adminUrl}/v1/policies${query}`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: bytes as unknown as BodyInit })
  const text = await res.text()
  return { status: res.status, body: text ? JSON.parse(text) : undefined }
}

function bundleFiles (): string[] {
  return readdirSync(join(t.dataDir, 'policies')).sort()
}

const agentInput = (tenant: string, topic: string, clientId: string): PolicyInput => ({
  action: 'publish', client: { tenant, principal: AG, role: 'agent', client_id: clientId, protocol: 5, auth: 'password', listener: 'mqtt' }, topic, qos: 1, retain: false
})

test('the store starts with the committed bundle as stable', async () => {
  const r = await t.api('GET', '/v1/policies')
  assert.equal(r.status, 200)
  assert.equal(r.body.active.stable, stable)
  assert.deepEqual(r.body.active.previous, [])
  assert.equal(r.body.versions.length, 1)
  assert.equal(r.body.versions[0].uploadedBy, 'system')
  assert.match(r.body.versions[0].sha256, /^[0-9a-f]{64}$/)
})

test('a bad upload (random bytes, a bundle failing golden decisions) changes nothing', async () => {
  const before = (await t.api('GET', '/v1/policies')).body
  const files = bundleFiles()
  const a = await client(`ta:${AG}`)
  assert.equal(await publish(a, `ta/bulkdata/${AG}/blocked/1`), 0)

  const junk = await uploadBundle(randomBytes(2048))
  assert.equal(junk.status, 400)
  assert.equal(junk.body.title, 'invalid policy bundle')
  assert.match(junk.body.detail, /^bad_archive: /)

  const bad = await uploadBundle(BAD.bytes)
  assert.equal(bad.status, 400)
  assert.match(bad.body.detail, /^golden_failed: .*agent publishes own bulkdata/s)

  const json = await t.api('POST', '/v1/policies', { x: 1 })
  assert.equal(json.status, 415)

  assert.deepEqual((await t.api('GET', '/v1/policies')).body, before)
  assert.deepEqual(bundleFiles(), files)
  assert.equal(t.gw.policy.revision, stable)
  assert.equal(await publish(a, `ta/bulkdata/${AG}/blocked/2`), 0)
  assert.equal(t.gw.events.query({ code: 'policy.uploaded', limit: 10 }).length, 0)
})

test('upload + canary on tenant ta denies the topic for ta only; tb is unaffected', async () => {
  const up = await uploadBundle(D.bytes, '?notes=blocks%20blocked')
  assert.equal(up.status, 201, JSON.stringify(up.body))
  assert.equal(up.body.revision, D.revision)
  assert.equal(up.body.notes, 'blocks blocked')
  assert.equal(up.body.uploadedBy, 'bootstrap')
  assert.ok(bundleFiles().includes(`${D.revision}.tar.gz`))
  await waitForEvent(t, { code: 'policy.uploaded', policyRevision: D.revision, actor: 'bootstrap' })
  assert.equal((await uploadBundle(D.bytes)).status, 409)

  // uploaded is not active
  const a = await client(`ta:${AG}`)
  const b = await client(`tb:${AG}`)
  assert.equal(await publish(a, `ta/bulkdata/${AG}/blocked/3`), 0)

  assert.equal((await t.api('POST', `/v1/policies/${D.revision}/canary`, { tenants: ['nope'] })).status, 404)
  assert.equal((await t.api('POST', '/v1/policies/r-none/canary', { tenants: ['ta'] })).status, 404)
  assert.equal((await t.api('POST', `/v1/policies/${D.revision}/canary`, { tenants: ['ta'], extra: 1 })).status, 400)
  const r = await t.api('POST', `/v1/policies/${D.revision}/canary`, { tenants: ['ta'] })
  assert.equal(r.status, 200, JSON.stringify(r.body))
  assert.deepEqual(r.body.active.canary.tenants, ['ta'])
  await waitForEvent(t, { code: 'policy.canary_started', policyRevision: D.revision, actor: 'bootstrap' })

  assert.equal(await publish(a, `ta/bulkdata/${AG}/blocked/4`), 0x87)
  // the same live session, a topic it was allowed before the canary: decided again, not remembered
  assert.equal(await publish(a, `ta/bulkdata/${AG}/blocked/3`), 0x87)
  const ev = await waitForEvent(t, { code: 'acl.denied', topic: `ta/bulkdata/${AG}/blocked/4` })
  assert.equal(ev.policyRevision, D.revision)
  assert.equal(await publish(a, `ta/bulkdata/${AG}/fine`), 0)
  assert.equal(await publish(b, `tb/bulkdata/${AG}/blocked/4`), 0)

  const metrics = await (await fetch(t.adminUrl + '/metrics')).text()
  assert.match(metrics, new RegExp(`uspgate_policy_active_info\\{revision="${D.revision}",slot="canary",node="test-node"\\} 1`))
  assert.match(metrics, new RegExp(`uspgate_policy_active_info\\{revision="${stable}",slot="stable",node="test-node"\\} 1`))
})

test('rollback of the canary restores delivery within 1 s for a live subscriber; no canary decision is served again', async () => {
  const ctrl = await client(`ta:${CT}`)
  const got: string[] = []
  ctrl.on('message', topic => got.push(topic))
  await new Promise<void>((resolve, reject) => ctrl.subscribe('ta/bulkdata/#', { qos: 1 }, (err, g) => err || g?.[0]?.qos === 128 ? reject(err ?? new Error('refused')) : resolve()))
  const a = await client(`ta:${AG}`)
  const hidden = `ta/bulkdata/${AG}/hidden/x`
  assert.equal(await publish(a, hidden), 0) // publishing is allowed; delivery is not (canary)
  await sleep(300)
  assert.deepEqual(got.filter(x => x === hidden), [])

  // the canary decision is cached under the canary revision
  assert.equal(await publish(a, `ta/bulkdata/${AG}/blocked/6`), 0x87)
  const input = agentInput('ta', `ta/bulkdata/${AG}/blocked/6`, a.options.clientId!)
  assert.equal(t.gw.policy.peek(input)?.revision, D.revision)

  const r = await t.api('POST', '/v1/policies/rollback', { reason: 'test says so' })
  assert.equal(r.status, 200, JSON.stringify(r.body))
  assert.equal(r.body.active.canary, undefined)
  const at = Date.now()
  assert.equal(await publish(a, hidden), 0)
  await waitFor(() => got.includes(hidden), 1000, 'delivery after rollback')
  assert.ok(Date.now() - at < 1000)
  const ev = await waitForEvent(t, { code: 'policy.rolled_back', actor: 'bootstrap' })
  assert.match(ev.reason!, /canary .* off for ta: test says so/)

  // a decision of the revision no longer active for ta can never be served: the key carries the revision
  const hit = t.gw.policy.peek(input)
  assert.ok(hit === undefined || hit.revision === stable)
  const d = t.gw.policy.decide(input)
  assert.equal(d.revision, stable)
  assert.equal(d.allow, true)
  assert.equal(await publish(a, `ta/bulkdata/${AG}/blocked/5`), 0)
  // the topic this live session was refused under the canary is allowed again at once
  assert.equal(await publish(a, `ta/bulkdata/${AG}/blocked/6`), 0)
  const metrics = await (await fetch(t.adminUrl + '/metrics')).text()
  assert.doesNotMatch(metrics, /uspgate_policy_active_info\{[^}]*slot="canary"/)
})

test('shadow reports the disagreement in /diff and changes no decision', async () => {
  assert.equal((await t.api('GET', `/v1/policies/${D.revision}/diff`)).status, 409)
  const r = await t.api('POST', `/v1/policies/${D.revision}/shadow`)
  assert.equal(r.status, 200, JSON.stringify(r.body))
  assert.equal(r.body.active.shadow, D.revision)
  await waitForEvent(t, { code: 'policy.shadow_started', policyRevision: D.revision })
  const b = await client(`tb:${AG}`)
  const topic = `tb/bulkdata/${AG}/blocked/shadow`
  assert.equal(await publish(b, topic), 0)
  assert.equal(await publish(b, topic), 0) // cached: shadow is not evaluated again
  assert.equal(await publish(b, `tb/bulkdata/${AG}/same`), 0)
  const diff = await t.api('GET', `/v1/policies/${D.revision}/diff`)
  assert.equal(diff.status, 200)
  assert.equal(diff.body.stable, stable)
  assert.equal(diff.body.disagreements, 1)
  assert.ok(diff.body.compared >= 2)
  const c = diff.body.counts.find((x: any) => x.action === 'publish')
  assert.equal(c.stable, 'allow/agent_own_bulkdata')
  assert.match(c.shadow, /^deny\//)
  assert.equal(c.count, 1)
  assert.equal(diff.body.sample[0].topic, topic)
  assert.equal(diff.body.sample[0].tenant, 'tb')
  assert.equal(diff.body.sample[0].stable.allow, true)
  assert.equal(diff.body.sample[0].shadow.allow, false)
  assert.equal(t.gw.events.query({ code: 'acl.denied', limit: 1000 }).filter(e => e.topic === topic).length, 0)
})

test('the guard rolls back a bad canary by itself', async () => {
  const g = await client(`tg:${AG}`)
  for (let i = 0; i < 25; i++) assert.equal(await publish(g, `tg/bulkdata/${AG}/ok/${i}`), 0) // stable baseline: no denies
  const r = await t.api('POST', `/v1/policies/${D.revision}/canary`, { tenants: ['tg'] })
  assert.equal(r.status, 200)
  const codes: number[] = []
  for (let i = 0; i < 30; i++) codes.push(await publish(g, `tg/bulkdata/${AG}/blocked/${i}`))
  const ev = await waitForEvent(t, { code: 'policy.rolled_back', actor: 'guard' })
  assert.equal(ev.tenant, 'tg')
  assert.match(ev.reason!, /deny rate 100\.0% for tenant tg .* above 3x stable baseline 0\.0%/)
  // tripped after the minimum of 20 canary decisions; everything after is stable's again
  assert.equal(codes.filter(c => c === 0x87).length, 20)
  assert.equal(codes.at(-1), 0)
  const view = (await t.api('GET', '/v1/policies')).body
  assert.equal(view.active.canary, undefined)
  assert.equal(view.active.stable, stable)
  // the automatic rollback leaves a trace in the policy history: who (the guard), when, why
  const history = (await t.api('GET', '/v1/policies/history?limit=2')).body.history
  assert.equal(history[0].action, 'guard_rollback')
  assert.equal(history[0].actor, 'guard')
  assert.equal(history[0].revision, D.revision)
  assert.deepEqual(history[0].tenants, ['tg'])
  assert.match(history[0].reason, /^canary \S+ deny rate 100\.0% for tenant tg/)
  assert.equal(history[1].action, 'canary')
  assert.equal(history[1].actor, 'bootstrap')
})

test('restart keeps versions and the active assignment', async () => {
  const r = await t.api('POST', `/v1/policies/${D.revision}/canary`, { tenants: ['ta'] })
  assert.equal(r.status, 200)
  const before = (await t.api('GET', '/v1/policies')).body
  for (const c of clients.splice(0)) await closeClient(c)
  t = await t.restart()
  const after = (await t.api('GET', '/v1/policies')).body
  assert.deepEqual(after, before)
  assert.equal(after.active.shadow, D.revision)
  const a = await client(`ta:${AG}`)
  const b = await client(`tb:${AG}`)
  assert.equal(await publish(a, `ta/bulkdata/${AG}/blocked/after-restart`), 0x87)
  assert.equal(await publish(b, `tb/bulkdata/${AG}/blocked/after-restart`), 0)
})

test('promote makes the revision stable for everyone (canary cleared); rollback returns to the previous stable', async () => {
  const r = await t.api('POST', `/v1/policies/${D.revision}/promote`)
  assert.equal(r.status, 200, JSON.stringify(r.body))
  assert.equal(r.body.active.stable, D.revision)
  assert.deepEqual(r.body.active.previous, [stable])
  assert.equal(r.body.active.canary, undefined)
  assert.equal(r.body.active.shadow, undefined)
  await waitForEvent(t, { code: 'policy.promoted', policyRevision: D.revision })
  const b = await client(`tb:${AG}`)
  assert.equal(await publish(b, `tb/bulkdata/${AG}/blocked/promoted`), 0x87)

  const rb = await t.api('POST', '/v1/policies/rollback')
  assert.equal(rb.status, 200, JSON.stringify(rb.body))
  assert.equal(rb.body.active.stable, stable)
  assert.deepEqual(rb.body.active.previous, [])
  assert.equal(await publish(b, `tb/bulkdata/${AG}/blocked/rolled-back`), 0)
  assert.equal((await t.api('POST', '/v1/policies/rollback', {})).status, 409)
})
