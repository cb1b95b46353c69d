// `uspgate cert ...` as a user runs it (a real process calling the admin API),
// a gateway that requires client certificates, and the MQTTS settings.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Gateway, loadConfig, ConfigError } from '../../broker/index.ts'
import { startGateway, provision, waitForEvent, closeClient, removeDir, type TestGateway } from '../helpers/gateway.ts'
import { issueCert, ensureTenant, rootCaPem, connectTls, refusedTls } from '../helpers/mtls.ts'
import { tempDir, removeTempDirs, opensslCa, opensslIssue } from '../certs/helpers.ts'

const run = promisify(execFile)
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'uspgate.js')

let t: TestGateway
let root: string

async function cli (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  const env = { ...process.env, USPGATE_ADMIN_URL: t.adminUrl, USPGATE_ADMIN_TOKEN: t.token, USPGATE_DATA_DIR: t.dataDir }
  try {
    const r = await run(process.execPath, [BIN, ...args], { env })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

before(async () => {
  t = await startGateway({ mtls: { clientCert: 'required' } })
  await ensureTenant(t, 'acme')
  root = await rootCaPem(t)
})
after(async () => {
  await t.close()
  await removeDir(t.dataDir)
  removeTempDirs()
})

test('with client certificates required, a TLS login without one is refused (auth.cert_untrusted); with one it works', async () => {
  const cred = await provision(t, 'acme', 'self::pw-only', 'controller')
  const code = await refusedTls(t, { root, v: 5, username: cred.username, password: cred.secret })
  assert.notEqual(typeof code, 'number')
  const ev = await waitForEvent(t, { code: 'auth.cert_untrusted', action: 'connect' })
  assert.match(ev.reason ?? '', /no client certificate/)
  const cert = await issueCert(t, 'acme', 'os::00256D-0Q01')
  const c = await connectTls(t, { root, identity: cert, v: 5 })
  await closeClient(c)
})

test('uspgate cert issue --out writes certificate, key and chain with mode 0600; list, revoke, trust-bundle, import-ca and errors work', async () => {
  const out = join(await mkdtemp(join(tmpdir(), 'uspgate-cli-certs-')), 'device')
  const issued = await cli('cert', 'issue', 'acme', 'os::00256D-0CL1', '--role', 'agent', '--out', out)
  assert.equal(issued.code, 0, issued.stderr)
  assert.match(issued.stdout, /certificate [0-9a-f]+ for acme:os::00256D-0CL1, valid until /)
  const files = { cert: join(out, 'os__00256D-0CL1.crt.pem'), key: join(out, 'os__00256D-0CL1.key.pem'), chain: join(out, 'os__00256D-0CL1.chain.pem') }
  for (const f of Object.values(files)) assert.equal((await stat(f)).mode & 0o777, 0o600, f)
  assert.ok(!issued.stdout.includes('PRIVATE KEY'), 'with --out the key goes to the file only')
  const identity = { cert: await readFile(files.cert, 'utf8'), key: await readFile(files.key, 'utf8') }
  const c = await connectTls(t, { root, identity, v: 4 })
  await closeClient(c)
  // never overwrites a key on disk
  const again = await cli('cert', 'issue', 'acme', 'os::00256D-0CL1', '--role', 'agent', '--out', out)
  assert.equal(again.code, 2)
  assert.match(again.stderr, /already exists; not overwriting/)

  const serial = /certificate ([0-9a-f]+) for/.exec(issued.stdout)![1]!
  const list = await cli('cert', 'list', 'acme')
  assert.match(list.stdout, new RegExp(`${serial} +os::00256D-0CL1 +agent +\\S+ +false`))
  const revoked = await cli('cert', 'revoke', 'acme', serial, '--reason', 'keyCompromise')
  assert.equal(revoked.code, 0, revoked.stderr)
  assert.match(revoked.stdout, new RegExp(`revoked certificate ${serial} of tenant acme \\(keyCompromise\\); 0 live session\\(s\\) disconnected`))

  const bundle = await cli('cert', 'trust-bundle')
  assert.equal(bundle.stdout, root)

  const dir = tempDir()
  const vendor = opensslCa(dir, 'cli-vendor', '/O=CLI Vendor/CN=CLI Vendor CA')
  const imported = await cli('cert', 'import-ca', 'acme', vendor.certFile)
  assert.equal(imported.code, 0, imported.stderr)
  assert.match(imported.stdout, /tenant acme now trusts CA "O=CLI Vendor, CN=CLI Vendor CA" \(SHA-256 [0-9a-f]{64}/)
  const device = opensslIssue(dir, 'cli-vendor-dev', { caCertFile: vendor.certFile, caKeyFile: vendor.keyFile, subject: '/CN=oui:00D09E:CLI1', sanUri: 'urn:bbf:usp:id:oui:00D09E:CLI1' })
  const v = await connectTls(t, { root, identity: { cert: await readFile(device.certFile, 'utf8'), key: await readFile(device.keyFile, 'utf8') }, v: 5 })
  await closeClient(v)

  const unknown = await cli('cert', 'ca', 'nope')
  assert.equal(unknown.code, 2)
  assert.match(unknown.stderr, /^uspgate: 404 tenant not found/)
})

test('MQTTS settings: defaults, off, client-certificate mode, server SANs and the master key are validated up front', () => {
  const d = loadConfig({}, {})
  assert.deepEqual(d.mqtts, { host: '127.0.0.1', port: 8883, clientCert: 'optional' })
  assert.deepEqual(d.serverSans, ['localhost', '127.0.0.1'])
  assert.equal(d.pkiMasterKey, undefined)
  assert.equal(loadConfig({}, { USPGATE_MQTTS_PORT: 'off' }).mqtts, undefined)
  const c = loadConfig({ 'mqtts-port': '9883', 'mqtts-client-cert': 'required' }, { USPGATE_MQTTS_HOST: '0.0.0.0', USPGATE_SERVER_SANS: 'mqtt.example.net, 192.0.2.10', USPGATE_PKI_MASTER_KEY: 'k'.repeat(32) })
  assert.deepEqual(c.mqtts, { host: '0.0.0.0', port: 9883, clientCert: 'required' })
  assert.deepEqual(c.serverSans, ['mqtt.example.net', '192.0.2.10'])
  assert.equal(c.pkiMasterKey, 'k'.repeat(32))
  for (const [env, value, pattern] of [
    ['USPGATE_MQTTS_CLIENT_CERT', 'sometimes', /invalid setting USPGATE_MQTTS_CLIENT_CERT: "sometimes" is not one of required, optional/],
    ['USPGATE_MQTTS_PORT', '70000', /invalid setting USPGATE_MQTTS_PORT: 70000 is above 65535/],
    ['USPGATE_SERVER_SANS', 'ok.example, bad_name!', /invalid setting USPGATE_SERVER_SANS: "bad_name!" is not a DNS name or IP address/],
    ['USPGATE_PKI_MASTER_KEY', 'short', /invalid setting USPGATE_PKI_MASTER_KEY: must be at least 16 characters/]
  ] as const) {
    assert.throws(() => loadConfig({}, { [env]: value }), (err: unknown) => err instanceof ConfigError && pattern.test(err.message))
  }
})

test('the PKI is created fast on first start, reused on restart, and a wrong master key stops start-up naming the setting', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'uspgate-pki-'))
  const config = { ...loadConfig({}, { USPGATE_DATA_DIR: dataDir, USPGATE_MQTT_PORT: '0', USPGATE_ADMIN_PORT: '0', USPGATE_MQTTS_PORT: '0', USPGATE_LOG_LEVEL: 'silent', USPGATE_ADMIN_TOKEN: t.token }) }
  const started = Date.now()
  const first = new Gateway(config, { printAdminToken: false })
  await first.start()
  const elapsed = Date.now() - started
  assert.ok(elapsed < 10_000, `first start with a new PKI took ${elapsed} ms`)
  assert.equal((await stat(join(dataDir, 'pki-master-key'))).mode & 0o777, 0o600)
  const rootPem = await first.certificates.trustBundlePem()
  await first.close()
  const second = new Gateway(config, { printAdminToken: false })
  await second.start()
  assert.equal(await second.certificates.trustBundlePem(), rootPem, 'the same root after a restart')
  await second.close()
  const wrong = new Gateway({ ...config, pkiMasterKey: 'a-different-master-key-0123456789' }, { printAdminToken: false })
  await assert.rejects(wrong.start(), (err: unknown) => err instanceof ConfigError && /^invalid setting USPGATE_PKI_MASTER_KEY: cannot decrypt/.test(err.message))
  await wrong.close()
  await removeDir(dataDir)
})
