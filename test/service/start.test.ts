// The gateway as a service: `npm run build` compiles it to dist/, the compiled CLI answers without
// loading the broker, and SIGTERM to the README's start command (`npm start`) stops the gateway
// itself (not only npm), telling MQTT 5 clients why (DISCONNECT 0x8B) before it exits.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile } from 'node:fs/promises'
import { connect as netConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import mqtt from 'mqtt'
import { removeDir, waitFor } from '../helpers/gateway.ts'
// the one reader of npm start's node flags (the benches start the gateway with them too)
import { shippedGatewayNodeFlags } from '../../bench/brokers.ts'

const run = promisify(execFile)
const REPO = join(import.meta.dirname, '..', '..')
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm'

/** A process's descendants and their command lines (Linux /proc: every process's parent is in its stat). */
async function descendants (root: number): Promise<Array<{ pid: number, cmd: string }>> {
  const parentOf = new Map<number, number>()
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '')
    if (stat !== '') parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]))
  }
  const isDescendant = (pid: number): boolean => {
    for (let p = parentOf.get(pid); p !== undefined && p > 1; p = parentOf.get(p)) if (p === root) return true
    return false
  }
  const out: Array<{ pid: number, cmd: string }> = []
  for (const pid of parentOf.keys()) {
    if (!isDescendant(pid)) continue
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
    if (cmd !== '') out.push({ pid, cmd: cmd.split('\0').filter(a => a !== '').join(' ') })
  }
  return out
}

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

test('npm start and the container image run the gateway with the same node flags', async () => {
  const startFlags = shippedGatewayNodeFlags()
  const dockerfile = await readFile(join(REPO, 'docker', 'Dockerfile'), 'utf8')
  const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1] ?? 'null') as string[] | null
  assert.ok(startFlags.length > 0, `npm start passes node flags: ${startFlags.join(' ')}`)
  assert.deepEqual(entrypoint, ['tini', '--', 'node', ...startFlags, 'dist/bin/uspgate.js'])
})

test('SIGTERM to `npm start` stops the gateway: MQTT 5 clients get DISCONNECT 0x8B, the ports close, npm exits', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'uspgate-npm-start-'))
  const env = { ...process.env, USPGATE_DATA_DIR: dir, USPGATE_ADMIN_TOKEN: '', USPGATE_ADMIN_URL: '', USPGATE_LOG_LEVEL: 'warn' }
  const npm = spawn(NPM, ['start', '--silent', '--', '--mqtt-port', '0', '--admin-port', '0', '--mqtts-port', 'off'], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  npm.stdout.on('data', d => { out += d })
  npm.stderr.on('data', d => { out += d })
  const exited = new Promise<number | string | null>(resolve => npm.once('exit', (code, signal) => resolve(code ?? signal)))
  // a failed assertion must not leave the gateway running (and the test file waiting for it)
  t.after(async () => {
    if (npm.exitCode !== null || npm.signalCode !== null) return
    for (const p of await descendants(npm.pid!)) process.kill(p.pid, 'SIGKILL')
    npm.kill('SIGKILL')
  })
  const ready = await waitFor(() => /uspgate ready: MQTT on [^\s,]+:(\d+), admin API on http:\/\/[^:]+:(\d+)/.exec(out) ?? undefined, 90_000, `npm start (output so far: ${out})`)
  const mqttPort = Number(ready[1])
  const adminPort = Number(ready[2])
  // the gateway process runs with the node flags the container image uses too (README "Runtime flags")
  const gateway = (await descendants(npm.pid!)).filter(p => p.cmd.includes('dist/bin/uspgate.js start'))
  assert.equal(gateway.length, 1, `one gateway process under npm start: ${JSON.stringify(gateway)}`)
  assert.match(gateway[0]!.cmd, / --max-semi-space-size=32 /)

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
