// The web console end to end: a real gateway, real mqtt.js devices generating traffic, and real
// Chromium driving the pages as NOC engineers, security analysts and tenant-scoped viewers would.
// Screenshots of every page go to test-artifacts/console/ (git-ignored).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import type { Browser, Page } from 'playwright-core'
import { startGateway, provision, connect, closeClient, removeDir, waitFor, waitForEvent, adminRequest, type TestGateway } from '../helpers/gateway.ts'
import { buildTempBundle } from '../policies/helpers.ts'
import { POLICY_DIR } from '../../policies/index.ts'
import { encodeMsg, encodeRecord } from '../../broker/usp/index.ts'
import { bootNotifyMsg } from '../helpers/usp-peers.ts'
import { ensureConsoleBuilt } from '../../admin-api/console/build.ts'
import { launchChromium, login, newPage, screenshot } from './browser.ts'

const UI_TIMEOUT = 15_000
const AG = 'os::00256D-0001'
const AG2 = 'os::00256D-0002'
const HTML_NAME = '<img src=x onerror="window.__pwned=1">Acme <b>Fibre</b>'

let t: TestGateway
let browser: Browser
const devices: Record<string, { username: string, secret: string }> = {}
const tokens: Record<string, string> = {}
const clients: MqttClient[] = []

async function token (name: string, role: string, tenants?: string[]): Promise<string> {
  const r = await t.api('POST', '/v1/tokens', { name, role, ...(tenants ? { tenants } : {}) })
  assert.equal(r.status, 201, r.text)
  return r.body.token as string
}

async function device (key: string, opts: { v?: 4 | 5 } = {}): Promise<MqttClient> {
  const c = await connect(t, { v: opts.v ?? 5, username: devices[key]!.username, password: devices[key]!.secret, clientId: `${key.replace(/[^a-z0-9]/gi, '')}-${Date.now()}` })
  clients.push(c)
  return c
}

/** PUBACK reason code of a QoS 1 publish (0 accepted, 0x87 not authorized). */
function publish (c: MqttClient, topic: string): Promise<number> {
  return new Promise(resolve => c.publish(topic, 'x', { qos: 1 }, err => resolve(err ? (err as { code?: number }).code ?? -1 : 0)))
}

before(async () => {
  await ensureConsoleBuilt()
  t = await startGateway({ limits: { publishRatePerSecond: 0 } })
  assert.equal((await t.api('POST', '/v1/tenants', { id: 'acme', name: HTML_NAME })).status, 201)
  assert.equal((await t.api('PATCH', '/v1/tenants/acme', { usp: { audit: 'message' } })).status, 200)
  devices.acme = await provision(t, 'acme', AG)
  devices.acme2 = await provision(t, 'acme', AG2)
  devices.victim = await provision(t, 'victim', AG)
  devices.attacker = await provision(t, 'attacker', AG)
  tokens.admin = t.token
  tokens.viewer = await token('viewer', 'viewer')
  tokens.security = await token('security', 'security')
  tokens.noc = await token('noc', 'noc')
  tokens.victimViewer = await token('victim-soc', 'viewer', ['victim'])
  tokens.attackerViewer = await token('attacker-soc', 'viewer', ['attacker'])
  browser = await launchChromium()
})

after(async () => {
  for (const c of clients) await closeClient(c)
  await browser?.close()
  await t?.close()
  if (t) await removeDir(t.dataDir)
})

const rowOf = (page: Page, endpoint: string) => page.locator(`tr[data-endpoint="${endpoint}"]`)

test('the console is served from the admin listener with a strict CSP, frame denial and no caching of API data', async () => {
  const res = await fetch(`${t.adminUrl}/console/`)
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /text\/html/)
  const csp = res.headers.get('content-security-policy') ?? ''
  assert.match(csp, /script-src 'self'(;|$)/)
  assert.match(csp, /frame-ancestors 'none'/)
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/)
  assert.equal(res.headers.get('x-frame-options'), 'DENY')
  const html = await res.text()
  assert.doesNotMatch(html, /<script>|<script [^>]*>[^<]/, 'no inline script in the page')
  assert.doesNotMatch(html, /https?:\/\//, 'nothing from another origin (no CDN, no external fonts)')
  const redirect = await fetch(`${t.adminUrl}/console`, { redirect: 'manual' })
  assert.equal(redirect.headers.get('location'), '/console/')
  const data = await adminRequest(t.adminUrl, 'GET', '/v1/endpoints')
  assert.equal(data.headers.get('cache-control'), 'no-store')
  const doc = await adminRequest(t.adminUrl, 'GET', '/openapi.json', { token: null })
  assert.ok(doc.body.paths['/v1/endpoints'] && doc.body.paths['/v1/me'] && doc.body.paths['/v1/security-stats'], 'the new API calls are documented')
  assert.ok(!Object.keys(doc.body.paths).some((p: string) => p.startsWith('/console')), 'static files are not API operations')
})

