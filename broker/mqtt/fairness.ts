// Fairness between tenants: what one client may cost the gateway, checked on each packet before
// aedes (or the policy engine) does any work on it — filters per SUBSCRIBE, subscriptions per client
// and per tenant, the publish rate — and a
// per-turn budget of subscription decisions, so a huge SUBSCRIBE never holds the event loop.
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
    else if (packet.cmd === 'publish') this.publish(st, packet)
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
    let tenantRoom = tenantQuota > 0 ? tenantQuota - sessions.tenantUsage(st.tenant).subscriptions : Infinity
    const seen = new Set<string>()
    for (const sub of subs) {
      if (Object.prototype.hasOwnProperty.call(held, sub.topic) || seen.has(sub.topic)) continue // not new
      seen.add(sub.topic)
      if (clientRoom <= 0) {
        (sub as { [OVER_QUOTA]?: QuotaMark })[OVER_QUOTA] = { code: 'limits.subscriptions', reason: `client already holds ${limits.maxSubscriptionsPerClient} subscriptions` }
      } else if (tenantRoom <= 0) {
        (sub as { [OVER_QUOTA]?: QuotaMark })[OVER_QUOTA] = { code: 'limits.tenant_subscriptions', reason: `tenant ${st.tenant} holds its quota of ${tenantQuota} subscriptions on this node` }
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
   */
  private publish (st: ClientState, packet: object): void {
    if (st.bucket !== undefined) (packet as { [RATE]?: boolean })[RATE] = st.bucket.take()
  }

  /** After a SUBSCRIBE or UNSUBSCRIBE completed: recount what the client holds (tenant quota). */
  recount (client: GatewayClient): void {
    const st = client.gw
    if (st !== undefined) this.deps.sessions.subscriptionsCounted(st, Object.keys(client.subscriptions).length)
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
