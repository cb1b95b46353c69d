// aedes' message emitter in cluster mode: local subscribers through mqemitter, other nodes through a
// route table (filter → nodes) kept in Redis and mirrored in memory; a message costs one local match
// plus one PUBLISH per remote node that has a matching route, on that node's own exact channel.
//
// Why not mqemitter-redis: it turns every wildcard filter (every TR-369 agent's `<inbox>/#`) into a
// Redis PSUBSCRIBE pattern, and Redis tests every PUBLISH against every pattern (15,000 patterns:
// 3.3 ms per PUBLISH). Here Redis holds no pattern at all; its cost per message is O(target nodes).
//
// Consistency: a node writes its route set, its change counter and the change message in one MULTI,
// before aedes acknowledges the SUBSCRIBE; peers apply changes in counter order and reload the whole
// set of a node on a gap, a new process (instance) or a reconnect. A node whose heartbeat
// (`<prefix>nodes:<id>`, written by Cluster) has expired loses its routes on every peer.
import { createRequire } from 'node:module'
import { randomUUID } from 'node:crypto'
import { Redis, type RedisOptions } from 'ioredis'
import { routeKeys, type RouteChange, type RouteKeys } from './keys.ts'
import { RouteTable } from './route-table.ts'

const require = createRequire(import.meta.url)
const msgpack = require('msgpack-lite') as { encode(v: unknown): Buffer, decode(b: Buffer): unknown }
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const MQEmitter = require('mqemitter') as (opts: Record<string, unknown>) => LocalEmitter

export interface RoutedPacket { topic: string, [field: string]: unknown }
type Done = (err?: Error | null) => void
type Listener = (packet: RoutedPacket, cb: () => void) => void
interface LocalEmitter {
  on(topic: string, listener: Listener, done?: () => void): unknown
  removeListener(topic: string, listener: Listener, done?: () => void): unknown
  emit(packet: RoutedPacket, done?: Done): unknown
  close(cb: () => void): unknown
  current: number
  concurrency: number
}
interface Log { debug(obj: object, msg: string): void, warn(obj: object, msg: string): void }

/** Deletes a dead node's route set only if the process that wrote it is the one found dead. KEYS: routes, meta. ARGV: instance. */
const DROP_IF_INSTANCE = `local meta = redis.call('GET', KEYS[2])
if meta and string.sub(meta, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ' ' then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0`
const SADD_CHUNK = 10_000
const RELOAD_RETRY_MS = 500

export interface RouteEmitterOptions {
  nodeId: string
  /** Key prefix shared by the cluster (`uspgate:`). */
  prefix: string
  redis: RedisOptions
  /** The heartbeat key of a node (Cluster writes `<prefix>nodes:<id>` with EXPIRE): a node is alive while it exists. */
  heartbeatKey: (node: string) => string
  /** A node whose heartbeat is missing loses its routes (after this grace once first seen). */
  heartbeatTtlMs: number
  /** How often heartbeats are checked and the own route set verified (default 2 s). */
  maintainEveryMs?: number
  log?: Log
  /** A Redis connection of the emitter dropped (the cluster then refuses new connections). */
  onConnectionLost?: () => void
  /** The emitter is connected with its route set written and every peer's loaded. */
  onReady?: () => void
  /** This node found `node` dead and dropped its routes (called on the one node that dropped them). */
  onNodeGone?: (node: string) => void
}

export interface RouteStats { localFilters: number, remoteNodes: number, remoteRoutes: number }

