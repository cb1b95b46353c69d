// A gateway that died in the middle of a certification run (device revoked, canary on its tenant)
// puts both back at its next start, from the run's journal.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, writeFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { startGateway, provision, removeDir } from '../helpers/gateway.ts'
import { verifyEvidence } from '../../broker/certify/index.ts'

test('a run interrupted by a crash: at the next start the credential and the canary are put back, the run is listed as interrupted and can be resumed', { timeout: 120_000 }, async () => {
  let t = await startGateway()
  try {
    await provision(t, 'crash', 'os::00D09E-CRASH01', 'agent')
    const baseline = t.gw.store.getCredential('crash', 'os::00D09E-CRASH01')!
    const stable = t.gw.policyVersions.view().active.stable
    // what the run had done when the process died: journal written, then revocation and canary made
    const canary = await t.gw.policyVersions.relabelledCopy(stable, 'test')
    const dir = join(t.dataDir, 'certify', 'active')
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, 'cr-20261201000000-deadbeef.json'), JSON.stringify({ tenant: 'crash', endpointId: 'os::00D09E-CRASH01', baseline, canaryStarted: canary, policyAtStart: { stable } }))
    // and its persisted state: two checks finished, the third running
    const check = (id: string): Record<string, unknown> => ({ id, title: id, category: id.split('.')[0], result: 'pass', summary: 'ok', details: {}, startedAt: '2026-12-01T00:00:01.000Z', finishedAt: '2026-12-01T00:00:02.000Z', durationMs: 1000 })
    const runs = join(t.dataDir, 'certify', 'runs')
    await mkdir(runs, { recursive: true })
    const record = (id: string): string => JSON.stringify({
      id,
      req: { tenant: 'crash', endpointId: 'os::00D09E-CRASH01', level: 'certified', workflows: [], actor: 'test' },
      state: 'running',
      startedAt: '2026-12-01T00:00:00.000Z',
      currentCheck: 'interop.online',
      outcomes: [check('interop.first_contact'), check('interop.boot_notify')],
      progress: [],
      facts: {},
      traces: [],
      attempts: [{ startedAt: '2026-12-01T00:00:00.000Z', node: 'test-node', actor: 'test', kept: [] }]
    })
    await writeFile(join(runs, 'cr-20261201000000-deadbeef.json'), record('cr-20261201000000-deadbeef'))
    // an older interrupted run of the same device, to be cancelled rather than resumed
    await writeFile(join(runs, 'cr-20261130000000-cafebabe.json'), record('cr-20261130000000-cafebabe'))
    assert.equal((await t.api('DELETE', '/v1/tenants/crash/credentials/os::00D09E-CRASH01')).status, 200)
    assert.equal((await t.api('POST', `/v1/policies/${canary}/canary`, { tenants: ['crash'] })).status, 200)
    t = await t.restart()
    const cred = t.gw.store.getCredential('crash', 'os::00D09E-CRASH01')!
    assert.equal(cred.revokedAt, undefined)
    assert.equal(cred.secretHash, baseline.secretHash)
    assert.equal(t.gw.policyVersions.view().active.canary, undefined)
    assert.equal(t.gw.policy.revisionFor('crash'), stable)
    assert.ok(t.gw.events.query({ code: 'certify.restored_after_restart', limit: 10 }).some(e => e.principal === 'os::00D09E-CRASH01'))
    assert.deepEqual(await readdir(dir), [])
    // the run is listed as interrupted (resumable), with the checks it had finished
    const view = (await t.api('GET', '/v1/tenants/crash/certifications/cr-20261201000000-deadbeef')).body
    assert.equal(view.state, 'interrupted')
    assert.deepEqual(view.checks.map((c: { id: string }) => c.id), ['interop.first_contact', 'interop.boot_notify'])
    assert.match(view.progress.at(-1).message, /interrupted by a gateway restart \(crash\)/)
    assert.equal((await t.api('GET', '/v1/tenants/crash/certifications')).body.runs.length, 2)
    // cancelling an interrupted run ends it at once: cancelled, evidence filed with the checks it had finished
    const c0 = await t.api('DELETE', '/v1/tenants/crash/certifications/cr-20261130000000-cafebabe')
    assert.equal(c0.status, 200, c0.text)
    const gone = (await t.gw.certify.settled('cr-20261130000000-cafebabe'))!
    assert.equal(gone.state, 'cancelled')
    assert.deepEqual(gone.checks.map(c => c.id), ['interop.first_contact', 'interop.boot_notify'])
    assert.equal((await verifyEvidence(gone.evidencePath!)).ok, true)
    assert.ok(!gone.progress.some(p => p.message.startsWith('controller ')), 'no controller connected for a cancelled interrupted run')
    // a resume needs the device's credential to be active: here it is, and the device is not connected,
    // so the new attempt waits for it; cancelling it ends the run (cancelled, evidence filed)
    const resumed = await t.api('POST', '/v1/tenants/crash/certifications/cr-20261201000000-deadbeef/resume')
    assert.equal(resumed.status, 202, resumed.text)
    assert.equal(resumed.body.state, 'running')
    assert.equal(resumed.body.attempts, 2)
    assert.equal((await t.api('POST', '/v1/tenants/crash/certifications/cr-20261201000000-deadbeef/resume')).status, 409)
    assert.equal((await t.api('DELETE', '/v1/tenants/crash/certifications/cr-20261201000000-deadbeef')).status, 200)
    const ended = (await t.gw.certify.settled('cr-20261201000000-deadbeef'))!
    assert.equal(ended.state, 'cancelled')
    assert.deepEqual(ended.checks.slice(0, 2).map(c => c.id), ['interop.first_contact', 'interop.boot_notify'])
    assert.equal(t.gw.store.getCredential('crash', 'os::00D09E-CRASH01')?.revokedAt, undefined)
  } finally {
    await t.close()
    await removeDir(t.dataDir)
  }
})
