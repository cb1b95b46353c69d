// MQTTS with client certificates against a running gateway: real TLS sockets,
// real mqtt.js clients verifying the gateway's server certificate, device
// certificates issued through the admin API, forgeries made by openssl.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tls from 'node:tls'
import { CertificateAuthority, loadOrCreateMasterKey, type IssuedCertificate } from '../../certs/index.ts'
import { MASTER_KEY_FILE } from '../../broker/pki/index.ts'
import { startGateway, provision, waitFor, waitForEvent, closeClient, removeDir, type TestGateway } from '../helpers/gateway.ts'
import { issueCert, ensureTenant, rootCaPem, connectTls, refusedTls, publishAsync, subscribeAsync, type IssuedCert } from '../helpers/mtls.ts'
import { tempDir, removeTempDirs, opensslSelfSigned, opensslIssue, opensslOk, writeTemp } from '../certs/helpers.ts'

const DAY = 86_400_000
let t: TestGateway
let root: string
let acmeAgent: IssuedCert
let acmeController: IssuedCert
let betaSamePrincipal: IssuedCert // beta's device with the same Endpoint ID as acme's
let expired: IssuedCertificate

before(async () => {
  // An expired certificate, issued by the gateway's own CA 40 days ago with 10 days of validity:
  // the PKI is created with a shifted clock before the gateway first opens it.
  const dataDir = await mkdtemp(join(tmpdir(), 'uspgate-mtls-'))
  const masterKey = await loadOrCreateMasterKey(join(dataDir, MASTER_KEY_FILE))
  const past = new CertificateAuthority({ dir: join(dataDir, 'pki'), masterKey, clock: () => new Date(Date.now() - 40 * DAY) })
  await past.init({ serverSans: ['localhost', '127.0.0.1'] })
  await past.ensureTenantCA('acme')
  expired = await past.issueCertificate({ tenant: 'acme', principal: 'os::00256D-0E00', role: 'agent', validDays: 10 })

  t = await startGateway({ mtls: true, dataDir })
  await ensureTenant(t, 'acme')
  await ensureTenant(t, 'beta')
  root = await rootCaPem(t)
  acmeAgent = await issueCert(t, 'acme', 'os::00256D-0001', 'agent')
  acmeController = await issueCert(t, 'acme', 'self::ctl-1', 'controller')
  betaSamePrincipal = await issueCert(t, 'beta', 'os::00256D-0001', 'agent')
})
after(async () => {
  await t.close()
  await removeDir(t.dataDir)
  removeTempDirs()
})

test('a device certificate logs in without a password over MQTT 5 and 3.1.1; identity, tenant and role come from the certificate', async () => {
  assert.match(acmeAgent.certPem, /-----BEGIN CERTIFICATE-----/)
  assert.match(acmeAgent.keyPem, /-----BEGIN PRIVATE KEY-----/)
  assert.equal(acmeAgent.username, 'acme:os::00256D-0001')
  const v5 = await connectTls(t, { root, identity: acmeAgent, v: 5, clientId: 'cert-v5' })
  const v4 = await connectTls(t, { root, identity: acmeAgent, v: 4, clientId: 'cert-v4' })
  const sessions = (await t.api('GET', '/v1/sessions?tenant=acme')).body.sessions as Array<Record<string, string>>
  for (const [clientId, protocol] of [['cert-v5', 'mqtt5'], ['cert-v4', 'mqtt3.1.1']]) {
    const s = sessions.find(x => x.clientId === clientId)
    assert.ok(s, `session ${clientId} listed`)
    assert.deepEqual([s.tenant, s.principal, s.role, s.auth, s.listener, s.protocol], ['acme', 'os::00256D-0001', 'agent', 'certificate', 'mqtts', protocol])
  }
  // the agent's telemetry reaches a controller that also logged in by certificate (role from its certificate)
  const ctl = await connectTls(t, { root, identity: acmeController, v: 5, clientId: 'cert-ctl' })
  const got: string[] = []
  ctl.on('message', (topic) => got.push(topic))
  assert.equal(await subscribeAsync(ctl, 'acme/bulkdata/#'), 1)
  assert.equal(await publishAsync(v5, 'acme/bulkdata/os::00256D-0001/stats', 'x'), undefined)
  assert.equal(await publishAsync(v4, 'acme/bulkdata/os::00256D-0001/stats', 'y'), undefined)
  await waitFor(() => got.length >= 2, 3000, 'telemetry delivered')
  assert.deepEqual(got, ['acme/bulkdata/os::00256D-0001/stats', 'acme/bulkdata/os::00256D-0001/stats'])
  assert.equal(t.gw.sessions.list('acme').find(x => x.clientId === 'cert-ctl')?.role, 'controller')
  await closeClient(v5); await closeClient(v4); await closeClient(ctl)
})

