// A run interrupted by a gateway restart (here while it holds the device revoked) is put back at
// shutdown, listed as interrupted after the restart, and resumed: the finished checks are kept (not
// re-run), the rest run in a second attempt, and the run files one evidence bundle that verifies.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { provision, waitFor } from '../helpers/gateway.ts'
import { verifyEvidence } from '../../broker/certify/index.ts'
import { startLab, type Lab } from './lab.ts'

let lab: Lab
before(async () => { lab = await startLab() })
after(async () => { await lab.close() })

interface Check { id: string, result: string, startedAt: string, finishedAt: string }

test('a run interrupted by a restart is undone, listed as interrupted, and resumed keeping its finished checks; one bundle that verifies', { timeout: 420_000 }, async () => {
  const tenant = 'labresume'
  const eid = 'os::00D09E-RESUME01'
  const { secret } = await provision(lab.t, tenant, eid, 'agent')
  const ob = await lab.agent(tenant, eid, { v: '5.0', password: secret })
  process.env.USPGATE_CERTIFY_PROVISION_CMD = await ob.provisionScript()
  try {
    await waitFor(() => lab.t.gw.sessions.ofIdentity(`${tenant}:${eid}`).length > 0, 30_000, 'obuspa online')
    const policyBefore = lab.t.gw.policyVersions.view().active
    const r = await lab.t.api('POST', `/v1/tenants/${tenant}/certifications`, { endpointId: eid, level: 'certified' })
    assert.equal(r.status, 202, r.text)
    const id = r.body.id as string
    // interrupt it while the device is revoked (the revocation check holds it out for a few seconds)
    await waitFor(() => lab.t.gw.store.getCredential(tenant, eid)?.revokedAt !== undefined && lab.t.gw.certify.get(tenant, id).progress.some(p => p.check === 'canary.revocation_cut'), 180_000, 'device revoked by the run')
    const finishedBefore = lab.t.gw.certify.get(tenant, id).checks.map(c => c.id)
    assert.ok(finishedBefore.includes('interop.credential_recovery') && !finishedBefore.includes('canary.revocation_cut'), finishedBefore.join(','))
    const restartAt = new Date().toISOString()
    lab.t = await lab.t.restart({ keepMqttPort: true })

    // undone at shutdown: not revoked (the credential the agent holds after the recovery check), policy unchanged
    const cred = lab.t.gw.store.getCredential(tenant, eid)!
    assert.equal(cred.revokedAt, undefined)
    assert.deepEqual(lab.t.gw.policyVersions.view().active, policyBefore)
    await waitFor(() => lab.t.gw.sessions.ofIdentity(`${tenant}:${eid}`).length > 0, 60_000, 'agent back on the restarted gateway')
    const listed = await lab.t.api('GET', `/v1/tenants/${tenant}/certifications/${id}`)
    assert.equal(listed.status, 200, listed.text)
    assert.equal(listed.body.state, 'interrupted')
    assert.deepEqual(listed.body.checks.map((c: { id: string }) => c.id), finishedBefore)
    assert.ok(lab.t.gw.events.query({ code: 'certify.run_finished', limit: 50 }).some(e => e.reason?.includes(`run ${id} interrupted`)))
    // no bundle yet: one bundle per run, filed when it ends
    assert.deepEqual(await readdir(lab.t.gw.certify.evidenceRoot).catch(() => []), [])

    // resume through the CLI (progress of the new attempt printed; exit 0 when it passes)
    const out = await lab.cli('certify', tenant, '--resume', id)
    assert.equal(out.code, 0, out.stdout + out.stderr + (await ob.log()).slice(-2000))
    assert.match(out.stdout, new RegExp(`run ${id} resumed by .* \\(attempt 2\\): ${finishedBefore.length} finished check\\(s\\) kept, re-running from canary\\.revocation_cut`))
    assert.match(out.stdout, /\[interop\.first_contact\] kept from an earlier attempt/)
    assert.match(out.stdout, /\[canary\.revocation_cut\] pass: cut/)
    assert.match(out.stdout, /PASSED: level certified/)
    const view = (await lab.t.gw.certify.settled(id))!
    assert.equal(view.state, 'passed')
    assert.equal(view.attempts, 2)

    // one bundle for the run; it verifies
    assert.deepEqual(await readdir(lab.t.gw.certify.evidenceRoot), [id])
    const dir = view.evidencePath!
    assert.deepEqual((await verifyEvidence(dir, (await lab.t.api('GET', '/v1/ca')).text)).problems, [])
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'))
    assert.equal(manifest.attempts.length, 2)
    assert.equal(manifest.attempts[0].ended, 'interrupted')
    assert.deepEqual(manifest.attempts[1].kept, finishedBefore)
    const checks = manifest.checks as Check[]
    assert.deepEqual(checks.map(c => c.id).slice(0, finishedBefore.length), finishedBefore)
    // the kept checks ran before the restart and were not run again (timings, progress); the rest ran after it
    for (const c of checks) {
      if (finishedBefore.includes(c.id)) assert.ok(c.finishedAt < restartAt, `${c.id} kept: ${c.finishedAt} < ${restartAt}`)
      else assert.ok(c.startedAt > restartAt, `${c.id} re-run after the restart: ${c.startedAt}`)
      const runs = (manifest.progress as Array<{ check?: string, message: string }>).filter(p => p.check === c.id && p.message.startsWith('running:')).length
      assert.equal(runs, c.id === 'canary.revocation_cut' ? 2 : 1, `${c.id} started ${runs} time(s)`)
    }
    for (const id2 of ['interop.first_contact', 'interop.credential_recovery', 'canary.revocation_cut', 'canary.policy_rollback', 'security.no_secrets_logged']) {
      assert.equal(checks.find(c => c.id === id2)?.result, 'pass', id2)
    }
    // the records of the first attempt are in the bundle (its first contact), as are the second's
    const records = (await readFile(join(dir, 'records.ndjson'), 'utf8')).trim().split('\n').map(l => JSON.parse(l))
    assert.ok(records.some(x => x.decoded.mqttConnect && x.at < restartAt), 'first attempt MQTTConnectRecord kept')
    assert.ok(records.some(x => x.at > restartAt), 'second attempt records')
    // the run's state file is gone once the run ended; nothing left changed
    assert.deepEqual(await readdir(join(lab.t.dataDir, 'certify', 'runs')), [])
    assert.equal(lab.t.gw.store.getCredential(tenant, eid)?.revokedAt, undefined)
    assert.deepEqual(lab.t.gw.policyVersions.view().active, policyBefore)
    // a finished run cannot be resumed
    assert.equal((await lab.t.api('POST', `/v1/tenants/${tenant}/certifications/${id}/resume`)).status, 409)
  } finally {
    delete process.env.USPGATE_CERTIFY_PROVISION_CMD
  }
})
