// Revocation and CA trust against a running gateway over real mutual TLS:
// serial revocation cuts live sessions within 1 s, a revoked tenant CA cuts its
// tenant, vendor CAs are trusted for one tenant only, trust reloads keep healthy
// connections, and what the API publishes (chain, CRL) satisfies openssl.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { startGateway, provision, connect, waitFor, waitForEvent, closeClient, removeDir, sleep, type TestGateway } from '../helpers/gateway.ts'
import { issueCert, ensureTenant, rootCaPem, connectTls, refusedTls, publishAsync, subscribeAsync, closedAt } from '../helpers/mtls.ts'
import { tempDir, removeTempDirs, openssl, opensslOk, opensslCa, opensslIssue, writeTemp } from '../certs/helpers.ts'

let t: TestGateway
let root: string

before(async () => {
  t = await startGateway({ mtls: true })
  for (const tenant of ['acme', 'gamma', 'vendor']) await ensureTenant(t, tenant)
  root = await rootCaPem(t)
})
after(async () => {
  await t.close()
  await removeDir(t.dataDir)
  removeTempDirs()
})

const splitPem = (pem: string): string[] => pem.split(/(?<=-----END CERTIFICATE-----\n?)/).map(s => s.trim() + '\n').filter(s => s.includes('BEGIN'))

for (const v of [5, 4] as const) {
  test(`revoking a certificate through the API disconnects its live MQTT ${v === 5 ? '5' : '3.1.1'} mTLS session within 1 s; it cannot reconnect`, async (ctx) => {
    const victim = await issueCert(t, 'acme', `os::00256D-0R${v}0`)
    const bystander = await issueCert(t, 'acme', `os::00256D-0B${v}0`)
    const c = await connectTls(t, { root, identity: victim, v, clientId: `victim-${v}` })
    const other = await connectTls(t, { root, identity: bystander, v, clientId: `bystander-${v}` })
    const closed = closedAt(c)
    const reason = v === 5 ? new Promise<number | undefined>(resolve => c.once('disconnect', p => resolve(p.reasonCode))) : undefined
    const start = Date.now()
    const r = await t.api('DELETE', `/v1/tenants/acme/certificates/${victim.serial}?reason=keyCompromise`)
    assert.equal(r.status, 200, JSON.stringify(r.body))
    assert.deepEqual([r.body.serial, r.body.reason, r.body.issuedByGateway, r.body.disconnected], [victim.serial, 'keyCompromise', true, 1])
    const elapsed = (await closed) - start
    ctx.diagnostic(`MQTT ${v === 5 ? '5' : '3.1.1'} session closed ${elapsed} ms after the revocation request`)
    assert.ok(elapsed < 1000, `disconnected after ${elapsed} ms`)
    if (reason !== undefined) assert.equal(await reason, 0x87)
    await waitForEvent(t, { code: 'cert.revoked', tenant: 'acme', actor: 'bootstrap' })
    // the certificate is refused from now on, the tenant's other devices are untouched
    assert.notEqual(typeof await refusedTls(t, { root, identity: victim, v }), 'number')
    const ev = await waitForEvent(t, { code: 'auth.cert_revoked', tenant: 'acme', principal: victim.principal })
    assert.match(ev.reason ?? '', new RegExp(victim.serial))
    assert.equal(other.connected, true)
    const listed = (await t.api('GET', '/v1/tenants/acme/certificates')).body.certificates as Array<{ serial: string, revoked: boolean }>
    assert.equal(listed.find(x => x.serial === victim.serial)?.revoked, true)
    assert.equal(listed.find(x => x.serial === bystander.serial)?.revoked, false)
    // revoking again is idempotent and cuts nothing
    assert.equal((await t.api('DELETE', `/v1/tenants/acme/certificates/${victim.serial}`)).body.disconnected, 0)
    await closeClient(c); await closeClient(other)
  })
}

