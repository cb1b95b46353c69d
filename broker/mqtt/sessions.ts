// Live sessions on this node, indexed by identity so a revocation can find
// every connection of a credential at once, and by wire client id so a client
// id held by one identity can never be presented by another.
import type { Role } from '../core/index.ts'
import type { PolicyClient } from '../../policies/index.ts'
import type { DecisionMemo } from './decision-memo.ts'
import type { UspTopic } from '../usp/index.ts'
import { DISCONNECT } from './reason-codes.ts'

export interface ClientState {
  tenant: string
  principal: string
  role: Role
  /** "<tenant>:<principal>" */
  identity: string
  /** The client id the client sent (or was assigned); aedes sees the namespaced one. */
  wireClientId: string
  /** aedes' client.id: "<tenant>:<principal>|<wire client id>". */
  internalId: string
  prefix: string
  protocol: number
  listener: string
  auth: 'password' | 'certificate'
  /** Serial of the client certificate that authenticated this session (mTLS). */
  certSerial?: string
  /** DER of that certificate: a will published after the connection is gone re-checks it. */
  certPeer?: Buffer
  remoteAddress: string
  connectedAt: string
  revoked: boolean
  cleanStart: boolean
  /** Counted in the cluster-wide tenant connection quota (released when its connection closes). */
  quotaCounted?: boolean
  /** QoS 2 message ids received and not yet released by PUBREL (created at the first QoS 2 PUBLISH: most sessions never send one). */
  inflightQos2: Set<number> | undefined
  /** QoS 2 message ids first used on this connection (clean-start dedup fix; created on first use). */
  seenQos2: Set<number> | undefined
  bucket: { take(): boolean, msUntil(n: number): number } | undefined
  /** Subscriptions this live client holds (aedes' client.subscriptions), as last counted (fairness.ts). */
  subscriptionCount: number
  /** The client part of every policy input, built once per session. */
  policyClient: PolicyClient
  /** Publish and delivery decisions of this session for one policy revision (created at first use). */
  publishMemo: DecisionMemo | undefined
  deliverMemo: DecisionMemo | undefined
  /**
   * The topic name of this session's last PUBLISH that passed the topic checks (tenant prefix, no `$`,
   * bounded and clean, against the gateway's limits, fixed at start), and its USP reading, made at first
   * use: an Agent publishes to its Controller's inbox again and again, so both are done once (publish.ts).
   */
  publishedTopic: string | undefined
  publishedUspTopic: UspTopic | undefined
  /** Payload bytes let through to this client in event-loop turn `deliveringTurn`, not yet written (see authorizeForward). */
  deliveringBytes: number
  deliveringTurn: number
}

export interface SessionView {
  tenant: string
  principal: string
  role: Role
  clientId: string
  protocol: string
  listener: string
  auth: string
  remoteAddress: string
  connectedAt: string
  node: string
}

export interface SessionHandle {
  state: ClientState
  disconnect(reasonCode: number): void
  /** Closes the socket at once (a peer that does not go after DISCONNECT). */
  destroy(): void
}

/** A cut peer that does not read its DISCONNECT and go is cut off at the socket after this. */
const CUT_BACKSTOP_MS = 500
/** aedes ends a destroyed connection (unsubscribe, will, session expiry) within a few turns. */
const DISCARD_AFTER_CLOSE_MS = 100

/** What is remembered of a session whose connection ended on this node (it may still have a delayed will, subscriptions, a queue). */
export interface OfflineSession {
  internalId: string
  identity: string
  tenant: string
  auth: 'password' | 'certificate' | 'unknown'
  certSerial?: string | undefined
  certPeer?: Buffer | undefined
}

/** Offline sessions remembered per node (oldest forgotten first); a forgotten one's will is still re-checked when it fires. */
const MAX_OFFLINE_REMEMBERED = 200_000

