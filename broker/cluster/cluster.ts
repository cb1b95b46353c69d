// Cluster mode (USPGATE_REDIS_URL): every node shares one Redis for
//   - aedes sessions, offline queues, retained messages and wills (aedes-persistence-redis, keys
//     under `<prefix>aedes:`), and live cross-node routing: a route table (filter → nodes, keys
//     `<prefix>routes:{<node>}`) mirrored on every node, one PUBLISH per target node on its own channel
//     `<prefix>node:{<node>}` (broker/cluster/routing/; no Redis pattern per subscription);
//   - the state store (RedisStateStore), policy versions + assignment, a capped security-event stream;
//   - the control channel `<prefix>control` (pub/sub): revocations, state changes, policy changes,
//     PKI changes (the CA directory mirrored in `<prefix>pki`, see cluster-pki.ts);
//   - heartbeats `<prefix>nodes:<id>` (EXPIRE) listing each node's policy revisions.
// A node serves new connections only while it can trust its copy of the state: both Redis connections
// up and a full resync done since the last time either went down. Otherwise CONNECTs are refused with
// "server unavailable" (MQTT 5 0x88 / 3.1.1 code 3) and admin writes answer 503. Never open.
import { createRequire } from 'node:module'
import { isIP } from 'node:net'
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { Redis, type RedisOptions } from 'ioredis'
import { Gauge } from 'prom-client'
import type { Logger } from 'pino'
import { hardenPersistence, countEachAckOnce, type PersistenceConnection } from '../mqtt/index.ts'
import type { RedisStateStore, StoreChange } from './redis-store.ts'
import type { PolicySharedStore } from '../store/index.ts'
import { guardRedisSocketErrors } from './redis-socket-errors.ts'
import { appendJson, entryJson, readNewest } from './streams.ts'
import type { SecurityEvent, SecurityEventInput } from '../core/index.ts'
import type { Metrics } from '../core/index.ts'
import type { ClusterAccess, ClusterView, NodeHeartbeat } from '../control/index.ts'
import { RouteTableEmitter } from './routing/index.ts'
import { batchPersistenceSetup, indexRetainedInRedis, RetainedTopicIndex, type RetainedConnection, type SetupConnection } from './patches/index.ts'
import { RedisStoreCounts, type CountingConnection } from './store-counts.ts'
import { ClusterTenantQuotas } from './tenant-quota.ts'

const require = createRequire(import.meta.url)
const redisPersistence = require('aedes-persistence-redis') as (opts: Record<string, unknown>) => any
// aedes-persistence-redis' own ioredis (5.x), so the connection we hand it is the client it was tested with
const requireFromPersistence = createRequire(require.resolve('aedes-persistence-redis'))
const PersistenceRedis = requireFromPersistence('ioredis') as new (opts: Record<string, unknown>) => NodeJS.EventEmitter & PersistenceConnection & { disconnect(): void }
// the library's own encoding of stored packets
const msgpack = requireFromPersistence('msgpack-lite') as { encode(value: unknown): Buffer, decode(buf: Buffer): Record<string, unknown> }

export const DEFAULT_REDIS_PREFIX = 'uspgate:'
/** KEYS[1]: the policy index. ARGV: the new text; '1' if a current value is expected ('0': the key must be absent); that value. */
const SET_IF_UNCHANGED = `local cur = redis.call('GET', KEYS[1])
if (ARGV[2] == '0' and cur == false) or (ARGV[2] == '1' and cur == ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0`
export const HEARTBEAT_MS = 2000
export const HEARTBEAT_TTL_S = 10
export const DEFAULT_EVENT_STREAM_MAX = 100_000
const RESYNC_RETRY_MS = 500

export interface RedisSettings {
  url: string
  prefix: string
  /** rediss:// only: PEM of the CA(s) that sign Redis' certificate (default: the system store), and a client certificate for Redis' tls-auth-clients. */
  tls?: RedisTlsFiles
  /** Approximate cap of the security-event stream (XADD MAXLEN ~). */
  eventStreamMax?: number
}

export interface RedisTlsFiles { ca?: string, cert?: string, key?: string }

