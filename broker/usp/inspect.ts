// USP Record inspection of one PUBLISH to a USP inbox: the gateway acting as a TR-369 "Trusted
// Broker" (R-SEC.4c) binds each Record's from_id to the identity proven at CONNECT, checks that
// to_id names the inbox it is sent to, and keeps reply-to topics inside the publisher's tenant.
// Pure: no aedes, no I/O. The tenant-prefix and `$` invariants on the topic itself run before this.

import { readRecord, msgHeaderOf, type EnvelopeFields, type MsgHeader } from './peek.ts'
import { parseUspTopic, type UspTopic } from './topics.ts'

export type UspInspectionMode = 'enforce' | 'observe' | 'off'
export type UspAuditLevel = 'envelope' | 'message'
export type UspFindingCode =
  | 'usp.malformed_record'
  | 'usp.from_id_spoofed'
  | 'usp.misrouted'
  | 'usp.reply_to_cross_tenant'

export interface UspPublishContext {
  /** The authenticated identity of the publishing connection. */
  publisher: { tenant: string; endpointId: string; role: 'agent' | 'controller' | string }
  topic: string
  /** `parseUspTopic(topic)`, when the caller has it already (a session publishing to one inbox again and again). */
  parsedTopic?: UspTopic
  payload: Uint8Array
  /** MQTT 5 Response Topic property, if the PUBLISH has one. */
  responseTopic?: string
  /** MQTT protocol level of the publisher's connection (3 = 3.1, 4 = 3.1.1, 5 = 5.0). */
  protocolVersion: 3 | 4 | 5
  mode: UspInspectionMode
  /** 'envelope' (default) never decodes the Msg; 'message' also reads its header. */
  audit?: UspAuditLevel
  /** Largest Record accepted (default DEFAULT_MAX_RECORD_BYTES). */
  maxRecordBytes?: number
}

export type InspectedEnvelope = EnvelopeFields
export type InspectedMessage = Omit<MsgHeader, 'ok'>

export interface UspInspection {
  /** 'not_usp': not a USP inbox (or inspection is off) — nothing was parsed. */
  verdict: 'pass' | 'refuse' | 'not_usp'
  /** The finding; with mode 'observe' it comes with verdict 'pass' so the gateway can log it. */
  code?: UspFindingCode
  reason?: string
  envelope?: InspectedEnvelope
  message?: InspectedMessage
  /** The reply-to a receiver will use: the Response Topic on MQTT 5, else the 3.1.1 suffix. */
  replyTo?: string
  /**
   * With usp.reply_to_cross_tenant: the refused reply-to itself, so the gateway can name the tenant it
   * points into (issue 14: cross-tenant events carry the target tenant, the victim's token sees them).
   */
  refusedReplyTo?: string
}

interface Finding {
  code: UspFindingCode
  reason: string
  refusedReplyTo?: string
}

/** Quotes attacker-supplied text for a reason string, bounded so it cannot flood the logs. */
function quote (text: string): string {
  return JSON.stringify(text.length > 128 ? `${text.slice(0, 128)}…` : text)
}

/** Inspects one PUBLISH. Never throws; an internal error fails closed as a malformed record. */
export function inspectUspPublish (ctx: UspPublishContext): UspInspection {
  if (ctx.mode === 'off') return { verdict: 'not_usp' }
  const topic = ctx.parsedTopic ?? parseUspTopic(ctx.topic)
  // Only inboxes carry Records; Bulk Data (JSON/CSV) and other topics pass through untouched.
  if (topic.kind !== 'agent' && topic.kind !== 'controller') return { verdict: 'not_usp' }

  const result: UspInspection = { verdict: 'pass' }
  const replyTo = ctx.protocolVersion === 5 && ctx.responseTopic !== undefined ? ctx.responseTopic : topic.replyTo
  if (replyTo !== undefined) result.replyTo = replyTo

  let finding: Finding | undefined
  try {
    finding = inspect(ctx, topic.endpointId!, topic.subtopic, topic.replyTo, result)
  } catch (err) {
    finding = { code: 'usp.malformed_record', reason: `internal inspection error: ${(err as Error).message}` }
  }
  if (finding !== undefined) {
    result.verdict = ctx.mode === 'observe' ? 'pass' : 'refuse'
    result.code = finding.code
    result.reason = finding.reason
    if (finding.refusedReplyTo !== undefined) result.refusedReplyTo = finding.refusedReplyTo
  }
  return result
}