export class SessionIndex {
  private readonly byInternalId = new Map<string, SessionHandle>()
  // one handle per key almost always: kept bare, a Set only while a key has several (memory per session)
  private readonly byIdentity = new Map<string, OneOrMore<SessionHandle>>()
  private readonly byWireId = new Map<string, OneOrMore<SessionHandle>>()

  private readonly offline = new Map<string, OfflineSession>()
  /** Live connections and the subscriptions they hold, per tenant (tenant quotas, fairness.ts). */
  private readonly perTenant = new Map<string, { connections: number, subscriptions: number }>()
  /**
   * Set by the gateway: drops what the broker still keeps for these client ids after their
   * connection ended — the delayed will, the persistent session's subscriptions and queued messages.
   */
  discardOffline: (internalIds: string[]) => void = () => {}
  /** Set by the gateway: client ids the broker holds a delayed will or an expiring session for. */
  pendingIds: () => Iterable<string> = () => []

  constructor (private readonly node: string) {}

  add (h: SessionHandle): void {
    const s = h.state
    this.offline.delete(s.internalId)
    this.tenantUsage(s.tenant).connections++
    this.byInternalId.set(s.internalId, h)
    addTo(this.byIdentity, s.identity, h)
    addTo(this.byWireId, s.wireClientId, h)
  }

  remove (h: SessionHandle): void {
    const s = h.state
    if (this.byInternalId.get(s.internalId) === h) {
      this.byInternalId.delete(s.internalId)
      const usage = this.tenantUsage(s.tenant)
      usage.connections--
      usage.subscriptions -= s.subscriptionCount
      s.subscriptionCount = 0
      if (usage.connections <= 0) this.perTenant.delete(s.tenant)
      this.offline.set(s.internalId, { internalId: s.internalId, identity: s.identity, tenant: s.tenant, auth: s.auth, certSerial: s.certSerial, certPeer: s.certPeer })
      if (this.offline.size > MAX_OFFLINE_REMEMBERED) this.offline.delete(this.offline.keys().next().value!)
    }
    removeFrom(this.byIdentity, s.identity, h)
    removeFrom(this.byWireId, s.wireClientId, h)
  }

  /** Live connections and subscriptions of a tenant on this node. */
  tenantUsage (tenant: string): { connections: number, subscriptions: number } {
    let u = this.perTenant.get(tenant)
    if (u === undefined) { u = { connections: 0, subscriptions: 0 }; this.perTenant.set(tenant, u) }
    return u
  }

  /** Subscriptions held by a tenant's live clients on this node (without creating an entry). */
  subscriptionsOf (tenant: string): number {
    return this.perTenant.get(tenant)?.subscriptions ?? 0
  }

  /** A live client's subscription count changed (SUBSCRIBE / UNSUBSCRIBE done). */
  subscriptionsCounted (st: ClientState, count: number): void {
    if (!this.byInternalId.has(st.internalId)) return
    this.tenantUsage(st.tenant).subscriptions += count - st.subscriptionCount
    st.subscriptionCount = count
  }

  /** The identity (other than `identity`) currently holding this wire client id, if any. */
  heldByOther (wireClientId: string, identity: string): string | undefined {
    for (const h of each(this.byWireId.get(wireClientId))) {
      if (h.state.identity !== identity) return h.state.identity
    }
    return undefined
  }

  /** Sessions authenticated by certificates matching `pred` (revocation of a serial or a whole tenant CA). */
  matching (pred: (s: ClientState) => boolean): SessionHandle[] {
    return [...this.byInternalId.values()].filter(h => pred(h.state))
  }

