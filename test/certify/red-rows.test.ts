// Certification runs against wrongly configured real agents (obuspa 11.0.4): bare username, wrong
// password, a topic outside the tenant each give a red matrix row naming the failing checks.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { provision, waitFor } from '../helpers/gateway.ts'
import { UspPeer } from '../helpers/usp-peers.ts'
import { DEFAULT_CONTROLLER_ID, } from '../../broker/certify/index.ts'
import { startLab, type Lab } from './lab.ts'
import { ensureConsoleBuilt } from '../../admin-api/console/build.ts'
import { launchChromium, login, newPage, screenshot } from '../e2e/browser.ts'

let lab: Lab
before(async () => { lab = await startLab() })
after(async () => { await lab.close() })

test('wrongly configured agents get red rows naming the failing checks; nothing outside them changes', { timeout: 300_000 }, async () => {
  const bySecret = await provision(lab.t, 'labbyst', 'os::00D09E-BYSTANDER', 'agent')
  const bystander = await UspPeer.connect(lab.t, { tenant: 'labbyst', endpointId: 'os::00D09E-BYSTANDER', role: 'agent', secret: bySecret.secret, v: 4 })
  await bystander.subscribeInbox()
  const policyBefore = lab.t.gw.policyVersions.view().active
  const cases = [
    { tenant: 'labbare', eid: 'os::00D09E-BARE0001', v: '3.1.1' as const, bad: 'bare', failing: ['interop.first_contact', 'security.tenant_username'] },
    { tenant: 'labpass', eid: 'os::00D09E-PASS0001', v: '5.0' as const, bad: 'password', failing: ['interop.first_contact', 'security.tenant_username'] },
    { tenant: 'labtopic', eid: 'os::00D09E-TOPIC0001', v: '5.0' as const, bad: 'topic', failing: ['interop.first_contact', 'security.topics_in_tenant'] }
  ]
  const runs = await Promise.all(cases.map(async c => {
    const { secret } = await provision(lab.t, c.tenant, c.eid, 'agent')
    await lab.agent(c.tenant, c.eid, {
      v: c.v,
      password: c.bad === 'password' ? 'usg_not-the-secret-0000000000000000000000000' : secret,
      ...(c.bad === 'bare' ? { username: c.eid } : {}),
      ...(c.bad === 'topic' ? { controllerTopic: `elsewhere/usp/controller/${DEFAULT_CONTROLLER_ID}` } : {})
    })
    if (c.bad === 'topic') await waitFor(() => lab.t.gw.sessions.ofIdentity(`${c.tenant}:${c.eid}`).length > 0, 20_000, 'agent online')
    const r = await lab.t.api('POST', `/v1/tenants/${c.tenant}/certifications`, { endpointId: c.eid, onlineTimeoutSeconds: 10 })
    assert.equal(r.status, 202, r.text)
    return { c, view: (await lab.t.gw.certify.settled(r.body.id))! }
  }))
  const rows = (await lab.t.api('GET', '/v1/certifications/matrix')).body.rows as Array<{ endpointId: string, status: string, limitations: string[], level: string }>
  for (const { c, view } of runs) {
    assert.equal(view.state, 'failed', `${c.bad}: ${JSON.stringify(view.checks, null, 1)}`)
    const row = rows.find(r => r.endpointId === c.eid)!
    assert.equal(row.status, 'red', c.bad)
    assert.equal(row.level, 'none')
    for (const id of c.failing) assert.ok(row.limitations.some(l => l.startsWith(`${id}: fail`)), `${c.bad}: ${id} not named in ${row.limitations.join('\n')}`)
    // the device is not left revoked
    assert.equal(lab.t.gw.store.getCredential(c.tenant, c.eid)?.revokedAt, undefined)
  }
  const bare = runs.find(r => r.c.bad === 'bare')!.view.checks.find(x => x.id === 'security.tenant_username')!
  assert.match(bare.summary, /auth\.bare_username/)
  const pass = runs.find(r => r.c.bad === 'password')!.view.checks.find(x => x.id === 'interop.first_contact')!
  assert.match(pass.summary, /auth\.bad_credentials/)
  // the gateway's own wrong-secret probe is still refused and logged when the agent's failures put the username in back-off
  assert.equal(runs.find(r => r.c.bad === 'password')!.view.checks.find(x => x.id === 'security.bad_credentials_logged')!.result, 'pass')
  const topic = runs.find(r => r.c.bad === 'topic')!.view.checks.find(x => x.id === 'security.topics_in_tenant')!
  assert.match(topic.summary, /acl\.cross_tenant.*elsewhere\/usp\/controller/)
  assert.deepEqual(lab.t.gw.policyVersions.view().active, policyBefore)
  assert.equal(bystander.closed, false)
  await bystander.close()

  // the console's certification page shows the red rows, names the failing checks, and verifies the evidence
  await ensureConsoleBuilt()
  const browser = await launchChromium()
  try {
    const page = await newPage(browser)
    await login(page, lab.t.adminUrl, lab.t.token)
    await page.getByRole('link', { name: 'Certification' }).click()
    const row = page.locator('tr[data-endpoint="os::00D09E-TOPIC0001"]')
    await row.waitFor({ timeout: 15_000 })
    assert.equal(await row.getAttribute('data-status'), 'red')
    assert.match(await row.innerText(), /security\.topics_in_tenant: fail/)
    await row.getByRole('button', { name: 'Evidence' }).click()
    await page.getByTestId('evidence-verdict').waitFor({ timeout: 15_000 })
    assert.match(await page.getByTestId('evidence-verdict').innerText(), /^Verified/)
    assert.match(await page.locator('tr[data-check="interop.first_contact"]').innerText(), /fail/)
    await screenshot(page, 'certification')
  } finally {
    await browser.close()
  }
})
