// Delivery (authorizeForward): synchronous, once per subscriber per message, so only cheap checks.
// `deliverSteps` run in order; a step that refuses has already counted and reported the refusal.
import type { AedesOptions, AedesPublishPacket, Client, PublishPacket } from 'aedes'
import type { ClientState } from './sessions.ts'
import type { GatewayClient } from './client.ts'
import { policyDenial, type PipelineContext } from './context.ts'
import { DecisionMemo } from './decision-memo.ts'

/** true: deliver so far; false: not delivered (already reported). */
type DeliverStep = (client: Client, st: ClientState, packet: PublishPacket, ctx: PipelineContext) => boolean

/** Unreachable while SUBSCRIBE enforces the prefix; kept as the last line of defence. */
const insideTenant: DeliverStep = (client, st, packet, ctx) => {
  if (packet.topic.startsWith(st.prefix)) return true
  ctx.deps.metrics.drops.labels('acl.cross_tenant').inc()
  ctx.deps.emit(ctx.eventFor(st, client, { code: 'acl.cross_tenant', action: 'deliver', topic: packet.topic, reason: 'delivery outside tenant prefix' }))
  return false
}

const notRevoked: DeliverStep = (_client, st) => !st.revoked

/**
 * [MQTT-3.2.0-1] CONNACK is the first packet a client receives. aedes restores a persistent
 * session's subscriptions before it writes CONNACK, so a message published in that window was
 * written ahead of it; MQTT 3.1.1 clients (mqtt.js among them) then never completed the
 * connect. The message was queued for the session when it was published (persistent
 * subscriptions are queued before they are emitted) and is delivered from the queue right
 * after CONNACK; only QoS 0, which has no queue, is dropped.
 */
const afterConnack: DeliverStep = (client, _st, _packet, ctx) => {
  if ((client as GatewayClient & { connackSent?: boolean }).connackSent) return true
  ctx.deps.metrics.drops.labels('session.before_connack').inc()
  return false
}

/** §4.8.2: a message that matches only shared subscriptions goes to one member of each group. */
const sharedGroupTurn: DeliverStep = (client, _st, packet, ctx) => ctx.deps.shared.delivers(client as GatewayClient, packet)

/**
 * A subscriber that stopped reading (a frozen router, a dead link, an attacker) must not make
 * the gateway buffer without bound. Live deliveries (no message id yet) above the limit are
 * dropped; a persistent session still has QoS 1/2 ones in its queue, and the queue flush after
 * a reconnect (message id set) paces itself on the socket, so it is never dropped here.
 */
const notSlowConsumer: DeliverStep = (client, st, packet, ctx) => {
  if (typeof (packet as { messageId?: unknown }).messageId === 'number') return true
  const { limits } = ctx.deps
  // aedes writes a delivery in a later turn (setImmediate), so what this turn already let
  // through counts too: a burst cannot overshoot the limit by more than one packet.
  const buffered = ((client.conn as { writableLength?: number }).writableLength ?? 0) + ctx.deliveringThisTurn(st)
  if (buffered <= limits.maxClientBufferBytes) return true
  ctx.deps.metrics.drops.labels('limits.slow_consumer').inc()
  ctx.deps.emit(ctx.eventFor(st, client, { code: 'limits.slow_consumer', action: 'deliver', topic: packet.topic, reason: `${buffered} bytes already waiting for this client to read (limit ${limits.maxClientBufferBytes}); QoS ${packet.qos} message not delivered now` }))
  return false
}

/**
 * Delivery is decided per (subscriber, topic, QoS, retain) once per policy revision: the session
 * memo answers repeats with one Map lookup, and a revision change (promote, canary, rollback)
 * makes every memo entry stale at once, so rights that shrink take effect on live subscriptions.
 */
const policyAllowsDelivery: DeliverStep = (client, st, packet, ctx) => {
  const { policy, metrics, emit } = ctx.deps
  const memo = st.deliverMemo ??= new DecisionMemo()
  let d = memo.get(policy.revisionFor(st.tenant), packet.topic, packet.qos, packet.retain)
  if (d === undefined) {
    d = policy.decide({ action: 'deliver', client: st.policyClient, topic: packet.topic, qos: packet.qos, retain: packet.retain })
    memo.set(packet.topic, packet.qos, packet.retain, d, ctx.memoEntries())
  }
  if (d.allow) return true
  ctx.decisionMetric('deliver', 'deny', d.reason, d.revision)
  metrics.drops.labels('acl.denied').inc()
  const denial = policyDenial(d)
  emit(ctx.eventFor(st, client, { code: denial.code, action: 'deliver', topic: packet.topic, reason: denial.reason, policyRevision: d.revision }))
  return false
}

/** The delivery pipeline, in order, per subscriber per message. */
export const deliverSteps: readonly DeliverStep[] = [insideTenant, notRevoked, afterConnack, sharedGroupTurn, notSlowConsumer, policyAllowsDelivery]

export function deliverHook (ctx: PipelineContext): Required<Pick<AedesOptions, 'authorizeForward'>>['authorizeForward'] {
  const hot = ctx.hot
  return function authorizeForward (client, packet) {
    const st = (client as GatewayClient).gw
    if (st === undefined) return null
    for (let i = 0; i < deliverSteps.length; i++) {
      if (!deliverSteps[i]!(client, st, packet, ctx)) return null
    }
    hot.messagesOut[packet.qos]!++
    hot.bytesOut += packet.payload.length
    st.deliveringBytes = ctx.deliveringThisTurn(st) + packet.payload.length
    return packet as AedesPublishPacket
  }
}
