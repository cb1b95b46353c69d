// Security events: every deny and every security-relevant change becomes one
// event with a stable code. Events go to an append-only NDJSON audit file in
// the data dir, to the log, to metrics, and to a bounded in-memory index that
// serves GET /v1/security-events. The file survives restarts; the index is
// rebuilt from its tail on start.
import { createWriteStream, type WriteStream } from 'node:fs'
import { mkdir, open, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { EVENT_CODES, type EventCode, type Severity } from './event-codes.ts'

export interface SecurityEventInput {
  code: EventCode
  tenant?: string | undefined
  principal?: string | undefined
  clientId?: string | undefined
  remoteAddress?: string | undefined
  action?: string | undefined
  topic?: string | undefined
  reason?: string | undefined
  policyRevision?: string | undefined
  actor?: string | undefined
  count?: number | undefined
  /** Admin audit (admin.*): the token's role, what was acted on, ok / denied / error, the HTTP status, the request id. */
  role?: string | undefined
  target?: string | undefined
  result?: 'ok' | 'denied' | 'error' | undefined
  status?: number | undefined
  requestId?: string | undefined
}

export interface SecurityEvent extends SecurityEventInput {
  id: string
  time: string
  severity: Severity
  node: string
}

export interface EventQuery {
  tenant?: string | undefined
  code?: string | undefined
  since?: string | undefined
  limit?: number | undefined
  /** Admin token id; `action` matches exactly, or as a prefix when it ends with '.'. */
  actor?: string | undefined
  action?: string | undefined
  /** Tenant-scoped admin tokens: only events of these tenants. */
  tenants?: readonly string[] | undefined
}

/** Per (client, code), at most this many events per window reach the log and file. */
const FLOOD_LIMIT = 20
const FLOOD_WINDOW_MS = 1000
const INDEX_SIZE = 100_000
const TAIL_BYTES = 32 * 1024 * 1024

export class SecurityEvents {
  private stream: WriteStream | undefined
  private readonly index: SecurityEvent[] = []
  private seq = 0
  private readonly flood = new Map<string, { windowStart: number, count: number, suppressed: number, sample: SecurityEventInput }>()
  private floodTimer: NodeJS.Timeout | undefined
  readonly path: string
  /** Hook for metrics; called for every event, including suppressed ones. */
  onEvent: (code: EventCode) => void = () => {}
  /** Every event written (cluster mode appends it to the shared Redis stream). */
  onWritten: (ev: SecurityEvent) => void = () => {}
  /** Current policy revision, stamped on events that do not name one. */
  revision: () => string | undefined = () => undefined

  constructor (dataDir: string, private readonly node: string, private readonly log: Logger) {
    this.path = join(dataDir, 'audit', 'security-events.ndjson')
  }

  async open (): Promise<void> {
    await mkdir(join(this.path, '..'), { recursive: true, mode: 0o700 })
    await this.loadTail()
    this.stream = createWriteStream(this.path, { flags: 'a', mode: 0o600 })
    this.stream.on('error', err => this.log.error({ err }, 'audit file write failed'))
    this.floodTimer = setInterval(() => this.flushSuppressed(), FLOOD_WINDOW_MS * 5)
    this.floodTimer.unref()
  }

  private async loadTail (): Promise<void> {
    let size: number
    try { size = (await stat(this.path)).size } catch { return }
    const start = Math.max(0, size - TAIL_BYTES)
    const fh = await open(this.path, 'r')
    try {
      const buf = Buffer.alloc(size - start)
      await fh.read(buf, 0, buf.length, start)
      const lines = buf.toString('utf8').split('\n')
      if (start > 0) lines.shift() // first line may be cut
      for (const line of lines) {
        if (!line) continue
        try {
          const ev = JSON.parse(line) as SecurityEvent
          if (typeof ev.code === 'string' && typeof ev.time === 'string') this.remember(ev)
        } catch { /* a torn last line after a crash: skip it */ }
      }
    } finally { await fh.close() }
  }

  private remember (ev: SecurityEvent): void {
    this.index.push(ev)
    if (this.index.length > INDEX_SIZE) this.index.splice(0, this.index.length - INDEX_SIZE)
  }

  emit (input: SecurityEventInput): SecurityEvent | undefined {
    this.onEvent(input.code)
    // Admin actions are audit records: never suppressed (they are rate-limited at the API instead).
    if (input.actor !== undefined) return this.write(input)
    // Flood control: an attacker hammering denied topics must not be able to
    // fill the disk or drown the log. Metrics above still count every event.
    const key = `${input.code}|${input.tenant ?? ''}|${input.clientId ?? input.remoteAddress ?? ''}`
    const now = Date.now()
    let f = this.flood.get(key)
    if (!f || now - f.windowStart >= FLOOD_WINDOW_MS) {
      if (f && f.suppressed > 0) this.write({ ...f.sample, code: 'events.suppressed', reason: `${f.suppressed} more ${f.sample.code} events suppressed`, count: f.suppressed })
      f = { windowStart: now, count: 0, suppressed: 0, sample: input }
      this.flood.set(key, f)
    }
    if (++f.count > FLOOD_LIMIT) {
      f.suppressed++
      return undefined
    }
    return this.write(input)
  }

  /**
   * An audit record that flood control must never drop (admin.action, admin.forbidden): every admin
   * change is on file. Its volume is bounded by the admin API's rate limits instead.
   */
  record (input: SecurityEventInput): SecurityEvent {
    this.onEvent(input.code)
    return this.write(input)
  }

  private flushSuppressed (): void {
    const now = Date.now()
    for (const [key, f] of this.flood) {
      if (now - f.windowStart < FLOOD_WINDOW_MS) continue
      if (f.suppressed > 0) this.write({ ...f.sample, code: 'events.suppressed', reason: `${f.suppressed} more ${f.sample.code} events suppressed`, count: f.suppressed })
      this.flood.delete(key)
    }
  }

  private write (input: SecurityEventInput): SecurityEvent {
    const def = EVENT_CODES[input.code]
    const time = new Date()
    const ev: SecurityEvent = {
      id: `${time.getTime().toString(36)}-${(this.seq++).toString(36)}`,
      time: time.toISOString(),
      code: input.code,
      severity: def.severity,
      node: this.node
    }
    // Copy only known fields, dropping undefined: never a payload, password or key.
    for (const k of ['tenant', 'principal', 'clientId', 'remoteAddress', 'action', 'topic', 'reason', 'policyRevision', 'actor', 'count', 'role', 'target', 'result', 'status', 'requestId'] as const) {
      const v = input[k]
      if (v !== undefined) (ev as unknown as Record<string, unknown>)[k] = v
    }
    if (ev.policyRevision === undefined) {
      const rev = this.revision()
      if (rev !== undefined) ev.policyRevision = rev
    }
    this.remember(ev)
    this.stream?.write(JSON.stringify(ev) + '\n')
    this.onWritten(ev)
    const level = def.severity === 'info' ? 'info' : 'warn'
    this.log[level]({ securityEvent: ev }, ev.code)
    return ev
  }

  /**
   * An event written by another node (cluster mode: read from the shared stream). Kept in time order
   * in the query index; not written to this node's audit file (the writing node's file has it).
   */
  ingest (ev: SecurityEvent): void {
    if (typeof ev.code !== 'string' || typeof ev.time !== 'string') return
    let i = this.index.length
    while (i > 0 && this.index[i - 1]!.time > ev.time) i--
    this.index.splice(i, 0, ev)
    if (this.index.length > INDEX_SIZE) this.index.splice(0, this.index.length - INDEX_SIZE)
  }

  /** Newest first. */
  query (q: EventQuery): SecurityEvent[] {
    const limit = Math.min(Math.max(q.limit ?? 100, 1), 1000)
    const since = q.since !== undefined ? Date.parse(q.since) : undefined
    const out: SecurityEvent[] = []
    for (let i = this.index.length - 1; i >= 0 && out.length < limit; i--) {
      const ev = this.index[i]!
      if (since !== undefined && Date.parse(ev.time) < since) break
      if (q.tenant !== undefined && ev.tenant !== q.tenant) continue
      if (q.code !== undefined && ev.code !== q.code && !(q.code.endsWith('.') && ev.code.startsWith(q.code))) continue
      if (q.actor !== undefined && ev.actor !== q.actor) continue
      if (q.action !== undefined && ev.action !== q.action && !(q.action.endsWith('.') && ev.action?.startsWith(q.action) === true)) continue
      if (q.tenants !== undefined && (ev.tenant === undefined || !q.tenants.includes(ev.tenant))) continue
      out.push(ev)
    }
    return out
  }

  async close (): Promise<void> {
    if (this.floodTimer) clearInterval(this.floodTimer)
    this.flushSuppressed()
    const s = this.stream
    this.stream = undefined
    if (s) await new Promise<void>(resolve => s.end(resolve))
  }
}
