// The aedes hooks: authentication at CONNECT and the tenant invariants on
// PUBLISH, SUBSCRIBE, wills and delivery. Every deny becomes a security event.
import { randomUUID } from 'node:crypto'
import type { Aedes, AedesOptions, AedesPublishPacket, Client, PublishPacket, Subscription } from 'aedes'
import type { Limits } from '../core/config.ts'
import type { EventCode } from '../core/event-codes.ts'
import { parseUsername, isTenantId, usernameOf, type Role } from '../core/identity.ts'
import { checkClientId, checkTopicFilter, checkTopicName, checkUsername, type Check } from './invariants.ts'
import { verifySecret } from '../core/secrets.ts'
import { TokenBucket, type AuthThrottle } from './limits.ts'
import type { ClientState, SessionIndex } from './sessions.ts'
import type { SecurityEventInput } from '../core/security-events.ts'
import type { Metrics } from '../core/metrics.ts'
import type { TenantUspSettings } from '../store/index.ts'
import type { StateStore } from '../store/state-store.ts'
import { inspectUspPublish, isUspInbox, inboxTopic, type UspInspection } from '../usp/index.ts'
import { setConnackUserProperties } from './patches/connack-user-properties.ts'
import type { PolicyEngine, PolicyInput, Decision } from '../../policies/index.ts'

/** aedes' Client plus the private fields this module reads or sets (pinned aedes 2.0.0-beta.1). */
export type GatewayClient = Client & {
  gw?: ClientState
  /** set by aedes init() from CONNECT: the Clean Start flag */
  _cleanStart?: boolean
  /** aedes reports this as the MQTT 5 Assigned Client Identifier */
  _assignedClientId?: string
  _will?: { topic: string } | null
  /** set by preConnect below */
  gwWireId?: string
  gwListener?: string
  /** MQTT 5 Assigned Client Identifier chosen in preConnect */
  gwAssigned?: string
  /** MQTT 5 CONNECT user property usp-endpoint-id (TR-369 R-MQTT.13) */
  gwUspEndpointId?: string | string[]
  /** Remote address, read once when the socket was accepted (each read of socket.remoteAddress is a syscall). */
  gwRemote?: string
  /** Set by the MQTTS listener when the client presented a certificate that passed identifyPeer. */
  gwCertIdentity?: CertIdentity
}

/** Identity proven by a client certificate (tenant from the CA that signed it, principal from its urn:bbf:usp:id SAN). */
export interface CertIdentity {
  tenant: string
  principal: string
  role: 'agent' | 'controller'
  serial: string
}

/** CONNACK return codes (MQTT 3.1.1 numbering; aedes maps them to MQTT 5 reason codes). */
const BAD_USERNAME_OR_PASSWORD = 4 // → MQTT 5 0x86
const IDENTIFIER_REJECTED = 2 // → MQTT 5 0x85
const NOT_AUTHORIZED = 5 // → MQTT 5 0x87

/** Separates the identity from the wire client id in aedes' internal client id. */
export const INTERNAL_ID_SEPARATOR = '|'

export interface HookDeps {
  limits: Limits
  store: StateStore
  sessions: SessionIndex
  throttle: AuthThrottle
  metrics: Metrics
  emit: (e: SecurityEventInput) => void
  revision: () => string
  policy: PolicyEngine
  uspSettings: (tenant: string) => TenantUspSettings
  /** Called for every PUBLISH to a USP inbox that was inspected (metrics, audit trail, registry). */
  onUspRecord: (st: ClientState, topic: string, inspection: UspInspection) => void
}

/** Error passed to aedes for a deny; the event was already emitted. The message is the generic MQTT 5 Reason String. */
class DeniedError extends Error {
  readonly gatewayDenied = true
}

function connectError (returnCode: number): Error & { returnCode: number } {
  const err = new DeniedError('connection refused') as DeniedError & { returnCode: number }
  err.returnCode = returnCode
  return err
}

export function isGatewayDenial (err: unknown): boolean {
  return (err as { gatewayDenied?: boolean } | null)?.gatewayDenied === true
}

/** Tenant and principal from aedes' internal client id (used for wills whose client is gone). */
export function identityFromInternalId (internalId: string | undefined): { tenant: string, principal: string } | undefined {
  if (!internalId) return undefined
  const sep = internalId.indexOf(INTERNAL_ID_SEPARATOR)
  const colon = internalId.indexOf(':')
  if (sep < 0 || colon < 1 || colon > sep) return undefined
  return { tenant: internalId.slice(0, colon), principal: internalId.slice(colon + 1, sep) }
}