function inspect (
  ctx: UspPublishContext, inboxEndpointId: string, subtopic: string | undefined,
  suffixReplyTo: string | undefined, result: UspInspection
): Finding | undefined {
  // Content Type and the Record's `version` are never grounds to refuse: some controllers send no
  // Content Type (TR-369 R-MQTT.27a), and versions vary in the wild ("1.3" obuspa, "1.0" oktopus).
  const read = readRecord(ctx.payload, { maxBytes: ctx.maxRecordBytes, expectedToId: inboxEndpointId, expectedFromId: ctx.publisher.endpointId })
  if (!('envelope' in read)) return { code: 'usp.malformed_record', reason: read.reason } // TR-369 7100
  const envelope = read.envelope
  result.envelope = envelope

  let finding: Finding | undefined
  if (ctx.audit === 'message' && envelope.recordType === 'no_session_context') {
    // Opt-in Msg audit: header only (msg_id, msg_type, body kind), never parameter values.
    const header = msgHeaderOf(ctx.payload, read)
    if (header.ok) {
      const { ok: _headerOk, ...message } = header
      result.message = message
    } else {
      finding = { code: 'usp.malformed_record', reason: `Msg: ${header.reason}` }
    }
  }

  // TR-369 R-SEC.4c: a trusted broker ties from_id to the identity authenticated at CONNECT.
  if (envelope.fromId !== ctx.publisher.endpointId) {
    return {
      code: 'usp.from_id_spoofed',
      reason: `from_id ${quote(envelope.fromId)} is not the publisher's endpoint id ${quote(ctx.publisher.endpointId)}`
    }
  }
  // TR-369 R-E2E.1: the receiver drops Records not addressed to it; refuse them here instead.
  if (envelope.toId !== inboxEndpointId) {
    return { code: 'usp.misrouted', reason: `to_id ${quote(envelope.toId)} does not match inbox endpoint ${quote(inboxEndpointId)}` }
  }
  // Sub-levels still reach the inbox owner through its `<inbox>/#` subscription, but are no USP
  // destination: only `<inbox>` and `<inbox>/reply-to=...` are (TR-369 R-MQTT.24).
  if (subtopic !== undefined) {
    return { code: 'usp.misrouted', reason: `unexpected topic levels ${quote(subtopic)} after the inbox endpoint id` }
  }
  // TR-369 R-MQTT.23/.24: the receiver answers to the reply-to, so every reply-to a receiver could
  // use (MQTT 5 Response Topic, 3.1.1 suffix — a bridge may hand either one on) stays in the tenant.
  return replyToFinding(ctx.responseTopic, ctx.publisher.tenant) ?? replyToFinding(suffixReplyTo, ctx.publisher.tenant) ?? finding
}

function replyToFinding (replyTo: string | undefined, tenant: string): Finding | undefined {
  if (replyTo === undefined) return undefined
  const problem = replyToProblem(replyTo, tenant)
  return problem === undefined ? undefined : { code: 'usp.reply_to_cross_tenant', reason: problem, refusedReplyTo: replyTo }
}

function replyToProblem (replyTo: string, tenant: string): string | undefined {
  if (replyTo.startsWith('$')) return `reply-to ${quote(replyTo)} is a reserved $ topic`
  if (tenant === '' || !replyTo.startsWith(`${tenant}/`)) {
    return `reply-to ${quote(replyTo)} is outside tenant ${quote(tenant)}`
  }
  return undefined
}