export class RouteTableEmitter {
  readonly instance = randomUUID()
  readonly table = new RouteTable()
  /** Commands, route writes and message PUBLISHes (offline queue on: a blip delays, as mqemitter-redis did). */
  readonly pub: Redis
  /** SUBSCRIBE of the node's own channel and the route-change channel: exact channels only. */
  readonly sub: Redis
  readonly keys: RouteKeys
  closed = false
  private readonly local: LocalEmitter
  private readonly ownInbox: string
  /** Filter → number of local listeners; only the first and the last touch Redis. */
  private readonly localFilters = new Map<string, number>()
  private seq = 0
  private readonly touched = new Set<string>()
  private waiting: Array<() => void> = []
  private flushScheduled = false
  /** The own route set must be rewritten whole (start, reconnect, found missing or taken). */
  private needFull = true
  /**
   * The own route set was written since the publishing link last (re)connected. A rewrite for repair
   * (a peer dropped it, a write failed) does not reset it: the node stays trusted meanwhile, only its
   * subscribers are briefly unreachable from other nodes.
   */
  private ownWritten = false
  private loaded = false
  private readonly loading = new Map<string, Promise<void>>()
  private readonly buffered = new Map<string, RouteChange[]>()
  private readonly timer: NodeJS.Timeout
  private readyWaiters: Array<() => void> = []
  private startFailed: ((err: Error) => void) | undefined
  private wasReady = false
  private readonly log: Log

  constructor (private readonly opts: RouteEmitterOptions) {
    this.keys = routeKeys(opts.prefix)
    this.ownInbox = this.keys.inbox(opts.nodeId)
    this.log = opts.log ?? { debug: () => {}, warn: () => {} }
    // concurrency 0: no global in-flight cap (see the gateway's aedes options); [MQTT-4.7.1-3] `a/#` matches `a`
    this.local = MQEmitter({ concurrency: 0, matchEmptyLevels: true })
    const base: RedisOptions = { retryStrategy: (times: number) => Math.min(50 * times, 1000), ...opts.redis, lazyConnect: true }
    this.pub = new Redis({ ...base, enableAutoPipelining: true, connectionName: `uspgate:${opts.nodeId}:routes-pub` })
    this.sub = new Redis({ ...base, autoResubscribe: false, connectionName: `uspgate:${opts.nodeId}:routes-sub` })
    for (const conn of [this.pub, this.sub]) {
      conn.on('error', (err: Error) => { if (!this.closed) this.log.debug({ err }, 'route emitter redis error') })
      conn.on('close', () => this.lost())
    }
    this.pub.on('ready', () => { this.needFull = true; this.scheduleFlush() })
    this.sub.on('ready', () => { void this.subscribeAndLoad() })
    this.sub.on('messageBuffer', (channel: Buffer, message: Buffer) => this.onMessage(channel.toString(), message))
    this.timer = setInterval(() => { this.maintain().catch(err => this.log.debug({ err }, 'route maintenance failed')) }, opts.maintainEveryMs ?? 2000)
    this.timer.unref()
  }

  /** Connects both links; resolves once the own route set is written and the peers' are loaded (rejects if a link drops first). */
  async start (): Promise<void> {
    await Promise.all([this.pub.connect(), this.sub.connect()])
    if (this.ready) return
    await new Promise<void>((resolve, reject) => {
      this.readyWaiters.push(resolve)
      this.startFailed = reject
    })
  }

  get ready (): boolean {
    return !this.closed && this.pub.status === 'ready' && this.sub.status === 'ready' && this.loaded && this.ownWritten
  }

  /** aedes reads these from its emitter. */
  get current (): number { return this.local.current }
  get concurrency (): number { return this.local.concurrency }

  stats (): RouteStats {
    return { localFilters: this.localFilters.size, remoteNodes: this.table.nodes.size, remoteRoutes: this.table.size }
  }

  // ---- the emitter interface aedes uses (mqemitter's: on, removeListener, emit, close)

  on (topic: string, listener: Listener, done?: () => void): this {
    this.local.on(topic, listener)
    const n = this.localFilters.get(topic) ?? 0
    this.localFilters.set(topic, n + 1)
    if (n === 0) this.routeChanged(topic, done)
    else if (done) setImmediate(done)
    return this
  }

  removeListener (topic: string, listener: Listener, done?: () => void): this {
    this.local.removeListener(topic, listener)
    const n = this.localFilters.get(topic)
    if (n !== undefined && n > 1) this.localFilters.set(topic, n - 1)
    else if (n === 1) { this.localFilters.delete(topic); this.routeChanged(topic, done); return this }
    if (done) setImmediate(done)
    return this
  }

