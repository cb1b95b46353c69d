// Noisy neighbour: one tenant's client floods the gateway (10k allowed subscriptions, 50k denied
// filters, 5,000 back-to-back QoS 1 publishes, 1,000 failed CONNECTs with fresh client ids) while
// another tenant's agent → controller QoS 1 round trip is measured every 50 ms. The gateway runs in
// its own process (`uspgate start` of the tree given by --repo, default this one), so the numbers of
// an older tree (before the fairness work) and this one come from the same script.
//
//   npx tsx bench/noisy-neighbour.ts [--repo=/path/to/other/checkout] [--phase-ms=6000] [--only=publishes]
//
// --only=<text> runs the idle phase and the flood phases whose name contains <text> (e.g. publishes).
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, connect as netConnect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt, { type MqttClient } from 'mqtt'
import mqttPacket from 'mqtt-packet'

const arg = (name: string, fallback: string): string => process.argv.find(a => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback
const THIS_REPO = fileURLToPath(new URL('..', import.meta.url))
const TOKEN = 'bench-admin-token-0123456789abcdef0123456789'

async function freePort (): Promise<number> {
  return await new Promise(resolve => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)) }) })
}

async function api (url: string, method: string, path: string, body?: unknown): Promise<any> {
  const r = await fetch(url + path, { method, headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
  return await r.json()
}

function rawSocket (port: number): Promise<Socket> {
  return new Promise((resolve, reject) => { const s = netConnect(port, '127.0.0.1', () => resolve(s)); s.on('error', reject) })
}
const encode = (p: Record<string, unknown>): Buffer => mqttPacket.generate(p as any, { protocolVersion: 4 })

async function rawClient (port: number, username: string, password: string, clientId: string): Promise<Socket> {
  const s = await rawSocket(port)
  s.on('error', () => {})
  s.on('data', () => {}) // read and discard answers
  s.write(encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 60, username, password: Buffer.from(password) }))
  await new Promise(r => setTimeout(r, 100))
  return s
}

function percentile (xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(p * s.length))]!
}