test('openssl verifies the chain from the API and parses the CRL from GET /v1/tenants/:tenant/crl, which lists the revoked serial', async () => {
  const good = await issueCert(t, 'acme', 'os::00256D-0C01')
  const bad = await issueCert(t, 'acme', 'os::00256D-0C02')
  assert.equal((await t.api('DELETE', `/v1/tenants/acme/certificates/${bad.serial}?reason=superseded`)).status, 200)
  const dir = tempDir()
  const chain = await t.api('GET', '/v1/tenants/acme/ca')
  assert.equal(chain.status, 200)
  assert.match(chain.headers.get('content-type') ?? '', /^application\/x-pem-file/)
  const [tenantCa, chainRoot] = splitPem(chain.body as string)
  assert.equal(chainRoot, splitPem(root)[0])
  const rootFile = writeTemp(dir, 'root.pem', root)
  const caFile = writeTemp(dir, 'acme-ca.pem', tenantCa!)
  const leaf = writeTemp(dir, 'good.pem', good.certPem)
  const verified = openssl(['verify', '-CAfile', rootFile, '-untrusted', caFile, '-purpose', 'sslclient', leaf])
  assert.equal(verified.status, 0, verified.stderr)
  assert.match(verified.stdout, /OK/)
  // the chain returned with the certificate is the same one
  assert.equal(good.chainPem, chain.body)

  const crl = await t.api('GET', '/v1/tenants/acme/crl')
  assert.equal(crl.status, 200)
  assert.match(crl.headers.get('content-type') ?? '', /^application\/x-pem-file/)
  const crlFile = writeTemp(dir, 'acme.crl.pem', crl.body as string)
  const text = opensslOk(['crl', '-noout', '-text', '-in', crlFile]).toLowerCase()
  assert.ok(text.includes(`serial number: ${bad.serial}`), text)
  assert.ok(!text.includes(`serial number: ${good.serial}`))
  assert.match(text, /superseded/)
  // and openssl enforces it
  const refused = openssl(['verify', '-crl_check', '-CAfile', rootFile, '-untrusted', caFile, '-CRLfile', crlFile, writeTemp(dir, 'bad.pem', bad.certPem)])
  assert.notEqual(refused.status, 0)
  assert.match(refused.stdout + refused.stderr, /certificate revoked/)
  // DER on request (application/pkix-crl)
  const der = await fetch(`${t.adminUrl}/v1/tenants/acme/crl?format=der`, { headers: { authorization: `Bearer ${t.token}` } })
  assert.equal(der.headers.get('content-type'), 'application/pkix-crl')
  const derFile = join(dir, 'acme.crl.der')
  await writeFile(derFile, Buffer.from(await der.arrayBuffer()))
  assert.ok(opensslOk(['crl', '-inform', 'DER', '-noout', '-text', '-in', derFile]).toLowerCase().includes(`serial number: ${bad.serial}`))
})

test('revoking a tenant\'s issuing CA cuts every live certificate session of that tenant, and only those', async (ctx) => {
  const g1 = await issueCert(t, 'gamma', 'os::00256D-0G01')
  const g2 = await issueCert(t, 'gamma', 'self::gamma-ctl', 'controller')
  const acmeDev = await issueCert(t, 'acme', 'os::00256D-0A01')
  const pw = await provision(t, 'gamma', 'os::00256D-0GPW')
  const s1 = await connectTls(t, { root, identity: g1, v: 5, clientId: 'g1' })
  const s2 = await connectTls(t, { root, identity: g2, v: 4, clientId: 'g2' })
  const password = await connectTls(t, { root, v: 5, username: pw.username, password: pw.secret, clientId: 'gpw' })
  const plain = await connect(t, { v: 5, username: pw.username, password: pw.secret, clientId: 'gpw-plain' })
  const acme = await connectTls(t, { root, identity: acmeDev, v: 5, clientId: 'a1' })
  const closed = Promise.all([closedAt(s1), closedAt(s2)])
  const start = Date.now()
  const r = await t.api('POST', '/v1/tenants/gamma/ca/revoke', { reason: 'cACompromise' })
  assert.equal(r.status, 200, JSON.stringify(r.body))
  assert.equal(r.body.disconnected, 2)
  const elapsed = Math.max(...await closed) - start
  ctx.diagnostic(`both sessions closed within ${elapsed} ms of the CA revocation request`)
  assert.ok(elapsed < 1000, `disconnected after ${elapsed} ms`)
  const ev = await waitForEvent(t, { code: 'ca.revoked', tenant: 'gamma' })
  assert.equal(ev.severity, 'critical')
  await sleep(100)
  assert.equal(password.connected, true, 'a password session of the tenant is not a certificate session')
  assert.equal(plain.connected, true)
  assert.equal(acme.connected, true, 'another tenant is untouched')
  // its certificates are refused from now on
  assert.notEqual(typeof await refusedTls(t, { root, identity: g1, v: 5 }), 'number')
  await waitForEvent(t, { code: 'auth.cert_revoked', tenant: 'gamma', principal: 'os::00256D-0G01' })
  // the revoked CA left the trust bundle; the next certificate comes from a fresh CA and works
  const fresh = await issueCert(t, 'gamma', 'os::00256D-0G01')
  assert.notEqual(splitPem(fresh.chainPem)[0], splitPem(g1.chainPem)[0])
  const back = await connectTls(t, { root, identity: fresh, v: 5, clientId: 'g1-new' })
  await closeClient(back)
  for (const c of [s1, s2, password, plain, acme]) await closeClient(c)
})

