// The endpoint registry in cluster mode: one hash per tenant, `<prefix>endpoints:<tenant>`, field =
// endpoint id, value = the JSON record plus the instance of the node that wrote it. Every node sees
// every node's endpoints.
//
// Writes are batched like the file registry's: at most one burst a second per node (plus one before
// an API read, so a node always lists its own changes), so a reconnect storm is not a storm of Redis
// writes. A node sends what changed (a patch), not a whole record, and a Lua script merges it under
// rules that keep the newest session's view when an endpoint moves between nodes:
//   - a new session takes the record over (first contact kept), unless the stored record belongs to
//     a session that started later (node clocks are assumed NTP-synchronised);
//   - a disconnect or MQTTConnectRecord only changes a record its own node instance still owns, so a
//     session cut on node A because the endpoint reconnected to node B never marks it offline.
// A record that says online is reported offline when its node instance has no live heartbeat
// (`<prefix>nodes:<id>`, see cluster.ts): the node crashed or restarted without its sessions.
// Best effort: while Redis is down changes wait in memory (one patch per endpoint) and are retried.
//
// Presence transitions (online / offline with time, node, MQTT version and why a session ended) go
// with the same batched write, into a capped list per endpoint, `<prefix>presence:{<tenant>}:<id>`
// (LPUSH + LTRIM to PRESENCE_HISTORY + EXPIRE, newest first): O(1) per transition, nothing per message.
import type { Logger } from 'pino'
import type { Cluster } from './cluster.ts'
import { isoNow } from '../core/index.ts'
import type { EndpointRecord, PresenceTransition } from '../store/index.ts'
import { mqttVersion, offlineTransition, PRESENCE_HISTORY, type Endpoints, type OfflineCause } from '../usp/index.ts'

const FLUSH_MS = 1000
/** Patches per EVAL: a storm of thousands is sent as several short scripts, not one that blocks Redis. */
const CHUNK = 500
/** A presence timeline nobody changed for this long is dropped by Redis. */
const PRESENCE_TTL_SECONDS = 30 * 24 * 3600

/** What one node changed about one endpoint since its last write. */
interface Patch {
  tenant: string
  endpointId: string
  node: string
  instance: string
  lastSeen: string
  /** Set when a session started on this node: the patch may then take the record over. */
  connectedAt?: string
  role?: string
  online?: boolean
  firstContact?: string
  mqttVersion?: string
  subscribedTopic?: string
}

/** As stored: the record plus the owning node instance and when its session started (never shown). */
type Stored = EndpointRecord & { instance?: string, connectedAt?: string }

// KEYS[i] = the tenant's hash, ARGV[2i-1] = endpoint id, ARGV[2i] = patch. ISO timestamps of one
// format compare as strings. A stored value that is not a JSON object is replaced, never an error.
const MERGE = `
local function str (v) if type(v) == 'string' then return v end return '' end
for i, key in ipairs(KEYS) do
  local field = ARGV[2 * i - 1]
  local p = cjson.decode(ARGV[2 * i])
  local cur = nil
  local raw = redis.call('HGET', key, field)
  if raw then
    local ok, v = pcall(cjson.decode, raw)
    if ok and type(v) == 'table' then cur = v end
  end
  local owned = cur ~= nil and cur.node == p.node and cur.instance == p.instance
  local newer = p.connectedAt ~= nil and (cur == nil or str(cur.connectedAt) <= p.connectedAt)
  if owned or newer then
    local rec = cur or {}
    if cur ~= nil then
      if str(cur.firstContact) ~= '' and str(cur.firstContact) < str(p.firstContact) then p.firstContact = cur.firstContact end
      if str(cur.lastSeen) > p.lastSeen then p.lastSeen = cur.lastSeen end
    end
    for k, v in pairs(p) do rec[k] = v end
    redis.call('HSET', key, field, cjson.encode(rec))
  end
end
return 0
`

export class RedisEndpointRegistry implements Endpoints {
  private pending = new Map<string, Patch>()
  /** Presence transitions not yet written, per endpoint key, oldest first (never part of the merged record). */
  private transitions = new Map<string, { tenant: string, endpointId: string, list: PresenceTransition[] }>()
  private timer: NodeJS.Timeout | undefined
  private writing: Promise<void> = Promise.resolve()

