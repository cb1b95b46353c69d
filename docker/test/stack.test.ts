// The container deliverables for real, with podman on this machine kind (`npm run test:containers`,
// run by .ci/run): local stand-in base images (no registry here), the gateway image built from
// docker/Dockerfile, and docker/compose.yml brought up with podman-compose (Grafana left out: it cannot
// run here). Checks: both nodes ready, an MQTT client on node 1 reaches one on node 2, Prometheus scrapes
// both nodes and loaded the rules, the image healthcheck answers, the image runs node under tini as a
// non-root user, and SIGTERM to a node ends it within its drain time with MQTT 5 clients getting
// DISCONNECT 0x8B. Everything it created (containers, network, volumes, secrets) is removed after.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import { freePort } from '../../test/helpers/redis.ts'

const REPO = join(import.meta.dirname, '..', '..')
const DOCKER = join(REPO, 'docker')
const PROJECT = `uspgate-ci-${process.pid}`
const IMAGE = 'localhost/uspgate:ci'
const LOCAL = 'localhost/uspgate-local'
const DRAIN_SECONDS = 10
const COMPOSE = process.env.PODMAN_COMPOSE ?? join(REPO, '.ci', 'bin', 'compose-venv', 'bin', 'podman-compose')

const env: NodeJS.ProcessEnv = {
  ...process.env,
  CONTAINERS_CONF: join(DOCKER, 'local-images', 'containers.conf'),
  USPGATE_IMAGE: IMAGE,
  REDIS_IMAGE: `${LOCAL}/redis:bookworm`,
  PROMETHEUS_IMAGE: `${LOCAL}/prometheus:bookworm`,
  // this machine's hard limits (20,000 open files)
  USPGATE_NOFILE: '20000',
  USPGATE_NPROC: '4096'
}
const ports: Record<string, number> = {}
let secrets = ''

/** Runs a command; rejects with its output when it fails (a missing tool says how to install it). */
function run (cmd: string, args: string[], timeoutMs = 600_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', d => { out += d })
    child.stderr.on('data', d => { out += d })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('error', err => {
      clearTimeout(timer)
      reject((err as NodeJS.ErrnoException).code === 'ENOENT' ? new Error(`${cmd} is not installed: run \`bash .ci/install-deps.sh\``) : err)
    })
    child.once('exit', code => {
      clearTimeout(timer)
      if (code === 0) resolve(out)
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${String(code)}:\n${out.slice(-4000)}`))
    })
  })
}

const compose = (...args: string[]): Promise<string> => run(COMPOSE, ['-p', PROJECT, '-f', join(DOCKER, 'compose.yml'), ...args])
const container = (service: string): string => `${PROJECT}_${service}_1`

async function poll<T> (what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try { const v = await fn(); if (v !== undefined) return v } catch (err) { last = err }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`)
    await new Promise(resolve => setTimeout(resolve, 500))
  }
}

async function getJson (url: string, headers: Record<string, string> = {}): Promise<any> {
  const res = await fetch(url, { headers })
  if (!res.ok) throw new Error(`${url}: ${res.status}`)
  return await res.json()
}

before(async () => {
  for (const name of ['NODE1_MQTT_PORT', 'NODE1_MQTTS_PORT', 'NODE1_ADMIN_PORT', 'NODE1_PROBE_PORT', 'NODE2_MQTT_PORT', 'NODE2_MQTTS_PORT', 'NODE2_ADMIN_PORT', 'NODE2_PROBE_PORT', 'PROMETHEUS_PORT']) {
    ports[name] = await freePort()
    env[name] = String(ports[name])
  }
  secrets = await mkdtemp(join(tmpdir(), 'uspgate-secrets-'))
  env.SECRETS_DIR = secrets
  await run('bash', [join(DOCKER, 'make-secrets.sh'), secrets])
})