export function createHooks (deps: HookDeps): Required<Pick<AedesOptions, 'preConnect' | 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>> {
  const { limits, store, sessions, throttle, metrics, emit } = deps
  const connectOk = metrics.connectResults.labels('accepted', 'ok')
  const hot = metrics.hot

  function remote (client: Client): string {
    return (client as GatewayClient).gwRemote ?? (client.conn as { remoteAddress?: string }).remoteAddress ?? 'unknown'
  }

  function eventFor (st: ClientState | undefined, client: Client | null, e: Omit<SecurityEventInput, 'tenant' | 'principal' | 'clientId' | 'remoteAddress'>): SecurityEventInput {
    return {
      ...e,
      tenant: st?.tenant,
      principal: st?.principal,
      clientId: st?.wireClientId ?? (client as GatewayClient | null)?.gwWireId,
      remoteAddress: st?.remoteAddress ?? (client ? remote(client) : undefined),
      // the revision that decides for this tenant (a canary tenant's is the canary's)
      policyRevision: e.policyRevision ?? (st !== undefined ? deps.policy.revisionFor(st.tenant) : deps.revision())
    }
  }

  // prom-client label lookups hash their values; keep one child per label set for the hot path.
  const decisionChildren = new Map<string, { inc(): void }>()
  function decisionMetric (action: string, result: 'allow' | 'deny', reason: string, revision = deps.revision()): void {
    const k = `${action}|${result}|${reason}|${revision}`
    let child = decisionChildren.get(k)
    if (child === undefined) {
      if (decisionChildren.size > 10_000) decisionChildren.clear()
      child = metrics.decisions.labels(action, result, reason, revision)
      decisionChildren.set(k, child)
    }
    child.inc()
  }

  // Event-loop turn number, advanced by one setImmediate per busy turn for all clients (not one per
  // subscriber): aedes writes deliveries in the turn after they are authorised.
  let turn = 0
  let turnEnding = false
  /** Payload bytes let through to this client in the current turn (reset when a new turn starts). */
  function deliveringThisTurn (st: ClientState): number {
    if (!turnEnding) {
      turnEnding = true
      setImmediate(() => { turn++; turnEnding = false })
    }
    if (st.deliveringTurn !== turn) {
      st.deliveringTurn = turn
      st.deliveringBytes = 0
    }
    return st.deliveringBytes
  }

  /** Asks the policy engine; the Decision carries the revision that made it. */
  function decide (st: ClientState, action: PolicyInput['action'], topic?: string, qos?: number, retain?: boolean): Decision {
    const input: PolicyInput = { action, client: st.policyClient }
    if (topic !== undefined) input.topic = topic
    if (qos !== undefined) input.qos = qos
    if (retain !== undefined) input.retain = retain
    const d = deps.policy.decide(input)
    decisionMetric(action, d.allow ? 'allow' : 'deny', d.reason, d.revision)
    return d
  }

  /** A policy deny as an invariant-style check: policy_error becomes policy.error (fail closed). */
  function policyDenial (d: Decision): Exclude<Check, { ok: true }> {
    return d.reason === 'policy_error' || d.reason === 'no_policy'
      ? { ok: false, code: 'policy.error', reason: `${d.reason}: ${d.error ?? ''}` }
      : { ok: false, code: 'acl.denied', reason: d.reason }
  }

  /** Session-like state for a will whose client is gone; undefined when the identity has no live credential. */
  function orphanWillState (internalId: string | undefined, packet: PublishPacket): ClientState | undefined {
    const who = identityFromInternalId(internalId)
    if (who === undefined) return undefined
    const cred = store.getCredential(who.tenant, who.principal)
    // fail closed: no live credential (revoked, or a certificate-only identity) → no will
    if (cred === undefined || cred.revokedAt !== undefined) return undefined
    const wire = internalId!.slice(internalId!.indexOf(INTERNAL_ID_SEPARATOR) + 1)
    const protocol = packet.properties?.responseTopic !== undefined ? 5 : 4
    return {
      tenant: who.tenant,
      principal: who.principal,
      role: cred.role,
      identity: usernameOf(who.tenant, who.principal),
      wireClientId: wire,
      internalId: internalId!,
      prefix: who.tenant + '/',
      protocol,
      listener: 'will-sweep',
      auth: 'password',
      remoteAddress: 'will-sweep',
      connectedAt: new Date().toISOString(),
      revoked: false,
      cleanStart: false,
      inflightQos2: new Set(),
      seenQos2: new Set(),
      bucket: undefined,
      policyClient: { tenant: who.tenant, principal: who.principal, role: cred.role, client_id: wire, protocol, auth: 'password', listener: 'will-sweep' },
      deliverMemo: Object.assign(new Map<string, Decision>(), { revision: '' }),
      deliveringTurn: -1,
      deliveringBytes: 0
    }
  }

  return {
    // Runs first on a valid CONNECT. The client id aedes will use is rewritten
    // to "<claimed username>|<client id>": sessions, wills and persistence keys
    // are then scoped to the identity that must still authenticate, so no
    // identity can ever resume or take over another identity's session, and no
    // client id can collide with an object key such as "__proto__"
    // (GHSA-52qw-whmv-87c5). A failed authentication rejects the CONNECT.
    preConnect (client, packet, done) {
      const c = client as GatewayClient
      let wire = packet.clientId ?? ''
      if (wire.length === 0) {
        // [MQTT-3.1.3-6] the server assigns an id to an empty MQTT 5 client id (TR-369 R-MQTT.8/9)
        wire = `uspgate-${randomUUID()}`
        if (packet.protocolVersion === 5) c.gwAssigned = wire
      }
      c.gwWireId = wire
      const eid = packet.properties?.userProperties?.['usp-endpoint-id']
      if (eid !== undefined) c.gwUspEndpointId = eid
      // a certificate, when present, is the identity (the username must then match it)
      const owner = c.gwCertIdentity ? usernameOf(c.gwCertIdentity.tenant, c.gwCertIdentity.principal) : packet.username ?? ''
      packet.clientId = `${owner}${INTERNAL_ID_SEPARATOR}${wire}`
      done(null, true)
    },

    authenticate (client, username, password, done) {
      const c = client as GatewayClient
      const address = remote(client)
      const wire = c.gwWireId ?? client.id
      const refuse = (code: EventCode, reason: string, returnCode: number, extra: Partial<SecurityEventInput> = {}): void => {
        metrics.connectResults.labels('refused', code).inc()
        emit({ code, reason, remoteAddress: address, clientId: wire, action: 'connect', ...extra })
        done(connectError(returnCode), null)
      }
      const failAuth = (code: EventCode, reason: string, extra: Partial<SecurityEventInput> = {}): void => {
        if (username !== undefined) throttle.recordFailure(username, address)
        // One answer for every credential failure, so tenants and principals cannot be probed.
        refuse(code, reason, BAD_USERNAME_OR_PASSWORD, extra)
      }

      const cert = c.gwCertIdentity
      if (cert !== undefined) return authenticateWithCertificate(cert)
      if (username !== undefined) {
        const wait = throttle.lockedFor(username, address)
        if (wait > 0) return refuse('auth.throttled', `too many failed logins; retry in ${wait}s`, BAD_USERNAME_OR_PASSWORD, { principal: username })
        const u = checkUsername(username, limits)
        if (!u.ok) return failAuth('auth.bad_credentials', u.reason)
      }
      const parsed = parseUsername(username)
      if (!parsed.ok) return failAuth(parsed.code, parsed.reason, { principal: username })
      const { tenant, principal } = parsed
      if (!isTenantId(tenant) || store.getTenant(tenant) === undefined) {
        return failAuth('auth.unknown_tenant', 'no such tenant', { tenant: isTenantId(tenant) ? tenant : undefined, principal })
      }
      const cred = store.getCredential(tenant, principal)
      if (cred === undefined) return failAuth('auth.bad_credentials', 'unknown principal', { tenant, principal })
      if (cred.revokedAt !== undefined) return failAuth('auth.revoked', `credential revoked at ${cred.revokedAt}`, { tenant, principal })
      if (!verifySecret(password, cred.secretHash)) return failAuth('auth.bad_credentials', 'wrong secret', { tenant, principal })
      throttle.recordSuccess(username!, address)
      return admit(tenant, principal, cred.role, 'password')

      // With a client certificate the identity comes from the certificate; a username, if
      // sent, must name the same identity (TR-369 R-SEC.4b).
      function authenticateWithCertificate (cert: CertIdentity): void {
        if (username !== undefined && username !== usernameOf(cert.tenant, cert.principal)) {
          return refuse('auth.cert_mismatch', 'username does not match the client certificate', BAD_USERNAME_OR_PASSWORD, { tenant: cert.tenant, principal: cert.principal })
        }
        if (store.getTenant(cert.tenant) === undefined) {
          return refuse('auth.unknown_tenant', 'certificate of a tenant that does not exist', BAD_USERNAME_OR_PASSWORD, { tenant: cert.tenant, principal: cert.principal })
        }
        // A revoked credential of the same identity also shuts out its certificate.
        if (store.getCredential(cert.tenant, cert.principal)?.revokedAt !== undefined) {
          return refuse('auth.revoked', 'credential of this identity is revoked', BAD_USERNAME_OR_PASSWORD, { tenant: cert.tenant, principal: cert.principal })
        }
        admit(cert.tenant, cert.principal, cert.role, 'certificate')
      }

      // Session rules shared by password and certificate logins.
      function admit (tenant: string, principal: string, role: Role, auth: 'password' | 'certificate'): void {
        const idCheck = checkClientId(wire, limits)
        if (!idCheck.ok) return refuse(idCheck.code, idCheck.reason, IDENTIFIER_REJECTED, { tenant, principal })
        const identity = usernameOf(tenant, principal)
        // The same identity reconnecting with its client id is a normal MQTT
        // session takeover [MQTT-3.1.4-2]; another identity presenting a client id
        // that is online here is refused and reported.
        const holder = sessions.heldByOther(wire, identity)
        if (holder !== undefined) {
          return refuse('session.takeover_blocked', `client id is in use by another identity (${holder.split(':')[0] === tenant ? holder : 'another tenant'})`, IDENTIFIER_REJECTED, { tenant, principal })
        }
        // TR-369 R-MQTT.13: an MQTT 5 endpoint names its Endpoint ID in CONNECT; it must be the authenticated one.
        const claimed = c.gwUspEndpointId
        if (claimed !== undefined && (Array.isArray(claimed) ? claimed.some(x => x !== principal) : claimed !== principal)) {
          return refuse('usp.endpoint_id_mismatch', `usp-endpoint-id ${JSON.stringify(String(claimed).slice(0, 80))} is not the authenticated endpoint`, NOT_AUTHORIZED, { tenant, principal })
        }
        const will = c._will
        if (will) {
          const w = checkTopicName(tenant, will.topic, limits)
          if (!w.ok) return refuse(w.code, `will ${w.reason}`, NOT_AUTHORIZED, { tenant, principal, action: 'will', topic: will.topic })
        }

        const state: ClientState = {
          tenant,
          principal,
          role,
          identity,
          wireClientId: wire,
          internalId: client.id,
          prefix: tenant + '/',
          protocol: client.version,
          listener: c.gwListener ?? 'mqtt',
          auth,
          remoteAddress: address,
          connectedAt: new Date().toISOString(),
          revoked: false,
          cleanStart: c._cleanStart === true,
          inflightQos2: new Set(),
          seenQos2: new Set(),
          policyClient: { tenant, principal, role, client_id: wire, protocol: client.version, auth, listener: c.gwListener ?? 'mqtt' },
          deliverMemo: Object.assign(new Map<string, Decision>(), { revision: '' }),
          deliveringTurn: -1,
          deliveringBytes: 0,
          ...(auth === 'certificate' && c.gwCertIdentity ? { certSerial: c.gwCertIdentity.serial } : {}),
          bucket: limits.publishRatePerSecond > 0 ? new TokenBucket(limits.publishRatePerSecond, limits.publishBurst) : undefined
        }
        const verdict = decide(state, 'connect')
        if (!verdict.allow) {
          const denial = policyDenial(verdict)
          return refuse(denial.code, denial.reason, NOT_AUTHORIZED, { tenant, principal, policyRevision: verdict.revision })
        }
        if (will) {
          const w = decide(state, 'publish', will.topic, (will as { qos?: number }).qos ?? 0, (will as { retain?: boolean }).retain ?? false)
          if (!w.allow) {
            const denial = policyDenial(w)
            return refuse(denial.code, `will: ${denial.reason}`, NOT_AUTHORIZED, { tenant, principal, action: 'will', topic: will.topic, policyRevision: w.revision })
          }
        }
        c.gw = state
        if (client.version === 5 && role === 'agent') {
          // TR-369 R-MQTT.15/.44: tell the Agent which topic to subscribe to (its inbox).
          setConnackUserProperties(client, { 'subscribe-topic': inboxTopic(tenant, 'agent', principal) })
        }
        if (c.gwAssigned !== undefined) c._assignedClientId = c.gwAssigned
        connectOk.inc()
        done(null, true)
      }
    },


    authorizePublish (client, packet, done) {
      const c = client as GatewayClient | null
      let st = c?.gw
      const deny = (check: Exclude<Check, { ok: true }>, action = 'publish'): void => {
        decisionMetric(action, 'deny', check.code)
        metrics.drops.labels(check.code).inc()
        emit(eventFor(st, c, { code: check.code, action, topic: packet.topic, reason: check.reason }))
        done(new DeniedError('not authorized'))
      }
      if (st === undefined) {
        // A will whose connection is gone (published by the cluster's will sweep):
        // the identity comes from its namespaced client id, and the will then goes
        // through the same invariants, policy and USP inspection as any publish.
        st = orphanWillState((packet as PublishPacket & { clientId?: string }).clientId, packet)
        if (st === undefined) return deny({ ok: false, code: 'acl.cross_tenant', reason: 'will without a live identity' }, 'will')
      }
      if (st.revoked) return deny({ ok: false, code: 'auth.revoked', reason: 'credential revoked' })
      const check = checkTopicName(st.tenant, packet.topic, limits)
      if (!check.ok) return deny(check)
      if (st.bucket !== undefined && !st.bucket.take()) {
        metrics.drops.labels('limits.rate_limited').inc()
        emit(eventFor(st, c, { code: 'limits.rate_limited', action: 'publish', topic: packet.topic, reason: `above ${limits.publishRatePerSecond} messages/s` }))
        if (packet.qos === 0) {
          // QoS 0 is at-most-once: drop it and keep the connection ([MQTT-4.3.1]).
          ;(packet as PublishPacket & { _notAuthorized?: boolean })._notAuthorized = true
          return done(null)
        }
        return done(new DeniedError('message rate too high'))
      }
      const verdict = decide(st, 'publish', packet.topic, packet.qos, packet.retain)
      if (!verdict.allow) return deny(policyDenial(verdict))
      const usp = deps.uspSettings(st.tenant)
      if (usp.inspection !== 'off' && isUspInbox(packet.topic)) {
        const inspection = inspectUspPublish({
          publisher: { tenant: st.tenant, endpointId: st.principal, role: st.role },
          topic: packet.topic,
          payload: packet.payload as Buffer,
          ...(packet.properties?.responseTopic !== undefined ? { responseTopic: packet.properties.responseTopic } : {}),
          protocolVersion: st.protocol as 3 | 4 | 5,
          mode: usp.inspection,
          audit: usp.audit
        })
        deps.onUspRecord(st, packet.topic, inspection)
        if (inspection.verdict === 'refuse') {
          // Refused records are never delivered (TR-369 R-SEC.4c trusted broker).
          return deny({ ok: false, code: inspection.code!, reason: inspection.reason ?? inspection.code! })
        }
        if (inspection.code !== undefined) {
          emit(eventFor(st, c, { code: inspection.code, action: 'publish', topic: packet.topic, reason: `observe mode, delivered: ${inspection.reason ?? ''}` }))
        }
      }
      hot.messagesIn[packet.qos]!++
      hot.bytesIn += packet.payload.length
      if (packet.qos === 2 && st.cleanStart && !st.seenQos2.has(packet.messageId!)) {
        // GHSA-p8r9-qf8w-p73r: aedes 2.0.0-beta.1 keeps QoS 2 dedup state across a
        // clean-start reconnect, so a new message reusing an old message id would be
        // acknowledged and silently dropped. The first use of an id on a clean
        // connection clears any stale entry before aedes looks for a duplicate.
        st.seenQos2.add(packet.messageId!)
        const persistence = (c as unknown as { broker: Aedes & { persistence: { incomingDelPacket(c: unknown, p: unknown): Promise<void> } } }).broker.persistence
        persistence.incomingDelPacket(c, { messageId: packet.messageId }).then(() => done(null), () => done(null))
        return
      }
      done(null)
    },

    authorizeSubscribe (client, sub, done) {
      const c = client as GatewayClient
      const st = c.gw
      const deny = (check: Exclude<Check, { ok: true }>): void => {
        decisionMetric('subscribe', 'deny', check.code)
        emit(eventFor(st, c, { code: check.code, action: 'subscribe', topic: sub.topic, reason: check.reason }))
        done(null, null) // SUBACK 0x87 (MQTT 5) / 0x80 (3.1.1) for this filter only
      }
      if (st === undefined) return deny({ ok: false, code: 'acl.cross_tenant', reason: 'subscribe without an identity' })
      if (st.revoked) return deny({ ok: false, code: 'auth.revoked', reason: 'credential revoked' })
      const check = checkTopicFilter(st.tenant, sub.topic, limits)
      if (!check.ok) return deny(check)
      const verdict = decide(st, 'subscribe', sub.topic, sub.qos)
      if (!verdict.allow) return deny(policyDenial(verdict))
      // MQTT 5 subscription options only ever narrow delivery; nothing to rewrite.
      done(null, sub as Subscription)
    },

    // Synchronous, once per subscriber per message: only cheap checks here.
    authorizeForward (client, packet) {
      const st = (client as GatewayClient).gw
      if (st === undefined) return null
      if (!packet.topic.startsWith(st.prefix)) {
        // Unreachable while SUBSCRIBE enforces the prefix; kept as the last line of defence.
        metrics.drops.labels('acl.cross_tenant').inc()
        emit(eventFor(st, client, { code: 'acl.cross_tenant', action: 'deliver', topic: packet.topic, reason: 'delivery outside tenant prefix' }))
        return null
      }
      if (st.revoked) return null
      // [MQTT-3.2.0-1] CONNACK is the first packet a client receives. aedes restores a persistent
      // session's subscriptions before it writes CONNACK, so a message published in that window was
      // written ahead of it; MQTT 3.1.1 clients (mqtt.js among them) then never completed the
      // connect. The message was queued for the session when it was published (persistent
      // subscriptions are queued before they are emitted) and is delivered from the queue right
      // after CONNACK; only QoS 0, which has no queue, is dropped.
      if (!(client as GatewayClient & { connackSent?: boolean }).connackSent) {
        metrics.drops.labels('session.before_connack').inc()
        return null
      }
      // A subscriber that stopped reading (a frozen router, a dead link, an attacker) must not make
      // the gateway buffer without bound. Live deliveries (no message id yet) above the limit are
      // dropped; a persistent session still has QoS 1/2 ones in its queue, and the queue flush after
      // a reconnect (message id set) paces itself on the socket, so it is never dropped here.
      if (typeof (packet as { messageId?: unknown }).messageId !== 'number') {
        // aedes writes a delivery in a later turn (setImmediate), so what this turn already let
        // through counts too: a burst cannot overshoot the limit by more than one packet.
        const buffered = ((client.conn as { writableLength?: number }).writableLength ?? 0) + deliveringThisTurn(st)
        if (buffered > limits.maxClientBufferBytes) {
          metrics.drops.labels('limits.slow_consumer').inc()
          emit(eventFor(st, client, { code: 'limits.slow_consumer', action: 'deliver', topic: packet.topic, reason: `${buffered} bytes already waiting for this client to read (limit ${limits.maxClientBufferBytes}); QoS ${packet.qos} message not delivered now` }))
          return null
        }
      }
      // Delivery is decided per (subscriber, topic, QoS, retain) once per policy
      // revision: the session memo answers repeats with one Map lookup, and a
      // revision change (promote, canary, rollback) makes every memo entry stale
      // at once, so rights that shrink take effect on live subscriptions at once.
      const revision = deps.policy.revisionFor(st.tenant)
      let memo = st.deliverMemo
      if (memo.revision !== revision || memo.size > 4096) {
        memo = st.deliverMemo = Object.assign(new Map<string, Decision>(), { revision })
      }
      const memoKey = packet.qos === 0 && !packet.retain ? packet.topic : `${packet.qos}${packet.retain ? 'r' : '-'}${packet.topic}`
      let d = memo.get(memoKey)
      if (d === undefined) {
        d = deps.policy.decide({ action: 'deliver', client: st.policyClient, topic: packet.topic, qos: packet.qos, retain: packet.retain })
        // errors are not memoized: the next delivery asks again
        if (d.reason !== 'policy_error') memo.set(memoKey, d)
      }
      if (!d.allow) {
        decisionMetric('deliver', 'deny', d.reason, d.revision)
        metrics.drops.labels('acl.denied').inc()
        const denial = policyDenial(d)
        emit(eventFor(st, client, { code: denial.code, action: 'deliver', topic: packet.topic, reason: denial.reason, policyRevision: d.revision }))
        return null
      }
      hot.messagesOut[packet.qos]!++
      hot.bytesOut += packet.payload.length
      st.deliveringBytes = deliveringThisTurn(st) + packet.payload.length
      return packet as AedesPublishPacket
    }
  }
}
