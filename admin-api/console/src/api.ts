// The console's only way to the gateway: the public admin API (/v1) with the bearer token the user
// typed in. The token lives in memory and in sessionStorage (this tab only, gone when it closes),
// never in a URL; logout clears both.
const KEY = 'uspgate.console.token'

let token: string | null = sessionStorage.getItem(KEY)
let onUnauthorized: () => void = () => {}

export function currentToken (): string | null { return token }
export function setToken (t: string): void { token = t; sessionStorage.setItem(KEY, t) }
export function clearToken (): void { token = null; sessionStorage.removeItem(KEY) }
export function whenUnauthorized (f: () => void): void { onUnauthorized = f }

export class ApiError extends Error {
  constructor (readonly status: number, readonly title: string, detail: string) { super(detail) }
}

/** One /v1 call; JSON in and out, problem+json errors become ApiError. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function api<T = any> (method: string, path: string, body?: unknown, tokenOverride?: string): Promise<T> {
  const t = tokenOverride ?? token
  const headers: Record<string, string> = { accept: 'application/json' }
  if (t !== null) headers.authorization = `Bearer ${t}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
  const text = await res.text()
  let parsed: unknown
  try { parsed = text.length > 0 ? JSON.parse(text) : undefined } catch { parsed = undefined }
  if (!res.ok) {
    const p = (parsed ?? {}) as { title?: string, detail?: string }
    if (res.status === 401 && tokenOverride === undefined) onUnauthorized()
    throw new ApiError(res.status, p.title ?? `HTTP ${res.status}`, p.detail ?? p.title ?? text.slice(0, 200))
  }
  return parsed as T
}

/** Query string from defined values only. */
export function qs (params: Record<string, string | number | undefined>): string {
  const u = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') u.set(k, String(v))
  const s = u.toString()
  return s.length > 0 ? `?${s}` : ''
}

export const enc = encodeURIComponent
