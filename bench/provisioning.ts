// Provisioning scenario (`npm run bench -- --provisioning[=N]`): N credentials (default 20,000)
// issued one by one (one request in flight) through the admin API of a gateway on the embedded
// store, admin rate limits off. Reports the rate of every block of 1,000 (so the 1,000th and the
// N-th can be compared: the cost of a change must not grow with the size of the store), and the
// size of the files in the data dir at the end. The gateway runs in this process (HTTP over
// loopback), so the rates include the client's share of the CPU.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { Gateway, loadConfig } from '../broker/index.ts'

const TOKEN = 'bench-admin-token-0123456789abcdef0123456789'
const BLOCK = 1000

export interface ProvisioningResult {
  credentials: number
  totalMs: number
  /** credentials per second of each block of 1,000 (the last block may be shorter) */
  blockRates: number[]
  /** p50 / p99 / max latency of one POST, ms */
  p50Ms: number
  p99Ms: number
  maxMs: number
  files: Record<string, number>
}

export async function runProvisioningBench (n = 20_000, log: (line: string) => void = console.log): Promise<ProvisioningResult> {
  const dir = mkdtempSync(join(tmpdir(), 'uspgate-bench-provisioning-'))
  const config = loadConfig({ 'data-dir': dir, 'mqtt-host': '127.0.0.1', 'mqtt-port': '0', 'admin-host': '127.0.0.1', 'admin-port': '0', 'admin-token': TOKEN, 'node-id': 'bench-provisioning', 'mqtts-port': 'off' }, {})
  const gw = new Gateway(config, {
    printAdminToken: false,
    logger: pino({ level: 'warn' }),
    adminSettings: { tls: 'off', tokenRate: 0, addressRate: 0, authFailuresPerMinute: 0, authLockSeconds: 60 }
  })
  await gw.start()
  try {
    const call = async (method: string, path: string, body: unknown): Promise<number> => {
      const r = await fetch(gw.adminUrl + path, { method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
      await r.arrayBuffer()
      return r.status
    }
    if (await call('POST', '/v1/tenants', { id: 'bench', name: 'provisioning' }) !== 201) throw new Error('tenant not created')
    const lat: number[] = []
    const blockRates: number[] = []
    const t0 = performance.now()
    let b0 = t0
    for (let i = 0; i < n; i++) {
      const s = performance.now()
      const status = await call('POST', '/v1/tenants/bench/credentials', { principal: `os::0PROV-${i}`, role: 'agent' })
      if (status !== 201) throw new Error(`credential ${i}: HTTP ${status}`)
      const e = performance.now()
      lat.push(e - s)
      if ((i + 1) % BLOCK === 0 || i === n - 1) {
        const count = (i % BLOCK) + 1
        blockRates.push(count / ((e - b0) / 1000))
        b0 = e
        if ((i + 1) % 5000 === 0 || i === BLOCK - 1) log(`  ${i + 1} credentials: ${blockRates[blockRates.length - 1]!.toFixed(0)}/s in the last block`)
      }
    }
    const totalMs = performance.now() - t0
    await gw.store.flush()
    const sorted = [...lat].sort((a, b) => a - b)
    const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)]!
    const files: Record<string, number> = {}
    for (const f of readdirSync(dir)) if (f.startsWith('state.')) files[f] = statSync(join(dir, f)).size
    return { credentials: n, totalMs, blockRates, p50Ms: q(50), p99Ms: q(99), maxMs: sorted[sorted.length - 1]!, files }
  } finally {
    await gw.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

export function formatProvisioning (r: ProvisioningResult): string {
  const first = r.blockRates[0]!
  const last = r.blockRates[r.blockRates.length - 1]!
  return [
    `provisioning: ${r.credentials} credentials one by one through POST /v1/tenants/{t}/credentials (embedded store, admin rate limits off)`,
    `  total ${(r.totalMs / 1000).toFixed(1)} s (${(r.credentials / (r.totalMs / 1000)).toFixed(0)}/s); rate at the 1,000th: ${first.toFixed(0)}/s, at the ${r.credentials.toLocaleString('en-US')}th: ${last.toFixed(0)}/s (${(last / first * 100).toFixed(0)}%)`,
    `  POST latency p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, max ${r.maxMs.toFixed(1)} ms`,
    `  per block of 1,000: ${r.blockRates.map(x => x.toFixed(0)).join(' ')}`,
    `  files: ${Object.entries(r.files).map(([f, s]) => `${f} ${(s / 1024).toFixed(0)} kB`).join(', ')}`
  ].join('\n')
}