/** ioredis options from redis:// or rediss:// (TLS) URLs with optional user:password and /db. */
export function redisOptionsFromUrl (url: string, tls: RedisTlsFiles = {}): RedisOptions {
  const u = new URL(url)
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`unsupported Redis URL scheme ${u.protocol} (use redis:// or rediss://)`)
  const opts: RedisOptions = { host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port: u.port ? Number(u.port) : 6379 }
  if (u.username) opts.username = decodeURIComponent(u.username)
  if (u.password) opts.password = decodeURIComponent(u.password)
  const db = u.pathname.replace(/^\//, '')
  if (db) {
    if (!/^\d+$/.test(db)) throw new Error(`Redis URL database "${db}" is not a number`)
    opts.db = Number(db)
  }
  // the server certificate is always verified (against `ca` when given, else the system store)
  // (SNI carries host names only; an IP address is still checked against the certificate's IP SANs)
  if (u.protocol === 'rediss:') opts.tls = { ...(isIP(opts.host!) === 0 ? { servername: opts.host } : {}), ...tls }
  return opts
}

/** Redis URL without the password (for logs and the cluster view). */
export function redactRedisUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch { return 'redis://?' }
}

/** Messages on the control channel; `sent` is the publisher's clock (ms), for uspgate_control_lag_seconds. */
export type ControlMessage = { origin: string, sent?: number } & (
  | StoreChange
  | { kind: 'policy' }
  /** The shared PKI (hash `<prefix>pki`) changed; handled by broker/cluster-pki.ts, not here. */
  | { kind: 'pki', version: number }
  /** A request to one node (`to`), answered by a node-answer (e.g. a certification run forwarded to the node holding the device's session). */
  | { kind: 'node-request', to: string, from: string, rid: string, topic: string, body: unknown }
  | { kind: 'node-answer', to: string, rid: string, ok: boolean, value?: unknown, error?: { message: string, kind?: string } }
)

/** A node-request the other node refused or failed: its message and, when it had one, its error kind. */
export class NodeRequestError extends Error {
  constructor (message: string, readonly kind: string | undefined) { super(message) }
}

export interface ClusterHooks {
  /** Full reload of everything held in memory (store, policy assignment). */
  resync: () => Promise<void>
  /** Another node revoked a credential: cut its live sessions, drop cached decisions. */
  onRevoked: (tenant: string, principal: string) => void
  /** Another node changed a tenant (refreshed here first): a disabled tenant's sessions are cut. */
  onTenantChanged: (tenant: string) => void
  onPolicyChanged: () => Promise<void>
  onRemoteEvent: (ev: SecurityEvent) => void
  heartbeat: () => Omit<NodeHeartbeat, 'node' | 'instance' | 'startedAt' | 'heartbeat'>
  emit: (e: SecurityEventInput) => void
}

export class Cluster implements ClusterAccess {
  readonly instance = randomUUID()
  readonly startedAt = new Date().toISOString()
  readonly options: RedisOptions
  /** Commands (state, heartbeats, events). No offline queue: a write while Redis is down fails at once. */
  readonly cmd: Redis
  /** Control channel subscriber. */
  readonly sub: Redis
  /** Blocking XREAD of the event stream. */
  private readonly tail: Redis
  /** Retained / queued message counts of the shared store (metrics). */
  readonly storeCounts: RedisStoreCounts
  private readonly persistenceConn: NodeJS.EventEmitter & PersistenceConnection & { disconnect(): void }
  readonly persistence: ReturnType<typeof redisPersistence>
  /** aedes' emitter: local subscribers, and the route table for the other nodes. */
  readonly mq: RouteTableEmitter
  /** Tenant connection and subscription quotas counted across the nodes (tenant-quota.ts). */
  readonly tenantQuotas: ClusterTenantQuotas
  readonly keys: { control: string, events: string, nodesPrefix: string, policyIndex: string, policyBundle: (rev: string) => string, certRevoked: string }
  private hooks: ClusterHooks | undefined
  private store: RedisStateStore | undefined
  private readonly nodeRequests = new Map<string, { resolve: (v: unknown) => void, reject: (e: Error) => void, timer: NodeJS.Timeout }>()
  private readonly requestHandlers = new Map<string, (body: unknown) => Promise<unknown>>()
  private synced = false
  private wasUp = true
  private resyncing: Promise<void> | undefined
  private resyncTimer: NodeJS.Timeout | undefined
  private heartbeatTimer: NodeJS.Timeout | undefined
  /** The last error a Redis connection reported (for a start that fails). */
  private lastError: Error | undefined
  private closed = false
  private tailId = '$'
  private readonly upGauge: Gauge

