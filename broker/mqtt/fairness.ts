// Fairness between tenants: what one client may cost the gateway, checked on each packet before
// aedes (or the policy engine) does any work on it — filters per SUBSCRIBE, subscriptions per client
// and per tenant, the publish rate — and a
// per-turn budget of subscription decisions, so a huge SUBSCRIBE never holds the event loop.
// A client over its publish rate is not read from at all until its tokens refill (ReadGate): its
// excess waits in its own socket (TCP backpressure) instead of being parsed and refused here.
import type { Duplex } from 'node:stream'
import type { EventCode, Limits, Metrics, SecurityEventInput } from '../core/index.ts'
import type { StateStore } from '../store/index.ts'
import type { ClientState, SessionIndex } from './sessions.ts'
import type { GatewayClient } from './client.ts'
import { DISCONNECT } from './reason-codes.ts'

export interface FairnessDeps {
  limits: Limits
  store: StateStore
  sessions: SessionIndex
  metrics: Metrics
  emit: (e: SecurityEventInput) => void
  /**
   * Cluster mode: the other nodes' subscriptions of a tenant with a subscription quota, or undefined
   * when they cannot be counted now (new filters of the tenant are then refused: fail closed).
   */
  clusterSubscriptions?: (tenant: string) => number | undefined
}

/** Set on a subscription of a SUBSCRIBE that would exceed a quota: the subscribe pipeline refuses it. */
const OVER_QUOTA = Symbol.for('uspgate.subscriptionOverQuota')
/** Set on a PUBLISH by the packet guard: whether it got a token of the client's publish rate. */
const RATE = Symbol.for('uspgate.publishRate')

type QuotaMark = { code: EventCode, reason: string }

/** The quota refusal marked on a subscription, if any (subscribe pipeline). */
export function overQuota (sub: object): QuotaMark | undefined {
  return (sub as { [OVER_QUOTA]?: QuotaMark })[OVER_QUOTA]
}

/** The packet guard's rate verdict: undefined when the packet did not come through it (a will). */
export function rateVerdict (packet: object): boolean | undefined {
  return (packet as { [RATE]?: boolean })[RATE]
}

interface SubscribePacket { cmd: 'subscribe', subscriptions: Array<{ topic: string }> }

export class Fairness {
  constructor (private readonly deps: FairnessDeps) {}

  /** Runs before aedes' handler on every parsed packet of a live client. */
  onPacket (client: GatewayClient, packet: { cmd: string }): void {
    const st = client.gw
    if (st === undefined) return
    if (packet.cmd === 'subscribe') this.subscribe(client, st, packet as SubscribePacket)
    else if (packet.cmd === 'publish') this.publish(client, st, packet)
  }

  private refuse (st: ClientState, code: EventCode, reason: string, extra: Partial<SecurityEventInput> = {}): void {
    this.deps.metrics.drops.labels(code).inc()
    this.deps.emit({ code, tenant: st.tenant, principal: st.principal, clientId: st.wireClientId, remoteAddress: st.remoteAddress, ...extra, reason })
  }