/** Runs every flood phase against `uspgate start` of `REPO`; returns the markdown table. */
export async function runNoisyNeighbour (REPO = THIS_REPO, PHASE_MS = 6000, ONLY = ''): Promise<string> {
  const dataDir = await mkdtemp(join(tmpdir(), 'uspgate-noisy-'))
  const mqttPort = await freePort()
  const adminPort = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'bin/uspgate.ts'), 'start'], {
    cwd: REPO,
    env: { ...process.env, USPGATE_DATA_DIR: dataDir, USPGATE_MQTT_PORT: String(mqttPort), USPGATE_ADMIN_PORT: String(adminPort), USPGATE_ADMIN_TOKEN: TOKEN, USPGATE_MQTTS_PORT: 'off', USPGATE_LOG_LEVEL: 'error', USPGATE_ADMIN_TOKEN_RATE: '0', USPGATE_ADMIN_ADDRESS_RATE: '0' },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  const url = `http://127.0.0.1:${adminPort}`
  for (let i = 0; ; i++) {
    try { if ((await fetch(url + '/healthz')).ok) break } catch { /* not yet */ }
    if (i > 300) throw new Error('gateway did not start')
    await new Promise(r => setTimeout(r, 100))
  }
  try {
    for (const t of ['noisy', 'calm']) await api(url, 'POST', '/v1/tenants', { id: t })
    const noisy = await api(url, 'POST', '/v1/tenants/noisy/credentials', { principal: 'self::noisy-ctrl', role: 'controller' })
    const noisyAgent = await api(url, 'POST', '/v1/tenants/noisy/credentials', { principal: 'os::00256D-N0001', role: 'agent' })
    const calmAgent = await api(url, 'POST', '/v1/tenants/calm/credentials', { principal: 'os::00256D-C0001', role: 'agent' })
    const calmCtrl = await api(url, 'POST', '/v1/tenants/calm/credentials', { principal: 'self::calm-ctrl', role: 'controller' })

    const mk = (c: { username: string, secret: string }): Promise<MqttClient> => new Promise((resolve, reject) => {
      const m = mqtt.connect({ host: '127.0.0.1', port: mqttPort, protocolVersion: 5, reconnectPeriod: 1000, username: c.username, password: c.secret })
      m.once('connect', () => resolve(m)); m.once('error', reject)
    })
    const sub = await mk(calmCtrl)
    await sub.subscribeAsync('calm/bulkdata/#', { qos: 1 })
    const pub = await mk(calmAgent)
    let seq = 0
    const waiting = new Map<number, { started: bigint, resolve: () => void }>()
    sub.on('message', (_t, payload) => { const w = waiting.get(Number(payload.toString())); if (w) { waiting.delete(Number(payload.toString())); w.resolve() } })
    /** The neighbour's QoS 1 round trips (ms) while `flood` runs, one every 50 ms. */
    const probe = async (flood: () => Promise<void>): Promise<number[]> => {
      const samples: number[] = []
      let stop = false
      const loop = (async () => {
        while (!stop) {
          const n = ++seq
          const started = process.hrtime.bigint()
          const got = new Promise<void>(resolve => waiting.set(n, { started, resolve }))
          pub.publish('calm/bulkdata/os::00256D-C0001/rt', String(n), { qos: 1 })
          await Promise.race([got, new Promise(r => setTimeout(r, 10_000))])
          samples.push(Number(process.hrtime.bigint() - started) / 1e6)
          await new Promise(r => setTimeout(r, 50))
        }
      })()
      const floodDone = flood()
      await new Promise(r => setTimeout(r, PHASE_MS))
      stop = true
      await loop
      await floodDone.catch(() => {})
      return samples
    }

    const phases: Array<[string, () => Promise<void>]> = [
      ['idle', async () => {}],
      ['10k allowed subscriptions', async () => {
        const s = await rawClient(mqttPort, noisy.username, noisy.secret, 'noisy-subs')
        for (let p = 0; p < 10; p++) s.write(encode({ cmd: 'subscribe', messageId: p + 1, subscriptions: Array.from({ length: 1000 }, (_, i) => ({ topic: `noisy/bulkdata/d${p * 1000 + i}/#`, qos: 0 })) }))
      }],
      ['50k denied filters', async () => {
        const s = await rawClient(mqttPort, noisy.username, noisy.secret, 'noisy-denied')
        for (let p = 0; p < 50; p++) s.write(encode({ cmd: 'subscribe', messageId: p + 1, subscriptions: Array.from({ length: 1000 }, (_, i) => ({ topic: `calm/usp/agent/x${p * 1000 + i}`, qos: 0 })) }))
      }],
      ['5,000 QoS 1 publishes', async () => {
        const s = await rawClient(mqttPort, noisyAgent.username, noisyAgent.secret, 'noisy-pub')
        for (let i = 1; i <= 5000; i++) s.write(encode({ cmd: 'publish', topic: 'noisy/bulkdata/os::00256D-N0001/x', payload: Buffer.alloc(64), qos: 1, messageId: (i % 65535) + 1 }))
      }],
      ['1,000 failed CONNECTs', async () => {
        for (let i = 0; i < 1000; i += 50) {
          await Promise.all(Array.from({ length: 50 }, async (_, j) => {
            const s = await rawSocket(mqttPort)
            s.on('error', () => {})
            s.write(encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `f-${i + j}-${Math.random()}`, keepalive: 30, username: `nosuch${i + j}:x`, password: Buffer.from('x') }))
            await new Promise(r => { s.once('data', r); s.once('close', r); setTimeout(r, 2000) })
            s.destroy()
          }))
        }
      }]
    ]
    const rows: string[] = []
    for (const [name, flood] of phases) {
      if (ONLY !== '' && name !== 'idle' && !name.includes(ONLY)) continue
      const xs = await probe(flood)
      rows.push(`| ${name} | ${xs.length} | ${percentile(xs, 0.5).toFixed(1)} | ${percentile(xs, 0.99).toFixed(1)} | ${Math.max(...xs).toFixed(1)} |`)
      await new Promise(r => setTimeout(r, 1000))
    }
    sub.end(true); pub.end(true)
    return [`noisy neighbour (${REPO}): tenant "calm" QoS 1 round trip every 50 ms while tenant "noisy" floods`, '| flood (tenant "noisy") | round trips | p50 ms | p99 ms | max ms |', '|---|---|---|---|---|', ...rows].join('\n')
  } finally {
    child.kill('SIGTERM')
    await new Promise(r => child.once('exit', r))
    await rm(dataDir, { recursive: true, force: true })
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(await runNoisyNeighbour(arg('repo', THIS_REPO), Number(arg('phase-ms', '6000')), arg('only', '')))
}