  constructor (readonly nodeId: string, readonly settings: RedisSettings, private readonly log: Logger, private readonly metrics: Metrics) {
    const p = settings.prefix
    this.keys = {
      control: `${p}control`,
      events: `${p}events`,
      nodesPrefix: `${p}nodes:`,
      policyIndex: `${p}policy:index`,
      policyBundle: rev => `${p}policy:bundle:${rev}`,
      certRevoked: `${p}cert:revoked`
    }
    this.options = redisOptionsFromUrl(settings.url, settings.tls)
    const retryStrategy = (times: number): number => Math.min(50 * times, 1000)
    const base: RedisOptions = { ...this.options, lazyConnect: true, retryStrategy, connectionName: `uspgate:${nodeId}` }
    this.cmd = new Redis({ ...base, enableOfflineQueue: false, maxRetriesPerRequest: 1 })
    this.tenantQuotas = new ClusterTenantQuotas(this.cmd, p, nodeId, log)
    this.sub = new Redis({ ...base })
    this.tail = new Redis({ ...base, maxRetriesPerRequest: null })
    for (const conn of [this.cmd, this.sub, this.tail]) guardRedisSocketErrors(conn)
    for (const [name, conn] of [['cmd', this.cmd], ['sub', this.sub], ['tail', this.tail]] as const) {
      conn.on('error', err => {
        this.lastError = err
        if (!this.closed) this.log.debug({ err, conn: name }, 'redis connection error')
      })
    }
    this.cmd.on('close', () => this.connectionLost())
    this.sub.on('close', () => this.connectionLost())
    this.cmd.on('ready', () => this.scheduleResync(0))
    this.sub.on('ready', () => this.scheduleResync(0))
    this.sub.on('message', (channel: string, text: string) => { if (channel === this.keys.control) this.onControl(text) })

    // aedes' persistence: keys under <prefix>aedes: (ioredis keyPrefix), its own connection with an
    // offline queue (session writes during a blip are replayed)
    this.persistenceConn = new PersistenceRedis({ ...this.options, keyPrefix: `${p}aedes:`, retryStrategy, connectionName: `uspgate:${nodeId}:persistence` })
    this.persistenceConn.on('error', (err: Error) => { if (!this.closed) this.log.debug({ err }, 'persistence redis error') })
    guardRedisSocketErrors(this.persistenceConn)
    const retainedIndex = new RetainedTopicIndex(this.persistenceConn as unknown as RetainedConnection, msgpack)
    this.storeCounts = new RedisStoreCounts(this.persistenceConn as unknown as CountingConnection, `${p}aedes:`, async () => await retainedIndex.count())
    // wrapped with the QoS 2 fix, the fix that keeps a duplicate acknowledgement from deleting a message
    // other subscribers still queue, start-up loading of stored subscriptions in pipelines
    // (patches/batched-persistence-setup.ts), and retained messages indexed by topic, so a wildcard
    // SUBSCRIBE does not scan every retained message (patches/retained-topic-index.ts).
    const persistence = indexRetainedInRedis(
      batchPersistenceSetup(redisPersistence({ conn: this.persistenceConn }), this.persistenceConn as unknown as SetupConnection),
      this.persistenceConn as unknown as RetainedConnection, msgpack)
    this.persistence = countEachAckOnce(hardenPersistence(persistence), this.persistenceConn, buf => msgpack.decode(buf))
    // Live routing: a message goes to the nodes whose routes match it, one PUBLISH each; losing the
    // emitter's links fails closed like the other connections, and its return triggers a resync.
    this.mq = new RouteTableEmitter({
      nodeId,
      prefix: p,
      redis: { ...this.options, retryStrategy },
      heartbeatKey: node => this.keys.nodesPrefix + node,
      heartbeatTtlMs: HEARTBEAT_TTL_S * 1000,
      maintainEveryMs: HEARTBEAT_MS,
      log: this.log,
      onConnectionLost: () => this.connectionLost(),
      onReady: () => this.scheduleResync(0),
      // a crashed node's connections are gone: its tenant quota counts go with its routes
      onNodeGone: node => { this.tenantQuotas.dropNode(node).catch((err: unknown) => this.log.warn({ err, node }, 'tenant quota counts of a dead node not dropped')) }
    })
    for (const conn of this.emitterConnections()) guardRedisSocketErrors(conn)

    this.upGauge = new Gauge({ name: 'uspgate_redis_up', help: '1 while this node has working Redis connections and a resynchronised state copy', registers: [metrics.registry] })
    this.upGauge.set(0)
  }

