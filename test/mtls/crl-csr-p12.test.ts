// What factories and relying parties need: a CRL distribution point in every device certificate whose
// CRL is fetched without a token (openssl -crl_download), CSR signing for devices that keep their own
// keys (same identity rules), and password-protected PKCS#12 bundles.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, writeFile, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startGateway, removeDir, waitForEvent, type TestGateway } from '../helpers/gateway.ts'
import { connectTls, ensureTenant, issueCert, rootCaPem, closedAt } from '../helpers/mtls.ts'

const run = promisify(execFile)
let t: TestGateway
let dir: string
let root: string

before(async () => {
  t = await startGateway({ mtls: true })
  await ensureTenant(t, 'acme')
  root = await rootCaPem(t)
  dir = await mkdtemp(join(tmpdir(), 'uspgate-pki-'))
})
after(async () => { await t.close(); await removeDir(t.dataDir); await removeDir(dir) })

async function openssl (...args: string[]): Promise<{ ok: boolean, out: string }> {
  try {
    const { stdout, stderr } = await run('openssl', args, { timeout: 60_000 })
    return { ok: true, out: stdout + stderr }
  } catch (err) {
    const e = err as { stdout?: string, stderr?: string }
    return { ok: false, out: (e.stdout ?? '') + (e.stderr ?? '') }
  }
}

test('a device certificate names its CRL; openssl fetches it without a token and refuses the certificate once it is revoked', async () => {
  const c = await issueCert(t, 'acme', 'os::00256D-CRL1')
  assert.equal(c.crlUrl, `${t.adminUrl}/crl/acme.crl`)
  const certFile = join(dir, 'crl1.pem')
  const rootFile = join(dir, 'root.pem')
  const chainFile = join(dir, 'chain.pem')
  await writeFile(certFile, c.certPem)
  await writeFile(rootFile, root)
  await writeFile(chainFile, c.chainPem)
  const text = await openssl('x509', '-in', certFile, '-noout', '-text')
  assert.match(text.out, /X509v3 CRL Distribution Points:[\s\S]*URI:http:\/\/127\.0\.0\.1:\d+\/crl\/acme\.crl/)
  // no authorization header: relying parties fetch CRLs anonymously
  const anon = await fetch(`${t.adminUrl}/crl/acme.crl`)
  assert.equal(anon.status, 200)
  assert.equal(anon.headers.get('content-type'), 'application/pkix-crl')
  const good = await openssl('verify', '-crl_check', '-crl_download', '-CAfile', rootFile, '-untrusted', chainFile, certFile)
  assert.ok(good.ok, good.out)
  assert.match(good.out, /OK/)
  const r = await t.api('DELETE', `/v1/tenants/acme/certificates/${c.serial}`)
  assert.equal(r.status, 200)
  const bad = await openssl('verify', '-crl_check', '-crl_download', '-CAfile', rootFile, '-untrusted', chainFile, certFile)
  assert.equal(bad.ok, false)
  assert.match(bad.out, /certificate revoked/)
})

test('the root CRL is served too; an unknown tenant is 404 and a bad name is 400, without a token', async () => {
  const rootCrl = await fetch(`${t.adminUrl}/crl/root.crl`)
  assert.equal(rootCrl.status, 200)
  const file = join(dir, 'root.crl')
  await writeFile(file, Buffer.from(await rootCrl.arrayBuffer()))
  const parsed = await openssl('crl', '-inform', 'DER', '-in', file, '-noout', '-issuer')
  assert.ok(parsed.ok, parsed.out)
  assert.match(parsed.out, /issuer=/)
  assert.equal((await fetch(`${t.adminUrl}/crl/nosuchtenant.crl`)).status, 404)
  // a tenant without an issuing CA yet: 404, and the anonymous request created none
  await ensureTenant(t, 'fresh')
  assert.equal((await fetch(`${t.adminUrl}/crl/fresh.crl`)).status, 404)
  assert.equal((await t.api('GET', '/v1/tenants/fresh/certificates')).body.certificates.length, 0)
  assert.doesNotMatch(JSON.stringify(await t.gw.certificates.authority().then(ca => ca.expiries().map(e => e.name))), /tenant:fresh/)
  assert.equal((await fetch(`${t.adminUrl}/crl/..%2Fstate.json`)).status, 400)
})

