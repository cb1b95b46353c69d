// A certification run cancelled while it holds the device revoked puts everything back.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { provision, waitFor } from '../helpers/gateway.ts'
import { verifyEvidence } from '../../broker/certify/index.ts'
import { startLab, type Lab } from './lab.ts'

let lab: Lab
before(async () => { lab = await startLab() })
after(async () => { await lab.close() })

test('a cancelled run (while the device is revoked) puts the credential back; the agent returns; the policy is untouched', { timeout: 300_000 }, async () => {
  const tenant = 'labcancel'
  const eid = 'os::00D09E-CANCEL01'
  const { secret } = await provision(lab.t, tenant, eid, 'agent')
  await lab.agent(tenant, eid, { v: '5.0', password: secret })
  await waitFor(() => lab.t.gw.sessions.ofIdentity(`${tenant}:${eid}`).length > 0, 20_000, 'obuspa online')
  const policyBefore = lab.t.gw.policyVersions.view().active
  const r = await lab.t.api('POST', `/v1/tenants/${tenant}/certifications`, { endpointId: eid, level: 'certified' })
  assert.equal(r.status, 202)
  await waitFor(() => lab.t.gw.store.getCredential(tenant, eid)?.revokedAt !== undefined && lab.t.gw.certify.get(tenant, r.body.id).progress.some(p => p.check === 'canary.revocation_cut'), 120_000, 'device revoked by the run')
  const c = await lab.t.api('DELETE', `/v1/tenants/${tenant}/certifications/${r.body.id}`)
  assert.equal(c.status, 200, c.text)
  const view = (await lab.t.gw.certify.settled(r.body.id))!
  assert.equal(view.state, 'cancelled')
  assert.equal(lab.t.gw.store.getCredential(tenant, eid)?.revokedAt, undefined)
  assert.deepEqual(lab.t.gw.policyVersions.view().active, policyBefore)
  await waitFor(() => lab.t.gw.sessions.ofIdentity(`${tenant}:${eid}`).length > 0, 30_000, 'agent back online')
  const row = (await lab.t.api('GET', '/v1/certifications/matrix')).body.rows.find((x: { endpointId: string }) => x.endpointId === eid)
  assert.equal(row.status, 'red')
  assert.ok(row.limitations[0].startsWith('run cancelled'))
  assert.equal((await verifyEvidence(view.evidencePath!)).ok, true)
  // the matrix lives in the state store: it survives a restart
  lab.t = await lab.t.restart()
  const after = (await lab.t.api('GET', '/v1/certifications/matrix?format=csv')).text
  assert.ok(after.includes(eid) && after.includes('red'), after)
})
