// Successful connects per tenant and hour, cluster-wide: one hash per hour, `<prefix>connects:{<hour>}`
// (the hour as an ISO time, hash-tagged so one hour is one slot; field = tenant, value = connects),
// added to with HINCRBY and expiring once no window reaches the hour. Each node sums its connects in
// memory and writes them at most once a second (one HINCRBY per tenant and hour that changed, never
// one per connect); what could not be written while Redis was down is added again later.
import type { Logger } from 'pino'
import type { Cluster } from './cluster.ts'
import { HOUR_MS, KEPT_HOURS, hourOf, type ConnectCounts } from '../core/index.ts'

const FLUSH_MS = 1000

export class RedisConnectCounts implements ConnectCounts {
  /** `<hour start ms> <tenant>` → connects not yet written */
  private pending = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined
  private writing: Promise<void> = Promise.resolve()

  constructor (private readonly cluster: Cluster, private readonly log: Logger) {}

  ok (tenant: string): void {
    const k = `${hourOf(Date.now())} ${tenant}`
    this.pending.set(k, (this.pending.get(k) ?? 0) + 1)
    this.schedule()
  }

  /** Throws when Redis cannot be read. */
  async counts (since: number, tenants?: readonly string[]): Promise<Map<string, number>> {
    await this.flush()
    const pipeline = this.cluster.cmd.pipeline()
    const last = hourOf(Date.now())
    for (let h = hourOf(since); h <= last; h += HOUR_MS) pipeline.hgetall(this.key(h))
    const replies = (await pipeline.exec()) ?? []
    const out = new Map<string, number>()
    for (const [err, hash] of replies) {
      if (err !== null) throw err
      for (const [tenant, v] of Object.entries((hash ?? {}) as Record<string, string>)) {
        const n = Number(v)
        if (!Number.isSafeInteger(n) || n <= 0 || (tenants !== undefined && !tenants.includes(tenant))) continue
        out.set(tenant, (out.get(tenant) ?? 0) + n)
      }
    }
    return out
  }

  async flush (): Promise<void> {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined }
    this.writing = this.writing.then(async () => await this.write()).catch(err => {
      this.log.warn({ err }, 'connect counts write failed')
      this.schedule()
    })
    await this.writing
  }

  private schedule (): void {
    if (this.timer || this.cluster.cmd.status === 'end') return
    this.timer = setTimeout(() => { this.timer = undefined; void this.flush() }, FLUSH_MS)
    this.timer.unref()
  }

  private async write (): Promise<void> {
    if (this.pending.size === 0) return
    const redis = this.cluster.cmd
    if (redis.status !== 'ready') { this.schedule(); return }
    const batch = [...this.pending]
    this.pending = new Map()
    const pipeline = redis.pipeline()
    for (const [k, n] of batch) {
      const sp = k.indexOf(' ')
      const key = this.key(Number(k.slice(0, sp)))
      pipeline.hincrby(key, k.slice(sp + 1), n)
      pipeline.pexpire(key, (KEPT_HOURS + 1) * HOUR_MS)
    }
    let results: Array<[Error | null, unknown]> | null = null
    try { results = await pipeline.exec() } catch (err) { this.log.debug({ err }, 'connect counts write failed') }
    let failed = 0
    batch.forEach(([k, n], i) => {
      const reply = results?.[i * 2]
      if (reply !== undefined && reply[0] === null) return
      failed++
      this.pending.set(k, (this.pending.get(k) ?? 0) + n)
    })
    if (failed > 0) this.schedule()
  }

  private key (hour: number): string {
    return `${this.cluster.settings.prefix}connects:{${new Date(hour).toISOString()}}`
  }
}
