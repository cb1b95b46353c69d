// Admin API test helpers: a real gateway with explicit admin listener settings
// (rate limits, TLS), calls with any token, and admin tokens of each role.
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import * as https from 'node:https'
import { pino } from 'pino'
import { Gateway, defaultLimits, type GatewayConfig } from '../../broker/index.ts'
import { DEFAULT_ADMIN_SETTINGS, type AdminSettings } from '../../broker/admin-settings.ts'
import { REDACT_PATHS } from '../../broker/logger.ts'
import { ADMIN_TOKEN } from '../helpers/gateway.ts'

export { ADMIN_TOKEN }

export interface ApiResult { status: number, body: any, headers: Headers, text: string }

export interface AdminGateway {
  gw: Gateway
  dataDir: string
  adminUrl: string
  logText: () => string
  /** A call with the given bearer token (default: the bootstrap admin token; null: no authorization header). */
  call: (method: string, path: string, opts?: { token?: string | null, body?: unknown, headers?: Record<string, string> }) => Promise<ApiResult>
  close: () => Promise<void>
}

/** Rate limits off unless a test sets them: the table-driven tests make hundreds of calls in a second. */
export const UNLIMITED: Partial<AdminSettings> = { tokenRate: 0, addressRate: 0, authFailuresPerMinute: 0 }

export async function startAdminGateway (settings: Partial<AdminSettings> = UNLIMITED, opts: { dataDir?: string } = {}): Promise<AdminGateway> {
  const dataDir = opts.dataDir ?? await mkdtemp(join(tmpdir(), 'uspgate-admin-'))
  const lines: string[] = []
  const sink = new Writable({ write (chunk, _enc, cb) { lines.push(chunk.toString()); cb() } })
  const logger = pino({ level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink)
  const config: GatewayConfig = {
    dataDir,
    mqttHost: '127.0.0.1',
    mqttPort: 0,
    adminHost: '127.0.0.1',
    adminPort: 0,
    adminToken: ADMIN_TOKEN,
    nodeId: 'test-node',
    logLevel: 'info',
    limits: { ...defaultLimits },
    serverSans: ['localhost', '127.0.0.1']
  }
  const gw = new Gateway(config, { logger, printAdminToken: false, adminSettings: { ...DEFAULT_ADMIN_SETTINGS, ...settings } })
  await gw.start()
  const adminUrl = gw.adminUrl
  return {
    gw,
    dataDir,
    adminUrl,
    logText: () => lines.join(''),
    async call (method, path, o = {}) {
      const token = o.token === undefined ? ADMIN_TOKEN : o.token
      const body = o.body
      const isBytes = body instanceof Uint8Array
      const res = await fetch(adminUrl + path, {
        method,
        headers: {
          ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined ? { 'content-type': isBytes ? 'application/gzip' : 'application/json' } : {}),
          ...o.headers
        },
        ...(body !== undefined ? { body: isBytes ? body as unknown as BodyInit : typeof body === 'string' ? body : JSON.stringify(body) } : {})
      })
      const text = await res.text()
      let parsed: unknown = text
      try { parsed = JSON.parse(text) } catch { /* not JSON */ }
      return { status: res.status, body: parsed, headers: res.headers, text }
    },
    async close () { await gw.close() }
  }
}

export type AdminRoleName = 'viewer' | 'security' | 'noc' | 'admin'

export interface CreatedToken { id: string, token: string, role: AdminRoleName, tenants?: string[] }

export async function createToken (g: AdminGateway, name: string, role: AdminRoleName, tenants?: string[]): Promise<CreatedToken> {
  const r = await g.call('POST', '/v1/tokens', { body: { name, role, ...(tenants !== undefined ? { tenants } : {}) } })
  if (r.status !== 201) throw new Error(`token create failed: ${r.status} ${r.text}`)
  return { id: r.body.id, token: r.body.token, role, ...(tenants !== undefined ? { tenants } : {}) }
}

/** An HTTPS request with explicit trust and (optionally) a client certificate; rejects on TLS failures. */
export function httpsCall (url: string, opts: { ca: string, token?: string, cert?: string, key?: string, method?: string, servername?: string, maxVersion?: 'TLSv1.1' }): Promise<{ status: number, body: string, headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, {
      method: opts.method ?? 'GET',
      ca: opts.ca,
      ...(opts.cert !== undefined ? { cert: opts.cert, key: opts.key } : {}),
      servername: opts.servername ?? 'localhost',
      rejectUnauthorized: true,
      ...(opts.maxVersion !== undefined ? { maxVersion: opts.maxVersion, minVersion: 'TLSv1' as const } : {}),
      headers: opts.token !== undefined ? { authorization: `Bearer ${opts.token}` } : {},
      agent: false
    }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', d => { body += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')))
    req.end()
  })
}
