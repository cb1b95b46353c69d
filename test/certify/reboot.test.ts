// The `reboot` workflow against the real Broadband Forum agent: the gateway sends Operate
// Device.Reboot(); obuspa stops (exit) and, restarted as a device's init would (respawn loop, same
// database), reconnects and sends Boot! with Cause RemoteReboot; the reconnect timing is in the evidence.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { provision, waitFor } from '../helpers/gateway.ts'
import { verifyEvidence } from '../../broker/certify/index.ts'
import { startLab, type Lab } from './lab.ts'

let lab: Lab
before(async () => { lab = await startLab() })
after(async () => { await lab.close() })

test('`uspgate certify --workflows reboot`: Device.Reboot(), the agent goes down and comes back, reconnect timing and Boot! in the evidence', { timeout: 300_000 }, async () => {
  const tenant = 'labreboot'
  const eid = 'os::00D09E-REBOOT01'
  const { secret } = await provision(lab.t, tenant, eid, 'agent')
  const ob = await lab.agent(tenant, eid, { v: '5.0', password: secret, respawn: true })
  await waitFor(() => lab.t.gw.sessions.ofIdentity(`${tenant}:${eid}`).length > 0, 30_000, 'obuspa online')
  const policyBefore = lab.t.gw.policyVersions.view().active

  const out = await lab.cli('certify', tenant, eid, '--level', 'integration-ready', '--workflows', 'reboot')
  assert.equal(out.code, 0, out.stdout + out.stderr + (await ob.log()).slice(-3000))
  assert.match(out.stdout, /\[advanced\.reboot\] pass: Reboot\(\): answered in \d+ ms, went down after \d+ ms, back online after \d+ ms, MQTTConnectRecord after \d+ ms, Boot! \(Cause RemoteReboot\) after \d+ ms/)
  assert.match(out.stdout, /PASSED: level integration-ready/)
  // the agent process really stopped and was started again (a reboot, not a dropped connection)
  assert.equal(await ob.respawns(), 1)

  const runs = (await lab.t.api('GET', `/v1/tenants/${tenant}/certifications`)).body.runs as Array<{ id: string, evidencePath: string }>
  assert.equal(runs.length, 1)
  const dir = runs[0]!.evidencePath
  assert.deepEqual((await verifyEvidence(dir, (await lab.t.api('GET', '/v1/ca')).text)).problems, [])
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'))
  const reboot = manifest.checks.find((c: { id: string }) => c.id === 'advanced.reboot')
  assert.equal(reboot.result, 'pass')
  const d = reboot.details
  assert.equal(d.command, 'Device.Reboot()')
  assert.equal(d.bootCause, 'RemoteReboot')
  assert.equal(d.bootCommandKey, d.commandKey)
  assert.ok(Number.isInteger(d.reconnectMs) && d.reconnectMs > 0 && d.downMs <= d.reconnectMs && d.connectRecordMs > d.downMs, JSON.stringify(d))
  // the exact records: the Operate request and the Boot! notify after it
  const records = (await readFile(join(dir, 'records.ndjson'), 'utf8')).trim().split('\n').map(l => JSON.parse(l))
  const op = records.find(r => r.direction === 'sent' && r.decoded.noSessionContext?.msg?.body?.request?.operate?.command === 'Device.Reboot()')
  assert.ok(op, 'Operate Device.Reboot() in the evidence')
  assert.ok(records.some(r => r.seq > op.seq && r.direction === 'received' && r.decoded.noSessionContext?.msg?.body?.request?.notify?.event?.eventName === 'Boot!'), 'Boot! after the reboot in the evidence')
  // nothing left changed: the device holds its credential and is online, the policy is untouched
  assert.equal(lab.t.gw.store.getCredential(tenant, eid)?.revokedAt, undefined)
  assert.deepEqual(lab.t.gw.policyVersions.view().active, policyBefore)
  await waitFor(() => lab.t.gw.sessions.ofIdentity(`${tenant}:${eid}`).length > 0, 30_000, 'obuspa online after the run')
})