  /**
   * The one way a live session is ended for a revocation (credential, certificate, CA, tenant):
   * marked revoked, so the hooks refuse anything further from or to it at once; MQTT 5 clients get
   * DISCONNECT 0x87; the socket is destroyed if the peer does not go.
   */
  cut (h: SessionHandle): void {
    h.state.revoked = true
    h.disconnect(DISCONNECT.NOT_AUTHORIZED)
    const id = h.state.internalId
    setTimeout(() => {
      h.destroy()
      // once the connection is gone (aedes has scheduled its will and kept its session by then),
      // nothing it left behind may stay
      setTimeout(() => this.revokeOffline(s => s.internalId === id), DISCARD_AFTER_CLOSE_MS).unref()
    }, CUT_BACKSTOP_MS).unref()
  }

  /**
   * Cuts every live session of one identity ("<tenant>:<principal>") and discards the offline state
   * of its sessions that already ended (delayed wills, persistent sessions); returns how many live ones.
   */
  cutIdentity (identity: string): number {
    const handles = this.ofIdentity(identity)
    for (const h of handles) this.cut(h)
    this.revokeOffline(s => s.identity === identity)
    return handles.length
  }

  /** Discards the offline state of every remembered or pending session matching `pred`; returns how many. */
  revokeOffline (pred: (s: OfflineSession) => boolean): number {
    const ids = new Set<string>()
    for (const s of this.offline.values()) if (pred(s)) ids.add(s.internalId)
    // delayed wills and expiring sessions the broker holds that this node no longer remembers: identity only
    for (const id of this.pendingIds()) {
      if (ids.has(id) || this.offline.has(id) || this.byInternalId.has(id)) continue
      const sep = id.indexOf('|')
      const identity = sep < 0 ? '' : id.slice(0, sep)
      if (pred({ internalId: id, identity, tenant: identity.split(':')[0] ?? '', auth: 'unknown' })) ids.add(id)
    }
    for (const id of ids) this.offline.delete(id)
    if (ids.size > 0) this.discardOffline([...ids])
    return ids.size
  }

  /** Cuts every live session of a tenant (tenant disabled) and discards its offline state and pending wills; returns how many were live. */
  cutTenant (tenant: string): number {
    const handles = this.matching(s => s.tenant === tenant)
    for (const h of handles) this.cut(h)
    this.revokeOffline(s => s.tenant === tenant)
    return handles.length
  }

  ofIdentity (identity: string): SessionHandle[] {
    return [...each(this.byIdentity.get(identity))]
  }

  get size (): number { return this.byInternalId.size }

  list (tenant?: string): SessionView[] {
    const out: SessionView[] = []
    for (const { state: s } of this.byInternalId.values()) {
      if (tenant !== undefined && s.tenant !== tenant) continue
      out.push({
        tenant: s.tenant,
        principal: s.principal,
        role: s.role,
        clientId: s.wireClientId,
        protocol: s.protocol === 5 ? 'mqtt5' : s.protocol === 4 ? 'mqtt3.1.1' : 'mqtt3.1',
        listener: s.listener,
        auth: s.auth,
        remoteAddress: s.remoteAddress,
        connectedAt: s.connectedAt,
        node: this.node
      })
    }
    return out.sort((a, b) => a.connectedAt.localeCompare(b.connectedAt))
  }
}

/** A value, or a Set of them once there are several (values are objects, never Sets). */
type OneOrMore<V extends object> = V | Set<V>

function each<V extends object> (x: OneOrMore<V> | undefined): Iterable<V> {
  return x === undefined ? [] : x instanceof Set ? x : [x]
}

function addTo<K, V extends object> (m: Map<K, OneOrMore<V>>, k: K, v: V): void {
  const cur = m.get(k)
  if (cur === undefined || cur === v) m.set(k, v)
  else if (cur instanceof Set) cur.add(v)
  else m.set(k, new Set([cur, v]))
}

function removeFrom<K, V extends object> (m: Map<K, OneOrMore<V>>, k: K, v: V): void {
  const cur = m.get(k)
  if (cur === v) { m.delete(k); return }
  if (!(cur instanceof Set)) return
  cur.delete(v)
  if (cur.size === 1) m.set(k, cur.values().next().value!)
  else if (cur.size === 0) m.delete(k)
}
