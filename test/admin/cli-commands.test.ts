// The strict CLI as an operator runs it, against a running gateway: unknown flags and missing values
// are refused with the usage line (and nothing is done), --help per command, events with filters and
// --follow, sessions, endpoints, tenant update / disable / enable, and keys only in 0600 files.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startGateway, provision, connect, closeClient, removeDir, waitFor, type TestGateway } from '../helpers/gateway.ts'

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'uspgate.js')
const AG = 'os::00256D-0C01'
let t: TestGateway
let env: NodeJS.ProcessEnv

before(async () => {
  t = await startGateway()
  env = { ...process.env, USPGATE_ADMIN_URL: t.adminUrl, USPGATE_ADMIN_TOKEN: t.token }
})
after(async () => { await t.close(); await removeDir(t.dataDir) })

async function cli (args: string[], cwd?: string): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, [BIN, ...args], { env, ...(cwd ? { cwd } : {}) })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

test('unknown flags and missing values are refused with the usage line, and nothing is done; --help works per command', async () => {
  await provision(t, 'acme', 'os::00256D-0000', 'agent')
  const typo = await cli(['cert', 'issue', 'acme', AG, '--role', 'agent', '--valid-day', '30'])
  assert.equal(typo.code, 2)
  assert.equal(typo.stdout, '')
  assert.equal(typo.stderr, 'uspgate: unknown flag --valid-day (did you mean --valid-days?)\nusage: uspgate cert issue <tenant> <principal> --role agent|controller [--valid-days N] [--out DIR] [--stdout] [--p12-password-file FILE]\n')
  assert.deepEqual((await t.api('GET', '/v1/tenants/acme/certificates')).body.certificates, [], 'no certificate was issued')

  const missing = await cli(['tenant', 'update', 'acme', '--name'])
  assert.equal(missing.code, 2)
  assert.match(missing.stderr, /^uspgate: --name needs a value\nusage: uspgate tenant update <id> \[--name NAME\]/)
  const swallowed = await cli(['credential', 'issue', 'acme', AG, '--role', '--json'])
  assert.equal(swallowed.code, 2)
  assert.match(swallowed.stderr, /^uspgate: --role needs a value/)
  const extra = await cli(['tenant', 'list', 'surplus'])
  assert.match(extra.stderr, /^uspgate: unexpected argument "surplus"\nusage: uspgate tenant list\n/)
  assert.equal((await t.api('GET', '/v1/tenants/acme/credentials')).body.credentials.length, 1, 'no credential was issued')

  const help = await cli(['cert', 'issue', '--help'])
  assert.equal(help.code, 0)
  assert.match(help.stdout, /^usage: uspgate cert issue <tenant> <principal> --role agent\|controller/)
  assert.match(help.stdout, /\n {2}--stdout +print certificate AND private key as JSON instead of writing files\n/)
  const group = await cli(['events', '-h'])
  assert.match(group.stdout, /--follow +keep printing new events/)
  assert.match((await cli(['policy', '--help'])).stdout, /uspgate policy evaluate <input.json>/)
  assert.match((await cli(['cert', 'nope'])).stderr, /^uspgate: unknown command "uspgate cert nope"\nusage:\n {2}uspgate cert issue/)
})

test('cert issue writes the key only to a 0600 file (current directory by default); --stdout prints it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'uspgate-cli-key-'))
  const issued = await cli(['cert', 'issue', 'acme', AG, '--role', 'agent', '--valid-days', '30'], dir)
  assert.equal(issued.code, 0, issued.stderr)
  assert.ok(!issued.stdout.includes('PRIVATE KEY'))
  assert.match(issued.stdout, new RegExp(`private key: ${dir}/os__00256D-0C01.key.pem \\(mode 0600`))
  assert.deepEqual((await readdir(dir)).sort(), ['os__00256D-0C01.chain.pem', 'os__00256D-0C01.crt.pem', 'os__00256D-0C01.key.pem'])
  for (const f of await readdir(dir)) assert.equal((await stat(join(dir, f))).mode & 0o777, 0o600, f)
  assert.match(await readFile(join(dir, 'os__00256D-0C01.key.pem'), 'utf8'), /^-----BEGIN (EC )?PRIVATE KEY-----/)
  const certs = (await t.api('GET', '/v1/tenants/acme/certificates')).body.certificates
  const days = (Date.parse(certs[0].notAfter) - Date.now()) / 86_400_000
  assert.ok(days > 29 && days <= 30.01, `valid ${days} days`)

  const out = await cli(['cert', 'issue', 'acme', 'os::00256D-0C02', '--role', 'agent', '--stdout'])
  assert.equal(out.code, 0, out.stderr)
  assert.match(JSON.parse(out.stdout).keyPem, /PRIVATE KEY/)
  assert.match((await cli(['cert', 'issue', 'acme', 'os::00256D-0C03', '--role', 'agent', '--stdout', '--out', dir])).stderr, /--out and --stdout exclude each other/)
})