async function makeCsr (name: string, opts: { subj: string, san?: string, keyArgs?: string[] }): Promise<{ csr: string, keyFile: string }> {
  const keyFile = join(dir, `${name}.key`)
  const csrFile = join(dir, `${name}.csr`)
  assert.ok((await openssl('genpkey', ...(opts.keyArgs ?? ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']), '-out', keyFile)).ok)
  const args = ['req', '-new', '-key', keyFile, '-subj', opts.subj, '-out', csrFile]
  if (opts.san !== undefined) args.push('-addext', `subjectAltName=${opts.san}`)
  const made = await openssl(...args)
  assert.ok(made.ok, made.out)
  return { csr: await readFile(csrFile, 'utf8'), keyFile }
}

test('CSR: the device keeps its EC key; the certificate carries its public key, the gateway\'s identity and logs in over mTLS', async () => {
  const principal = 'os::00256D-CSR1'
  const { csr, keyFile } = await makeCsr('csr1', { subj: `/CN=${principal}`, san: `URI:urn:bbf:usp:id:${principal}` })
  const r = await t.api('POST', '/v1/tenants/acme/certificates/csr', { principal, role: 'agent', csr })
  assert.equal(r.status, 201, JSON.stringify(r.body))
  assert.equal(r.body.keyPem, undefined, 'no key is generated or returned for a CSR')
  const certFile = join(dir, 'csr1.crt')
  await writeFile(certFile, r.body.certPem)
  const certKey = await openssl('x509', '-in', certFile, '-noout', '-pubkey')
  const ownKey = await openssl('pkey', '-in', keyFile, '-pubout')
  assert.equal(certKey.out.trim(), ownKey.out.trim())
  const text = await openssl('x509', '-in', certFile, '-noout', '-text')
  assert.match(text.out, new RegExp(`URI:urn:bbf:usp:id:${principal}`))
  const key = await readFile(keyFile, 'utf8')
  const client = await connectTls(t, { root, identity: { certPem: r.body.certPem, keyPem: key }, clientId: 'csr-device', v: 5 })
  const s = t.gw.sessions.list('acme').find(x => x.clientId === 'csr-device')
  assert.equal(s?.principal, principal)
  assert.equal(s?.auth, 'certificate')
  const closed = closedAt(client)
  client.end(true)
  await closed
  await waitForEvent(t, { code: 'cert.issued', principal })
})

test('CSR refusals: another endpoint named in SAN or CN, a weak key, a broken signature, not a CSR — 400 and nothing issued', async () => {
  const before = (await t.api('GET', '/v1/tenants/acme/certificates')).body.certificates.length
  const other = await makeCsr('other', { subj: '/CN=os::00256D-CSR2', san: 'URI:urn:bbf:usp:id:os::00256D-VICTIM' })
  const r1 = await t.api('POST', '/v1/tenants/acme/certificates/csr', { principal: 'os::00256D-CSR2', role: 'agent', csr: other.csr })
  assert.equal(r1.status, 400)
  assert.match(r1.body.detail, /names endpoint "os::00256D-VICTIM"/)
  const cn = await makeCsr('cn', { subj: '/CN=os::00256D-VICTIM' })
  assert.equal((await t.api('POST', '/v1/tenants/acme/certificates/csr', { principal: 'os::00256D-CSR2', role: 'agent', csr: cn.csr })).status, 400)
  const weak = await makeCsr('weak', { subj: '/CN=os::00256D-CSR2', keyArgs: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'] })
  const r3 = await t.api('POST', '/v1/tenants/acme/certificates/csr', { principal: 'os::00256D-CSR2', role: 'agent', csr: weak.csr })
  assert.equal(r3.status, 400)
  assert.match(r3.body.detail, /too weak/)
  // flip one byte inside the signature (the end of the DER)
  const good = await makeCsr('tamper', { subj: '/CN=os::00256D-CSR2' })
  const b64 = good.csr.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '')
  const der = Buffer.from(b64, 'base64')
  der[der.length - 5]! ^= 0xff
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE REQUEST-----\n`
  const r4 = await t.api('POST', '/v1/tenants/acme/certificates/csr', { principal: 'os::00256D-CSR2', role: 'agent', csr: tampered })
  assert.equal(r4.status, 400)
  const r5 = await t.api('POST', '/v1/tenants/acme/certificates/csr', { principal: 'os::00256D-CSR2', role: 'agent', csr: '-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all\n-----END CERTIFICATE REQUEST-----\n' })
  assert.equal(r5.status, 400)
  assert.equal((await t.api('GET', '/v1/tenants/acme/certificates')).body.certificates.length, before)
})

test('PKCS#12: certificate, key and chain in one password-protected bundle that openssl opens; a wrong password does not', async () => {
  const r = await t.api('POST', '/v1/tenants/acme/certificates', { principal: 'os::00256D-P12', role: 'agent', p12Password: 'factory-secret-1' })
  assert.equal(r.status, 201)
  const p12File = join(dir, 'dev.p12')
  await writeFile(p12File, Buffer.from(r.body.p12, 'base64'))
  const opened = await openssl('pkcs12', '-in', p12File, '-passin', 'pass:factory-secret-1', '-nodes')
  assert.ok(opened.ok, opened.out)
  assert.equal((opened.out.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length, 3, 'device, tenant CA and root')
  assert.match(opened.out, /-----BEGIN PRIVATE KEY-----/)
  const keyFile = join(dir, 'p12.key')
  await writeFile(keyFile, opened.out.match(/-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/)![0] + '\n')
  const fromKey = await openssl('pkey', '-in', keyFile, '-pubout')
  const certFile = join(dir, 'p12.crt')
  await writeFile(certFile, r.body.certPem)
  assert.equal((await openssl('x509', '-in', certFile, '-noout', '-pubkey')).out.trim(), fromKey.out.trim())
  assert.equal((await openssl('pkcs12', '-in', p12File, '-passin', 'pass:wrong-password', '-nodes')).ok, false)
  assert.equal((await t.api('POST', '/v1/tenants/acme/certificates', { principal: 'os::00256D-P13', role: 'agent', p12Password: 'short' })).status, 400)
})
