// A gateway that died in the middle of a certification run (device revoked, canary on its tenant)
// puts both back at its next start, from the run's journal.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, writeFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { startGateway, provision, removeDir } from '../helpers/gateway.ts'

test('a run interrupted by a crash: at the next start the credential and the canary are put back', { timeout: 120_000 }, async () => {
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
  } finally {
    await t.close()
    await removeDir(t.dataDir)
  }
})