  /** True while new connections and admin writes may be served. */
  get trusted (): boolean {
    return !this.closed && this.synced && this.cmd.status === 'ready' && this.sub.status === 'ready' && this.mq.ready
  }

  get up (): boolean { return this.cmd.status === 'ready' && this.sub.status === 'ready' }

  /** Connects, refuses a node id held by another live process, subscribes the control channel. */
  async connect (store: RedisStateStore): Promise<void> {
    this.store = store
    store.onChange = change => this.publish(change)
    try {
      await Promise.all([this.cmd.connect(), this.sub.connect(), this.tail.connect()])
    } catch (err) {
      // ioredis rejects with "Connection is closed."; the reason (WRONGPASS, a TLS verification
      // error, ECONNREFUSED) is the error event that came before it
      const why = this.lastError?.message ?? (err as Error).message
      throw new Error(`cannot reach Redis at ${redactRedisUrl(this.settings.url)}: ${why}`)
    }
    const prev = await this.cmd.get(this.keys.nodesPrefix + this.nodeId)
    if (prev !== null) {
      const hb = JSON.parse(prev) as NodeHeartbeat
      if (hb.instance !== this.instance && Date.now() - Date.parse(hb.heartbeat) < HEARTBEAT_TTL_S * 1000) {
        throw new Error(`node id "${this.nodeId}" is in use by a live node (heartbeat ${hb.heartbeat}); give every node its own USPGATE_NODE_ID, or wait ${HEARTBEAT_TTL_S}s after a crash`)
      }
    }
    // Subscribe before the first load: a change published meanwhile is then either in the load or in a message.
    await this.sub.subscribe(this.keys.control)
    // only now (the node id is ours): write this node's route set and load every peer's
    await this.mq.start()
  }

  /** After the gateway loaded its state: serve control messages, heartbeat, follow the event stream. */
  async start (hooks: ClusterHooks): Promise<void> {
    this.hooks = hooks
    this.synced = true
    this.wasUp = true
    this.upGauge.set(1)
    await this.loadEventTail()
    await this.heartbeat()
    this.heartbeatTimer = setInterval(() => { this.heartbeat().catch(() => {}) }, HEARTBEAT_MS)
    this.heartbeatTimer.unref()
    void this.followEvents()
  }

  /**
   * Why this node must refuse new connections now, or undefined when it may admit them: only while
   * its copy of the state can be trusted (Redis up and resynchronised since the last outage). The
   * CONNECT pipeline (broker/mqtt/connect.ts) asks this first; never open.
   */
  unavailableReason (): string | undefined {
    if (this.trusted) return undefined
    return this.up ? 'resynchronising from Redis' : 'Redis unreachable'
  }

  // ---- control channel

  async publish (change: StoreChange | { kind: 'policy' }): Promise<void> {
    const msg: ControlMessage = { origin: this.instance, sent: Date.now(), ...change }
    try {
      await this.cmd.publish(this.keys.control, JSON.stringify(msg))
    } catch (err) {
      // The write itself is in Redis; nodes that miss this message resync when their link comes back.
      this.log.warn({ err, kind: change.kind }, 'control message not published')
    }
  }

  /** Answers node-requests of a topic sent to this node (a thrown error's message and `kind` go back). */
  handle (topic: string, handler: (body: unknown) => Promise<unknown>): void {
    this.requestHandlers.set(topic, handler)
  }