test('login keeps the token out of the URL; logout clears it', async () => {
  const page = await newPage(browser)
  await page.goto(`${t.adminUrl}/console/`)
  await page.getByLabel('Admin token').fill('usa_not-a-real-token-000000000000')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('alert').filter({ hasText: 'not valid' }).waitFor({ timeout: UI_TIMEOUT })
  await screenshot(page, '00-login')
  // keyboard only: the token field, Enter, then Tab through the skip link to the navigation
  await page.getByLabel('Admin token').fill('')
  await page.getByLabel('Admin token').focus()
  await page.keyboard.type(tokens.noc!)
  await page.keyboard.press('Enter')
  await page.getByTestId('whoami').waitFor({ timeout: UI_TIMEOUT })
  assert.match(await page.getByTestId('whoami').innerText(), /noc · noc · all tenants/)
  await page.keyboard.press('Tab')
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content')
  await page.keyboard.press('Tab')
  await page.keyboard.press('Tab')
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Devices')
  await page.keyboard.press('Enter')
  await page.getByLabel('Search devices').waitFor({ timeout: UI_TIMEOUT })
  assert.ok(!page.url().includes(tokens.noc!), 'the token is never in the URL')
  assert.equal(await page.evaluate(() => sessionStorage.getItem('uspgate.console.token')), tokens.noc)
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.getByLabel('Admin token').waitFor({ timeout: UI_TIMEOUT })
  assert.equal(await page.evaluate(() => sessionStorage.getItem('uspgate.console.token')), null)
  await page.reload()
  await page.getByLabel('Admin token').waitFor({ timeout: UI_TIMEOUT })
  assert.equal(await page.getByTestId('whoami').count(), 0, 'still signed out after a reload')
  await page.context().close()
})

test('a device that connects shows online, and offline once it disconnects', async () => {
  const page = await newPage(browser)
  await login(page, t.adminUrl, tokens.viewer!)
  await page.getByRole('link', { name: 'Devices' }).click()
  const c = await device('acme')
  await page.getByLabel('Search devices').fill('acme')
  await rowOf(page, AG).filter({ hasText: 'online' }).filter({ hasText: HTML_NAME.length > 0 ? 'acme' : '' }).first().waitFor({ timeout: UI_TIMEOUT })
  await screenshot(page, '02-devices')
  await closeClient(c)
  await page.locator(`tr[data-endpoint="${AG}"]:has-text("acme") [data-testid=presence]`).filter({ hasText: 'offline' }).waitFor({ timeout: UI_TIMEOUT })
  await page.context().close()
})

