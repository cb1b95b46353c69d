// The USP audit trail shared by every node: a capped Redis stream per tenant, `<prefix>usp-audit:<tenant>`.
import type { Logger } from 'pino'
import type { Cluster } from './cluster.ts'
import { appendJson, readNewest } from './streams.ts'
import { USP_AUDIT_PER_TENANT, type SharedUspAudit, type UspAuditEntry } from '../usp/index.ts'

export class RedisUspAudit implements SharedUspAudit {
  constructor (private readonly cluster: Cluster, private readonly log: Logger) {}

  append (e: UspAuditEntry): void {
    if (this.cluster.cmd.status !== 'ready') return // the node's file still has it
    void appendJson(this.cluster.cmd, this.key(e.tenant), USP_AUDIT_PER_TENANT, e)
      .then(ok => { if (!ok) this.log.debug('USP audit entry not appended to the stream') })
  }

  async list (tenant: string, limit: number): Promise<UspAuditEntry[]> {
    const entries = await readNewest(this.cluster.cmd, this.key(tenant), limit)
    return entries.flatMap(({ value }) => {
      const e = value as UspAuditEntry | undefined
      return typeof e === 'object' && e !== null && e.tenant === tenant ? [e] : []
    })
  }

  private key (tenant: string): string {
    return `${this.cluster.settings.prefix}usp-audit:${tenant}`
  }
}
