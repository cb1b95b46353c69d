// Security events: every deny and every security-relevant change becomes one
// event with a stable code. Events go to an append-only NDJSON audit file in
// the data dir (rotated by size, reopened on SIGHUP), to the log, to metrics,
// to the export sinks (syslog, webhook), and to a bounded in-memory index that
// serves GET /v1/security-events. The file survives restarts; the index is
// rebuilt from its tail on start.
import { createWriteStream, existsSync, fstatSync, openSync, renameSync, type WriteStream } from 'node:fs'
import { mkdir, open, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { EVENT_CODES, type EventCode, type Severity } from './event-codes.ts'
import type { EventSink } from './webhook-sink.ts'

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
  /** Cross-tenant attempts: the tenant whose namespace was targeted (its security team sees the event too). */
  targetTenant?: string | undefined
}

export interface SecurityEvent extends SecurityEventInput {
  id: string
  time: string
  severity: Severity
  node: string
}

export interface EventQuery {
  /** The event's tenant or its target tenant. */
  tenant?: string | undefined
  /** One code, or a comma-separated list; a code ending in '.' matches as a prefix (e.g. `acl.`). */
  code?: string | undefined
  /** Comma-separated severities (info, warning, critical). */
  severity?: string | undefined
  principal?: string | undefined
  since?: string | undefined
  /** Only events strictly older than this time (paging backwards: pass the oldest time seen). */
  until?: string | undefined
  /** This severity or higher (info < warning < critical). */
  minSeverity?: Severity | undefined
  /** Paging: the `next` cursor of the previous page; events older than its last one. */
  cursor?: string | undefined
  limit?: number | undefined
  /** Admin token id; `action` matches exactly, or as a prefix when it ends with '.'. */
  actor?: string | undefined
  action?: string | undefined
  /** Tenant-scoped admin tokens: only events of these tenants (as tenant or as target tenant). */
  tenants?: readonly string[] | undefined
}

/** Per tenant, how many events of each code were recorded in a window (GET /v1/security-stats). */
export interface TenantEventStats {
  tenant: string
  codes: Record<string, number>
  /** acl.cross_tenant / usp.reply_to_cross_tenant events this tenant's clients caused. */
  crossTenantBy: number
  /** Cross-tenant events that targeted this tenant's namespace from another tenant. */
  crossTenantAgainst: number
}

const CROSS_TENANT_CODES = new Set(['acl.cross_tenant', 'usp.reply_to_cross_tenant'])

function matchesCode (code: string, wanted: readonly string[]): boolean {
  return wanted.some(w => code === w || (w.endsWith('.') && code.startsWith(w)))
}

/** A cursor that no page of this API produced. */
export class InvalidCursorError extends Error {
  constructor () { super('cursor is not one returned by a previous page') }
}

const SEVERITY_RANK: Record<string, number> = { info: 1, warning: 2, critical: 3 }

/**
 * Flood-control key. Before authentication every field but the remote address is chosen by the
 * attacker (a fresh client id or username per attempt would open a fresh window), so connect-time
 * and unauthenticated events are keyed by (code, remote address); events of an authenticated
 * session by (code, tenant, principal, client id).
 */
function floodKey (e: SecurityEventInput): string {
  if (e.action === 'connect' || e.principal === undefined || e.tenant === undefined) return `${e.code}|addr|${e.remoteAddress ?? ''}`
  return `${e.code}|id|${e.tenant}|${e.principal}|${e.clientId ?? ''}`
}

/** Per flood key (see floodKey), at most this many events per window reach the log and file. */
const FLOOD_LIMIT = 20
const FLOOD_WINDOW_MS = 1000
const INDEX_SIZE = 100_000
const TAIL_BYTES = 32 * 1024 * 1024

export interface AuditFileSettings {
  /** Rotate the audit file once it reaches this size; 0 = never (rotate it outside, then SIGHUP). */
  maxBytes: number
  /** Rotated files kept: security-events.ndjson.1 (newest) … .N. */
  keep: number
}

export const DEFAULT_AUDIT_FILE: AuditFileSettings = { maxBytes: 100 * 1024 * 1024, keep: 10 }

