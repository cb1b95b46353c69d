// Counts of the shared Redis session store (aedes-persistence-redis layout under <prefix>aedes:) for the
// uspgate_retained_messages and uspgate_queued_messages gauges: retained = the size of the retained
// topic index (patches/retained-topic-index.ts: one ZCARD per first topic level, i.e. per tenant); queued = the summed lengths of the per-client outgoing lists, found with SCAN, so it is
// recomputed at most every 30 s (a scrape every 15 s on each node must not walk the keyspace each time).
const QUEUED_TTL_MS = 30_000

/** The subset of the persistence's ioredis connection (keyPrefix <prefix>aedes:) used here. */
export interface CountingConnection {
  llen: (key: string) => Promise<number>
  scan: (cursor: string, ...args: Array<string | number>) => Promise<[string, string[]]>
}

export class RedisStoreCounts {
  private queuedCache: { at: number, value: Promise<number> } | undefined

  /** keyPrefix: the connection's ioredis keyPrefix (applied to keys, but not to SCAN patterns or results). */
  constructor (private readonly conn: CountingConnection, private readonly keyPrefix: string, private readonly retainedCount: () => Promise<number>) {}

  async retained (): Promise<number> {
    try { return await this.retainedCount() } catch { return 0 }
  }

  async queued (): Promise<number> {
    const now = Date.now()
    if (this.queuedCache === undefined || now - this.queuedCache.at > QUEUED_TTL_MS) {
      this.queuedCache = { at: now, value: this.sumOutgoing().catch(() => 0) }
    }
    return await this.queuedCache.value
  }

  private async sumOutgoing (): Promise<number> {
    let cursor = '0'
    let total = 0
    do {
      const [next, keys] = await this.conn.scan(cursor, 'MATCH', `${this.keyPrefix}outgoing:*`, 'COUNT', 1000)
      cursor = next
      const lengths = await Promise.all(keys.map(k => this.conn.llen(k.slice(this.keyPrefix.length))))
      for (const n of lengths) total += n
    } while (cursor !== '0')
    return total
  }
}
