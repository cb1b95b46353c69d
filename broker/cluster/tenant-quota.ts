// Cluster-wide tenant connection quota (issue 14: per-tenant connection quotas settable through the
// admin API must hold for the tenant, not per node). One Redis hash per tenant,
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
import type { Redis } from 'ioredis'

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

export class ClusterConnectionQuota {
  /** Tenants this process has put in the registry already. */
  private readonly registered = new Set<string>()
  readonly registry: string

  constructor (private readonly cmd: Redis, private readonly prefix: string, private readonly nodeId: string, private readonly log: Log) {
    this.registry = `${prefix}quota:tenants`
  }

  key (tenant: string): string { return `${this.prefix}quota:{${tenant}}:connections` }

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
    for (const t of tenants) p.hdel(this.key(t), node)
    await p.exec()
  }

  /** The tenant's counted connections per node (tests, diagnostics). */
  async usage (tenant: string): Promise<Record<string, number>> {
    const raw = await this.cmd.hgetall(this.key(tenant))
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]))
  }
}