test('a cross-tenant attempt is shown as blocked, naming both tenants, to the attacked and the attacking tenant\'s tokens only', async () => {
  const attacker = await device('attacker')
  const topic = 'victim/usp/agent/<script>window.__pwned=2</script>'
  assert.equal(await publish(attacker, topic), 0x87)
  const ev = await waitForEvent(t, { code: 'acl.cross_tenant', tenant: 'attacker' })
  assert.equal(ev.targetTenant, 'victim')
  for (const [who, tok] of [['victim', tokens.victimViewer!], ['attacker', tokens.attackerViewer!]] as const) {
    const page = await newPage(browser)
    const calls: Array<{ url: string, auth: string | undefined }> = []
    page.on('request', r => { if (r.url().includes('/v1/security-events')) calls.push({ url: r.url(), auth: r.headers().authorization }) })
    await login(page, t.adminUrl, tok)
    await page.getByRole('link', { name: 'Security events' }).click()
    const row = page.locator('tr[data-code="acl.cross_tenant"]')
    await row.getByText('blocked: attacker → victim').first().waitFor({ timeout: UI_TIMEOUT })
    assert.ok((await row.first().innerText()).includes(topic), 'the topic is shown as text')
    assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined)
    // scoped: no other tenant's events, no tenant-wide pages
    const rows = await page.locator('table[aria-label="Security events"] tbody tr').evaluateAll(trs =>
      trs.map(tr => ({ code: tr.getAttribute('data-code'), tenant: (tr.children[3] as HTMLElement).innerText })))
    assert.ok(rows.length >= 2)
    for (const r of rows) {
      assert.ok(r.tenant === who || r.code === 'acl.cross_tenant', `${who} sees only its own events and attempts against it: ${JSON.stringify(r)}`)
    }
    assert.ok(!(await page.locator('main').innerText()).includes('acme'), `${who}: nothing of tenant acme`)
    assert.equal(await page.getByRole('link', { name: 'Policy' }).count(), 0)
    const options = await page.getByLabel('Tenant').locator('option').allInnerTexts()
    assert.deepEqual(options.filter(o => o !== 'All visible'), [who])
    if (who === 'attacker') {
      // live tail (Server-Sent Events read with fetch): a new attempt shows up without a reload or a poll
      await page.getByTestId('tail-state').filter({ hasText: 'live' }).waitFor({ timeout: UI_TIMEOUT })
      const before = calls.length
      assert.equal(await publish(attacker, 'victim/bulkdata/live-tail'), 0x87)
      await page.locator('tr[data-code="acl.cross_tenant"]').filter({ hasText: 'victim/bulkdata/live-tail' }).waitFor({ timeout: UI_TIMEOUT })
      assert.deepEqual(calls.slice(before), [], 'no new request: the event came on the open stream')
      const stream = calls.filter(c => new URL(c.url).pathname === '/v1/security-events/stream')
      assert.ok(stream.length >= 1, 'the console opened the event stream')
      for (const c of calls) {
        assert.equal(c.auth, `Bearer ${tok}`, 'the token is sent in the Authorization header')
        assert.ok(!c.url.includes(tok), 'the token is never in a URL')
      }
    }
    if (who === 'victim') {
      await screenshot(page, '03-events-victim')
      // the current filter, exported: only the cross-tenant attempt
      await page.getByLabel(/^Codes/).fill('acl.cross_tenant, usp.reply_to_cross_tenant')
      await page.getByRole('button', { name: 'Apply filters' }).click()
      await waitFor(async () => (await page.locator('table[aria-label="Security events"] tbody tr').count()) === 1, UI_TIMEOUT, 'the filtered list')
      const [ndjson] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export NDJSON' }).click()])
      const lines = readFileSync((await ndjson.path())!, 'utf8').trim().split('\n').map(l => JSON.parse(l))
      assert.deepEqual(lines.map(l => [l.code, l.tenant, l.targetTenant, l.topic]), [['acl.cross_tenant', 'attacker', 'victim', topic]])
      const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()])
      const rowsCsv = readFileSync((await csv.path())!, 'utf8').trim().split('\r\n')
      assert.equal(rowsCsv.length, 2)
      assert.match(rowsCsv[0]!, /^time,severity,code,tenant,targetTenant,/)
      assert.match(rowsCsv[1]!, /,critical,acl\.cross_tenant,attacker,victim,/)
    }
    await page.getByRole('link', { name: 'Overview' }).click()
    await page.locator(`tr[data-tenant="${who}"] [data-testid=${who === 'victim' ? 'cross-against' : 'cross-by'}]`).filter({ hasText: /^[1-9]/ }).waitFor({ timeout: UI_TIMEOUT })
    assert.equal(await page.locator('tr[data-tenant="acme"]').count(), 0, `${who}: the overview shows no other tenant`)
    await page.context().close()
  }
})