test('a certificate session is confined to its tenant: publish outside the prefix gets PUBACK 0x87 and acl.cross_tenant', async () => {
  const c = await connectTls(t, { root, identity: acmeAgent, v: 5, clientId: 'confined' })
  const err = await publishAsync(c, 'beta/bulkdata/os::00256D-0001/stats', 'x', 1)
  assert.equal(err?.code, 0x87)
  const ev = await waitForEvent(t, { code: 'acl.cross_tenant', tenant: 'acme', principal: 'os::00256D-0001', topic: 'beta/bulkdata/os::00256D-0001/stats' })
  assert.equal(ev.severity, 'critical')
  assert.equal(c.connected, true, 'MQTT 5: the connection stays after a refused publish')
  assert.equal(await subscribeAsync(c, 'beta/#'), 0x87)
  await closeClient(c)
  // beta's device with the same Endpoint ID is beta's, not acme's
  const b = await connectTls(t, { root, identity: betaSamePrincipal, v: 5, clientId: 'beta-dev' })
  assert.equal((await publishAsync(b, 'acme/bulkdata/os::00256D-0001/stats', 'x', 1))?.code, 0x87)
  await waitForEvent(t, { code: 'acl.cross_tenant', tenant: 'beta', topic: 'acme/bulkdata/os::00256D-0001/stats' })
  await closeClient(b)
})

test('a username that does not match the certificate is refused (0x86 / 4) with auth.cert_mismatch, even one naming the same principal in another tenant', async () => {
  assert.equal(await refusedTls(t, { root, identity: acmeAgent, v: 5, username: 'acme:os::00256D-0002' }), 0x86)
  await waitForEvent(t, { code: 'auth.cert_mismatch', tenant: 'acme', principal: 'os::00256D-0001' })
  // beta's certificate presented with acme's username: never acme
  assert.equal(await refusedTls(t, { root, identity: betaSamePrincipal, v: 4, username: 'acme:os::00256D-0001' }), 4)
  await waitForEvent(t, { code: 'auth.cert_mismatch', tenant: 'beta', principal: 'os::00256D-0001' })
  // the matching username is fine (a password, if any, is not needed)
  const ok = await connectTls(t, { root, identity: acmeAgent, v: 5, username: 'acme:os::00256D-0001' })
  await closeClient(ok)
})

test('an expired certificate is refused at the handshake with auth.cert_expired', async () => {
  assert.ok(new Date(expired.notAfter).getTime() < Date.now())
  const code = await refusedTls(t, { root, identity: expired, v: 5 })
  assert.notEqual(typeof code, 'number', 'no CONNACK: the socket is closed')
  const ev = await waitForEvent(t, { code: 'auth.cert_expired', tenant: 'acme', principal: 'os::00256D-0E00' })
  assert.equal(ev.action, 'connect')
  assert.equal(t.gw.sessions.list('acme').some(s => s.principal === 'os::00256D-0E00'), false)
})

test('a self-signed certificate is refused with auth.cert_untrusted', async () => {
  const dir = tempDir()
  const self = opensslSelfSigned(dir, 'self', '/O=uspgate/OU=tenant:acme/OU=role:controller/CN=os::00256D-0001', 'urn:bbf:usp:id:os::00256D-0001')
  const before = t.gw.events.query({ code: 'auth.cert_untrusted', limit: 1000 }).length
  const code = await refusedTls(t, { root, identity: { cert: await readFile(self.certFile, 'utf8'), key: await readFile(self.keyFile, 'utf8') }, v: 5 })
  assert.notEqual(typeof code, 'number')
  const ev = await waitForEvent(t, { code: 'auth.cert_untrusted' })
  assert.equal(t.gw.events.query({ code: 'auth.cert_untrusted', limit: 1000 }).length, before + 1)
  assert.equal(ev.tenant, undefined, 'an untrusted certificate names no tenant')
  assert.match(ev.reason ?? '', /not signed by a CA trusted for any tenant/)
})

