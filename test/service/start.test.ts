// The gateway as a service: `npm run build` compiles it to dist/, the compiled CLI answers without
// loading the broker, and SIGTERM to the README's start command (`npm start`) stops the gateway
// itself (not only npm), telling MQTT 5 clients why (DISCONNECT 0x8B) before it exits.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile } from 'node:fs/promises'
import { connect as netConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import mqtt from 'mqtt'
import { removeDir, waitFor } from '../helpers/gateway.ts'

const run = promisify(execFile)
const REPO = join(import.meta.dirname, '..', '..')
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm'

/** Resolves true when something accepts TCP connections on the port, false when refused. */
function listening (port: number): Promise<boolean> {
  return new Promise(resolve => {
    const s = netConnect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

test('npm run build (run by npm test before the suite) compiles to dist/; the compiled CLI runs without TypeScript', async () => {
  // `--if-stale`: builds only when the sources changed since the last build (as `npm start` does), so this
  // test never swaps dist/ under the other CLI tests running beside it after `npm test` built it
  await run(process.execPath, [join(REPO, 'scripts', 'build.mjs'), '--if-stale'], { cwd: REPO })
  for (const f of ['bin/uspgate.js', 'broker/gateway.js', 'policies/bundle/bundle.tar.gz', 'policies/golden.json', 'package.json']) {
    assert.ok(existsSync(join(REPO, 'dist', f)), `dist/${f} missing`)
  }
  // plain node, no tsx loader: every relative import was rewritten to .js
  const help = await run(process.execPath, [join(REPO, 'dist', 'bin', 'uspgate.js'), '--help'])
  assert.match(help.stdout, /^usage:\n {2}uspgate start/)
  const pkg = JSON.parse(await readFile(join(REPO, 'dist', 'package.json'), 'utf8')) as { type: string }
  assert.equal(pkg.type, 'module')
})

test('SIGTERM to `npm start` stops the gateway: MQTT 5 clients get DISCONNECT 0x8B, the ports close, npm exits', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'uspgate-npm-start-'))
  const env = { ...process.env, USPGATE_DATA_DIR: dir, USPGATE_ADMIN_TOKEN: '', USPGATE_ADMIN_URL: '', USPGATE_LOG_LEVEL: 'warn' }
  const npm = spawn(NPM, ['start', '--silent', '--', '--mqtt-port', '0', '--admin-port', '0', '--mqtts-port', 'off'], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  npm.stdout.on('data', d => { out += d })
  npm.stderr.on('data', d => { out += d })
  const exited = new Promise<number | string | null>(resolve => npm.once('exit', (code, signal) => resolve(code ?? signal)))
  const ready = await waitFor(() => /uspgate ready: MQTT on [^\s,]+:(\d+), admin API on http:\/\/[^:]+:(\d+)/.exec(out) ?? undefined, 90_000, `npm start (output so far: ${out})`)
  const mqttPort = Number(ready[1])
  const adminPort = Number(ready[2])

  // the compiled CLI finds the gateway from the data dir
  const cli = (...args: string[]) => run(process.execPath, [join(REPO, 'bin', 'uspgate.js'), ...args], { env })
  await cli('tenant', 'add', 'acme')
  assert.match((await cli('tenant', 'list')).stdout, /acme/)
  const issued = await cli('credential', 'issue', 'acme', 'os::00256D-0001', '--role', 'agent', '--json')
  const { username, secret } = JSON.parse(issued.stdout) as { username: string, secret: string }

  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { protocolVersion: 5, username, password: secret, reconnectPeriod: 0 })
  const disconnect = new Promise<number | undefined>(resolve => client.once('disconnect', p => resolve(p.reasonCode)))
  npm.kill('SIGTERM')
  assert.equal(await disconnect, 0x8b)
  let timer: NodeJS.Timeout | undefined
  const code = await Promise.race([exited, new Promise(resolve => { timer = setTimeout(() => resolve('still running after 30 s'), 30_000) })])
  clearTimeout(timer)
  assert.equal(code, 0, out)
  // the gateway process itself is gone, not only npm: nothing answers on its ports any more
  await waitFor(async () => !(await listening(mqttPort)) && !(await listening(adminPort)), 10_000, 'gateway ports closed')
  client.end(true)
  await removeDir(dir)
})
