// PUBLISH (and wills): `publishSteps` run in order for every packet a client or a will sweep
// publishes. A step lets the packet through (undefined), refuses it (a Denial: event, metric, aedes
// error), or has already reported itself and only says what to do with the packet (Handled).
import type { Aedes, AedesOptions, Client, PublishPacket } from 'aedes'
import { inspectUspPublish, parseUspTopic } from '../usp/index.ts'
import { checkTopicName } from './invariants.ts'
import { rateVerdict } from './fairness.ts'
import type { ClientState } from './sessions.ts'
import { DeniedError, type GatewayClient } from './client.ts'
import { policyDenial, type Denial, type PipelineContext } from './context.ts'

interface PublishAttempt {
  client: GatewayClient | null
  packet: PublishPacket
  st: ClientState
}

/** A refusal the step reported itself: 'drop' keeps the connection (no error to aedes), 'refuse' is an error. */
interface Handled { handled: 'drop' | 'refuse', reason: string }

type PublishStep = (a: PublishAttempt, ctx: PipelineContext) => Denial | Handled | undefined

const notRevoked: PublishStep = a => a.st.revoked ? { ok: false, code: 'auth.revoked', reason: 'credential revoked' } : undefined

/**
 * A will published after its connection ended (Will Delay Interval, or a dropped socket) carries the
 * session state of when it connected: the identity is checked again now — a revocation between the
 * drop and the will (credential, certificate, CA) keeps the will from being published [MQTT-3.1.3-9].
 */
const identityStillTrusted: PublishStep = (a, ctx) => {
  if (a.client !== null && (a.client as GatewayClient & { closed?: boolean }).closed !== true) return undefined
  const why = ctx.deps.identityRevoked?.(a.st)
  return why === undefined ? undefined : { ok: false, code: 'auth.revoked', reason: `will not published: ${why}` }
}

/** Tenant prefix, no `$`, bounded and clean topic (code, before any policy). */
const topicInsideTenant: PublishStep = (a, ctx) => {
  const { st, packet } = a
  // the session's tenant and the gateway's limits do not change: a topic name that passed, passes
  if (packet.topic === st.publishedTopic) return undefined
  const check = checkTopicName(st.tenant, packet.topic, ctx.deps.limits)
  if (!check.ok) return check
  st.publishedTopic = packet.topic
  st.publishedUspTopic = undefined
  return undefined
}

const withinRate: PublishStep = (a, ctx) => {
  const { st, packet } = a
  // taken by the packet guard before aedes read the packet (fairness.ts); a will takes it here
  const verdict = rateVerdict(packet)
  if (st.bucket === undefined || verdict === true || (verdict === undefined && st.bucket.take())) return undefined
  const { metrics, emit, limits } = ctx.deps
  metrics.drops.labels('limits.rate_limited').inc()
  emit(ctx.eventFor(st, a.client, { code: 'limits.rate_limited', action: 'publish', topic: packet.topic, reason: `above ${limits.publishRatePerSecond} messages/s` }))
  // QoS 0 is at-most-once: drop it and keep the connection ([MQTT-4.3.1]).
  return { handled: packet.qos === 0 ? 'drop' : 'refuse', reason: 'message rate too high' }
}

const policyAllowsPublish: PublishStep = (a, ctx) => {
  const verdict = ctx.decidePublish(a.st, a.packet.topic, a.packet.qos, a.packet.retain)
  return verdict.allow ? undefined : policyDenial(verdict)
}

