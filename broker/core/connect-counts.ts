// Successful connects per tenant over time (GET /v1/security-stats: the console's "connects ok"). A
// connect that succeeds is not a security event and the connection metric has no tenant label, so
// they are counted here: one counter per tenant and hour, never one record per connect. Embedded mode
// keeps the hours in memory (since the gateway started); cluster mode adds each node's counts into
// Redis (RedisConnectCounts, broker/cluster/connect-counts-redis.ts) so every node answers for all.

export const HOUR_MS = 3600_000
/** Hours kept: the longest window (7 d) plus the hour in progress. */
export const KEPT_HOURS = 7 * 24 + 1

export interface ConnectCounts {
  /** A session of `tenant` started on this node: O(1), no I/O on the caller's path. */
  ok(tenant: string): void
  /** Per tenant, the connects in the hours that start at or after the hour of `since` (whole hours). */
  counts(since: number, tenants?: readonly string[]): Promise<Map<string, number>>
  flush(): Promise<void>
}

/** Start of the hour of `ms`. */
export const hourOf = (ms: number): number => ms - (ms % HOUR_MS)

export class MemoryConnectCounts implements ConnectCounts {
  /** hour start → tenant → connects */
  private readonly hours = new Map<number, Map<string, number>>()
  private current = -1
  private bucket: Map<string, number> | undefined

  constructor (private readonly now: () => number = Date.now) {}

  ok (tenant: string): void {
    const h = hourOf(this.now())
    if (h !== this.current || this.bucket === undefined) {
      this.current = h
      let b = this.hours.get(h)
      if (b === undefined) { b = new Map(); this.hours.set(h, b) }
      this.bucket = b
      // once an hour: drop the hours no window reaches
      for (const old of this.hours.keys()) if (old < h - (KEPT_HOURS - 1) * HOUR_MS) this.hours.delete(old)
    }
    this.bucket.set(tenant, (this.bucket.get(tenant) ?? 0) + 1)
  }

  async counts (since: number, tenants?: readonly string[]): Promise<Map<string, number>> {
    const from = hourOf(since)
    const out = new Map<string, number>()
    for (const [h, b] of this.hours) {
      if (h < from) continue
      for (const [tenant, n] of b) {
        if (tenants !== undefined && !tenants.includes(tenant)) continue
        out.set(tenant, (out.get(tenant) ?? 0) + n)
      }
    }
    return out
  }

  async flush (): Promise<void> {}
}
