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

/** Where the trail is shared between nodes (cluster mode: a capped Redis stream per tenant, broker/cluster). */
export interface SharedUspAudit {
  /** Best effort: the node's file keeps the entry when the shared store cannot take it. */
  append(e: UspAuditEntry): void
  /** Newest first; throws when the shared store cannot be read. */
  list(tenant: string, limit: number): Promise<UspAuditEntry[]>
}

export class UspAuditTrail {
  private stream: WriteStream | undefined
  private readonly recent = new Map<string, Ring<string>>()
  private pending = ''
  private flushQueued = false
  readonly path: string

  constructor (dataDir: string, private readonly shared?: SharedUspAudit) {
    this.path = join(dataDir, 'audit', 'usp-records.ndjson')
  }

  async open (): Promise<void> {
    await mkdir(join(this.path, '..'), { recursive: true, mode: 0o700 })
    this.stream = createWriteStream(this.path, { flags: 'a', mode: 0o600 })
  }

  record (e: UspAuditEntry): void {
    const line = JSON.stringify(e)
    if (this.stream !== undefined) {
      // one file write per event-loop turn for all the records of the turn, not one per record
      this.pending += line + '\n'
      if (!this.flushQueued) { this.flushQueued = true; setImmediate(this.flush) }
    }
    if (this.shared !== undefined) { this.shared.append(e); return }
    let ring = this.recent.get(e.tenant)
    if (!ring) { ring = new Ring(USP_AUDIT_PER_TENANT); this.recent.set(e.tenant, ring) }
    // The line, not the object: one string per kept entry (these outlive the young generation, so
    // what they hold is what the old generation has to collect once they are overwritten).
    ring.push(line)
  }

  /** Newest first. Cluster mode: every node's records; throws when Redis cannot be read (the API answers 503). */
  async list (tenant: string, limit = 100): Promise<UspAuditEntry[]> {
    if (this.shared === undefined) return (this.recent.get(tenant)?.newest(limit) ?? []).map(line => JSON.parse(line) as UspAuditEntry)
    return await this.shared.list(tenant, limit)
  }

  private readonly flush = (): void => {
    this.flushQueued = false
    if (this.pending === '') return
    this.stream?.write(this.pending)
    this.pending = ''
  }

  async close (): Promise<void> {
    this.flush()
    const s = this.stream
    this.stream = undefined
    if (s) await new Promise<void>(resolve => s.end(resolve))
  }
}

/**
 * The newest `capacity` entries, overwritten in place: O(1) per record. (An array trimmed with
 * splice(0, 1) moved all 1,000 entries on every record once full: 2.9 % of the broker's CPU in the
 * fleet bench's round trips, bench --fleet --cpu-prof.)
 */
class Ring<T> {
  private readonly items: T[] = []
  private next = 0

  constructor (private readonly capacity: number) {}

  push (x: T): void {
    if (this.items.length < this.capacity) this.items.push(x)
    else this.items[this.next] = x
    this.next = (this.next + 1) % this.capacity
  }

  /** Newest first. */
  newest (limit: number): T[] {
    const n = Math.min(limit, this.items.length)
    const out: T[] = []
    for (let i = 1; i <= n; i++) out.push(this.items[(this.next - i + this.items.length) % this.items.length]!)
    return out
  }
}