test('an imported vendor CA lets its devices log in to that tenant only; healthy connections survive the trust reloads', async () => {
  const dir = tempDir()
  const vendorCa = opensslCa(dir, 'vendor-ca', '/O=Router Vendor/CN=Router Vendor Device CA')
  const device = opensslIssue(dir, 'vendor-dev', {
    caCertFile: vendorCa.certFile, caKeyFile: vendorCa.keyFile, subject: '/O=Router Vendor/CN=oui:00D09E:V1', sanUri: 'urn:bbf:usp:id:oui:00D09E:V1'
  })
  const identity = { cert: await readFile(device.certFile, 'utf8'), key: await readFile(device.keyFile, 'utf8') }
  // a healthy certificate connection that must survive every reload below
  const acmeDev = await issueCert(t, 'acme', 'os::00256D-0H01')
  const acmeCtl = await issueCert(t, 'acme', 'self::acme-ctl', 'controller')
  const healthy = await connectTls(t, { root, identity: acmeDev, v: 5, clientId: 'healthy' })
  const ctl: MqttClient = await connectTls(t, { root, identity: acmeCtl, v: 5, clientId: 'healthy-ctl' })
  const got: string[] = []
  ctl.on('message', (_topic, payload) => got.push(payload.toString()))
  assert.equal(await subscribeAsync(ctl, 'acme/bulkdata/#'), 1)
  let healthyClosed = false
  healthy.on('close', () => { healthyClosed = true })

  // not trusted yet
  assert.notEqual(typeof await refusedTls(t, { root, identity, v: 5 }), 'number')
  await waitForEvent(t, { code: 'auth.cert_untrusted', principal: undefined })

  const imported = await t.api('POST', '/v1/tenants/vendor/ca/import', { pem: await readFile(vendorCa.certFile, 'utf8') })
  assert.equal(imported.status, 201, JSON.stringify(imported.body))
  assert.match(imported.body.fingerprint, /^[0-9a-f]{64}$/)
  await waitForEvent(t, { code: 'ca.imported', tenant: 'vendor' })
  // the same CA cannot also vouch for another tenant
  const twice = await t.api('POST', '/v1/tenants/acme/ca/import', { pem: await readFile(vendorCa.certFile, 'utf8') })
  assert.equal(twice.status, 409)
  assert.equal(twice.headers.get('content-type'), 'application/problem+json; charset=utf-8')

  const v = await connectTls(t, { root, identity, v: 5, clientId: 'vendor-dev' })
  const s = t.gw.sessions.list('vendor').find(x => x.clientId === 'vendor-dev')
  assert.deepEqual([s?.tenant, s?.principal, s?.role, s?.auth], ['vendor', 'oui:00D09E:V1', 'agent', 'certificate'])
  assert.equal((await publishAsync(v, 'acme/bulkdata/oui:00D09E:V1/x', 'x'))?.code, 0x87)
  assert.equal(await refusedTls(t, { root, identity, v: 5, username: 'acme:oui:00D09E:V1' }), 0x86)
  await waitForEvent(t, { code: 'auth.cert_mismatch', tenant: 'vendor', principal: 'oui:00D09E:V1' })

  // another trust change: a new tenant CA (GET creates it)
  await ensureTenant(t, 'delta')
  assert.equal((await t.api('GET', '/v1/tenants/delta/ca')).status, 200)

  // the healthy connection is still there and still works after the reloads
  assert.equal(healthyClosed, false)
  assert.equal(await publishAsync(healthy, 'acme/bulkdata/os::00256D-0H01/after-reload', 'still-here'), undefined)
  await waitFor(() => got.includes('still-here'), 3000, 'message after reload')

  // un-trusting the vendor CA cuts its device
  const vClosed = closedAt(v)
  const removed = await t.api('DELETE', `/v1/tenants/vendor/ca/imported/${imported.body.fingerprint as string}`)
  assert.equal(removed.status, 200, JSON.stringify(removed.body))
  assert.equal(removed.body.disconnected, 1)
  await vClosed
  await waitForEvent(t, { code: 'ca.removed', tenant: 'vendor' })
  assert.equal(healthyClosed, false)
  await closeClient(healthy); await closeClient(ctl); await closeClient(v)
})

