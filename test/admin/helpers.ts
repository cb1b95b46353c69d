// Admin API test helpers: a real gateway with explicit admin listener settings
// (rate limits, TLS), calls with any token, and admin tokens of each role.
import * as https from 'node:https'
import type { Gateway } from '../../broker/index.ts'
import type { AdminSettings } from '../../broker/core/index.ts'
import { ADMIN_TOKEN, adminRequest, startGateway, type ApiResult } from '../helpers/gateway.ts'

export { ADMIN_TOKEN, type ApiResult }


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
  const t = await startGateway({ adminSettings: settings, serverSans: ['localhost', '127.0.0.1'], ...(opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {}) })
  return {
    gw: t.gw,
    dataDir: t.dataDir,
    adminUrl: t.adminUrl,
    logText: t.logText,
    call: async (method, path, o = {}) => await adminRequest(t.adminUrl, method, path, o),
    close: t.close
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