  emit (packet: RoutedPacket, done: Done = noop): this {
    if (this.closed) { done(new Error('route emitter is closed')); return this }
    const targets = this.table.match(packet.topic)
    if (targets.size === 0) { this.local.emit(packet, done); return this }
    const frame = msgpack.encode({ o: this.opts.nodeId, p: packet })
    const sends: Array<Promise<unknown>> = []
    for (const node of targets) sends.push(this.pub.publish(this.keys.inbox(node), frame))
    const remote = sends.length === 1 ? sends[0]! : Promise.all(sends)
    if (packet.topic.startsWith('$SYS/')) {
      // aedes' own coordination (subscription broadcast, takeover): when the local listener sees it,
      // Redis has already sent it to the other nodes, as it was with mqemitter-redis
      remote.then(() => this.local.emit(packet, done), (err: Error) => this.local.emit(packet, () => done(err)))
      return this
    }
    let parts = 2
    let failure: Error | undefined
    const part = (err?: Error | null): void => {
      if (err) failure ??= err
      if (--parts === 0) done(failure)
    }
    this.local.emit(packet, part)
    remote.then(() => part(), part)
    return this
  }

  close (cb: () => void = noop): this {
    if (this.closed) { setImmediate(cb); return this }
    this.closed = true
    clearInterval(this.timer)
    const goodbye = async (): Promise<void> => {
      if (this.pub.status !== 'ready') return
      const gone: RouteChange = { n: this.opts.nodeId, i: this.instance, s: ++this.seq, gone: true }
      await this.pub.eval(DROP_IF_INSTANCE, 2, this.keys.routes(this.opts.nodeId), this.keys.meta(this.opts.nodeId), this.instance)
      await this.pub.publish(this.keys.changes, JSON.stringify(gone))
      await this.pub.srem(this.keys.registry, this.opts.nodeId)
    }
    // bounded: QUIT/EXEC never complete on a failing link
    void Promise.race([goodbye().catch(() => {}), new Promise(resolve => setTimeout(resolve, 500).unref())]).then(() => {
      this.disconnect()
      this.local.close(cb)
    })
    return this
  }

  /** Cuts both connections (a start that failed, or after close). */
  disconnect (): void {
    this.pub.disconnect()
    this.sub.disconnect()
  }

  // ---- the own route set

  private routeChanged (filter: string, done?: () => void): void {
    this.touched.add(filter)
    if (done) this.waiting.push(done)
    this.scheduleFlush()
  }

  /** One MULTI per event-loop turn for all route changes made in it. */
  private scheduleFlush (): void {
    if (this.flushScheduled || this.closed) return
    this.flushScheduled = true
    setImmediate(() => this.flush())
  }

  private flush (): void {
    this.flushScheduled = false
    const waiting = this.waiting
    this.waiting = []
    const release = (): void => { for (const done of waiting) done() }
    if (this.pub.status !== 'ready') {
      // the route set is rewritten whole on 'ready'; the local subscription already works
      this.needFull = true
      this.touched.clear()
      release()
      return
    }
    if (this.needFull) { this.touched.clear(); this.writeFull().finally(release); return }
    const added: string[] = []
    const removed: string[] = []
    for (const f of this.touched) (this.localFilters.has(f) ? added : removed).push(f)
    this.touched.clear()
    if (added.length === 0 && removed.length === 0) { release(); return }
    const me = this.opts.nodeId
    const seq = ++this.seq
    const change: RouteChange = { n: me, i: this.instance, s: seq, ...(added.length ? { a: added } : {}), ...(removed.length ? { r: removed } : {}) }
    const m = this.pub.multi()
    if (added.length) m.sadd(this.keys.routes(me), ...added)
    if (removed.length) m.srem(this.keys.routes(me), ...removed)
    m.set(this.keys.meta(me), `${this.instance} ${seq}`)
    m.publish(this.keys.changes, JSON.stringify(change))
    this.execOrRewrite(m).finally(release)
  }

