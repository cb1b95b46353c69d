// The CLI as a user runs it: `uspgate start` as a real process, admin commands
// finding the API from the data dir, SIGTERM, and bad settings.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFile } from 'node:child_process'
import { mkdtemp, readFile, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { removeDir, waitFor } from '../helpers/gateway.ts'

const run = promisify(execFile)
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'uspgate.js')

async function cli (dataDir: string, ...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const r = await run(process.execPath, [BIN, ...args], { env: { ...process.env, USPGATE_DATA_DIR: dataDir, USPGATE_ADMIN_TOKEN: '', USPGATE_ADMIN_URL: '' } })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

test('invalid settings stop start-up with one line naming the setting', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'uspgate-cli-'))
  for (const [env, name] of [['USPGATE_MQTT_PORT', 'USPGATE_MQTT_PORT'], ['USPGATE_ADMIN_PORT', 'USPGATE_ADMIN_PORT'], ['USPGATE_ADMIN_TOKEN', 'USPGATE_ADMIN_TOKEN']] as const) {
    const r = await run(process.execPath, [BIN, 'start'], { env: { ...process.env, USPGATE_DATA_DIR: dir, [env]: 'not-valid-70000' } }).catch(e => e as { code: number, stderr: string })
    assert.equal((r as { code: number }).code, 2)
    const lines = (r as { stderr: string }).stderr.trim().split('\n')
    assert.equal(lines.length, 1)
    assert.match(lines[0]!, new RegExp(`^uspgate: invalid setting ${name}: `))
  }
  const flag = await cli(dir, 'start', '--mqtt-port', '99999')
  assert.equal(flag.code, 2)
  assert.match(flag.stderr, /invalid setting --mqtt-port: 99999 is above 65535/)
  await removeDir(dir)
})

test('start, manage tenants and credentials from the CLI, then SIGTERM shuts down cleanly', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'uspgate-cli-'))
  const child = spawn(process.execPath, [BIN, 'start', '--mqtt-port', '0', '--mqtts-port', '0', '--admin-port', '0', '--log-level', 'warn'], {
    env: { ...process.env, USPGATE_DATA_DIR: dir, USPGATE_ADMIN_TOKEN: '' }, stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  child.stdout.on('data', d => { out += d })
  child.stderr.on('data', d => { out += d })
  await waitFor(() => out.includes('uspgate ready'), 60_000, 'gateway start')
  // the generated admin token is printed once and stored 0600
  const token = (await readFile(join(dir, 'admin-token'), 'utf8')).trim()
  assert.ok(out.includes(token))
  assert.equal((await stat(join(dir, 'admin-token'))).mode & 0o777, 0o600)

  assert.deepEqual(await cli(dir, 'tenant', 'add', 'acme', '--name', 'ACME ISP'), { code: 0, stdout: 'tenant acme created\n', stderr: '' })
  const list = await cli(dir, 'tenant', 'list', '--json')
  assert.equal(JSON.parse(list.stdout).tenants[0].name, 'ACME ISP')
  const issued = await cli(dir, 'credential', 'issue', 'acme', 'os::00256D-0001', '--role', 'agent')
  assert.equal(issued.code, 0)
  assert.match(issued.stdout, /username: acme:os::00256D-0001\nsecret: +usg_/)
  const creds = await cli(dir, 'credential', 'list', 'acme')
  assert.match(creds.stdout, /acme:os::00256D-0001 +agent/)
  assert.ok(!creds.stdout.includes('usg_'))
  const revoked = await cli(dir, 'credential', 'revoke', 'acme', 'os::00256D-0001')
  assert.match(revoked.stdout, /revoked acme:os::00256D-0001; 0 live session\(s\) disconnected/)
  const dup = await cli(dir, 'tenant', 'add', 'acme')
  assert.equal(dup.code, 2)
  assert.match(dup.stderr, /^uspgate: 409 conflict: tenant acme already exists/)
  const bad = await cli(dir, 'credential', 'issue', 'acme', 'x')
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /--role agent\|controller is required/)

  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  child.kill('SIGTERM')
  assert.equal(await exited, 0)
  // a second start reuses the stored token and does not print it again
  const again = spawn(process.execPath, [BIN, 'start', '--mqtt-port', '0', '--mqtts-port', '0', '--admin-port', '0', '--log-level', 'warn'], { env: { ...process.env, USPGATE_DATA_DIR: dir, USPGATE_ADMIN_TOKEN: '' } })
  let out2 = ''
  again.stdout.on('data', d => { out2 += d })
  await waitFor(() => out2.includes('uspgate ready'), 60_000, 'second start')
  assert.ok(!out2.includes(token))
  assert.match((await cli(dir, 'tenant', 'list')).stdout, /acme +ACME ISP/)
  const exited2 = new Promise<number | null>(resolve => again.once('exit', code => resolve(code)))
  again.kill('SIGTERM')
  assert.equal(await exited2, 0)
  await removeDir(dir)
})

test('admin commands without a reachable gateway say so clearly', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'uspgate-cli-'))
  const r = await cli(dir, 'tenant', 'list')
  assert.equal(r.code, 2)
  assert.match(r.stderr, /cannot find the admin API/)
  await removeDir(dir)
})