after(async () => {
  await compose('down', '-v').catch(err => console.error(String(err)))
  if (secrets) await rm(secrets, { recursive: true, force: true })
})

test('local base images and the gateway image build with podman (Dockerfile, BASE = the local Node 22 image)', async () => {
  await run('bash', [join(DOCKER, 'local-images', 'build.sh')], 1_200_000)
  await run('podman', ['build', '--format', 'docker', '--network', 'host', '-f', join(DOCKER, 'Dockerfile'), '--build-arg', `BASE=${LOCAL}/node:22-bookworm-slim`, '-t', IMAGE, REPO], 1_200_000)
  const image = JSON.parse(await run('podman', ['image', 'inspect', IMAGE]))[0] as { Config: { User: string, Entrypoint: string[], Volumes: Record<string, unknown> }, Healthcheck?: { Test: string[] } }
  assert.equal(image.Config.User, 'node')
  assert.deepEqual(image.Config.Entrypoint, ['tini', '--', 'node', '--max-semi-space-size=32', 'dist/bin/uspgate.js'])
  assert.ok('/data' in image.Config.Volumes)
  assert.match(image.Healthcheck?.Test.join(' ') ?? '', /\/readyz/)
})

test('compose: both nodes become ready on Redis; node as PID 1\'s child under tini, non-root', async () => {
  await compose('up', '-d', 'redis', 'node1', 'node2', 'prometheus')
  for (const probe of [ports.NODE1_PROBE_PORT, ports.NODE2_PROBE_PORT]) {
    const r = await poll(`readyz on ${probe}`, 120_000, async () => {
      const res = await fetch(`http://127.0.0.1:${probe}/readyz`)
      return res.status === 200 ? await res.json() as { node: string } : undefined
    })
    assert.match(r.node, /^node[12]$/)
  }
  assert.equal((await run('podman', ['exec', container('node1'), 'cat', '/proc/1/comm'])).trim(), 'tini')
  assert.equal((await run('podman', ['exec', container('node1'), 'id', '-un'])).trim(), 'node')
  // the image's HEALTHCHECK (podman runs it on demand here: no systemd timers on this machine)
  await run('podman', ['healthcheck', 'run', container('node2')])
})