test('tenant update / disable / enable, sessions and endpoints from the CLI', async () => {
  const cred = await provision(t, 'acme', 'os::00256D-0C10', 'agent')
  const c = await connect(t, { v: 5, username: cred.username, password: cred.secret, clientId: 'cli-router' })
  const sessions = await cli(['sessions', '--tenant', 'acme'])
  assert.equal(sessions.code, 0, sessions.stderr)
  assert.match(sessions.stdout, /^tenant +principal +role +clientId/)
  assert.match(sessions.stdout, /\nacme +os::00256D-0C10 +agent +cli-router +mqtt5 +mqtt +password +127\.0\.0\.1 /)
  const eps = await cli(['endpoints', 'acme'])
  assert.match(eps.stdout, /\nos::00256D-0C10 +agent +true +\S+ /)
  const one = JSON.parse((await cli(['endpoints', 'acme', 'os::00256D-0C10', '--json'])).stdout)
  assert.deepEqual([one.endpointId, one.online], ['os::00256D-0C10', true])

  const upd = await cli(['tenant', 'update', 'acme', '--name', 'ACME Telecom', '--inspection', 'observe'])
  assert.equal(upd.code, 0, upd.stderr)
  assert.equal(upd.stdout, 'tenant acme updated: name "ACME Telecom", inspection observe, audit envelope\n')
  assert.match((await cli(['tenant', 'update', 'acme', '--inspection', 'maybe'])).stderr, /--inspection must be one of enforce, observe, off/)

  const closed = new Promise<void>(resolve => c.once('close', () => resolve()))
  const dis = await cli(['tenant', 'disable', 'acme'])
  assert.equal(dis.code, 0, dis.stderr)
  assert.equal(dis.stdout, 'tenant acme disabled; 1 live session(s) disconnected, new CONNECTs are refused\n')
  await closed
  assert.match((await cli(['tenant', 'list'])).stdout, /\nacme +ACME Telecom +disabled /)
  assert.equal((await cli(['tenant', 'enable', 'acme'])).stdout, 'tenant acme enabled\n')
  const again = await connect(t, { v: 5, username: cred.username, password: cred.secret })
  await closeClient(again)
})

test('events: several codes, severity threshold, since/until, paging past 1000, and --follow', async () => {
  const follow = spawn(process.execPath, [BIN, 'events', '--follow', '--code', 'tenant.,auth.tenant_disabled', '--limit', '1', '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let followed = ''
  follow.stdout.on('data', d => { followed += d.toString() })
  try {
    // past the newest 1,000: 1,200 admin audit records (never flood-suppressed)
    const from = new Date().toISOString()
    for (let i = 0; i < 1200; i++) t.gw.events.record({ code: 'admin.action', actor: 'tok-cli-paging', action: 'test.paging', reason: String(i) })
    const paged = await cli(['events', '--actor', 'tok-cli-paging', '--limit', '1500', '--json'])
    const events = JSON.parse(paged.stdout).events as Array<{ reason: string }>
    assert.equal(events.length, 1200)
    assert.deepEqual(events.map(e => Number(e.reason)), Array.from({ length: 1200 }, (_, i) => 1199 - i))

    await waitFor(() => followed.length > 0, 30_000, '--follow to print the newest matching event')
    await t.api('PATCH', '/v1/tenants/acme', { disabled: true })
    await t.api('PATCH', '/v1/tenants/acme', { disabled: false })
    const several = await cli(['events', '--code', 'tenant.disabled,tenant.enabled', '--since', from])
    assert.equal(several.code, 0, several.stderr)
    const lines = several.stdout.trim().split('\n')
    assert.equal(lines.length, 2)
    assert.match(lines[0]!, /^\S+Z warning +tenant\.disabled tenant="acme" .*actor="bootstrap"/)
    assert.match(lines[1]!, /^\S+Z info +tenant\.enabled tenant="acme"/)
    const warnings = JSON.parse((await cli(['events', '--code', 'tenant.', '--min-severity', 'warning', '--since', from, '--json'])).stdout).events
    assert.deepEqual(warnings.map((e: { code: string }) => e.code), ['tenant.disabled'])
    const infos = JSON.parse((await cli(['events', '--code', 'tenant.,admin.action', '--severity', 'info', '--actor', 'bootstrap', '--since', from, '--json'])).stdout).events
    assert.ok(infos.length > 0 && infos.every((e: { severity: string }) => e.severity === 'info'))
    assert.ok(infos.some((e: { code: string }) => e.code === 'tenant.enabled'))
    const until = JSON.parse((await cli(['events', '--actor', 'tok-cli-paging', '--until', from, '--json'])).stdout).events
    assert.deepEqual(until, [])
    assert.match((await cli(['events', '--since', 'yesterday'])).stderr, /--since must be an ISO time .* or a duration before now/)

    // --follow printed the two tenant events as they happened (after the newest one it started with,
    // which is the previous test's tenant.enabled: wait for the one made here, not that one)
    // complete lines only: a chunk may end inside one
    const printed = (): Array<{ code: string, time: string }> => followed.split('\n').slice(0, -1).map(l => JSON.parse(l) as { code: string, time: string })
    await waitFor(() => printed().some(e => e.code === 'tenant.enabled' && e.time >= from), 20_000, 'followed events')
    const seen = printed()
    assert.ok(seen[0]!.time < from, 'the first line is the newest matching event from before --follow started')
    assert.deepEqual(seen.filter(e => e.time >= from).map(e => e.code), ['tenant.disabled', 'tenant.enabled'])
  } finally {
    follow.kill('SIGINT')
  }
})