test('HTML in a tenant name is text, and the CSP blocks an injected inline script', async () => {
  const page = await newPage(browser)
  await login(page, t.adminUrl, tokens.admin!)
  await page.locator('tr[data-tenant="acme"]').waitFor({ timeout: UI_TIMEOUT })
  assert.ok((await page.locator('tr[data-tenant="acme"] th').innerText()).includes(HTML_NAME))
  assert.equal(await page.locator('tr[data-tenant="acme"] img').count(), 0)
  const outcome = await page.evaluate(async () => {
    const violated = new Promise<string>(resolve => document.addEventListener('securitypolicyviolation', e => resolve(e.violatedDirective), { once: true }))
    const s = document.createElement('script')
    s.textContent = 'window.__pwned = 3'
    document.body.append(s)
    const directive = await Promise.race([violated, new Promise<string>(resolve => setTimeout(() => resolve('none'), 3000))])
    return { directive, pwned: (window as unknown as { __pwned?: number }).__pwned }
  })
  assert.equal(outcome.pwned, undefined, 'the inline script did not run')
  assert.match(outcome.directive, /^script-src/)
  // connects ok per tenant: what the stats API counts, and a new connect shows up without a reload
  const okCell = page.locator('tr[data-tenant="acme"] [data-testid=connects-ok]')
  const apiOk = async (): Promise<number> => (await adminRequest(t.adminUrl, 'GET', '/v1/security-stats?window=24h&tenant=acme', { token: tokens.admin! })).body.tenants[0].connectsOk
  const before = await apiOk()
  assert.ok(before >= 1, 'acme devices connected in the earlier tests')
  await okCell.filter({ hasText: new RegExp(`^${before}$`) }).waitFor({ timeout: UI_TIMEOUT })
  const c = await device('acme')
  await okCell.filter({ hasText: new RegExp(`^${before + 1}$`) }).waitFor({ timeout: UI_TIMEOUT })
  await closeClient(c)
  await page.getByLabel('Window').selectOption('7d')
  await okCell.filter({ hasText: /^[1-9]/ }).waitFor({ timeout: UI_TIMEOUT })
  await page.getByLabel('Window').selectOption('24h')
  await screenshot(page, '01-overview')
  await page.getByRole('link', { name: 'Cluster' }).click()
  await page.getByRole('table', { name: 'Nodes' }).waitFor({ timeout: UI_TIMEOUT })
  await screenshot(page, '06-cluster')
  await page.context().close()
})

test('a viewer sees no revoke button, and the call it could forge is refused with 403', async () => {
  const c = await device('acme')
  const page = await newPage(browser)
  await login(page, t.adminUrl, tokens.viewer!)
  await page.goto(`${t.adminUrl}/console/#/devices/acme/${encodeURIComponent(AG)}`)
  await page.getByTestId('credential-state').filter({ hasText: 'active' }).waitFor({ timeout: UI_TIMEOUT })
  await page.getByTestId('presence').filter({ hasText: 'online' }).waitFor({ timeout: UI_TIMEOUT })
  assert.equal(await page.getByRole('button', { name: /Revoke/ }).count(), 0)
  const status = await page.evaluate(async (path) => {
    const token = sessionStorage.getItem('uspgate.console.token')
    const res = await fetch(path, { method: 'DELETE', headers: { authorization: `Bearer ${token ?? ''}` } })
    return res.status
  }, `/v1/tenants/acme/credentials/${encodeURIComponent(AG)}`)
  assert.equal(status, 403)
  assert.equal((await t.api('GET', '/v1/tenants/acme/credentials')).body.credentials.find((x: { principal: string }) => x.principal === AG).revoked, false)
  await page.getByRole('link', { name: 'Policy' }).click()
  await page.getByTestId('stable').waitFor({ timeout: UI_TIMEOUT })
  assert.equal(await page.getByRole('button', { name: /Roll back|Promote|Canary|Shadow/ }).count(), 0, 'no policy buttons for a viewer')
  await closeClient(c)
  await page.context().close()
})

