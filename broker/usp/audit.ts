// Audit trail of the USP traffic a tenant carries: record type, and with audit
// level 'message' the Msg header (msg_id, msg_type, request/response kind) —
// never parameter values (TR-369 R-SEC.4c). Appended to
// <data>/audit/usp-records.ndjson (this node's own evidence) and kept per tenant
// (newest 1000) for the API: in memory, or in cluster mode in a capped Redis
// stream per tenant, `<prefix>usp-audit:<tenant>`, so every node lists every
// node's records. Like the security-event stream (cluster.ts appendEvent) the
// Redis copy is best effort: the MQTT path never waits for it, and while Redis
// is down records go to the file only.
import { createWriteStream, type WriteStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'

export interface UspAuditEntry {
  time: string
  tenant: string
  fromId: string
  toId: string
  topic: string
  recordType: string
  result: 'delivered' | 'refused'
  code?: string
  msgId?: string
  msgType?: string
  kind?: string
}

export const USP_AUDIT_PER_TENANT = 1000
/**
 * Records are appended to the file at least this often, and at once when this many bytes wait: one
 * write for all the records since, not one per record nor per event-loop turn. Each write is a libuv
 * pool request whose cost is mostly fixed (a worker thread woken, a syscall): in the fleet bench one
 * every 20 ms was ~3 % of the gateway's CPU profile on this machine kind. A crash can lose at most the
 * last FLUSH_MS of records from the file; close() writes them all.
 */
const FLUSH_MS = 100
const FLUSH_BYTES = 256 * 1024
/** Records queued before a flush comes early (a burst): bounds what the queue holds. */
const MAX_QUEUED = 1024
/** Bytes of JSON lines kept per tenant in memory (embedded mode): the newest USP_AUDIT_PER_TENANT that fit. */
export const USP_AUDIT_BYTES_PER_TENANT = 512 * 1024

/** Where the trail is shared between nodes (cluster mode: a capped Redis stream per tenant, broker/cluster). */
export interface SharedUspAudit {
  /** Best effort: the node's file keeps the entry when the shared store cannot take it. */
  append(e: UspAuditEntry): void
  /** Newest first; throws when the shared store cannot be read. */
  list(tenant: string, limit: number): Promise<UspAuditEntry[]>
}

/** Characters JSON.stringify escapes in a string: quote, backslash, controls, and (well-formed JSON.stringify) surrogates. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/

/** A JSON string literal of `s`: JSON.stringify's text, without its call for the common plain string. */
function jsonText (s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`
}

/**
 * The entry as one JSON line, the same text as JSON.stringify(e) for an entry built in the interface's
 * field order (test/usp/audit-recent.test.ts holds them equal), written out because it runs for every
 * USP Record: JSON.stringify walked the entry's eleven keys, four of them usually undefined. The
 * attacker-supplied strings (ids, topic, msg_id) are escaped exactly as JSON.stringify would; time and
 * the enumerated fields (record type, result, code, msg type, kind) are the gateway's own words.
 */
export function auditLine (e: UspAuditEntry): string {
  let line = `{"time":"${e.time}","tenant":${jsonText(e.tenant)},"fromId":${jsonText(e.fromId)},"toId":${jsonText(e.toId)},"topic":${jsonText(e.topic)},"recordType":"${e.recordType}","result":"${e.result}"`
  if (e.code !== undefined) line += `,"code":"${e.code}"`
  if (e.msgId !== undefined) line += `,"msgId":${jsonText(e.msgId)}`
  if (e.msgType !== undefined) line += `,"msgType":"${e.msgType}"`
  if (e.kind !== undefined) line += `,"kind":"${e.kind}"`
  return line + '}'
}

export class UspAuditTrail {
  private stream: WriteStream | undefined
  private readonly recent = new Map<string, LineRing>()
  /**
   * Lines not yet appended to the file, already UTF-8: each line is encoded once, here, and the
   * tenant's ring copies its bytes from here (it used to be encoded for the ring, kept as a string
   * and encoded again by the file write).
   */
  private readonly pending = Buffer.allocUnsafeSlow(FLUSH_BYTES)
  private pendingBytes = 0
  /** Records taken since the last flush, not yet written anywhere (at most MAX_QUEUED). */
  private readonly queue: UspAuditEntry[] = []
  private flushTimer: NodeJS.Timeout | undefined
  readonly path: string

  constructor (dataDir: string, private readonly shared?: SharedUspAudit) {
    this.path = join(dataDir, 'audit', 'usp-records.ndjson')
  }

  async open (): Promise<void> {
    await mkdir(join(this.path, '..'), { recursive: true, mode: 0o700 })
    this.stream = createWriteStream(this.path, { flags: 'a', mode: 0o600 })
  }

  /**
   * Takes one record. Lines are built, encoded and copied into the tenant's ring at the next flush
   * (FLUSH_MS), for every record queued since, not one record at a time on the PUBLISH path: in the
   * fleet bench a record at a time was a cold run through the JSON text, the UTF-8 encoder and the
   * ring for each message; a batch of them is one warm loop. list() and close() flush first, so
   * nothing taken is ever missing from what they read.
   */
  record (e: UspAuditEntry): void {
    if (this.shared !== undefined) this.shared.append(e)
    this.queue.push(e)
    if (this.queue.length >= MAX_QUEUED) this.flush()
    else if (this.flushTimer === undefined) this.flushTimer = setTimeout(this.flush, FLUSH_MS)
  }

  /** One queued record: its line into `pending` (the file's next write) and into the tenant's ring. */
  private append (e: UspAuditEntry): void {
    const line = auditLine(e) + '\n'
    // the bytes of this line in `pending`, when it went there
    let at = -1
    let end = -1
    if (this.stream !== undefined) {
      // A UTF-16 unit is at most 3 UTF-8 bytes: when the line might not fit, the waiting lines go first.
      if (this.pendingBytes + line.length * 3 > FLUSH_BYTES) this.writePending()
      if (line.length * 3 <= FLUSH_BYTES) {
        at = this.pendingBytes
        end = at + this.pending.write(line, at, 'utf8')
        this.pendingBytes = end
      } else {
        this.stream.write(line) // a line of tens of kB (a long topic): on its own, in order
      }
    }
    if (this.shared !== undefined) return
    let ring = this.recent.get(e.tenant)
    if (!ring) { ring = new LineRing(USP_AUDIT_PER_TENANT, USP_AUDIT_BYTES_PER_TENANT); this.recent.set(e.tenant, ring) }
    // the ring keeps the line without its newline
    if (at >= 0) ring.pushBytes(this.pending, at, end - 1)
    else ring.push(line.slice(0, -1))
  }

  /** Newest first. Cluster mode: every node's records; throws when Redis cannot be read (the API answers 503). */
  async list (tenant: string, limit = 100): Promise<UspAuditEntry[]> {
    if (this.shared === undefined) {
      this.flush()
      return (this.recent.get(tenant)?.newest(limit) ?? []).map(line => JSON.parse(line) as UspAuditEntry)
    }
    return await this.shared.list(tenant, limit)
  }

  /** Every queued record into the file's buffer and the rings, then one file write for all of them. */
  private readonly flush = (): void => {
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    const queue = this.queue
    for (let i = 0; i < queue.length; i++) this.append(queue[i]!)
    queue.length = 0
    this.writePending()
  }

  private writePending (): void {
    if (this.pendingBytes === 0) return
    // a copy: `pending` takes new lines while the file write is under way
    this.stream?.write(Buffer.from(this.pending.subarray(0, this.pendingBytes)))
    this.pendingBytes = 0
  }

  async close (): Promise<void> {
    this.flush()
    const s = this.stream
    this.stream = undefined
    if (s) await new Promise<void>(resolve => s.end(resolve))
  }
}

/**
 * The newest `capacity` lines, their UTF-8 bytes in one preallocated buffer: O(1) per record and no
 * garbage. (An array trimmed with splice(0, 1) moved all 1,000 entries on every record once full: 2.9 %
 * of the broker's CPU in the fleet bench's round trips. An array of strings overwritten in place kept
 * every line long enough to be promoted to the old generation: ~600 B per USP round trip that only
 * full collections reclaim, whose cost grows with the heap, i.e. with the connected fleet.)
 * Lines never wrap: one that does not fit before the end starts at the beginning, and a line is
 * readable while the bytes written since it began are fewer than the buffer's size.
 */
class LineRing {
  private readonly buf: Buffer
  /** absolute byte position (total bytes written before it) and byte length of each slot's line */
  private readonly starts: Float64Array
  private readonly lengths: Int32Array
  private lines = 0
  private written = 0

  constructor (private readonly capacity: number, bytes: number) {
    this.buf = Buffer.allocUnsafeSlow(bytes)
    this.starts = new Float64Array(capacity)
    this.lengths = new Int32Array(capacity)
  }

  push (line: string): void {
    const bytes = Buffer.from(line, 'utf8')
    this.pushBytes(bytes, 0, bytes.length)
  }

  /** The line held in `from[start..end)`. */
  pushBytes (from: Buffer, start: number, end: number): void {
    const size = this.buf.length
    const len = end - start
    if (len > size) return
    let pos = this.written % size
    if (pos + len > size) { this.written += size - pos; pos = 0 }
    from.copy(this.buf, pos, start, end)
    const slot = this.lines % this.capacity
    this.starts[slot] = this.written
    this.lengths[slot] = len
    this.written += len
    this.lines++
  }

  /** Newest first. */
  newest (limit: number): string[] {
    const size = this.buf.length
    const out: string[] = []
    const n = Math.min(limit, this.lines, this.capacity)
    for (let i = 1; i <= n; i++) {
      const slot = (this.lines - i) % this.capacity
      const start = this.starts[slot]!
      if (start < this.written - size) break // overwritten by newer lines
      const pos = start % size
      out.push(this.buf.toString('utf8', pos, pos + this.lengths[slot]!))
    }
    return out
  }
}