export class SecurityEvents {
  private stream: WriteStream | undefined
  private bytes = 0
  /** Streams replaced by a rotation or a reopen that are still writing their queued events. */
  private readonly retiring = new Set<Promise<void>>()
  private readonly sinks: EventSink[] = []
  private readonly index: SecurityEvent[] = []
  private seq = 0
  private readonly flood = new Map<string, { windowStart: number, count: number, suppressed: number, sample: SecurityEventInput }>()
  private floodTimer: NodeJS.Timeout | undefined
  readonly path: string
  /** Hook for metrics; called for every event, including suppressed ones. */
  onEvent: (code: EventCode, tenant: string | undefined) => void = () => {}
  /** Every event written (cluster mode appends it to the shared Redis stream). */
  onWritten: (ev: SecurityEvent) => void = () => {}
  /** Live readers (GET /v1/security-events/stream): every event written here or ingested from another node. */
  private readonly readers = new Set<(ev: SecurityEvent) => void>()
  /** Current policy revision, stamped on events that do not name one. */
  revision: () => string | undefined = () => undefined

  constructor (dataDir: string, private readonly node: string, private readonly log: Logger, private readonly file: AuditFileSettings = DEFAULT_AUDIT_FILE) {
    this.path = join(dataDir, 'audit', 'security-events.ndjson')
  }

  /** An export sink (syslog, webhook): gets every event written on this node, started with open(), closed with close(). */
  addSink (sink: EventSink): void {
    this.sinks.push(sink)
  }

  async open (): Promise<void> {
    await mkdir(join(this.path, '..'), { recursive: true, mode: 0o700 })
    await this.loadTail()
    this.openStream()
    for (const s of this.sinks) s.start()
    this.floodTimer = setInterval(() => this.flushSuppressed(), FLOOD_WINDOW_MS * 5)
    this.floodTimer.unref()
  }

  /** A new stream on the path; the old one (if any) finishes its queued writes into the file it had open. */
  private openStream (): void {
    const old = this.stream
    // opened here, synchronously: the file exists at once, so the next rotation (possibly in this
    // same tick) renames the file this stream writes to, never a path not yet created
    const fd = openSync(this.path, 'a', 0o600)
    this.bytes = fstatSync(fd).size
    const s = createWriteStream(this.path, { fd })
    s.on('error', err => this.log.error({ err }, 'audit file write failed'))
    this.stream = s
    if (old !== undefined) this.retire(old)
  }

  /**
   * Ends a stream that still has writes queued for the file it had open (now renamed away). close()
   * waits for every retired stream too: the kept files are complete when the gateway has stopped.
   */
  private retire (old: WriteStream): void {
    const done = new Promise<void>(resolve => { old.once('close', () => resolve()) })
    this.retiring.add(done)
    void done.then(() => this.retiring.delete(done))
    old.end()
  }

  /**
   * SIGHUP: the file was moved away (logrotate); continue in a new file at the path. Events already
   * queued go to the moved file, later ones to the new file: none is lost, none is written twice.
   */
  reopen (): void {
    if (this.stream === undefined) return
    this.openStream()
    this.log.info({ path: this.path }, 'audit file reopened')
  }

