// certs/: the gateway CA against the real openssl CLI and real mutual TLS.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, statSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { PeerCertificate } from 'node:tls'
import { CertificateAuthority, CertError, loadOrCreateMasterKey, type IssuedCertificate } from '../../certs/index.ts'
import {
  tempDir, removeTempDirs, openssl, opensslOk, writeTemp, opensslCa, opensslSelfSigned, opensslIssue, startIdentifyServer, connectAndIdentify
} from './helpers.ts'

const DAY = 86_400_000
const MASTER_KEY = 'test-master-key-0123456789abcdef'

async function rejectsWith (promise: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  await assert.rejects(async () => { await (typeof promise === 'function' ? promise() : promise) }, (err: unknown) => {
    assert.ok(err instanceof CertError, `expected CertError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    return true
  })
}

describe('certs: gateway CA', () => {
  const work = tempDir()
  const pkiDir = join(work, 'pki')
  let clockOffset = 0
  const clock = (): Date => new Date(Date.now() + clockOffset)
  let ca: CertificateAuthority
  let server: { port: number, close: () => Promise<void> }
  let rootPem: string
  let alpha: IssuedCertificate // tenant "alpha", agent
  let betaController: IssuedCertificate // tenant "beta", controller
  let revokedCertPem = ''
  let revokedCaCertPem = ''

  const identify = async (client: { cert: string, key: string }) => await connectAndIdentify(server.port, rootPem, client)
  const asClient = (issued: IssuedCertificate) => ({ cert: issued.certPem, key: issued.keyPem })
  const fromFiles = (files: { certFile: string, keyFile: string }) => ({ cert: readFileSync(files.certFile, 'utf8'), key: readFileSync(files.keyFile, 'utf8') })

  before(async () => {
    ca = new CertificateAuthority({ dir: pkiDir, masterKey: MASTER_KEY, clock })
    await ca.init({ serverSans: ['localhost', '127.0.0.1', '::1'] })
    rootPem = ca.rootCaPem()
    await ca.ensureTenantCA('alpha')
    await ca.ensureTenantCA('beta')
    alpha = await ca.issueCertificate({ tenant: 'alpha', principal: 'os::00256D-0001', role: 'agent' })
    betaController = await ca.issueCertificate({ tenant: 'beta', principal: 'self::controller-1', role: 'controller', validDays: 30 })
    server = await startIdentifyServer(ca)
  })

  after(async () => {
    await server?.close()
    removeTempDirs()
  })

  it('issues a device certificate carrying the Endpoint ID as urn:bbf:usp:id: SAN URI, clientAuth, signed by the tenant CA', () => {
    assert.match(alpha.serial, /^[0-9a-f]+$/)
    assert.ok(alpha.notAfter.getTime() > Date.now() + 300 * DAY)
    assert.match(alpha.keyPem, /-----BEGIN PRIVATE KEY-----/)
    const text = opensslOk(['x509', '-noout', '-text'], alpha.certPem)
    assert.match(text, /URI:urn:bbf:usp:id:os::00256D-0001/) // TR-369 R-SEC.0a
    assert.match(text, /TLS Web Client Authentication/)
    assert.match(text, /CA:FALSE/)
    assert.match(text, /Subject: O = uspgate, OU = tenant:alpha, OU = role:agent, CN = os::00256D-0001/)
    assert.match(text, /Issuer: O = uspgate, OU = tenant:alpha, CN = uspgate alpha issuing CA/)
    assert.match(text, /Public-Key: \(2048 bit\)/)
    assert.equal(alpha.chainPem, ca.caChainPem('alpha'))
    // the device key is never stored
    const everything = readdirSync(pkiDir, { recursive: true }).map(String)
    for (const file of everything) {
      if (statSync(join(pkiDir, file)).isFile()) assert.ok(!readFileSync(join(pkiDir, file), 'utf8').includes(alpha.keyPem.split('\n')[1]!))
    }
  })

  it('openssl verifies an issued chain (root trusted, tenant CA untrusted intermediate) and the server certificate', () => {
    const dir = tempDir()
    const root = writeTemp(dir, 'root.pem', rootPem)
    const tenantCa = writeTemp(dir, 'alpha-ca.pem', ca.caChainPem('alpha').split(/(?<=-----END CERTIFICATE-----\n)/)[0]!)
    const leaf = writeTemp(dir, 'leaf.pem', alpha.certPem)
    const r = openssl(['verify', '-CAfile', root, '-untrusted', tenantCa, '-purpose', 'sslclient', leaf])
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /OK/)
    // beta's CA does not vouch for alpha's certificate
    const betaCa = writeTemp(dir, 'beta-ca.pem', ca.caChainPem('beta').split(/(?<=-----END CERTIFICATE-----\n)/)[0]!)
    assert.notEqual(openssl(['verify', '-CAfile', root, '-untrusted', betaCa, leaf]).status, 0)
    const serverCert = writeTemp(dir, 'server.pem', ca.serverTlsMaterial().cert)
    assert.equal(openssl(['verify', '-CAfile', root, '-purpose', 'sslserver', serverCert]).status, 0)
    const serverText = opensslOk(['x509', '-noout', '-text', '-in', serverCert])
    assert.match(serverText, /DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1/)
  })

  it('identifies a peer over real mutual TLS: tenant, principal and role from the certificate', async () => {
    const a = await identify(asClient(alpha))
    assert.deepEqual({ ...a, notAfter: undefined, issuer: undefined }, {
      ok: true, tenant: 'alpha', principal: 'os::00256D-0001', role: 'agent', serial: alpha.serial, trust: 'tenant-ca', notAfter: undefined, issuer: undefined
    })
    assert.ok(a.ok && a.issuer.includes('uspgate alpha issuing CA'))
    const b = await identify(asClient(betaController))
    assert.ok(b.ok)
    assert.equal(b.tenant, 'beta')
    assert.equal(b.role, 'controller')
    assert.equal(b.principal, 'self::controller-1')
    // also from PEM and DER directly
    const direct = ca.identifyPeer(alpha.certPem)
    assert.ok(direct.ok && direct.tenant === 'alpha')
  })

  it('a certificate from tenant B\'s CA claiming tenant A never identifies as A', async () => {
    const dir = tempDir()
    // A thief with beta's CA key (decrypted with the master key) forges a
    // certificate whose subject and SAN claim alpha's identity.
    const betaCaFile = readdirSync(join(pkiDir, 'tenants', 'beta')).find((f) => /^ca-.*\.crt\.pem$/.test(f))!
    const forged = opensslIssue(dir, 'forged', {
      caCertFile: join(pkiDir, 'tenants', 'beta', betaCaFile),
      caKeyFile: join(pkiDir, 'tenants', 'beta', betaCaFile.replace('.crt.pem', '.key.pem')),
      caKeyPass: MASTER_KEY,
      subject: '/O=uspgate/OU=tenant:alpha/OU=role:controller/CN=os::00256D-0001',
      sanUri: 'urn:bbf:usp:id:os::00256D-0001'
    })
    const r = await identify(fromFiles(forged))
    assert.equal(r.ok, false)
    assert.notEqual(r.tenant, 'alpha')
    assert.ok(!r.ok && r.code === 'auth.cert_untrusted', JSON.stringify(r))
    assert.match(r.reason, /not issued by the gateway/)
    // the same forgery with an attacker CA that copies beta's CA subject name is not trusted at all
    const fake = opensslCa(dir, 'fake-beta', '/O=uspgate/OU=tenant:beta/CN=uspgate beta issuing CA')
    const impostor = opensslIssue(dir, 'impostor', {
      caCertFile: fake.certFile, caKeyFile: fake.keyFile, subject: '/O=uspgate/OU=tenant:beta/OU=role:agent/CN=os::00256D-0099', sanUri: 'urn:bbf:usp:id:os::00256D-0099'
    })
    const i = await identify(fromFiles(impostor))
    assert.ok(!i.ok && i.code === 'auth.cert_untrusted' && i.tenant === undefined, JSON.stringify(i))
  })

  it('refuses a self-signed certificate as auth.cert_untrusted', async () => {
    const self = opensslSelfSigned(tempDir(), 'self', '/CN=os::00256D-0001', 'urn:bbf:usp:id:os::00256D-0001')
    const r = await identify(fromFiles(self))
    assert.ok(!r.ok && r.code === 'auth.cert_untrusted', JSON.stringify(r))
    assert.ok(!ca.identifyPeer(Buffer.from('garbage')).ok)
    const none = ca.identifyPeer({} as PeerCertificate) // what getPeerCertificate() gives without a client certificate
    assert.ok(!none.ok && none.code === 'auth.cert_untrusted' && /no client certificate/.test(none.reason))
    // a CA certificate is never a client identity
    const asCa = ca.identifyPeer(ca.caChainPem('alpha'))
    assert.ok(!asCa.ok && asCa.code === 'auth.cert_untrusted')
  })

  it('refuses an expired certificate as auth.cert_expired', async () => {
    clockOffset = -400 * DAY // issue in the past: valid for 30 days, 400 days ago
    const expired = await ca.issueCertificate({ tenant: 'alpha', principal: 'os::00256D-0002', role: 'agent', validDays: 30 })
    clockOffset = 0
    assert.ok(expired.notAfter.getTime() < Date.now())
    const r = await identify(asClient(expired))
    assert.ok(!r.ok && r.code === 'auth.cert_expired' && r.tenant === 'alpha', JSON.stringify(r))
  })

  it('revokes a certificate: auth.cert_revoked over TLS, a CRL openssl parses and enforces', async () => {
    const victim = await ca.issueCertificate({ tenant: 'alpha', principal: 'os::00256D-0003', role: 'agent' })
    assert.ok((await identify(asClient(victim))).ok)
    const revocation = await ca.revokeCertificate('alpha', victim.serial.toUpperCase(), 'keyCompromise')
    revokedCertPem = victim.certPem
    assert.equal(revocation.serial, victim.serial)
    assert.equal(revocation.issuedByGateway, true)
    assert.equal(ca.isRevoked(victim.serial), true)
    assert.equal(ca.isRevoked(alpha.serial), false)
    const r = await identify(asClient(victim))
    assert.ok(!r.ok && r.code === 'auth.cert_revoked', JSON.stringify(r))
    assert.ok((await identify(asClient(alpha))).ok, 'other certificates of the tenant still work')
    const listed = ca.listCertificates('alpha').find((c) => c.serial === victim.serial)!
    assert.equal(listed.revoked, true)
    assert.equal(listed.revocationReason, 'keyCompromise')
    // idempotent
    assert.deepEqual(await ca.revokeCertificate('alpha', victim.serial), revocation)

    const dir = tempDir()
    const crl = writeTemp(dir, 'alpha.crl.pem', await ca.crlPem('alpha'))
    const crlText = opensslOk(['crl', '-in', crl, '-noout', '-text'])
    assert.match(crlText, /Issuer: O = uspgate, OU = tenant:alpha, CN = uspgate alpha issuing CA/)
    assert.match(crlText, /Next Update:/)
    assert.match(crlText, /X509v3 CRL Number/)
    assert.ok(crlText.toLowerCase().includes(`serial number: ${victim.serial}`), crlText)
    assert.match(crlText, /Key Compromise/)
    assert.ok(!crlText.toLowerCase().includes(`serial number: ${alpha.serial}`))

    const root = writeTemp(dir, 'root.pem', rootPem)
    const tenantCa = writeTemp(dir, 'alpha-ca.pem', ca.caChainPem('alpha').split(/(?<=-----END CERTIFICATE-----\n)/)[0]!)
    const revokedLeaf = writeTemp(dir, 'victim.pem', victim.certPem)
    const goodLeaf = writeTemp(dir, 'alpha.pem', alpha.certPem)
    const rejected = openssl(['verify', '-crl_check', '-CAfile', root, '-untrusted', tenantCa, '-CRLfile', crl, revokedLeaf])
    assert.notEqual(rejected.status, 0)
    assert.match(rejected.stdout + rejected.stderr, /certificate revoked/)
    const accepted = openssl(['verify', '-crl_check', '-CAfile', root, '-untrusted', tenantCa, '-CRLfile', crl, goodLeaf])
    assert.equal(accepted.status, 0, accepted.stderr)
  })

  it('revoking a tenant CA refuses all its certificates; a new CA can then issue', async () => {
    await ca.ensureTenantCA('gamma')
    const g1 = await ca.issueCertificate({ tenant: 'gamma', principal: 'oui:00D09E:G1', role: 'agent' })
    const g2 = await ca.issueCertificate({ tenant: 'gamma', principal: 'self::gamma-ctl', role: 'controller' })
    const gammaCa = ca.caChainPem('gamma').split(/(?<=-----END CERTIFICATE-----\n)/)[0]!
    assert.ok(ca.trustBundlePem().includes(gammaCa))
    const { serial: caSerial } = await ca.revokeTenantCA('gamma')
    revokedCaCertPem = g1.certPem
    assert.equal(ca.isRevoked(caSerial), true)
    for (const cert of [g1, g2]) {
      const r = await identify(asClient(cert))
      assert.ok(!r.ok && r.code === 'auth.cert_revoked' && r.tenant === 'gamma', JSON.stringify(r))
    }
    assert.ok(!ca.trustBundlePem().includes(gammaCa), 'a revoked CA leaves the TLS trust bundle')
    await rejectsWith(ca.issueCertificate({ tenant: 'gamma', principal: 'oui:00D09E:G3', role: 'agent' }), 'cert.tenant_ca_revoked')

    // openssl with the root CRL (and the tenant CRL) refuses the chain too
    const dir = tempDir()
    const rootCrl = writeTemp(dir, 'root.crl.pem', await ca.rootCrlPem())
    assert.ok(opensslOk(['crl', '-in', rootCrl, '-noout', '-text']).toLowerCase().includes(`serial number: ${caSerial}`))
    const tenantCrl = writeTemp(dir, 'gamma.crl.pem', await ca.crlPem('gamma'))
    const r = openssl(['verify', '-crl_check_all', '-CAfile', writeTemp(dir, 'root.pem', rootPem), '-untrusted', writeTemp(dir, 'g.pem', gammaCa),
      '-CRLfile', rootCrl, '-CRLfile', tenantCrl, writeTemp(dir, 'g1.pem', g1.certPem)])
    assert.notEqual(r.status, 0)
    assert.match(r.stdout + r.stderr, /certificate revoked/)

    const fresh = await ca.ensureTenantCA('gamma')
    assert.equal(fresh.created, true)
    assert.notEqual(fresh.serial, caSerial)
    const g3 = await ca.issueCertificate({ tenant: 'gamma', principal: 'oui:00D09E:G1', role: 'agent' })
    const ok = await identify(asClient(g3))
    assert.ok(ok.ok && ok.tenant === 'gamma')
    assert.ok(!(await identify(asClient(g1))).ok, 'old certificates stay refused')
  })

  it('trusts an imported vendor CA for one tenant only', async () => {
    const dir = tempDir()
    const vendor = opensslCa(dir, 'vendor', '/O=Router Vendor Inc/CN=Router Vendor Device CA')
    const vendorPem = readFileSync(vendor.certFile, 'utf8')
    const device = opensslIssue(dir, 'vendor-device', {
      caCertFile: vendor.certFile, caKeyFile: vendor.keyFile, subject: '/O=Router Vendor Inc/CN=ignored-cn', sanUri: 'urn:bbf:usp:id:oui:00D09E:SN123'
    })
    const before = await identify(fromFiles(device))
    assert.ok(!before.ok && before.code === 'auth.cert_untrusted')

    const info = await ca.importTenantCA('delta', vendorPem)
    assert.equal(info.tenant, 'delta')
    assert.match(info.fingerprint, /^[0-9a-f]{64}$/)
    assert.deepEqual(await ca.importTenantCA('delta', vendorPem), info, 're-import is idempotent')
    assert.ok(ca.trustBundlePem().includes(vendorPem.trim().split('\n')[1]!))
    const r = await identify(fromFiles(device))
    assert.ok(r.ok, JSON.stringify(r))
    assert.equal(r.tenant, 'delta')
    assert.equal(r.principal, 'oui:00D09E:SN123')
    assert.equal(r.role, 'agent')
    assert.equal(r.trust, 'imported-ca')

    // no SAN URI: the CN is the Endpoint ID
    const cnOnly = opensslIssue(dir, 'vendor-cn', { caCertFile: vendor.certFile, caKeyFile: vendor.keyFile, subject: '/CN=proto::vendor-box-7' })
    const c = await identify(fromFiles(cnOnly))
    assert.ok(c.ok && c.principal === 'proto::vendor-box-7' && c.tenant === 'delta', JSON.stringify(c))

    // one CA vouches for one tenant; the gateway's own CAs cannot be imported
    await rejectsWith(ca.importTenantCA('alpha', vendorPem), 'cert.ca_conflict')
    await rejectsWith(ca.importTenantCA('delta', ca.caChainPem('beta')), 'cert.invalid_pem') // two certificates
    await rejectsWith(ca.importTenantCA('delta', ca.caChainPem('beta').split(/(?<=-----END CERTIFICATE-----\n)/)[0]!), 'cert.ca_conflict')

    // a vendor certificate's serial can be deny-listed
    const serial = opensslOk(['x509', '-noout', '-serial', '-in', device.certFile]).trim().split('=')[1]!
    const revocation = await ca.revokeCertificate('delta', serial)
    assert.equal(revocation.issuedByGateway, false)
    const revoked = await identify(fromFiles(device))
    assert.ok(!revoked.ok && revoked.code === 'auth.cert_revoked' && revoked.tenant === 'delta', JSON.stringify(revoked))
    assert.equal(ca.listRevocations('delta').length, 1)

    // un-trusting the CA
    assert.equal(await ca.removeImportedCA('delta', info.fingerprint), true)
    const gone = await identify(fromFiles(cnOnly))
    assert.ok(!gone.ok && gone.code === 'auth.cert_untrusted')
  })

  it('refuses to import garbage, non-CA and expired CA certificates with clear errors', async () => {
    const dir = tempDir()
    await rejectsWith(ca.importTenantCA('delta', 'not a certificate'), 'cert.invalid_pem')
    await rejectsWith(ca.importTenantCA('delta', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), 'cert.invalid_pem')
    await rejectsWith(ca.importTenantCA('delta', alpha.keyPem), 'cert.invalid_pem')
    await rejectsWith(ca.importTenantCA('delta', alpha.certPem), 'cert.not_a_ca')
    const shortLived = readFileSync(opensslCa(dir, 'short', '/CN=Short Lived CA', 1).certFile, 'utf8')
    clockOffset = 10 * DAY
    try {
      await rejectsWith(ca.importTenantCA('delta', shortLived), 'cert.ca_expired')
    } finally {
      clockOffset = 0
    }
    await rejectsWith(ca.importTenantCA('Not_A_Tenant', shortLived), 'cert.invalid_tenant')
  })

  it('validates issuance requests with typed errors', async () => {
    await rejectsWith(ca.issueCertificate({ tenant: 'alpha', principal: 'no-colons', role: 'agent' }), 'cert.invalid_principal')
    await rejectsWith(ca.issueCertificate({ tenant: 'alpha', principal: 'os::*', role: 'agent' }), 'cert.invalid_principal')
    await rejectsWith(ca.issueCertificate({ tenant: 'alpha', principal: 'os::x', role: 'admin' as 'agent' }), 'cert.invalid_role')
    await rejectsWith(ca.issueCertificate({ tenant: 'alpha', principal: 'os::x', role: 'agent', validDays: -1 }), 'cert.invalid_validity')
    await rejectsWith(ca.issueCertificate({ tenant: 'alpha', principal: 'os::x', role: 'agent', validDays: 1.5 }), 'cert.invalid_validity')
    await rejectsWith(ca.issueCertificate({ tenant: 'ALPHA', principal: 'os::x', role: 'agent' }), 'cert.invalid_tenant')
    await rejectsWith(ca.issueCertificate({ tenant: 'nobody', principal: 'os::x', role: 'agent' }), 'cert.unknown_tenant')
    await rejectsWith(ca.revokeCertificate('alpha', 'zz'), 'cert.invalid_serial')
    await rejectsWith(ca.revokeCertificate('alpha', '0123abcd'), 'cert.not_found')
    await rejectsWith(ca.revokeCertificate('alpha', alpha.serial, 'because' as 'unspecified'), 'cert.invalid_reason')
    await rejectsWith(ca.crlPem('nobody'), 'cert.unknown_tenant')
    assert.throws(() => new CertificateAuthority({ dir: pkiDir, masterKey: 'short' }), (e: unknown) => e instanceof CertError && e.code === 'cert.weak_master_key')
    await rejectsWith(() => new CertificateAuthority({ dir: pkiDir, masterKey: MASTER_KEY }).listCertificates('alpha'), 'cert.not_initialized')
  })

  it('serializes concurrent changes: parallel issuance loses nothing, one CA per tenant', async () => {
    const [ca1, ca2] = await Promise.all([ca.ensureTenantCA('epsilon'), ca.ensureTenantCA('epsilon')])
    assert.equal(ca1.serial, ca2.serial)
    assert.equal([ca1.created, ca2.created].filter(Boolean).length, 1)
    const issued = await Promise.all([1, 2, 3, 4].map(async (n) => await ca.issueCertificate({ tenant: 'epsilon', principal: `os::00256D-E${n}`, role: 'agent' })))
    assert.deepEqual(ca.listCertificates('epsilon').map((c) => c.serial).sort(), issued.map((c) => c.serial).sort())
    const state = JSON.parse(readFileSync(join(pkiDir, 'state.json'), 'utf8')) as { tenants: Record<string, { certificates: unknown[] }> }
    assert.equal(state.tenants.epsilon?.certificates.length, 4)
  })

  it('reports expiries for metrics', () => {
    const names = ca.expiries().map((e) => e.name)
    assert.deepEqual(names.slice(0, 2), ['root', 'server'])
    assert.ok(names.includes('tenant:alpha') && names.includes('tenant:beta') && names.includes('tenant:gamma'))
    for (const e of ca.expiries()) assert.ok(e.notAfter.getTime() > Date.now())
  })

  it('keeps root, tenant CAs, certificates and revocations across a restart; keys are encrypted, files 0600', async () => {
    const revokedBefore = ca.listRevocations('alpha').map((r) => r.serial)
    assert.ok(revokedBefore.length > 0)
    const again = new CertificateAuthority({ dir: pkiDir, masterKey: MASTER_KEY })
    await again.init({ serverSans: ['localhost', '127.0.0.1', '::1'] })
    assert.equal(again.rootCaPem(), rootPem)
    assert.equal(again.caChainPem('alpha'), ca.caChainPem('alpha'))
    assert.equal(again.serverTlsMaterial().cert, ca.serverTlsMaterial().cert, 'same SANs: server certificate kept')
    assert.deepEqual(again.listCertificates('alpha'), ca.listCertificates('alpha'))
    for (const serial of revokedBefore) assert.equal(again.isRevoked(serial), true)
    const id = again.identifyPeer(alpha.certPem)
    assert.ok(id.ok && id.tenant === 'alpha')
    const stillRevoked = again.identifyPeer(revokedCertPem)
    assert.ok(!stillRevoked.ok && stillRevoked.code === 'auth.cert_revoked', JSON.stringify(stillRevoked))
    const caStillRevoked = again.identifyPeer(revokedCaCertPem)
    assert.ok(!caStillRevoked.ok && caStillRevoked.code === 'auth.cert_revoked', JSON.stringify(caStillRevoked))
    assert.equal(await again.rootCrlPem(), await ca.rootCrlPem())
    const gammaOld = again.listCertificates('gamma')[0]!
    assert.equal(gammaOld.revoked, false) // its CA is revoked, not the certificate itself ...
    const crl = await again.crlPem('alpha')
    assert.equal(crl, await ca.crlPem('alpha'), 'the published CRL is reloaded, not re-signed')
    assert.match(opensslOk(['crl', '-noout', '-text'], crl), /Certificate Revocation List/)
    // issuing after restart works with the decrypted tenant CA key
    const later = await again.issueCertificate({ tenant: 'beta', principal: 'os::00256D-0100', role: 'agent' })
    assert.ok(again.identifyPeer(later.certPem).ok)

    const files = readdirSync(pkiDir, { recursive: true }).map(String).filter((f) => statSync(join(pkiDir, f)).isFile())
    const keyFiles = files.filter((f) => f.endsWith('.key.pem'))
    assert.ok(keyFiles.includes('root-ca.key.pem') && keyFiles.includes('server.key.pem'))
    assert.ok(keyFiles.length >= 6) // root, server, alpha, beta, gamma x2
    for (const f of keyFiles) {
      const text = readFileSync(join(pkiDir, f), 'utf8')
      assert.match(text, /-----BEGIN ENCRYPTED PRIVATE KEY-----/, f)
      assert.ok(!text.includes('BEGIN PRIVATE KEY') && !text.includes('BEGIN RSA PRIVATE KEY'), f)
    }
    for (const f of files) assert.equal(statSync(join(pkiDir, f)).mode & 0o777, 0o600, f)
    assert.equal(statSync(pkiDir).mode & 0o777, 0o700)
    // the encryption is standard PKCS#8: openssl opens it with the master key, and only with it
    assert.equal(openssl(['pkey', '-noout', '-in', join(pkiDir, 'root-ca.key.pem'), '-passin', `pass:${MASTER_KEY}`]).status, 0)
    assert.notEqual(openssl(['pkey', '-noout', '-in', join(pkiDir, 'root-ca.key.pem'), '-passin', 'pass:wrong-wrong-wrong-wrong']).status, 0)

    const wrongKey = new CertificateAuthority({ dir: pkiDir, masterKey: 'another-master-key-of-enough-length' })
    await rejectsWith(wrongKey.init({ serverSans: ['localhost'] }), 'cert.bad_master_key')
  })

  it('re-issues the server certificate when the configured SANs change', async () => {
    const before = ca.serverTlsMaterial().cert
    const again = new CertificateAuthority({ dir: pkiDir, masterKey: MASTER_KEY })
    await again.init({ serverSans: ['mqtt.example.net', '127.0.0.1'] })
    assert.notEqual(again.serverTlsMaterial().cert, before)
    assert.match(opensslOk(['x509', '-noout', '-ext', 'subjectAltName'], again.serverTlsMaterial().cert), /DNS:mqtt.example.net, IP Address:127.0.0.1/)
    assert.equal(again.rootCaPem(), rootPem)
    await rejectsWith(again.init({ serverSans: ['bad name!'] }), 'cert.invalid_san')
    await rejectsWith(again.init({ serverSans: [] }), 'cert.invalid_san')
  })

  it('stores a generated master key 0600 and reads it back', async () => {
    const file = join(tempDir(), 'master.key')
    const key = await loadOrCreateMasterKey(file)
    assert.ok(key.length >= 32)
    assert.equal(await loadOrCreateMasterKey(file), key)
    assert.equal(statSync(file).mode & 0o777, 0o600)
  })
})