  /** Sends a request to one node over the control channel and waits for its answer. */
  async requestNode (node: string, topic: string, body: unknown, timeoutMs = 15_000): Promise<unknown> {
    const rid = randomUUID()
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.nodeRequests.delete(rid)
        reject(new NodeRequestError(`node ${node} did not answer (${topic}) within ${Math.round(timeoutMs / 1000)} s`, undefined))
      }, timeoutMs)
      this.nodeRequests.set(rid, { resolve, reject, timer })
      const msg: ControlMessage = { origin: this.instance, sent: Date.now(), kind: 'node-request', to: node, from: this.nodeId, rid, topic, body }
      this.cmd.publish(this.keys.control, JSON.stringify(msg)).catch((err: Error) => {
        clearTimeout(timer)
        this.nodeRequests.delete(rid)
        reject(new NodeRequestError(`request to node ${node} not sent: ${err.message}`, undefined))
      })
    })
  }

  private onNodeMessage (msg: ControlMessage): void {
    if (msg.kind === 'node-answer') {
      const p = this.nodeRequests.get(msg.rid)
      if (msg.to !== this.nodeId || p === undefined) return
      clearTimeout(p.timer)
      this.nodeRequests.delete(msg.rid)
      if (msg.ok) p.resolve(msg.value)
      else p.reject(new NodeRequestError(msg.error?.message ?? 'failed', msg.error?.kind))
      return
    }
    if (msg.kind !== 'node-request' || msg.to !== this.nodeId) return
    const handler = this.requestHandlers.get(msg.topic)
    const answer = (a: { ok: boolean, value?: unknown, error?: { message: string, kind?: string } }): void => {
      const out: ControlMessage = { origin: this.instance, sent: Date.now(), kind: 'node-answer', to: msg.from, rid: msg.rid, ...a }
      this.cmd.publish(this.keys.control, JSON.stringify(out)).catch(err => { this.log.warn({ err }, 'node answer not published') })
    }
    if (handler === undefined) { answer({ ok: false, error: { message: `node ${this.nodeId} does not handle ${msg.topic}` } }); return }
    handler(msg.body).then(
      value => { answer({ ok: true, value }) },
      (err: Error & { kind?: unknown }) => { answer({ ok: false, error: { message: err.message, ...(typeof err.kind === 'string' ? { kind: err.kind } : {}) } }) }
    )
  }

  private onControl (text: string): void {
    let msg: ControlMessage
    try { msg = JSON.parse(text) as ControlMessage } catch { return }
    if (msg.kind === 'node-request' || msg.kind === 'node-answer') {
      if (msg.origin !== this.instance) this.onNodeMessage(msg)
      return
    }
    if (msg.origin === this.instance || this.hooks === undefined || this.store === undefined) return
    // publish-to-receipt time across nodes (their clocks are NTP-synced; a skew below zero counts as 0)
    if (typeof msg.sent === 'number') this.metrics.controlLagSeconds.observe(Math.max(0, Date.now() - msg.sent) / 1000)
    const store = this.store
    const hooks = this.hooks
    const refresh = (p: Promise<void>): void => { p.catch(err => this.resyncNeeded(err)) }
    switch (msg.kind) {
      case 'credential':
        if (msg.revoked) {
          // cut first, from the message alone (no Redis round trip), then refresh the record
          store.markRevoked(msg.tenant, msg.principal, new Date().toISOString())
          hooks.onRevoked(msg.tenant, msg.principal)
        }
        refresh(store.refreshCredential(msg.tenant, msg.principal))
        break
      case 'credentials': refresh(store.refreshCredentials(msg.tenant, msg.principals)); break
      case 'tenant': refresh(store.refreshTenant(msg.id).then(() => hooks.onTenantChanged(msg.id))); break
      case 'admin-token': refresh(store.refreshAdminToken(msg.id)); break
      case 'matrix-row': refresh(store.refreshMatrixRow(msg.key)); break
      case 'policy': refresh(hooks.onPolicyChanged()); break
      default: break
    }
  }

  // ---- outage and resync

  private connectionLost (): void {
    if (this.closed) return
    this.synced = false
    this.upGauge.set(0)
    if (this.wasUp && this.hooks !== undefined) {
      this.wasUp = false
      this.log.error('redis connection lost: new connections refused, admin writes fail (503) until resynchronised')
      this.hooks.emit({ code: 'cluster.redis_down', reason: `connection to ${redactRedisUrl(this.settings.url)} lost; new CONNECTs refused (server unavailable) until resynchronised` })
    }
  }

  private resyncNeeded (err: unknown): void {
    this.log.warn({ err }, 'control message could not be applied; full resync')
    this.synced = false
    this.upGauge.set(0)
    this.scheduleResync(RESYNC_RETRY_MS)
  }

  private scheduleResync (delay: number): void {
    if (this.closed || this.hooks === undefined || this.resyncTimer !== undefined) return
    this.resyncTimer = setTimeout(() => {
      this.resyncTimer = undefined
      this.resync().catch(() => {})
    }, delay)
    this.resyncTimer.unref()
  }

  /** Full reload once both connections are up; retried until it succeeds. */
  async resync (): Promise<void> {
    if (this.resyncing) return await this.resyncing
    this.resyncing = (async () => {
      if (this.closed || this.hooks === undefined || this.synced) return
      if (!this.up) return // the next 'ready' schedules another attempt
      try {
        await this.hooks.resync()
        if (!this.up || !this.mq.ready) return // the emitter's onReady schedules another attempt
        this.synced = true
        this.upGauge.set(1)
        if (!this.wasUp) {
          this.wasUp = true
          this.log.info('redis back: state resynchronised, serving again')
          this.hooks.emit({ code: 'cluster.redis_up', reason: 'state resynchronised from Redis; new connections accepted again' })
        }
        this.heartbeat().catch(() => {})
      } catch (err) {
        this.log.warn({ err }, 'resync from Redis failed; retrying')
        this.scheduleResync(RESYNC_RETRY_MS)
      }
    })().finally(() => { this.resyncing = undefined })
    return await this.resyncing
  }

  // ---- heartbeats and the cluster view

  private async heartbeat (): Promise<void> {
    if (this.hooks === undefined || this.closed || this.cmd.status !== 'ready') return
    const hb: NodeHeartbeat = { node: this.nodeId, instance: this.instance, startedAt: this.startedAt, heartbeat: new Date().toISOString(), ...this.hooks.heartbeat() }
    await this.cmd.set(this.keys.nodesPrefix + this.nodeId, JSON.stringify(hb), 'EX', HEARTBEAT_TTL_S)
  }

  async view (): Promise<ClusterView> {
    const beats = await this.liveNodes()
    const storeIndex = await this.cmd.get(this.keys.policyIndex)
    const storeRevision = storeIndex !== null ? (JSON.parse(storeIndex) as { active?: { stable?: string } | null }).active?.stable : undefined
    const counts = new Map<string, number>()
    for (const b of beats) counts.set(b.revisions.stable, (counts.get(b.revisions.stable) ?? 0) + 1)
    const majorityRevision = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]?.[0]
    const reference = storeRevision ?? majorityRevision
    const now = Date.now()
    const nodes = beats.map(b => ({
      ...b,
      ageMs: now - Date.parse(b.heartbeat),
      self: b.instance === this.instance,
      diverged: reference !== undefined && b.revisions.stable !== reference
    })).sort((a, b) => a.node.localeCompare(b.node))
    return {
      mode: 'cluster',
      node: this.nodeId,
      redis: { url: redactRedisUrl(this.settings.url), prefix: this.settings.prefix, up: this.up, trusted: this.trusted },
      ...(storeRevision !== undefined ? { storeRevision } : {}),
      ...(majorityRevision !== undefined ? { majorityRevision } : {}),
      nodes
    }
  }

  // ---- security-event stream (every node's events on every node)

  appendEvent (ev: SecurityEvent): void {
    if (this.closed || this.cmd.status !== 'ready') return // the node's own audit file still has it
    const max = this.settings.eventStreamMax ?? DEFAULT_EVENT_STREAM_MAX
    void appendJson(this.cmd, this.keys.events, max, ev).then(ok => { if (!ok) this.log.debug('event not appended to the stream') })
  }

  private async loadEventTail (): Promise<void> {
    const max = Math.min(this.settings.eventStreamMax ?? DEFAULT_EVENT_STREAM_MAX, DEFAULT_EVENT_STREAM_MAX)
    const entries = await readNewest(this.cmd, this.keys.events, max)
    if (entries.length > 0) this.tailId = entries[0]!.id
    for (const e of entries.reverse()) this.ingest(e.value)
  }

  private ingest (value: unknown): void {
    const ev = value as SecurityEvent | undefined
    if (typeof ev === 'object' && ev !== null && ev.node !== this.nodeId) this.hooks?.onRemoteEvent(ev)
  }

  private async followEvents (): Promise<void> {
    while (!this.closed) {
      try {
        const res = await this.tail.xread('COUNT', 1000, 'BLOCK', 1000, 'STREAMS', this.keys.events, this.tailId)
        if (res === null) continue
        for (const [, entries] of res) {
          for (const [id, fields] of entries) { this.tailId = id; this.ingest(entryJson(fields)) }
        }
      } catch {
        if (this.closed) return
        await new Promise(resolve => setTimeout(resolve, 500))
      }
    }
  }

  // ---- policy versions in Redis

  policyBackend (): Omit<PolicySharedStore, 'assertWritable'> {
    return {
      loadIndex: async () => await this.cmd.get(this.keys.policyIndex),
      saveIndexIf: async (text, expected) => {
        // compare-and-set in one server-side step: two nodes writing at once cannot both win
        const won = await this.cmd.eval(SET_IF_UNCHANGED, 1, this.keys.policyIndex, text, expected === null ? '0' : '1', expected ?? '') === 1
        if (won) await this.publish({ kind: 'policy' })
        return won
      },
      getBundle: async rev => await this.cmd.getBuffer(this.keys.policyBundle(rev)),
      putBundle: async (rev, bytes) => { await this.cmd.set(this.keys.policyBundle(rev), bytes) },
      delBundle: async rev => { await this.cmd.del(this.keys.policyBundle(rev)) }
    }
  }

  async close (): Promise<void> {
    if (this.closed) return
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer)
    if (this.resyncTimer) clearTimeout(this.resyncTimer)
    try { if (this.cmd.status === 'ready') await this.tenantQuotas.close() } catch { /* gone: peers drop the counts when the heartbeat expires */ }
    try { if (this.cmd.status === 'ready') await this.cmd.del(this.keys.nodesPrefix + this.nodeId) } catch { /* gone */ }
    this.closed = true
    this.upGauge.set(0)
    for (const c of [this.cmd, this.sub, this.tail]) c.disconnect()
    // the persistence's destroy() unsubscribes through the (already closed) emitter; bounded wait, then cut
    await Promise.race([Promise.resolve(this.persistence.destroy()).catch(() => {}), new Promise(resolve => setTimeout(resolve, 500).unref())])
    this.persistenceConn.disconnect()
    // a start refused by Redis never reaches aedes' close of the emitter: cut its connections so they stop reconnecting
    this.mq.disconnect()
  }

  private emitterConnections (): Redis[] {
    return [this.mq.pub, this.mq.sub]
  }

  /** Heartbeats of the nodes alive now (a crashed node's key has expired); unreadable values are skipped. */
  async liveNodes (): Promise<NodeHeartbeat[]> {
    const keys: string[] = []
    let cursor = '0'
    do {
      const [next, batch] = await this.cmd.scan(cursor, 'MATCH', `${this.keys.nodesPrefix}*`, 'COUNT', 500)
      cursor = next
      keys.push(...batch)
    } while (cursor !== '0')
    const values = keys.length > 0 ? await this.cmd.mget(...keys) : []
    return values.flatMap(v => {
      if (v === null) return []
      try { return [JSON.parse(v) as NodeHeartbeat] } catch { return [] }
    })
  }
}

/** Cluster mode needs a stable node id: USPGATE_NODE_ID, else the host name (stable per pod/host). */
export function clusterNodeId (configured: string | undefined): string {
  return configured ?? hostname()
}