  private subscribe (client: GatewayClient, st: ClientState, packet: SubscribePacket): void {
    const { limits, store, sessions } = this.deps
    const subs = packet.subscriptions ?? []
    if (limits.maxFiltersPerSubscribe > 0 && subs.length > limits.maxFiltersPerSubscribe) {
      this.refuse(st, 'limits.subscribe_filters', `SUBSCRIBE with ${subs.length} filters, above ${limits.maxFiltersPerSubscribe}; connection closed before any filter was decided`, { action: 'subscribe' })
      packet.subscriptions = [] // aedes decides nothing of it; the connection is closing
      if (client.version === 5) client.disconnect({ reasonCode: DISCONNECT.QUOTA_EXCEEDED })
      else client.conn.destroy()
      return
    }
    const held = client.subscriptions as Record<string, unknown>
    const tenantQuota = store.getTenant(st.tenant)?.quotas?.maxSubscriptions ?? 0
    let clientRoom = limits.maxSubscriptionsPerClient > 0 ? limits.maxSubscriptionsPerClient - Object.keys(held).length : Infinity
    let tenantRoom = Infinity
    let tenantWhere = 'on this node'
    if (tenantQuota > 0) {
      // issue 14: the quota is the tenant's, across the cluster (broker/cluster/tenant-quota.ts)
      const others = this.deps.clusterSubscriptions === undefined ? 0 : this.deps.clusterSubscriptions(st.tenant)
      if (this.deps.clusterSubscriptions !== undefined) tenantWhere = others === undefined ? 'across the cluster (the other nodes\' counts cannot be read now)' : 'across the cluster'
      tenantRoom = others === undefined ? 0 : tenantQuota - sessions.subscriptionsOf(st.tenant) - others
    }
    const seen = new Set<string>()
    for (const sub of subs) {
      if (Object.prototype.hasOwnProperty.call(held, sub.topic) || seen.has(sub.topic)) continue // not new
      seen.add(sub.topic)
      if (clientRoom <= 0) {
        (sub as { [OVER_QUOTA]?: QuotaMark })[OVER_QUOTA] = { code: 'limits.subscriptions', reason: `client already holds ${limits.maxSubscriptionsPerClient} subscriptions` }
      } else if (tenantRoom <= 0) {
        (sub as { [OVER_QUOTA]?: QuotaMark })[OVER_QUOTA] = { code: 'limits.tenant_subscriptions', reason: `tenant ${st.tenant} holds its quota of ${tenantQuota} subscriptions ${tenantWhere}` }
      } else {
        clientRoom--
        tenantRoom--
      }
    }
  }

  /**
   * The publish rate is taken here, as the packet is parsed, before aedes' handler, the tenant
   * invariants, the policy engine or USP inspection touch it: a packet over the rate is refused by the
   * first publish step and costs nothing more.
   *
   * Issue 14 ("publish rate applied before work is done on the packet"): once the bucket is empty the
   * client's reads stop (ReadGate) until a tenth of a second of its rate has refilled, so a flood is
   * not even parsed: packets already parsed keep the refusal (limits.rate_limited), the rest waits in
   * the client's own socket. Other clients are never held: the gate is per connection.
   */
  private publish (client: GatewayClient, st: ClientState, packet: object): void {
    if (st.bucket === undefined) return
    const ok = st.bucket.take()
    ;(packet as { [RATE]?: boolean })[RATE] = ok
    if (ok || client.gwReadGate === undefined) return
    const resumeAt = Math.max(1, Math.ceil(this.deps.limits.publishRatePerSecond / 10))
    if (client.gwReadGate.hold(Math.max(1, st.bucket.msUntil(resumeAt)))) this.deps.metrics.publishReadPauses.inc()
  }

  /** After a SUBSCRIBE or UNSUBSCRIBE completed: recount what the client holds (tenant quota). */
  recount (client: GatewayClient): void {
    const st = client.gw
    if (st !== undefined) this.deps.sessions.subscriptionsCounted(st, Object.keys(client.subscriptions).length)
  }
}

/** What ReadGate needs of an aedes client: its read loop (the socket's 'readable' listener) and parser. */
interface ReadLoop {
  conn: Duplex
  _nextBatch: (err?: Error | null) => void
  _parser: { parse(buf: Buffer): unknown }
}

const NO_BYTES: Buffer = Buffer.alloc(0)
/** Packets of one connection parsed in one event-loop turn at most (ReadGate). */
const PACKETS_PER_TURN = 64

/**
 * The total size of the MQTT packet at the start of `buf` (fixed header + Remaining Length, MQTT 5
 * §2.1.4): undefined while the header is incomplete, -1 when the Remaining Length is malformed.
 */
function frameLength (buf: Buffer): number | undefined {
  let length = 0
  for (let i = 1; i <= 4; i++) {
    if (i >= buf.length) return undefined
    const b = buf[i]!
    length += (b & 0x7f) * 128 ** (i - 1)
    if ((b & 0x80) === 0) return 1 + i + length
  }
  return -1
}

/**
 * Backpressure for one connection: while held, aedes' read loop does not read the socket (so the
 * peer's bytes stay in its socket and TCP window) and the rest of a chunk already read is not parsed.
 * The parser is fed one packet at a time, so a hold taken by a packet stops the next one; a packet
 * that has not fully arrived is fed as it comes (aedes' Maximum Packet Size check sees its header).
 * Read-loop calls made while held are replayed in order on release, so aedes' own accounting of
 * packets in flight is unchanged.
 */