test('a security analyst revokes a device from its detail page and its live session is cut within 1 s', async () => {
  // connect, disconnect (DISCONNECT packet), reconnect: the presence timeline shows each change
  const earlier = await device('acme2')
  await new Promise<void>(resolve => { earlier.end(false, {}, () => resolve()) })
  const c = await device('acme2')
  // USP traffic the detail page shows: the MQTTConnect record (agent info) and a Boot! Notify
  const controllerInbox = 'acme/usp/controller/self::ctrl-1'
  for (const record of [
    encodeRecord({ toId: 'self::ctrl-1', fromId: AG2, mqttConnect: { version: 'V5', subscribedTopic: `acme/usp/agent/${AG2}` } }),
    encodeRecord({ toId: 'self::ctrl-1', fromId: AG2, noSessionContext: { payload: encodeMsg(bootNotifyMsg('boot-1')) } })
  ]) {
    assert.equal(await new Promise<number>(resolve => c.publish(controllerInbox, record, { qos: 1 }, err => resolve(err ? -1 : 0))), 0)
  }
  const closed = new Promise<number>(resolve => c.once('close', () => resolve(Date.now())))
  const page = await newPage(browser)
  await login(page, t.adminUrl, tokens.security!)
  await page.getByRole('link', { name: 'Devices' }).click()
  await page.getByLabel('Search devices').fill(AG2)
  await rowOf(page, AG2).getByRole('link', { name: AG2 }).click()
  await page.getByTestId('presence').filter({ hasText: 'online' }).waitFor({ timeout: UI_TIMEOUT })
  const timeline = page.getByTestId('presence-timeline').locator('tbody tr')
  const states = async (): Promise<string[]> => await timeline.evaluateAll(trs => trs.map(tr => `${tr.getAttribute('data-state')}/${tr.getAttribute('data-reason')}`))
  await waitFor(async () => (await states()).length === 3, UI_TIMEOUT, 'three transitions on the timeline')
  assert.deepEqual(await states(), ['online/', 'offline/disconnect', 'online/'], 'newest first')
  await page.getByRole('table', { name: 'USP records' }).getByText('NOTIFY').waitFor({ timeout: UI_TIMEOUT })
  assert.match(await page.getByTestId('data-model').innerText(), /Not recorded/)
  await page.getByText(`acme/usp/agent/${AG2}`).first().waitFor({ timeout: UI_TIMEOUT })
  await page.getByRole('button', { name: 'Revoke credential' }).click()
  const dialog = page.getByRole('dialog')
  await dialog.waitFor({ timeout: UI_TIMEOUT })
  const confirmedAt = Date.now()
  await dialog.getByRole('button', { name: 'Revoke' }).click()
  const cutAt = await closed
  assert.ok(cutAt - confirmedAt < 1000, `session cut ${cutAt - confirmedAt} ms after the confirm`)
  await page.getByTestId('credential-state').filter({ hasText: 'revoked' }).waitFor({ timeout: UI_TIMEOUT })
  await page.getByTestId('presence').filter({ hasText: 'offline' }).waitFor({ timeout: UI_TIMEOUT })
  await waitFor(async () => (await states()).length === 4, UI_TIMEOUT, 'the cut on the timeline')
  assert.deepEqual(await states(), ['offline/revoked', 'online/', 'offline/disconnect', 'online/'])
  assert.match(await timeline.first().innerText(), /credential or certificate revoked/)
  await page.getByTestId('data-model').waitFor()
  await screenshot(page, '04-device-detail')
  await page.context().close()
})

test('a NOC engineer rolls a canary back from the policy page and the next publish is decided by the restored revision', async () => {
  const authz = readFileSync(join(POLICY_DIR, 'authz.rego'), 'utf8')
  const from = '\tat_or_below(input.topic, concat("/", [tenant, "bulkdata", principal]))\n'
  assert.ok(authz.includes(from), 'fixture: bulkdata rule in authz.rego')
  const canary = buildTempBundle({ files: { 'authz.rego': authz.replace(from, `${from}\tnot contains(input.topic, "/blocked")\n`) } })
  const up = await fetch(`${t.adminUrl}/v1/policies?notes=${encodeURIComponent('deny .../blocked')}`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: canary.bytes as unknown as BodyInit })
  assert.equal(up.status, 201, await up.text())
  const stable = t.gw.policy.revision
  assert.equal((await t.api('POST', `/v1/policies/${canary.revision}/canary`, { tenants: ['acme'] })).status, 200)
  const c = await device('acme')
  const topic = `acme/bulkdata/${AG}/blocked`
  await waitFor(async () => await publish(c, topic) === 0x87, 5000, 'the canary to deny')

  const page = await newPage(browser)
  await login(page, t.adminUrl, tokens.noc!)
  await page.getByRole('link', { name: 'Policy' }).click()
  await page.getByTestId('canary').filter({ hasText: canary.revision }).waitFor({ timeout: UI_TIMEOUT })
  await screenshot(page, '05-policy-canary')
  await page.getByRole('button', { name: 'Roll back' }).click()
  await page.getByRole('dialog').getByRole('button', { name: 'Roll back' }).click()
  await page.getByTestId('canary').filter({ hasText: 'none' }).waitFor({ timeout: UI_TIMEOUT })
  assert.equal(await publish(c, topic), 0, 'the next publish is decided by the restored stable revision')
  assert.equal(t.gw.policy.revisionFor('acme'), stable)
  await page.locator('tr[data-code="policy.rolled_back"]').first().waitFor({ timeout: UI_TIMEOUT })
  await screenshot(page, '05-policy')
  await page.context().close()
})