test('a CA close to expiry raises cert.expiring (warning) as soon as it is trusted', async () => {
  const dir = tempDir()
  const shortLived = opensslCa(dir, 'short-ca', '/O=Short Vendor/CN=Short Vendor CA', 20)
  const r = await t.api('POST', '/v1/tenants/vendor/ca/import', { pem: await readFile(shortLived.certFile, 'utf8') })
  assert.equal(r.status, 201)
  const ev = await waitForEvent(t, { code: 'cert.expiring', tenant: 'vendor' })
  assert.equal(ev.severity, 'warning')
  assert.match(ev.reason ?? '', /tenant:vendor:imported:[0-9a-f]{16} certificate expires at .* \((19|20) day\(s\) left\)/)
})

test('certificate routes: tenant must exist (404), bad input is a 400 problem, keys are never cached', async () => {
  assert.equal((await t.api('POST', '/v1/tenants/nope/certificates', { principal: 'os::00256D-0001', role: 'agent' })).status, 404)
  assert.equal((await t.api('GET', '/v1/tenants/nope/crl')).status, 404)
  assert.equal((await t.api('GET', '/v1/tenants/nope/ca')).status, 404)
  const bad = await t.api('POST', '/v1/tenants/acme/certificates', { principal: 'not an endpoint id', role: 'agent' })
  assert.equal(bad.status, 400)
  assert.equal(bad.body.title, 'invalid principal')
  assert.equal((await t.api('POST', '/v1/tenants/acme/certificates', { principal: 'os::00256D-0001', role: 'agent', extra: 1 })).status, 400)
  assert.equal((await t.api('POST', '/v1/tenants/acme/certificates', { principal: 'os::00256D-0001', role: 'admin' })).status, 400)
  assert.equal((await t.api('DELETE', '/v1/tenants/acme/certificates/abcdef0123')).status, 404)
  assert.equal((await t.api('DELETE', '/v1/tenants/acme/certificates/not-hex')).status, 400)
  assert.equal((await t.api('POST', '/v1/tenants/acme/ca/import', { pem: 'garbage' })).status, 400)
  const issued = await t.api('POST', '/v1/tenants/acme/certificates', { principal: 'os::00256D-0K01', role: 'agent', validDays: 30 })
  assert.equal(issued.status, 201)
  assert.equal(issued.headers.get('cache-control'), 'no-store')
  assert.ok(new Date(issued.body.notAfter).getTime() < Date.now() + 31 * 86_400_000)
  // the key is not in any listing, event, log line or file the gateway keeps
  const keyLine = (issued.body.keyPem as string).split('\n')[1]!
  assert.ok(!JSON.stringify((await t.api('GET', '/v1/tenants/acme/certificates')).body).includes(keyLine))
  assert.ok(!t.logText().includes(keyLine))
  await waitForEvent(t, { code: 'cert.issued', tenant: 'acme', principal: 'os::00256D-0K01' })
  // the trust bundle: the root for devices; every accepted client CA on request
  const bundle = await t.api('GET', '/v1/ca?scope=clients')
  assert.ok(splitPem(bundle.body as string).length > splitPem(root).length)
  assert.equal((await fetch(`${t.adminUrl}/v1/ca`)).status, 401)
  // a bare POST revokes a tenant CA (reason cACompromise); a tenant without an issuing CA gets 404
  assert.equal((await t.api('POST', '/v1/tenants/vendor/ca/revoke')).status, 404)
  const bare = await t.api('POST', '/v1/tenants/delta/ca/revoke')
  assert.equal(bare.status, 200, JSON.stringify(bare.body))
  assert.equal((await t.api('POST', '/v1/tenants/delta/ca/revoke', { reason: 'bogus' })).status, 400)
})
