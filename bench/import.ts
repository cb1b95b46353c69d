// Bulk import scenario (`npm run bench -- --import[=N]`): N credentials (default 100,000) imported in
// one POST /v1/tenants/:tenant/credentials:import (NDJSON) into a gateway on the embedded store, then
// into a gateway in cluster mode on a redis-server started here. Reports wall time and rows/s per
// mode, and checks the last imported device is usable (its credential is in the store). The gateways
// run in this process, so the times include the client's share of the CPU. Target: under 30 s each.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { Gateway, loadConfig } from '../broker/index.ts'
import { startBenchRedis } from './redis.ts'

const TOKEN = 'bench-admin-token-0123456789abcdef0123456789'

export interface ImportBenchRow { mode: 'embedded' | 'cluster', rows: number, created: number, ms: number, rowsPerSecond: number, responseMB: number }

async function importInto (mode: 'embedded' | 'cluster', n: number, redisUrl: string | undefined, log: (line: string) => void): Promise<ImportBenchRow> {
  const dir = mkdtempSync(join(tmpdir(), `uspgate-bench-import-${mode}-`))
  const flags: Record<string, string> = { 'data-dir': dir, 'mqtt-host': '127.0.0.1', 'mqtt-port': '0', 'admin-host': '127.0.0.1', 'admin-port': '0', 'admin-token': TOKEN, 'node-id': `bench-import-${mode}`, 'mqtts-port': 'off' }
  if (redisUrl !== undefined) Object.assign(flags, { 'redis-url': redisUrl, 'redis-prefix': 'bench-import:', 'pki-master-key': 'bench-import-master-key-0123456789' })
  const gw = new Gateway(loadConfig(flags, {}), {
    printAdminToken: false,
    logger: pino({ level: 'warn' }),
    adminSettings: { tls: 'off', tokenRate: 0, addressRate: 0, authFailuresPerMinute: 0, authLockSeconds: 60 }
  })
  await gw.start()
  try {
    const headers = { authorization: `Bearer ${TOKEN}` }
    await fetch(gw.adminUrl + '/v1/tenants', { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ id: 'isp' }) })
    const lines: string[] = []
    for (let i = 0; i < n; i++) lines.push(JSON.stringify({ principal: `os::00256D-${String(i).padStart(10, '0')}`, role: 'agent' }))
    const body = lines.join('\n')
    const started = performance.now()
    const r = await fetch(gw.adminUrl + '/v1/tenants/isp/credentials:import', { method: 'POST', headers: { ...headers, 'content-type': 'application/x-ndjson' }, body })
    const text = await r.text()
    const ms = performance.now() - started
    if (r.status !== 200) throw new Error(`import failed: ${r.status} ${text.slice(0, 300)}`)
    const result = JSON.parse(text) as { success: number }
    if (gw.store.getCredential('isp', `os::00256D-${String(n - 1).padStart(10, '0')}`) === undefined) throw new Error('the last row is not in the store')
    const row: ImportBenchRow = { mode, rows: n, created: result.success, ms: Math.round(ms), rowsPerSecond: Math.round(n / (ms / 1000)), responseMB: Math.round(text.length / 1e5) / 10 }
    log(`import ${mode}: ${n} rows in ${(ms / 1000).toFixed(1)} s (${row.rowsPerSecond}/s), ${result.success} created, response ${row.responseMB} MB`)
    return row
  } finally {
    await gw.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function runImportBench (n = 100_000, log: (line: string) => void = console.log): Promise<ImportBenchRow[]> {
  const out = [await importInto('embedded', n, undefined, log)]
  const redis = await startBenchRedis()
  try {
    out.push(await importInto('cluster', n, redis.url, log))
  } finally {
    await redis.stop()
  }
  return out
}

export function formatImport (rows: ImportBenchRow[]): string {
  const lines = ['bulk import (one NDJSON request, target < 30 s)', 'mode       rows      created   seconds  rows/s   response', '---------  --------  --------  -------  -------  --------']
  for (const r of rows) lines.push(`${r.mode.padEnd(9)}  ${String(r.rows).padEnd(8)}  ${String(r.created).padEnd(8)}  ${(r.ms / 1000).toFixed(1).padStart(7)}  ${String(r.rowsPerSecond).padStart(7)}  ${r.responseMB} MB`)
  return lines.join('\n')
}
