// The CLI for factories: cert sign-csr (the device keeps its key), cert issue with a PKCS#12 bundle
// (password from a file, never argv), and credential import with results (secrets) in a 0600 file.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startGateway, connect, closeClient, removeDir, type TestGateway } from '../helpers/gateway.ts'

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'uspgate.js')
const run = promisify(execFile)
let t: TestGateway
let env: NodeJS.ProcessEnv
let dir: string

before(async () => {
  t = await startGateway({ mtls: true })
  env = { ...process.env, USPGATE_ADMIN_URL: t.adminUrl, USPGATE_ADMIN_TOKEN: t.token }
  dir = await mkdtemp(join(tmpdir(), 'uspgate-cli-pki-'))
  assert.equal((await t.api('POST', '/v1/tenants', { id: 'acme' })).status, 201)
})
after(async () => { await t.close(); await removeDir(t.dataDir); await removeDir(dir) })

async function cli (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const r = await run(process.execPath, [BIN, ...args], { env, cwd: dir })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}
const mode = async (f: string): Promise<number> => (await stat(f)).mode & 0o777

test('cert sign-csr: certificate and chain files for the device\'s own key; a CSR naming another endpoint is refused', async () => {
  const key = join(dir, 'dev.key')
  const csr = join(dir, 'dev.csr')
  await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', '/CN=os::00256D-CLI1', '-out', csr])
  const r = await cli(['cert', 'sign-csr', 'acme', 'os::00256D-CLI1', '--role', 'agent', '--csr', csr, '--out', join(dir, 'signed')])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /certificate [0-9a-f]+ for acme:os::00256D-CLI1/)
  const cert = join(dir, 'signed', 'os__00256D-CLI1.crt.pem')
  const certKey = (await run('openssl', ['x509', '-in', cert, '-noout', '-pubkey'])).stdout
  const ownKey = (await run('openssl', ['pkey', '-in', key, '-pubout'])).stdout
  assert.equal(certKey, ownKey)
  const other = await cli(['cert', 'sign-csr', 'acme', 'os::00256D-CLI2', '--role', 'agent', '--csr', csr, '--out', join(dir, 'other')])
  assert.notEqual(other.code, 0)
  assert.match(other.stderr, /names endpoint "os::00256D-CLI1"/)
})

test('cert issue --p12-password-file: a 0600 .p12 openssl opens with that password', async () => {
  const pw = join(dir, 'p12.pw')
  await writeFile(pw, 'factory-secret-2\n', { mode: 0o600 })
  const r = await cli(['cert', 'issue', 'acme', 'os::00256D-CLI3', '--role', 'agent', '--out', join(dir, 'p12'), '--p12-password-file', pw])
  assert.equal(r.code, 0, r.stderr)
  const p12 = join(dir, 'p12', 'os__00256D-CLI3.p12')
  assert.equal(await mode(p12), 0o600)
  const opened = await run('openssl', ['pkcs12', '-in', p12, '-passin', 'pass:factory-secret-2', '-nokeys'])
  assert.match(opened.stdout, /BEGIN CERTIFICATE/)
  // the password never appears in the output
  assert.doesNotMatch(r.stdout + r.stderr, /factory-secret-2/)
  await writeFile(join(dir, 'short.pw'), 'short')
  const short = await cli(['cert', 'issue', 'acme', 'os::00256D-CLI4', '--role', 'agent', '--out', join(dir, 'p12b'), '--p12-password-file', join(dir, 'short.pw')])
  assert.notEqual(short.code, 0)
  assert.match(short.stderr, /at least 8 characters/)
  assert.equal((await t.api('GET', '/v1/tenants/acme/certificates')).body.certificates.some((c: { principal: string }) => c.principal === 'os::00256D-CLI4'), false, 'nothing issued')
})

test('credential import: NDJSON in, results with secrets in a new 0600 file, summary and failed rows on the terminal', async () => {
  const rows = [
    { principal: 'os::00256D-CLIM1', role: 'agent' },
    { principal: 'os::00256D-CLIM2', role: 'agent' },
    { principal: 'bad one', role: 'agent' }
  ]
  const input = join(dir, 'fleet.ndjson')
  await writeFile(input, rows.map(r => JSON.stringify(r)).join('\n') + '\n')
  const out = join(dir, 'fleet-results.ndjson')
  const r = await cli(['credential', 'import', 'acme', input, '--out', out])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /3 rows: 2 created, 0 skipped, 1 failed/)
  assert.match(r.stdout, /row 3: principal must be/)
  assert.doesNotMatch(r.stdout, /usg_/, 'secrets only in the results file')
  assert.equal(await mode(out), 0o600)
  const results = (await readFile(out, 'utf8')).trim().split('\n').map(l => JSON.parse(l) as { principal: string, secret?: string })
  const c = await connect(t, { v: 5, username: `acme:${results[0]!.principal}`, password: results[0]!.secret! })
  await closeClient(c)
  // the results file is never overwritten; a refused import leaves no file behind
  assert.match((await cli(['credential', 'import', 'acme', input, '--out', out])).stderr, /must not exist yet/)
  const missingTenant = join(dir, 'none.ndjson')
  assert.notEqual((await cli(['credential', 'import', 'nosuch', input, '--out', missingTenant])).code, 0)
  await assert.rejects(stat(missingTenant))
  // a JSON array works too, and re-importing skips
  const again = join(dir, 'again.ndjson')
  await writeFile(join(dir, 'fleet.json'), JSON.stringify(rows.slice(0, 2)))
  const r2 = await cli(['credential', 'import', 'acme', join(dir, 'fleet.json'), '--out', again])
  assert.match(r2.stdout, /2 rows: 0 created, 2 skipped, 0 failed/)
})