  /** DEL + SADD of every local filter, a new counter and a `full` change telling peers to reload. */
  private async writeFull (): Promise<void> {
    this.needFull = false
    const me = this.opts.nodeId
    const seq = ++this.seq
    const filters = [...this.localFilters.keys()]
    // registry first, on its own (another hash slot on Redis Cluster)
    this.pub.sadd(this.keys.registry, me).catch(() => {})
    const m = this.pub.multi()
    m.del(this.keys.routes(me))
    for (let i = 0; i < filters.length; i += SADD_CHUNK) m.sadd(this.keys.routes(me), ...filters.slice(i, i + SADD_CHUNK))
    m.set(this.keys.meta(me), `${this.instance} ${seq}`)
    const change: RouteChange = { n: me, i: this.instance, s: seq, full: true }
    m.publish(this.keys.changes, JSON.stringify(change))
    if (await this.execOrRewrite(m)) {
      this.ownWritten = true
      this.checkReady()
    }
  }

  private async execOrRewrite (m: ReturnType<Redis['multi']>): Promise<boolean> {
    try {
      const res = await m.exec()
      if (res === null || res.some(([err]) => err)) throw res?.find(([err]) => err)?.[0] ?? new Error('transaction aborted')
      return true
    } catch (err) {
      this.log.warn({ err }, 'route change not written; rewriting the route set when Redis answers')
      this.needFull = true
      return false
    }
  }

  // ---- peers' route sets

  private async subscribeAndLoad (): Promise<void> {
    try {
      await this.sub.subscribe(this.keys.changes, this.ownInbox)
      await this.loadAll()
    } catch (err) {
      if (this.closed) return
      this.log.warn({ err }, 'route table not loaded; retrying')
      setTimeout(() => { if (this.sub.status === 'ready' && !this.loaded) void this.subscribeAndLoad() }, RELOAD_RETRY_MS).unref()
    }
  }

  /** Every registered peer's route set (after subscribing, so no change falls between load and messages). */
  private async loadAll (): Promise<void> {
    const members = new Set(await this.pub.smembers(this.keys.registry))
    members.delete(this.opts.nodeId)
    for (const node of this.table.nodes.keys()) if (!members.has(node)) this.table.drop(node)
    await Promise.all([...members].map(async node => await this.loadNode(node)))
    this.loaded = true
    const pending = [...this.buffered.entries()]
    this.buffered.clear()
    for (const [, changes] of pending) for (const c of changes) this.applyChange(c)
    this.checkReady()
  }

  private async loadNode (node: string): Promise<void> {
    const running = this.loading.get(node)
    if (running) return await running
    const load = (async () => {
      const res = await this.pub.multi().smembers(this.keys.routes(node)).get(this.keys.meta(node)).exec()
      const failed = res?.find(([err]) => err)
      if (res === null || failed) throw failed?.[0] ?? new Error('transaction aborted')
      const filters = res[0]![1] as string[]
      const meta = res[1]![1] as string | null
      const [instance, seqText] = (meta ?? '').split(' ')
      if (meta === null || instance === undefined || seqText === undefined) { this.table.drop(node); return }
      this.table.replace(node, instance, Number(seqText), filters)
    })()
    this.loading.set(node, load)
    try {
      await load
    } catch (err) {
      // the next maintenance pass (or change message) loads it again
      this.buffered.delete(node)
      this.log.debug({ err, node }, 'route set of a peer not loaded')
      throw err
    } finally {
      this.loading.delete(node)
    }
    const pending = this.buffered.get(node) ?? []
    this.buffered.delete(node)
    for (const c of pending) this.applyChange(c)
  }

  private onMessage (channel: string, message: Buffer): void {
    if (channel === this.ownInbox) {
      let frame: { o?: unknown, p?: RoutedPacket }
      try { frame = msgpack.decode(message) as typeof frame } catch { return }
      // a message is forwarded once, by the node the client published on: never re-forwarded
      if (typeof frame?.p?.topic !== 'string' || frame.o === this.opts.nodeId) return
      this.local.emit(frame.p, noop)
      return
    }
    if (channel !== this.keys.changes) return
    let change: RouteChange
    try { change = JSON.parse(message.toString()) as RouteChange } catch { return }
    if (typeof change?.n !== 'string' || typeof change.i !== 'string' || typeof change.s !== 'number') return
    if (change.n === this.opts.nodeId) {
      // a peer found our heartbeat missing and dropped our routes: write them again
      if (change.gone && change.i === this.instance && !this.closed) { this.needFull = true; this.scheduleFlush() }
      return
    }
    if (!this.loaded || this.loading.has(change.n)) { this.buffer(change); return }
    this.applyChange(change)
  }