test('a certificate from another tenant\'s CA can never log in as this tenant, whatever it claims', async () => {
  // A thief with beta's CA key (and the master key) forges a certificate claiming acme's device.
  const pki = join(t.dataDir, 'pki', 'tenants', 'beta')
  const caFile = (await readdir(pki)).find(f => /^ca-.*\.crt\.pem$/.test(f))!
  const dir = tempDir()
  const forged = opensslIssue(dir, 'forged', {
    caCertFile: join(pki, caFile),
    caKeyFile: join(pki, caFile.replace('.crt.pem', '.key.pem')),
    caKeyPass: (await readFile(join(t.dataDir, MASTER_KEY_FILE), 'utf8')).trim(),
    subject: '/O=uspgate/OU=tenant:acme/OU=role:controller/CN=os::00256D-0001',
    sanUri: 'urn:bbf:usp:id:os::00256D-0001'
  })
  const identity = { cert: await readFile(forged.certFile, 'utf8'), key: await readFile(forged.keyFile, 'utf8') }
  await waitFor(() => t.gw.sessions.list('acme').length === 0, 3000, 'earlier sessions gone')
  for (const username of [undefined, 'acme:os::00256D-0001']) {
    const code = await refusedTls(t, { root, identity, v: 5, ...(username !== undefined ? { username } : {}) })
    assert.notEqual(typeof code, 'number')
  }
  const ev = await waitForEvent(t, { code: 'auth.cert_untrusted', tenant: 'beta' })
  assert.match(ev.reason ?? '', /not issued by the gateway/)
  assert.equal(t.gw.sessions.list('acme').length, 0)
})

test('without a certificate, password logins still work over TLS (client certificates optional); TLS below 1.2 is refused', async () => {
  const cred = await provision(t, 'acme', 'self::pw-ctl', 'controller')
  const c = await connectTls(t, { root, v: 5, username: cred.username, password: cred.secret, clientId: 'pw-over-tls' })
  const s = t.gw.sessions.list('acme').find(x => x.clientId === 'pw-over-tls')
  assert.deepEqual([s?.auth, s?.listener], ['password', 'mqtts'])
  await closeClient(c)
  // a client capped at TLS 1.1 never completes a handshake [TR-369 R-MQTT.48]
  const outcome = await new Promise<string>((resolve) => {
    const sock = tls.connect({ host: '127.0.0.1', port: t.mqttsPort, servername: 'localhost', ca: root, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' })
    sock.once('secureConnect', () => { sock.destroy(); resolve('connected') })
    sock.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
  })
  assert.notEqual(outcome, 'connected')
})

test('the server certificate verifies against the root from GET /v1/ca; expiry gauges for root, server and tenant CAs', async () => {
  const dir = tempDir()
  const peerPem = await new Promise<string>((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port: t.mqttsPort, servername: 'localhost', ca: root, rejectUnauthorized: true }, () => {
      const raw = sock.getPeerCertificate().raw
      sock.destroy()
      resolve(`-----BEGIN CERTIFICATE-----\n${raw.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`)
    })
    sock.once('error', reject)
  })
  const text = opensslOk(['x509', '-noout', '-text', '-in', writeTemp(dir, 'server.pem', peerPem)])
  assert.match(text, /DNS:localhost, IP Address:127.0.0.1/)
  const metrics = await (await fetch(`${t.adminUrl}/metrics`)).text()
  for (const name of ['root', 'server', 'tenant:acme', 'tenant:beta']) {
    const m = new RegExp(`^uspgate_cert_expiry_timestamp_seconds\\{name="${name}"[^}]*\\} (\\d+)$`, 'm').exec(metrics)
    assert.ok(m, `gauge for ${name}`)
    assert.ok(Number(m[1]) * 1000 > Date.now() + 300 * DAY)
  }
})
