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

export async function call (admin: { url: string, token: string }, method: string, path: string, body?: unknown): Promise<unknown> {
  let res: Response
  try {
    res = await fetch(admin.url + path, {
      method,
      headers: { authorization: `Bearer ${admin.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {})
    })
  } catch (err) {
    throw new CliError(`cannot reach the admin API at ${admin.url}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`)
  }
  const text = await res.text()
  let json: unknown
  try { json = text ? JSON.parse(text) : undefined } catch { json = undefined }
  if (!res.ok) {
    const p = json as { title?: string, detail?: string } | undefined
    throw new CliError(`${res.status} ${p?.title ?? res.statusText}${p?.detail ? `: ${p.detail}` : ''}`)
  }
  return json
}