export class ReadGate {
  /** A rate hold (setTimeout) or a turn yield (setImmediate); reads and parsing wait while either runs. */
  private timer: NodeJS.Timeout | undefined
  private yielding: NodeJS.Immediate | undefined
  private owed = 0
  private pending: Buffer = NO_BYTES
  /** Bytes of a packet the parser has begun and not yet received in full. */
  private partialLeft = 0
  private readonly nextBatch: (err?: Error | null) => void
  private readonly parse: (buf: Buffer) => unknown

  constructor (client: ReadLoop) {
    const { conn, _parser: parser } = client
    this.nextBatch = client._nextBatch
    this.parse = parser.parse.bind(parser)
    const gated = (err?: Error | null): void => {
      if (err !== undefined && err !== null) { this.nextBatch(err); return }
      if (this.held) { this.owed++; return }
      this.nextBatch()
    }
    conn.removeListener('readable', this.nextBatch)
    conn.on('readable', gated)
    client._nextBatch = gated
    parser.parse = (buf: Buffer) => { this.feed(buf) }
    conn.once('close', () => {
      clearTimeout(this.timer)
      if (this.yielding !== undefined) clearImmediate(this.yielding)
      this.pending = NO_BYTES
    })
  }

  private get held (): boolean { return this.timer !== undefined || this.yielding !== undefined }

  /** Holds reads for `ms`; false when a rate hold already runs (it stands). */
  hold (ms: number): boolean {
    if (this.timer !== undefined) return false
    this.timer = setTimeout(() => { this.timer = undefined; this.release() }, ms)
    return true
  }

  /** Lets the event loop serve other connections before this one's next packets. */
  private yieldTurn (): void {
    this.yielding = setImmediate(() => { this.yielding = undefined; this.release() })
  }

  private release (): void {
    if (this.held) return
    this.drain()
    while (this.owed > 0 && !this.held) {
      this.owed--
      this.nextBatch()
    }
  }

  private feed (buf: Buffer): void {
    this.pending = this.pending.length === 0 ? buf : Buffer.concat([this.pending, buf])
    this.drain()
  }

  /**
   * Feeds the parser packet by packet until the bytes run out or a packet takes a hold; after
   * PACKETS_PER_TURN packets the rest waits for the next event-loop turn, so one connection's long
   * chunk (hundreds of small PUBLISHes in one read) never runs ahead of every other connection.
   */
  private drain (): void {
    let fed = 0
    while (this.pending.length > 0 && !this.held) {
      if (fed >= PACKETS_PER_TURN) { this.yieldTurn(); return }
      let n: number
      if (this.partialLeft > 0) {
        n = Math.min(this.partialLeft, this.pending.length)
        this.partialLeft -= n
      } else {
        const total = frameLength(this.pending)
        if (total === undefined) return // at most 4 bytes wait for the rest of the header
        if (total < 0) n = this.pending.length // malformed: the parser reports it
        else if (total <= this.pending.length) n = total
        else { n = this.pending.length; this.partialLeft = total - n }
      }
      const chunk = this.pending.subarray(0, n)
      this.pending = n === this.pending.length ? NO_BYTES : this.pending.subarray(n)
      this.parse(chunk) // may emit a packet whose publish step takes a hold
      fed++
    }
  }
}

/**
 * Runs subscription decisions at most `perTurn` per event-loop turn (all clients together); the rest
 * wait for the next turn in arrival order. A SUBSCRIBE of thousands of filters then costs other
 * tenants a few milliseconds per turn, not the whole packet at once.
 */
export class DecisionBudget {
  private used = 0
  private readonly waiting: Array<() => void> = []
  private scheduled = false

  constructor (private readonly perTurn: number) {}

  run (decide: () => void): void {
    if (this.perTurn <= 0 || (this.waiting.length === 0 && this.used < this.perTurn)) {
      this.used++
      this.nextTurn()
      decide()
      return
    }
    this.waiting.push(decide)
    this.nextTurn()
  }

  private nextTurn (): void {
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      this.used = 0
      while (this.waiting.length > 0 && this.used < this.perTurn) {
        this.used++
        this.waiting.shift()!()
      }
      if (this.waiting.length > 0) this.nextTurn()
    })
  }
}
