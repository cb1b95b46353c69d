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

/**
 * Reads a Server-Sent Events stream of the admin API with fetch() and a stream reader: EventSource
 * cannot send the Authorization header, and the token must never be in a URL. Calls `onEvent` per
 * event (its id and data), resolves when the server ends the stream, rejects on an HTTP error
 * (ApiError) or a network error, and stops when `signal` aborts.
 */
export async function readEventStream (path: string, lastEventId: string | undefined, onEvent: (id: string | undefined, data: string) => void, signal: AbortSignal, onOpen: () => void = () => {}): Promise<void> {
  const headers: Record<string, string> = { accept: 'text/event-stream' }
  if (token !== null) headers.authorization = `Bearer ${token}`
  if (lastEventId !== undefined) headers['last-event-id'] = lastEventId
  const res = await fetch(path, { headers, cache: 'no-store', credentials: 'omit', signal })
  if (!res.ok || res.body === null) {
    const text = await res.text()
    let p: { title?: string, detail?: string } = {}
    try { p = JSON.parse(text) as typeof p } catch { /* not JSON */ }
    if (res.status === 401) onUnauthorized()
    throw new ApiError(res.status, p.title ?? `HTTP ${res.status}`, p.detail ?? p.title ?? text.slice(0, 200))
  }
  onOpen()
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
  let buf = ''
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return
    buf += value.replace(/\r\n?/g, '\n')
    let i: number
    while ((i = buf.indexOf('\n\n')) !== -1) {
      const block = buf.slice(0, i)
      buf = buf.slice(i + 2)
      let id: string | undefined
      const data: string[] = []
      for (const line of block.split('\n')) {
        if (line.startsWith('id:')) id = line.slice(3).trimStart()
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
      }
      if (data.length > 0) onEvent(id, data.join('\n'))
    }
  }
}