/** USP inbox traffic: the Record's envelope is checked against the authenticated endpoint (TR-369 R-SEC.4c trusted broker). */
const uspEnvelope: PublishStep = (a, ctx) => {
  const { st, packet } = a
  const usp = ctx.deps.uspSettings(st.tenant)
  const inspection = inspectUspPublish({
    publisher: { tenant: st.tenant, endpointId: st.principal, role: st.role },
    topic: packet.topic,
    // topicInsideTenant ran first and kept this topic name; its USP reading is made once per name
    parsedTopic: packet.topic === st.publishedTopic ? (st.publishedUspTopic ??= parseUspTopic(packet.topic)) : undefined,
    payload: packet.payload as Buffer,
    responseTopic: packet.properties?.responseTopic,
    protocolVersion: st.protocol as 3 | 4 | 5,
    mode: usp.inspection,
    audit: usp.audit
  })
  // not an inbox (or inspection off): nothing was parsed, nothing to record
  if (inspection.verdict === 'not_usp') return undefined
  ctx.deps.onUspRecord(st, packet.topic, inspection)
  // Issue 14 "events name both sides": a reply-to into another (existing) tenant makes the attempt
  // that tenant's event too, so its tenant-scoped token sees it; the inbox topic names the publisher's own.
  const targetTenant = ctx.targetTenantOf(st.tenant, inspection.refusedReplyTo)
  // Refused records are never delivered.
  if (inspection.verdict === 'refuse') return { ok: false, code: inspection.code!, reason: inspection.reason ?? inspection.code!, targetTenant }
  if (inspection.code !== undefined) {
    ctx.deps.emit(ctx.eventFor(st, a.client, { code: inspection.code, action: 'publish', topic: packet.topic, reason: `observe mode, delivered: ${inspection.reason ?? ''}`, targetTenant }))
  }
  return undefined
}

/** The PUBLISH pipeline, in order. */
export const publishSteps: readonly PublishStep[] = [
  notRevoked,
  identityStillTrusted,
  topicInsideTenant,
  withinRate,
  policyAllowsPublish,
  uspEnvelope
]

export function publishHook (ctx: PipelineContext): Required<Pick<AedesOptions, 'authorizePublish'>>['authorizePublish'] {
  const { metrics, emit } = ctx.deps
  const hot = ctx.hot
  // not a closure per PUBLISH: only refusals need it
  function deny (st: ClientState | undefined, c: GatewayClient | null, packet: PublishPacket, done: (err: Error | null) => void, check: Denial, action = 'publish'): void {
    ctx.decisionMetric(action, 'deny', check.code)
    metrics.drops.labels(check.code).inc()
    emit(ctx.eventFor(st, c, { code: check.code, action, topic: packet.topic, reason: check.reason, targetTenant: check.targetTenant }))
    done(new DeniedError('not authorized'))
  }
  return function authorizePublish (client: Client | null, packet, done) {
    const c = client as GatewayClient | null
    let st = c?.gw
    if (st === undefined) {
      // A will whose connection is gone (published by the cluster's will sweep):
      // the identity comes from its namespaced client id, and the will then goes
      // through the same invariants, policy and USP inspection as any publish.
      st = ctx.orphanWillState((packet as PublishPacket & { clientId?: string }).clientId, packet)
      if (st === undefined) return deny(st, c, packet, done, { ok: false, code: 'acl.cross_tenant', reason: 'will without a live identity' }, 'will')
    }
    const a: PublishAttempt = { client: c, packet, st }
    for (const step of publishSteps) {
      const r = step(a, ctx)
      if (r === undefined) continue
      if (!('handled' in r)) return deny(st, c, packet, done, r)
      if (r.handled === 'refuse') return done(new DeniedError(r.reason))
      ;(packet as PublishPacket & { _notAuthorized?: boolean })._notAuthorized = true
      return done(null)
    }
    hot.messagesIn[packet.qos]!++
    hot.bytesIn += packet.payload.length
    if (packet.qos === 2 && st.cleanStart && !(st.seenQos2?.has(packet.messageId!) ?? false)) {
      // GHSA-p8r9-qf8w-p73r: aedes 2.0.0-beta.1 keeps QoS 2 dedup state across a
      // clean-start reconnect, so a new message reusing an old message id would be
      // acknowledged and silently dropped. The first use of an id on a clean
      // connection clears any stale entry before aedes looks for a duplicate.
      ;(st.seenQos2 ??= new Set()).add(packet.messageId!)
      const persistence = (c as unknown as { broker: Aedes & { persistence: { incomingDelPacket(c: unknown, p: unknown): Promise<void> } } }).broker.persistence
      persistence.incomingDelPacket(c, { messageId: packet.messageId }).then(() => done(null), () => done(null))
      return
    }
    done(null)
  }
}