test('an MQTT client on node 1 reaches one on node 2 (Redis routing), provisioned through node 1\'s admin API', async () => {
  const token = /^USPGATE_ADMIN_TOKEN=(.+)$/m.exec(await readFile(join(secrets, 'gateway.env'), 'utf8'))![1]!
  const api = async (method: string, path: string, body: unknown): Promise<any> => {
    const res = await fetch(`http://127.0.0.1:${ports.NODE1_ADMIN_PORT}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    assert.equal(res.status, 201, await res.clone().text())
    return await res.json()
  }
  await api('POST', '/v1/tenants', { id: 'acme' })
  const agent = await api('POST', '/v1/tenants/acme/credentials', { principal: 'os::00256D-0001', role: 'agent' })
  const controller = await api('POST', '/v1/tenants/acme/credentials', { principal: 'ctl-1', role: 'controller' })
  const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${ports.NODE2_MQTT_PORT}`, { protocolVersion: 5, username: controller.username, password: controller.secret, reconnectPeriod: 0 })
  await sub.subscribeAsync('acme/bulkdata/#', { qos: 1 })
  const got = new Promise<string>(resolve => sub.on('message', (topic, payload) => resolve(`${topic} ${payload.toString()}`)))
  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${ports.NODE1_MQTT_PORT}`, { protocolVersion: 5, username: agent.username, password: agent.secret, reconnectPeriod: 0 })
  await pub.publishAsync('acme/bulkdata/os::00256D-0001/wifi', 'rssi=-51', { qos: 1 })
  assert.equal(await Promise.race([got, new Promise<string>(resolve => setTimeout(() => resolve('nothing within 20 s'), 20_000).unref())]), 'acme/bulkdata/os::00256D-0001/wifi rssi=-51')
  await pub.endAsync()
  await sub.endAsync()
})

test('Prometheus scrapes both nodes and has the alert and recording rules loaded', async () => {
  const base = `http://127.0.0.1:${ports.PROMETHEUS_PORT}`
  const targets = await poll('both targets up', 90_000, async () => {
    const t = (await getJson(`${base}/api/v1/targets`)).data.activeTargets as Array<{ labels: { instance: string }, health: string }>
    return t.length === 2 && t.every(x => x.health === 'up') ? t.map(x => x.labels.instance).sort() : undefined
  })
  assert.deepEqual(targets, ['node1:9464', 'node2:9464'])
  const groups = (await getJson(`${base}/api/v1/rules`)).data.groups as Array<{ name: string, rules: Array<{ name: string, type: string }> }>
  const alerts = groups.flatMap(g => g.rules).filter(r => r.type === 'alerting').map(r => r.name)
  const committed = [...(await readFile(join(REPO, 'dashboards', 'prometheus', 'alerts.yml'), 'utf8')).matchAll(/- alert: (\S+)/g)].map(m => m[1])
  assert.deepEqual(alerts.sort(), committed.sort())
  assert.ok(groups.some(g => g.name === 'uspgate-recording' && g.rules.length > 0))
  // and the nodes' series are there under their stable node ids
  const up = await poll('uspgate_build_info of both nodes', 60_000, async () => {
    const r = (await getJson(`${base}/api/v1/query?query=${encodeURIComponent('uspgate_build_info')}`)).data.result as Array<{ metric: { node: string } }>
    return r.length === 2 ? r.map(x => x.metric.node).sort() : undefined
  })
  assert.deepEqual(up, ['node1', 'node2'])
})

test('SIGTERM to a node (podman stop) ends it within the drain time; its MQTT 5 clients get DISCONNECT 0x8B', async () => {
  const token = /^USPGATE_ADMIN_TOKEN=(.+)$/m.exec(await readFile(join(secrets, 'gateway.env'), 'utf8'))![1]!
  const res = await fetch(`http://127.0.0.1:${ports.NODE1_ADMIN_PORT}/v1/tenants/acme/credentials`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ principal: 'os::00256D-0002', role: 'agent' }) })
  const cred = await res.json() as { username: string, secret: string }
  const clients: MqttClient[] = []
  const reasons: Array<Promise<number | undefined>> = []
  for (let i = 0; i < 3; i++) {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${ports.NODE1_MQTT_PORT}`, { protocolVersion: 5, username: cred.username, password: cred.secret, clientId: `drain-${i}`, reconnectPeriod: 0 })
    clients.push(c)
    reasons.push(new Promise(resolve => c.once('disconnect', p => resolve(p.reasonCode))))
  }
  const started = Date.now()
  // podman would SIGKILL after 60 s; the drain must end the process well before, on its own
  await run('podman', ['stop', '-t', '60', container('node1')], 120_000)
  const seconds = (Date.now() - started) / 1000
  assert.deepEqual(await Promise.all(reasons), [0x8b, 0x8b, 0x8b])
  const state = JSON.parse(await run('podman', ['inspect', container('node1')]))[0].State as { ExitCode: number, Status: string }
  assert.equal(state.Status, 'exited')
  assert.equal(state.ExitCode, 0, 'the gateway exits 0 after its drain (137 would mean SIGKILL)')
  assert.ok(seconds < DRAIN_SECONDS + 5, `stopped in ${seconds.toFixed(1)} s, drain time ${DRAIN_SECONDS} s`)
  const logs = await run('podman', ['logs', container('node1')])
  assert.match(logs, /"signal":"SIGTERM"/)
  for (const c of clients) c.end(true)
  // node 2 keeps serving
  assert.equal((await fetch(`http://127.0.0.1:${ports.NODE2_PROBE_PORT}/readyz`)).status, 200)
})
