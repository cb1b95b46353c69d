// Certification runs end to end against the real Broadband Forum agent (obuspa 11.0.4): healthy
// agents over MQTT 5 and 3.1.1 reach their level, matrix rows follow the rules, the evidence bundle
// verifies and a modified file fails `uspgate evidence verify`, nothing outside the device changes.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { appendFile, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { provision, waitFor } from '../helpers/gateway.ts'
import { UspPeer } from '../helpers/usp-peers.ts'
import { verifyEvidence } from '../../broker/certify/index.ts'
import { startLab, type Lab } from './lab.ts'

let lab: Lab
before(async () => { lab = await startLab() })
after(async () => { await lab.close() })

test('MQTT 5: a healthy obuspa reaches Certified; credential recovery through the lab provisioning step; evidence verifies; nothing else changes', { timeout: 300_000 }, async () => {
  const tenant = 'lab5'
  const eid = 'os::00D09E-CERT0005'
  const { secret } = await provision(lab.t, tenant, eid, 'agent')
  // a bystander device of the same tenant, online for the whole run
  const otherSecret = (await provision(lab.t, tenant, 'os::00D09E-OTHER0005', 'agent')).secret
  const bystander = await UspPeer.connect(lab.t, { tenant, endpointId: 'os::00D09E-OTHER0005', role: 'agent', secret: otherSecret })
  await bystander.subscribeInbox()
  const policyBefore = lab.t.gw.policyVersions.view().active
  const ob = await lab.agent(tenant, eid, { v: '5.0', password: secret })
  process.env.USPGATE_CERTIFY_PROVISION_CMD = await ob.provisionScript()
  await waitFor(() => lab.t.gw.sessions.ofIdentity(`${tenant}:${eid}`).length > 0, 20_000, 'obuspa online')

  const started = await lab.t.api('POST', `/v1/tenants/${tenant}/certifications`, { endpointId: eid, level: 'certified' })
  assert.equal(started.status, 202, started.text)
  // one run per device at a time
  const again = await lab.t.api('POST', `/v1/tenants/${tenant}/certifications`, { endpointId: eid })
  assert.equal(again.status, 409, again.text)
  const view = (await lab.t.gw.certify.settled(started.body.id))!
  delete process.env.USPGATE_CERTIFY_PROVISION_CMD
  const byId = Object.fromEntries(view.checks.map(c => [c.id, c]))
  assert.equal(view.state, 'passed', JSON.stringify(view.checks, null, 1) + (await ob.log()).slice(-3000))
  assert.equal(view.levelReached, 'certified')
  for (const id of ['interop.first_contact', 'interop.online', 'security.tenant_username', 'interop.supported_dm', 'interop.inventory', 'security.topics_in_tenant', 'security.cross_tenant_refused', 'security.bad_credentials_logged', 'interop.reconnect', 'interop.offline_detection', 'interop.credential_recovery', 'security.bare_username_refused', 'canary.revocation_cut', 'canary.policy_rollback', 'security.no_secrets_logged']) {
    assert.equal(byId[id]?.result, 'pass', `${id}: ${JSON.stringify(byId[id])}`)
  }
  // progress was reported as the run went
  assert.ok(view.progress.length > 15)

  // the matrix row: green without limitations, yellow with them (obuspa has no WiFi, and Boot! was not observed)
  const matrix = await lab.t.api('GET', '/v1/certifications/matrix')
  assert.equal(matrix.status, 200)
  const row = matrix.body.rows.find((r: { endpointId: string }) => r.endpointId === eid)
  assert.ok(row, JSON.stringify(matrix.body))
  assert.equal(row.level, 'certified')
  assert.equal(row.status, row.limitations.length === 0 ? 'green' : 'yellow')
  assert.match(row.transport, /MQTT 5\.0 \/ TCP/)
  assert.ok(row.vendor.length > 0 && row.firmwareRange.length > 0, JSON.stringify(row))
  const csv = await lab.t.api('GET', '/v1/certifications/matrix?format=csv')
  assert.match(csv.headers.get('content-type') ?? '', /text\/csv/)
  assert.ok(csv.text.includes(eid))
  const md = await lab.t.api('GET', '/v1/certifications/matrix?format=markdown')
  assert.match(md.text, /^\| status \| vendor/)

  // nothing outside the device under test changed: policy assignment, bystander's session
  assert.deepEqual(lab.t.gw.policyVersions.view().active, policyBefore)
  assert.equal(bystander.closed, false)
  assert.equal(lab.t.gw.sessions.ofIdentity(`${tenant}:os::00D09E-OTHER0005`).length, 1)
  // and the device is not left revoked: it is online with its (rotated, provisioned) credential
  assert.equal(lab.t.gw.store.getCredential(tenant, eid)?.revokedAt, undefined)
  await waitFor(() => lab.t.gw.sessions.ofIdentity(`${tenant}:${eid}`).length > 0, 20_000, 'obuspa online after the run')
  await bystander.close()

  // evidence: verifies with the gateway root; the CLI agrees; a modified file fails
  const dir = view.evidencePath!
  const root = (await lab.t.api('GET', '/v1/ca')).text
  const ok = await verifyEvidence(dir, root)
  assert.deepEqual(ok.problems, [])
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'))
  assert.equal(manifest.checks.length, view.checks.length)
  assert.ok(manifest.policy.atStart.stable)
  assert.ok(manifest.gateway.version)
  const records = (await readFile(join(dir, 'records.ndjson'), 'utf8')).trim().split('\n').map(l => JSON.parse(l))
  assert.ok(records.some(r => r.direction === 'received' && r.decoded.mqttConnect), 'MQTTConnectRecord in evidence')
  assert.ok(records.some(r => r.direction === 'received' && r.decoded.noSessionContext?.msg?.body?.response?.getResp), 'GetResp in evidence')
  assert.ok(records.every(r => typeof r.raw === 'string' && r.raw.length > 0))
  const events = await readFile(join(dir, 'security-events.ndjson'), 'utf8')
  assert.match(events, /auth\.bare_username/)
  assert.match(events, /acl\.cross_tenant/)
  // no secret (device, rotated, controller, probe) in the gateway log or the evidence
  assert.doesNotMatch(lab.t.logText(), /usg_[A-Za-z0-9_-]{43}/)
  for (const f of ['manifest.json', 'records.ndjson', 'security-events.ndjson']) assert.doesNotMatch(await readFile(join(dir, f), 'utf8'), /usg_[A-Za-z0-9_-]{43}/)
  const good = await lab.cli('evidence', 'verify', dir)
  assert.equal(good.code, 0, good.stdout + good.stderr)
  await appendFile(join(dir, 'records.ndjson'), '{"tampered":true}\n')
  const bad = await lab.cli('evidence', 'verify', dir)
  assert.notEqual(bad.code, 0)
  assert.match(bad.stdout + bad.stderr, /records\.ndjson.*modified/)
})