  private buffer (change: RouteChange): void {
    const list = this.buffered.get(change.n)
    if (list) list.push(change)
    else this.buffered.set(change.n, [change])
  }

  private applyChange (change: RouteChange): void {
    const entry = this.table.nodes.get(change.n)
    if (change.gone) {
      if (entry?.instance === change.i) this.table.drop(change.n)
      return
    }
    const sameInstance = entry !== undefined && entry.instance === change.i
    if (sameInstance && change.s <= entry.seq) return // already in the loaded set
    if (sameInstance && !change.full && change.s === entry.seq + 1) {
      this.table.apply(change.n, change.s, change.a, change.r)
      return
    }
    // a new node, a restarted one, a full rewrite or a missed change: read the whole set
    this.buffer(change)
    this.loadNode(change.n).catch(() => {})
  }

  // ---- liveness and self-check (every maintainEveryMs)

  private async maintain (): Promise<void> {
    if (this.closed || this.pub.status !== 'ready' || !this.loaded) return
    const me = this.opts.nodeId
    // our route set is still ours in Redis (a peer drops it when our heartbeat is late)
    const meta = await this.pub.get(this.keys.meta(me))
    if (this.ownWritten && meta?.split(' ')[0] !== this.instance) { this.needFull = true; this.scheduleFlush() }
    // O(nodes): the peers we route to and the registered ones, one EXISTS each (no keyspace SCAN)
    const candidates = new Set([...this.table.nodes.keys(), ...await this.pub.smembers(this.keys.registry)])
    candidates.delete(me)
    const ids = [...candidates]
    const p = this.pub.pipeline()
    for (const node of ids) p.exists(this.opts.heartbeatKey(node))
    const res = await p.exec() ?? []
    const live = new Set(ids.filter((_, i) => res[i]?.[0] === null && res[i]?.[1] === 1))
    const now = Date.now()
    for (const [node, entry] of [...this.table.nodes]) {
      if (live.has(node) || now - entry.knownSince < this.opts.heartbeatTtlMs) continue
      this.table.drop(node)
      const gone: RouteChange = { n: node, i: entry.instance, s: entry.seq + 1, gone: true }
      const dropped = await this.pub.eval(DROP_IF_INSTANCE, 2, this.keys.routes(node), this.keys.meta(node), entry.instance)
      if (dropped === 1) {
        await this.pub.srem(this.keys.registry, node)
        await this.pub.publish(this.keys.changes, JSON.stringify(gone))
        this.log.warn({ node }, 'heartbeat of a node expired: its routes are dropped')
        this.opts.onNodeGone?.(node)
      }
    }
    for (const node of live) {
      if (!this.table.nodes.has(node) && !this.loading.has(node)) this.loadNode(node).catch(() => {})
    }
  }

  // ---- readiness

  private lost (): void {
    if (this.closed) return
    if (!this.wasReady && this.startFailed !== undefined) {
      const fail = this.startFailed
      this.startFailed = undefined
      this.readyWaiters = []
      fail(new Error('Redis connection of the route table closed during start-up'))
    }
    this.loaded = this.loaded && this.sub.status === 'ready'
    if (this.pub.status !== 'ready') this.ownWritten = false
    if (this.wasReady) {
      this.wasReady = false
      this.opts.onConnectionLost?.()
    }
  }

  private checkReady (): void {
    if (!this.ready) return
    this.wasReady = true
    const waiters = this.readyWaiters
    this.readyWaiters = []
    this.startFailed = undefined
    for (const resolve of waiters) resolve()
    this.opts.onReady?.()
  }
}

function noop (): void {}
