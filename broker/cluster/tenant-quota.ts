// Cluster-wide tenant quotas (issue 14: per-tenant connection and subscription quotas settable through
// the admin API hold for the tenant, not per node).
//
// Connections, exact. One Redis hash per tenant,
// `<prefix>quota:{<tenant>}:connections`, field = node id, value = that node's live connections of
// the tenant that were counted. The hash tag keeps each tenant's hash in one slot, so the check and
// the increment are one single-key script (atomic on Redis and Redis Cluster): two nodes admitting
// at once cannot both take the last place.
//
// A node's field changes only by its own deltas (+1 on accept, -1 when that connection closes), so
// concurrent CONNECTs on one node need no ordering. What a node can no longer correct itself:
//   - it crashed: the peer that finds its heartbeat expired (routing/route-emitter.ts, the same
//     detection that drops its route set) deletes its field from every tenant's hash (dropNode);
//   - it lost Redis for a while (a release could not be written): after the resync it rewrites its
//     own field from its live sessions (reconcile), as it does on start (a restarted node id).
// Redis unreachable while admitting: the CONNECT is refused (fail closed, like the rest of cluster mode).
//
// Subscriptions, within about a second. The subscription quota is checked on the packet, before aedes
// or the policy engine do any work (mqtt/fairness.ts), so it cannot wait for Redis: every node writes
// its own count per tenant with a quota (`<prefix>quota:{<tenant>}:subscriptions`, field = node id,
// absolute values) and reads the other nodes' counts, once per SYNC_MS. A new filter is refused when
// this node's live count plus the others' last read reaches the quota; when the last successful read
// is older than STALE_MS (Redis unreachable), new filters of a tenant with a quota are refused (fail
// closed). Two nodes admitting in the same second can overshoot by what they admit in that second.
import type { Redis } from 'ioredis'

/** How often this node writes its subscription counts and reads the other nodes'. */
export const SUBSCRIPTION_SYNC_MS = 1000
/** A view of the other nodes' subscription counts older than this is not trusted. */
const STALE_MS = 5 * SUBSCRIPTION_SYNC_MS

interface Log { warn(obj: object, msg: string): void }

/** KEYS[1]: the tenant's hash. ARGV: node id, allowed total. Returns -1 when taken, else the total that is full. */
const ACQUIRE = `local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
if total >= tonumber(ARGV[2]) then return total end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return -1`

/** KEYS[1]: the tenant's hash. ARGV: node id. */
const RELEASE = `local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n`

export class ClusterTenantQuotas {
  /** Tenants this process has put in the registry already. */
  private readonly registered = new Set<string>()
  readonly registry: string
  /** Per tenant with a subscription quota: the other nodes' subscriptions, as last read. */
  private others = new Map<string, number>()
  private viewAt = 0
  private syncTimer: NodeJS.Timeout | undefined
  private syncing = false

  constructor (private readonly cmd: Redis, private readonly prefix: string, private readonly nodeId: string, private readonly log: Log) {
    this.registry = `${prefix}quota:tenants`
  }

  key (tenant: string): string { return `${this.prefix}quota:{${tenant}}:connections` }
  subscriptionsKey (tenant: string): string { return `${this.prefix}quota:{${tenant}}:subscriptions` }

  /**
   * The other nodes' subscriptions of a tenant with a subscription quota, as last read; undefined
   * when the view is stale (fail closed) or the tenant's quota is newer than the last read.
   */
  otherSubscriptions (tenant: string): number | undefined {
    if (Date.now() - this.viewAt > STALE_MS) return undefined
    return this.others.get(tenant)
  }

  /** Every SUBSCRIPTION_SYNC_MS: writes this node's counts of `tenants()` and reads the other nodes'. */
  startSubscriptionSync (tenants: () => string[], local: (tenant: string) => number): void {
    const sync = (): void => {
      if (this.syncing) return
      this.syncing = true
      this.syncSubscriptions(tenants(), local).catch(() => { /* the view goes stale: fail closed */ }).finally(() => { this.syncing = false })
    }
    sync()
    this.syncTimer = setInterval(sync, SUBSCRIPTION_SYNC_MS)
    this.syncTimer.unref()
  }

  async syncSubscriptions (tenants: string[], local: (tenant: string) => number): Promise<void> {
    const started = Date.now()
    const p = this.cmd.pipeline()
    for (const t of tenants) {
      const n = local(t)
      if (n > 0) p.hset(this.subscriptionsKey(t), this.nodeId, n)
      else p.hdel(this.subscriptionsKey(t), this.nodeId)
      p.hgetall(this.subscriptionsKey(t))
    }
    for (const t of tenants) if (!this.registered.has(t)) p.sadd(this.registry, t)
    const res = await p.exec() ?? []
    const others = new Map<string, number>()
    for (let i = 0; i < tenants.length; i++) {
      const [err, all] = res[2 * i + 1] ?? [new Error('no reply'), null]
      if (err) throw err
      let sum = 0
      for (const [node, v] of Object.entries(all as Record<string, string>)) if (node !== this.nodeId) sum += Number(v)
      others.set(tenants[i]!, sum)
    }
    for (const t of tenants) this.registered.add(t)
    this.others = others
    this.viewAt = started
  }

  /** A node closing: its counts go (its connections are closing; its heartbeat is deleted, so no peer would find it dead). */
  async close (): Promise<void> {
    if (this.syncTimer) clearInterval(this.syncTimer)
    await this.dropNode(this.nodeId)
  }

  /**
   * Takes one connection of the tenant's cluster-wide `allowed`: undefined when taken, else the
   * tenant's connections across the cluster (the quota is full). Rejects when Redis cannot answer.
   */
  async acquire (tenant: string, allowed: number): Promise<number | undefined> {
    if (!this.registered.has(tenant)) {
      await this.cmd.sadd(this.registry, tenant) // dropNode and reconcile find the tenant's hash
      this.registered.add(tenant)
    }
    const r = Number(await this.cmd.eval(ACQUIRE, 1, this.key(tenant), this.nodeId, String(allowed)))
    return r < 0 ? undefined : r
  }

  /** A counted connection closed. A failed write is corrected by reconcile after the resync. */
  release (tenant: string): void {
    this.cmd.eval(RELEASE, 1, this.key(tenant), this.nodeId).catch((err: unknown) => {
      this.log.warn({ err, tenant }, 'tenant connection quota: release not written (corrected at the next resync)')
    })
  }

  /** Sets this node's field of every tenant to its counted live connections (start-up, after a resync). */
  async reconcile (counts: ReadonlyMap<string, number>): Promise<void> {
    const tenants = new Set([...await this.cmd.smembers(this.registry), ...counts.keys()])
    if (tenants.size === 0) return
    const p = this.cmd.pipeline()
    for (const t of tenants) {
      const n = counts.get(t) ?? 0
      if (n > 0) p.hset(this.key(t), this.nodeId, n)
      else p.hdel(this.key(t), this.nodeId)
    }
    for (const t of counts.keys()) p.sadd(this.registry, t)
    await p.exec()
  }

  /** A node found dead (its heartbeat expired): its connections are gone. */
  async dropNode (node: string): Promise<void> {
    const tenants = await this.cmd.smembers(this.registry)
    if (tenants.length === 0) return
    const p = this.cmd.pipeline()
    for (const t of tenants) { p.hdel(this.key(t), node); p.hdel(this.subscriptionsKey(t), node) }
    await p.exec()
  }

  /** The tenant's counted connections per node (tests, diagnostics). */
  async usage (tenant: string): Promise<Record<string, number>> {
    const raw = await this.cmd.hgetall(this.key(tenant))
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]))
  }
}
