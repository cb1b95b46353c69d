// The admin commands of the CLI. They call the admin API, finding its URL and
// token from flags, then the environment, then the data dir of a local gateway.
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'

export class CliError extends Error {}

export interface ClientOptions {
  adminUrl?: string | undefined
  token?: string | undefined
  dataDir?: string | undefined
}

export async function resolveAdmin (opts: ClientOptions, env: NodeJS.ProcessEnv = process.env): Promise<{ url: string, token: string }> {
  const dataDir = resolve(opts.dataDir ?? env.USPGATE_DATA_DIR ?? './data')
  let url = opts.adminUrl ?? env.USPGATE_ADMIN_URL
  if (!url) {
    try {
      url = (JSON.parse(await readFile(join(dataDir, 'admin.json'), 'utf8')) as { url: string }).url
    } catch {
      throw new CliError(`cannot find the admin API: pass --admin-url, set USPGATE_ADMIN_URL, or run where ${join(dataDir, 'admin.json')} exists (written by "uspgate start")`)
    }
  }
  let token = opts.token ?? env.USPGATE_ADMIN_TOKEN
  if (!token) {
    try {
      token = (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim()
    } catch {
      throw new CliError(`no admin token: pass --token, set USPGATE_ADMIN_TOKEN, or make ${join(dataDir, 'admin-token')} readable`)
    }
  }
  return { url: url.replace(/\/+$/, ''), token }
}

export type Admin = { url: string, token: string }

type RequestBody = { json: unknown } | { bytes: Uint8Array, contentType: string }

/** One admin API request; returns the response text. Unreachable API and 4xx/5xx become a CliError naming the problem. */
async function request (admin: Admin, method: string, path: string, body?: RequestBody): Promise<string> {
  const headers: Record<string, string> = { authorization: `Bearer ${admin.token}` }
  let payload: BodyInit | undefined
  if (body !== undefined && 'json' in body) {
    headers['content-type'] = 'application/json'
    payload = JSON.stringify(body.json)
  } else if (body !== undefined) {
    headers['content-type'] = body.contentType
    payload = Buffer.from(body.bytes) as unknown as BodyInit
  }
  let res: Response
  try {
    res = await fetch(admin.url + path, { method, headers, ...(payload !== undefined ? { body: payload } : {}) })
  } catch (err) {
    throw new CliError(`cannot reach the admin API at ${admin.url}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`)
  }
  const text = await res.text()
  if (!res.ok) {
    let p: { title?: string, detail?: string } | undefined
    try { p = JSON.parse(text) as typeof p } catch { p = undefined }
    throw new CliError(`${res.status} ${p?.title ?? res.statusText}${p?.detail ? `: ${p.detail}` : ''}`)
  }
  return text
}

function parseJson (text: string): unknown {
  try { return text ? JSON.parse(text) : undefined } catch { return undefined }
}

/** JSON in, JSON out. */
export async function call (admin: Admin, method: string, path: string, body?: unknown): Promise<unknown> {
  return parseJson(await request(admin, method, path, body !== undefined ? { json: body } : undefined))
}

/** Raw bytes in (e.g. a policy bundle), JSON out. */
export async function callRaw (admin: Admin, method: string, path: string, bytes: Uint8Array, contentType = 'application/gzip'): Promise<unknown> {
  return parseJson(await request(admin, method, path, { bytes, contentType }))
}

/** GET of binary content (a policy bundle). */
export async function getBytes (admin: Admin, path: string): Promise<Buffer> {
  let res: Response
  try {
    res = await fetch(admin.url + path, { headers: { authorization: `Bearer ${admin.token}` } })
  } catch (err) {
    throw new CliError(`cannot reach the admin API at ${admin.url}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`)
  }
  if (!res.ok) {
    const p = await res.json().catch(() => undefined) as { title?: string, detail?: string } | undefined
    throw new CliError(`${res.status} ${p?.title ?? res.statusText}${p?.detail ? `: ${p.detail}` : ''}`)
  }
  return Buffer.from(await res.arrayBuffer())
}

/** GET of a text document (PEM). */
export async function getText (admin: Admin, path: string): Promise<string> {
  return await request(admin, 'GET', path)
}

export function table (rows: Array<Record<string, unknown>>, cols: string[]): string {
  if (rows.length === 0) return '(none)'
  const widths = cols.map(c => Math.max(c.length, ...rows.map(r => String(r[c] ?? '').length)))
  const line = (vals: string[]): string => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd()
  return [line(cols), ...rows.map(r => line(cols.map(c => String(r[c] ?? ''))))].join('\n')
}