  /** Size rotation: .N-1 → .N … the file → .1, then a new file (renames are synchronous, between two writes). */
  private rotate (): void {
    try {
      for (let i = this.file.keep - 1; i >= 1; i--) {
        if (existsSync(`${this.path}.${i}`)) renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`)
      }
      renameSync(this.path, `${this.path}.1`)
    } catch (err) {
      this.log.error({ err }, 'audit file rotation failed; writing on in the same file')
      this.bytes = 0
      return
    }
    this.openStream()
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
    this.onEvent(input.code, input.tenant)
    // Admin actions are audit records: never suppressed (they are rate-limited at the API instead).
    if (input.actor !== undefined) return this.write(input)
    // Flood control: an attacker hammering denied topics must not be able to
    // fill the disk or drown the log. Metrics above still count every event.
    const key = floodKey(input)
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
    this.onEvent(input.code, input.tenant)
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
    for (const k of ['tenant', 'principal', 'clientId', 'remoteAddress', 'action', 'topic', 'reason', 'policyRevision', 'actor', 'count', 'role', 'target', 'result', 'status', 'requestId', 'targetTenant'] as const) {
      const v = input[k]
      if (v !== undefined) (ev as unknown as Record<string, unknown>)[k] = v
    }
    if (ev.policyRevision === undefined) {
      const rev = this.revision()
      if (rev !== undefined) ev.policyRevision = rev
    }
    this.remember(ev)
    if (this.stream !== undefined) {
      const line = JSON.stringify(ev) + '\n'
      this.stream.write(line)
      this.bytes += Buffer.byteLength(line)
      if (this.file.maxBytes > 0 && this.bytes >= this.file.maxBytes) this.rotate()
    }
    this.onWritten(ev)
    this.tell(ev)
    for (const s of this.sinks) s.send(ev)
    // log levels follow severities, so "level >= error" alerting sees every critical event
    const level = def.severity === 'critical' ? 'error' : def.severity === 'warning' ? 'warn' : 'info'
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
    this.tell(ev)
  }

  private tell (ev: SecurityEvent): void {
    for (const r of this.readers) {
      try { r(ev) } catch (err) { this.log.warn({ err }, 'security event reader failed') }
    }
  }

  /**
   * A live reader: `onEvent` gets every later event matching `q` (time range, cursor and limit are
   * ignored). With `lastEventId`, the events after it that match are returned as the backlog first
   * (oldest first, at most `backlogLimit`), in the same tick as the subscription: nothing is missed
   * or sent twice between them. An id no longer in the index resumes from the time it encodes.
   */
  follow (q: EventQuery, onEvent: (ev: SecurityEvent) => void, lastEventId?: string, backlogLimit = 1000): { backlog: SecurityEvent[], close: () => void } {
    const m = matcher({ ...q, since: undefined, until: undefined })
    const backlog: SecurityEvent[] = []
    if (lastEventId !== undefined) {
      let start = -1
      for (let i = this.index.length - 1; i >= 0; i--) {
        if (this.index[i]!.id === lastEventId) { start = i + 1; break }
      }
      if (start === -1) {
        const ms = parseInt(lastEventId.split('-')[0] ?? '', 36)
        const after = Number.isFinite(ms) ? new Date(ms).toISOString() : undefined
        start = this.index.length
        if (after !== undefined) while (start > 0 && this.index[start - 1]!.time > after) start--
      }
      for (let i = start; i < this.index.length; i++) {
        const ev = this.index[i]!
        if (m(ev)) backlog.push(ev)
      }
      if (backlog.length > backlogLimit) backlog.splice(0, backlog.length - backlogLimit)
    }
    const reader = (ev: SecurityEvent): void => { if (m(ev)) onEvent(ev) }
    this.readers.add(reader)
    return { backlog, close: () => { this.readers.delete(reader) } }
  }

  /** Newest first. */
  query (q: EventQuery): SecurityEvent[] {
    return this.page(q).events
  }

  /**
   * One page, newest first, and the cursor of the next (older) page when there may be one. The cursor
   * names the last event returned, so paging is stable while new events arrive.
   */
  page (q: EventQuery): { events: SecurityEvent[], next?: string } {
    const limit = Math.min(Math.max(q.limit ?? 100, 1), 1000)
    const since = q.since !== undefined ? Date.parse(q.since) : undefined
    const until = q.until !== undefined ? Date.parse(q.until) : undefined
    const m = matcher(q)
    const out: SecurityEvent[] = []
    let i = q.cursor !== undefined ? this.cursorStart(q.cursor) : this.index.length - 1
    for (; i >= 0 && out.length < limit; i--) {
      const ev = this.index[i]!
      const t = Date.parse(ev.time)
      if (since !== undefined && t < since) { i = -1; break }
      if (until !== undefined && t >= until) continue
      if (!m(ev)) continue
      out.push(ev)
    }
    const last = out[out.length - 1]
    return i >= 0 && last !== undefined ? { events: out, next: Buffer.from(`${last.time}|${last.id}`).toString('base64url') } : { events: out }
  }

  /** Index position just older than the cursor's event (by time if that event has left the index). */
  private cursorStart (cursor: string): number {
    const [time, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|')
    if (time === undefined || id === undefined || Number.isNaN(Date.parse(time))) throw new InvalidCursorError()
    for (let i = this.index.length - 1; i >= 0; i--) {
      const ev = this.index[i]!
      if (ev.id === id && ev.time === time) return i - 1
      if (ev.time < time) return i
    }
    return -1
  }

  /**
   * Counts per tenant and code of the events since `since` (bounded by the in-memory index: the
   * newest 100,000 events). Cross-tenant events count for the tenant that made them and, as
   * "against", for the target tenant. `tenants` limits the answer (tenant-scoped tokens).
   */
  stats (since: string, tenants?: readonly string[]): TenantEventStats[] {
    const from = Date.parse(since)
    const byTenant = new Map<string, TenantEventStats>()
    const entry = (tenant: string): TenantEventStats => {
      let e = byTenant.get(tenant)
      if (e === undefined) { e = { tenant, codes: {}, crossTenantBy: 0, crossTenantAgainst: 0 }; byTenant.set(tenant, e) }
      return e
    }
    for (let i = this.index.length - 1; i >= 0; i--) {
      const ev = this.index[i]!
      if (Date.parse(ev.time) < from) break
      // a flood summary stands for `count` suppressed events
      const n = ev.code === 'events.suppressed' ? (ev.count ?? 0) : 1
      if (ev.tenant !== undefined && (tenants === undefined || tenants.includes(ev.tenant))) {
        const e = entry(ev.tenant)
        e.codes[ev.code] = (e.codes[ev.code] ?? 0) + n
        if (CROSS_TENANT_CODES.has(ev.code)) e.crossTenantBy += n
      }
      if (ev.targetTenant !== undefined && ev.targetTenant !== ev.tenant && CROSS_TENANT_CODES.has(ev.code) &&
        (tenants === undefined || tenants.includes(ev.targetTenant))) {
        entry(ev.targetTenant).crossTenantAgainst += n
      }
    }
    return [...byTenant.values()].sort((a, b) => a.tenant.localeCompare(b.tenant))
  }

  async close (): Promise<void> {
    if (this.floodTimer) clearInterval(this.floodTimer)
    this.flushSuppressed()
    const s = this.stream
    this.stream = undefined
    await Promise.all(this.sinks.map(async sink => { await sink.close().catch(err => this.log.warn({ err, sink: sink.name }, 'event sink close failed')) }))
    if (s) this.retire(s)
    await Promise.all(this.retiring)
  }
}

/** The filters of a query but the time range and paging. */
function matcher (q: EventQuery): (ev: SecurityEvent) => boolean {
  const codes = q.code?.split(',').filter(c => c.length > 0)
  const severities = q.severity?.split(',').filter(c => c.length > 0)
  const minRank = q.minSeverity !== undefined ? SEVERITY_RANK[q.minSeverity] ?? 0 : 0
  return ev => {
    if (q.tenant !== undefined && ev.tenant !== q.tenant && ev.targetTenant !== q.tenant) return false
    if (codes !== undefined && !matchesCode(ev.code, codes)) return false
    if (severities !== undefined && !severities.includes(ev.severity)) return false
    if (q.principal !== undefined && ev.principal !== q.principal) return false
    if (minRank > 0 && (SEVERITY_RANK[ev.severity] ?? 0) < minRank) return false
    if (q.actor !== undefined && ev.actor !== q.actor) return false
    if (q.action !== undefined && ev.action !== q.action && !(q.action.endsWith('.') && ev.action?.startsWith(q.action) === true)) return false
    if (q.tenants !== undefined && !visibleTo(ev, q.tenants)) return false
    return true
  }
}

/** A tenant-scoped reader sees its own tenant's events and the cross-tenant attempts aimed at it. */
function visibleTo (ev: SecurityEvent, tenants: readonly string[]): boolean {
  return (ev.tenant !== undefined && tenants.includes(ev.tenant)) || (ev.targetTenant !== undefined && tenants.includes(ev.targetTenant))
}