  constructor (private readonly cluster: Cluster, private readonly log: Logger) {}

  /** Nothing to load: the records are in Redis, and liveness comes from the heartbeats. */
  async load (): Promise<void> {}

  connected (tenant: string, endpointId: string, role: string, protocol: number): void {
    const now = isoNow()
    const p = this.patch(tenant, endpointId, now)
    p.connectedAt = now
    p.role = role
    p.online = true
    p.firstContact ??= now
    p.mqttVersion = mqttVersion(protocol)
    this.transition(tenant, endpointId, { state: 'online', time: now, node: this.cluster.nodeId, mqttVersion: p.mqttVersion })
  }

  disconnected (tenant: string, endpointId: string, cause?: OfflineCause, protocol?: number): void {
    const now = isoNow()
    this.patch(tenant, endpointId, now).online = false
    this.transition(tenant, endpointId, offlineTransition(now, this.cluster.nodeId, protocol !== undefined ? mqttVersion(protocol) : 'unknown', cause))
  }

  /** Every node's transitions of the endpoint, newest first. Throws when Redis cannot be read. */
  async presence (tenant: string, endpointId: string): Promise<PresenceTransition[]> {
    await this.flush()
    const raw = await this.cluster.cmd.lrange(this.presenceKey(tenant, endpointId), 0, PRESENCE_HISTORY - 1)
    const out: PresenceTransition[] = []
    for (const text of raw) {
      try {
        const t = JSON.parse(text) as PresenceTransition
        if (typeof t === 'object' && t !== null && typeof t.time === 'string' && (t.state === 'online' || t.state === 'offline')) out.push(t)
      } catch { /* unreadable: skipped */ }
    }
    // nodes write in batches: order by time (stable, so one node's same-millisecond pair keeps its order)
    return out.sort((a, b) => a.time < b.time ? 1 : a.time > b.time ? -1 : 0)
  }

  private transition (tenant: string, endpointId: string, t: PresenceTransition): void {
    const k = `${tenant}\u0000${endpointId}`
    let e = this.transitions.get(k)
    if (e === undefined) { e = { tenant, endpointId, list: [] }; this.transitions.set(k, e) }
    e.list.push(t)
    if (e.list.length > PRESENCE_HISTORY) e.list.shift()
  }

  sawConnectRecord (tenant: string, endpointId: string, subscribedTopic: string): void {
    this.patch(tenant, endpointId, isoNow()).subscribedTopic = subscribedTopic
  }

  /** Every node's endpoints of the tenant. Throws when Redis cannot be read (the control plane answers 503). */
  async list (tenant: string): Promise<EndpointRecord[]> {
    await this.flush()
    const [hash, live] = await Promise.all([this.cluster.cmd.hgetall(this.key(tenant)), this.liveInstances()])
    return Object.values(hash).flatMap(text => {
      const r = view(text, live)
      return r !== undefined && r.tenant === tenant ? [r] : []
    }).sort((a, b) => a.endpointId.localeCompare(b.endpointId))
  }

  async get (tenant: string, endpointId: string): Promise<EndpointRecord | undefined> {
    await this.flush()
    const [text, live] = await Promise.all([this.cluster.cmd.hget(this.key(tenant), endpointId), this.liveInstances()])
    const r = text === null ? undefined : view(text, live)
    return r?.tenant === tenant ? r : undefined
  }

