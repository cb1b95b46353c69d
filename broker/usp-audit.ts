// Audit trail of the USP traffic a tenant carries: record type, and with audit
// level 'message' the Msg header (msg_id, msg_type, request/response kind) —
// never parameter values (TR-369 R-SEC.4c). Appended to
// <data>/audit/usp-records.ndjson and kept per tenant (newest 1000) for the API.
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

const PER_TENANT = 1000

export class UspAuditTrail {
  private stream: WriteStream | undefined
  private readonly recent = new Map<string, UspAuditEntry[]>()
  readonly path: string

  constructor (dataDir: string) {
    this.path = join(dataDir, 'audit', 'usp-records.ndjson')
  }

  async open (): Promise<void> {
    await mkdir(join(this.path, '..'), { recursive: true, mode: 0o700 })
    this.stream = createWriteStream(this.path, { flags: 'a', mode: 0o600 })
  }

  record (e: UspAuditEntry): void {
    let list = this.recent.get(e.tenant)
    if (!list) { list = []; this.recent.set(e.tenant, list) }
    list.push(e)
    if (list.length > PER_TENANT) list.splice(0, list.length - PER_TENANT)
    this.stream?.write(JSON.stringify(e) + '\n')
  }

  /** Newest first. */
  list (tenant: string, limit = 100): UspAuditEntry[] {
    return [...(this.recent.get(tenant) ?? [])].reverse().slice(0, limit)
  }

  async close (): Promise<void> {
    const s = this.stream
    this.stream = undefined
    if (s) await new Promise<void>(resolve => s.end(resolve))
  }
}