test('MQTT 3.1.1: `uspgate certify` waits for an agent that is powered on during the run; first contact with Boot!; Integration Ready; matrix row per the rules', { timeout: 300_000 }, async () => {
  const tenant = 'lab3'
  const eid = 'os::00D09E-CERT0003'
  const { secret } = await provision(lab.t, tenant, eid, 'agent')
  const policyBefore = lab.t.gw.policyVersions.view().active
  const run = lab.cli('certify', tenant, eid, '--level', 'integration-ready', '--online-timeout', '90', '--workflows', 'set-preview,operate')
  await waitFor(async () => (await lab.t.api('GET', `/v1/tenants/${tenant}/certifications`)).body.runs?.length === 1, 20_000, 'run started')
  await lab.agent(tenant, eid, { v: '3.1.1', password: secret })
  const out = await run
  assert.equal(out.code, 0, out.stdout + out.stderr)
  assert.match(out.stdout, /\[interop\.first_contact\] pass: MQTTConnectRecord V3_1_1/)
  assert.match(out.stdout, /\[interop\.boot_notify\] pass: Boot!/)
  assert.match(out.stdout, /PASSED: level integration-ready, matrix (green|yellow)/)
  // the advanced workflows ran only because they were named: Set with read-back and rollback, Operate
  assert.match(out.stdout, /\[advanced\.set_preview\] pass: Device\.LocalAgent\.Controller\.1\.PeriodicNotifInterval: 86400 → 86399 → rolled back to 86400/)
  assert.match(out.stdout, /\[advanced\.operate\] pass: Operate Device\.LocalAgent\.Controller\.1\.SendOnBoardRequest\(\) answered/)
  assert.doesNotMatch(out.stdout, /advanced\.reboot/)
  const row = (await lab.t.api('GET', '/v1/certifications/matrix')).body.rows.find((r: { endpointId: string }) => r.endpointId === eid)
  assert.equal(row.level, 'integration-ready')
  assert.deepEqual(row.workflows, ['inventory', 'set-preview', 'operate'])
  assert.match(row.transport, /MQTT 3\.1\.1 \/ TCP/)
  assert.equal(row.status, row.limitations.length === 0 ? 'green' : 'yellow')
  assert.ok(row.limitations.every((l: string) => !/: (fail|error) /.test(l)), row.limitations.join('\n'))
  assert.deepEqual(lab.t.gw.policyVersions.view().active, policyBefore)
  const md = await lab.cli('matrix', '--format', 'markdown')
  assert.equal(md.code, 0)
  assert.ok(md.stdout.includes(eid))
})