  /** Writes the pending changes now; never throws (what could not be written is retried). */
  async flush (): Promise<void> {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined }
    this.writing = this.writing.then(async () => await this.write()).catch(err => {
      this.log.warn({ err }, 'endpoint registry write failed')
      this.schedule()
    })
    await this.writing
  }

  private patch (tenant: string, endpointId: string, now: string): Patch {
    const k = `${tenant}\u0000${endpointId}`
    let p = this.pending.get(k)
    if (p === undefined) {
      p = { tenant, endpointId, node: this.cluster.nodeId, instance: this.cluster.instance, lastSeen: now }
      this.pending.set(k, p)
    }
    p.lastSeen = now
    this.schedule()
    return p
  }

  private schedule (): void {
    // after close (connection ended) nothing is retried
    if (this.timer || this.cluster.cmd.status === 'end') return
    this.timer = setTimeout(() => { this.timer = undefined; void this.flush() }, FLUSH_MS)
    this.timer.unref()
  }

  private async write (): Promise<void> {
    if (this.pending.size === 0 && this.transitions.size === 0) return
    const redis = this.cluster.cmd
    if (redis.status !== 'ready') { this.schedule(); return } // no offline queue: wait for Redis
    const batch = [...this.pending]
    this.pending = new Map()
    const history = [...this.transitions]
    this.transitions = new Map()
    const chunks: Array<typeof batch> = []
    const pipeline = redis.pipeline()
    for (let i = 0; i < batch.length; i += CHUNK) {
      const chunk = batch.slice(i, i + CHUNK)
      chunks.push(chunk)
      pipeline.eval(MERGE, chunk.length, ...chunk.map(([, p]) => this.key(p.tenant)), ...chunk.flatMap(([, p]) => [p.endpointId, JSON.stringify(p)]))
    }
    // per endpoint: its transitions in one LPUSH (oldest first, so the newest ends up at the head), capped
    for (const [, h] of history) {
      const key = this.presenceKey(h.tenant, h.endpointId)
      pipeline.lpush(key, ...h.list.map(t => JSON.stringify(t)))
      pipeline.ltrim(key, 0, PRESENCE_HISTORY - 1)
      pipeline.expire(key, PRESENCE_TTL_SECONDS)
    }
    let results: Array<[Error | null, unknown]> | null = null
    try { results = await pipeline.exec() } catch (err) { this.log.debug({ err }, 'endpoint registry write failed') }
    let failed = 0
    chunks.forEach((chunk, i) => {
      const reply = results?.[i]
      if (reply !== undefined && reply[0] === null) return
      // retried whole: merging a patch again gives the same record
      failed += chunk.length
      for (const [k, p] of chunk) this.requeue(k, p)
    })
    // LPUSH, LTRIM, EXPIRE per endpoint: the LPUSH reply says whether its transitions were written
    history.forEach(([k, h], i) => {
      const reply = results?.[chunks.length + i * 3]
      if (reply !== undefined && reply[0] === null) return
      failed += 1
      const newer = this.transitions.get(k)
      const list = [...h.list, ...(newer?.list ?? [])].slice(-PRESENCE_HISTORY)
      this.transitions.set(k, { tenant: h.tenant, endpointId: h.endpointId, list })
    })
    if (failed > 0) {
      this.log.debug({ failed }, 'endpoint registry changes not written to Redis; retrying')
      this.schedule()
    }
  }

  /** Puts back a patch that could not be written, under any change made since. */
  private requeue (k: string, older: Patch): void {
    const newer = this.pending.get(k)
    if (newer === undefined) { this.pending.set(k, older); return }
    const merged: Patch = { ...older, ...newer }
    if (older.firstContact !== undefined) merged.firstContact = older.firstContact
    this.pending.set(k, merged)
  }

  private key (tenant: string): string {
    return `${this.cluster.settings.prefix}endpoints:${tenant}`
  }

  /** Hash-tagged by tenant: one endpoint's timeline lives in one slot with its tenant's other keys. */
  private presenceKey (tenant: string, endpointId: string): string {
    return `${this.cluster.settings.prefix}presence:{${tenant}}:${endpointId}`
  }

  /** node id → instance of every node with a live heartbeat. */
  private async liveInstances (): Promise<Map<string, string>> {
    return new Map((await this.cluster.liveNodes()).map(n => [n.node, n.instance]))
  }
}

/** The API record from a stored value (undefined when unreadable); online only while its node instance lives. */
function view (text: string, live: Map<string, string>): EndpointRecord | undefined {
  let s: Stored
  try { s = JSON.parse(text) as Stored } catch { return undefined }
  if (typeof s !== 'object' || s === null || typeof s.tenant !== 'string' || typeof s.endpointId !== 'string') return undefined
  const { instance, connectedAt: _, ...record } = s
  return { ...record, online: record.online === true && instance !== undefined && live.get(record.node) === instance }
}
