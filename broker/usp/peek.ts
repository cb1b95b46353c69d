// Envelope peek: read a USP Record's routing facts straight off the wire, without decoding the
// USP Msg it carries (TR-369 R-SEC.4c: a trusted broker must not inspect payloads).
// Field numbers follow proto/usp-record-1-4.proto and proto/usp-msg-1-4.proto.

import { walkMessage, stringField, type FieldSpan, type FieldSpans, type MessageRules } from './wire.ts'

/** The Record's `record_type` oneof, by field number 7..13. */
export const RECORD_TYPES = [
  'no_session_context', 'session_context', 'websocket_connect', 'mqtt_connect',
  'stomp_connect', 'disconnect', 'uds_connect'
] as const
export type RecordType = typeof RECORD_TYPES[number]
const FIRST_RECORD_TYPE_FIELD = 7

/** Known enum values by name; an unknown value (legal in proto3) is reported as its number. */
export type PayloadSecurity = 'PLAINTEXT' | 'TLS12' | number
export type MqttVersion = 'V3_1_1' | 'V5' | number

/** A Record's routing facts. */
export interface EnvelopeFields {
  version: string
  toId: string
  fromId: string
  payloadSecurity: PayloadSecurity
  recordType: RecordType
  mqttConnect?: { version: MqttVersion; subscribedTopic: string }
  disconnect?: { reason: string; reasonCode: number }
}

export interface RecordEnvelope extends EnvelopeFields {
  ok: true
}

export interface UspFailure {
  ok: false
  reason: string
}

export type PeekResult = RecordEnvelope | UspFailure

export interface PeekOptions {
  /** Largest Record accepted; the listener's MQTT packet-size limit is the primary bound. */
  maxBytes?: number
  /**
   * The to_id and from_id the caller expects (inspection: the inbox's endpoint id and the publisher's):
   * when the Record holds exactly them, these strings are reused instead of decoding the bytes again.
   * Only a saving: the envelope read is the same either way, and nothing is checked against them here.
   */
  expectedToId?: string
  expectedFromId?: string
}

export const DEFAULT_MAX_RECORD_BYTES = 4 * 1024 * 1024
/** Endpoint IDs (TR-369 `scheme:authority:instance`, ~66 characters) and msg_ids are short; one this
 *  long is not genuine and must not reach logs and audit events. */
export const MAX_ID_BYTES = 1024

const RECORD_RULES: MessageRules = {
  1: { name: 'version', kind: 'string' },
  2: { name: 'to_id', kind: 'string' },
  3: { name: 'from_id', kind: 'string' },
  4: { name: 'payload_security', kind: 'varint' },
  5: { name: 'mac_signature', kind: 'bytes' },
  6: { name: 'sender_cert', kind: 'bytes' },
  7: { name: 'no_session_context', kind: 'message' },
  8: { name: 'session_context', kind: 'message' },
  9: { name: 'websocket_connect', kind: 'message' },
  10: { name: 'mqtt_connect', kind: 'message' },
  11: { name: 'stomp_connect', kind: 'message' },
  12: { name: 'disconnect', kind: 'message' },
  13: { name: 'uds_connect', kind: 'message' }
}

/** Rules for each record_type body, walked only to check its wire structure (one level). */
const RECORD_TYPE_RULES: Readonly<Record<RecordType, MessageRules>> = {
  no_session_context: { 2: { name: 'payload', kind: 'bytes' } },
  session_context: {
    1: { name: 'session_id', kind: 'varint' },
    2: { name: 'sequence_id', kind: 'varint' },
    3: { name: 'expected_id', kind: 'varint' },
    4: { name: 'retransmit_id', kind: 'varint' },
    5: { name: 'payload_sar_state', kind: 'varint' },
    6: { name: 'payloadrec_sar_state', kind: 'varint' },
    7: { name: 'payload', kind: 'bytes', repeated: true }
  },
  websocket_connect: {},
  mqtt_connect: {
    1: { name: 'version', kind: 'varint' },
    2: { name: 'subscribed_topic', kind: 'string' }
  },
  stomp_connect: {
    1: { name: 'version', kind: 'varint' },
    2: { name: 'subscribed_destination', kind: 'string' }
  },
  disconnect: {
    1: { name: 'reason', kind: 'string' },
    2: { name: 'reason_code', kind: 'fixed32' }
  },
  uds_connect: {}
}

const PAYLOAD_SECURITY_NAMES = ['PLAINTEXT', 'TLS12'] as const
const MQTT_VERSION_NAMES = ['V3_1_1', 'V5'] as const

function enumName<N extends string> (names: readonly N[], value: number): N | number {
  return names[value] ?? value
}

function fail (reason: string): UspFailure {
  return { ok: false, reason }
}

/** The envelope plus, for no_session_context, where the serialized Msg sits. Internal. */
export interface RecordRead {
  envelope: EnvelopeFields
  msgPayload?: FieldSpan
}

/** The version of the last Record read: a fleet speaks one or two, so the next one is likely the same text. */
let lastVersion = ''

export function readRecord (buf: Uint8Array, options: PeekOptions = {}): RecordRead | UspFailure {
  if (!(buf instanceof Uint8Array)) return fail('record is not a byte buffer')
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_RECORD_BYTES
  if (buf.length > maxBytes) return fail(`record of ${buf.length} bytes exceeds ${maxBytes}`)
  if (buf.length === 0) return fail('empty record')

  const record = walkMessage(buf, 0, buf.length, RECORD_RULES, 'Record')
  if (!record.ok) return record
  const { fields } = record

  let recordType: RecordType | undefined
  let body: FieldSpan | undefined
  for (let i = 0; i < RECORD_TYPES.length; i++) {
    const span = fields[FIRST_RECORD_TYPE_FIELD + i]
    if (span === undefined) continue
    // Two record_type members: decoders would keep the last; refuse the ambiguity instead.
    if (recordType !== undefined) return fail(`Record.record_type set twice (${recordType}, ${RECORD_TYPES[i]})`)
    recordType = RECORD_TYPES[i]
    body = span
  }
  if (recordType === undefined || body === undefined) return fail('Record.record_type is missing')

  const toId = fields[2]
  const fromId = fields[3]
  // proto3 cannot tell an empty string from an absent one: both mean "missing" here.
  if (toId === undefined || toId.end === toId.start) return fail('Record.to_id is missing')
  if (fromId === undefined || fromId.end === fromId.start) return fail('Record.from_id is missing')
  if (toId.end - toId.start > MAX_ID_BYTES) return fail('Record.to_id is too long')
  if (fromId.end - fromId.start > MAX_ID_BYTES) return fail('Record.from_id is too long')

  const inner = walkMessage(buf, body.start, body.end, RECORD_TYPE_RULES[recordType], recordType)
  if (!inner.ok) return inner

  const version = stringField(buf, fields[1], lastVersion)
  lastVersion = version
  const envelope: EnvelopeFields = {
    version,
    toId: stringField(buf, toId, options.expectedToId),
    fromId: stringField(buf, fromId, options.expectedFromId),
    payloadSecurity: enumName(PAYLOAD_SECURITY_NAMES, fields[4]?.value ?? 0),
    recordType
  }
  let msgPayload: FieldSpan | undefined
  switch (recordType) {
    case 'no_session_context':
      msgPayload = inner.fields[2]
      if (msgPayload === undefined || msgPayload.end === msgPayload.start) {
        return fail('no_session_context.payload is missing')
      }
      break
    case 'mqtt_connect':
      envelope.mqttConnect = {
        version: enumName(MQTT_VERSION_NAMES, inner.fields[1]?.value ?? 0),
        subscribedTopic: stringField(buf, inner.fields[2])
      }
      break
    case 'disconnect':
      envelope.disconnect = {
        reason: stringField(buf, inner.fields[1]),
        reasonCode: inner.fields[2]?.value ?? 0
      }
      break
  }
  return msgPayload === undefined ? { envelope } : { envelope, msgPayload }
}

/**
 * Reads a USP Record's envelope (version, to_id, from_id, payload_security, record_type, and the
 * mqtt_connect / disconnect details) without decoding the Msg inside. O(size), never throws;
 * truncated or malformed input gives `{ok: false, reason}`.
 */
export function peekRecord (buf: Uint8Array, options?: PeekOptions): PeekResult {
  try {
    const read = readRecord(buf, options)
    return 'envelope' in read ? { ok: true, ...read.envelope } : read
  } catch (err) {
    return fail(`internal peek error: ${(err as Error).message}`) // not expected; fail closed
  }
}

// ---------------------------------------------------------------------------------------------
// Msg header

export type MsgKind = 'request' | 'response' | 'error'

/** Header.MsgType by number, with the body each one must carry. */
const MSG_TYPES = [
  ['ERROR', 'error', 'error'],
  ['GET', 'request', 'get'],
  ['GET_RESP', 'response', 'get_resp'],
  ['NOTIFY', 'request', 'notify'],
  ['SET', 'request', 'set'],
  ['SET_RESP', 'response', 'set_resp'],
  ['OPERATE', 'request', 'operate'],
  ['OPERATE_RESP', 'response', 'operate_resp'],
  ['ADD', 'request', 'add'],
  ['ADD_RESP', 'response', 'add_resp'],
  ['DELETE', 'request', 'delete'],
  ['DELETE_RESP', 'response', 'delete_resp'],
  ['GET_SUPPORTED_DM', 'request', 'get_supported_dm'],
  ['GET_SUPPORTED_DM_RESP', 'response', 'get_supported_dm_resp'],
  ['GET_INSTANCES', 'request', 'get_instances'],
  ['GET_INSTANCES_RESP', 'response', 'get_instances_resp'],
  ['NOTIFY_RESP', 'response', 'notify_resp'],
  ['GET_SUPPORTED_PROTO', 'request', 'get_supported_protocol'],
  ['GET_SUPPORTED_PROTO_RESP', 'response', 'get_supported_protocol_resp'],
  ['REGISTER', 'request', 'register'],
  ['REGISTER_RESP', 'response', 'register_resp'],
  ['DEREGISTER', 'request', 'deregister'],
  ['DEREGISTER_RESP', 'response', 'deregister_resp']
] as const

export type MsgTypeName = typeof MSG_TYPES[number][0]
export type MsgBodyType = typeof MSG_TYPES[number][2]

export interface MsgHeader {
  ok: true
  msgId: string
  msgType: MsgTypeName
  kind: MsgKind
  bodyType: MsgBodyType
}

export type MsgHeaderResult = MsgHeader | UspFailure

/** The Header.MsgType that goes with a body, e.g. 'get_resp' → 'GET_RESP'. */
export function msgTypeForBody (bodyType: string): MsgTypeName | undefined {
  return MSG_TYPES.find(t => t[2] === bodyType)?.[0]
}

const MSG_RULES: MessageRules = {
  1: { name: 'header', kind: 'message' },
  2: { name: 'body', kind: 'message' }
}
const HEADER_RULES: MessageRules = {
  1: { name: 'msg_id', kind: 'string' },
  2: { name: 'msg_type', kind: 'varint' }
}
const BODY_KINDS = ['request', 'response', 'error'] as const // Body.msg_body fields 1..3
const BODY_RULES: MessageRules = {
  1: { name: 'request', kind: 'message' },
  2: { name: 'response', kind: 'message' },
  3: { name: 'error', kind: 'message' }
}

/** Request.req_type / Response.resp_type members, by field number 1..11. */
const REQUEST_TYPES = [
  'get', 'get_supported_dm', 'get_instances', 'set', 'add', 'delete', 'operate', 'notify',
  'get_supported_protocol', 'register', 'deregister'
] as const
const REQUEST_RULES: MessageRules = Object.fromEntries(
  REQUEST_TYPES.map((name, i) => [i + 1, { name, kind: 'message' }]))
const RESPONSE_RULES: MessageRules = Object.fromEntries(
  REQUEST_TYPES.map((name, i) => [i + 1, { name: `${name}_resp`, kind: 'message' }]))

/** Exactly one of the listed fields is set; returns its number or a failure. */
function oneField (fields: FieldSpans, count: number, oneofName: string): number | UspFailure {
  let found = 0
  for (let n = 1; n <= count; n++) {
    if (fields[n] === undefined) continue
    if (found !== 0) return fail(`${oneofName} set twice`)
    found = n
  }
  return found === 0 ? fail(`${oneofName} is missing`) : found
}

/**
 * Reads only a Msg's header and which body it carries (`buf[start..end)` holds the serialized Msg).
 * The body's own fields (parameter paths and values) are never walked.
 */
export function readMsgHeader (buf: Uint8Array, start: number, end: number): MsgHeaderResult {
  const msg = walkMessage(buf, start, end, MSG_RULES, 'Msg')
  if (!msg.ok) return msg
  const headerSpan = msg.fields[1]
  const bodySpan = msg.fields[2]
  if (headerSpan === undefined) return fail('Msg.header is missing')
  if (bodySpan === undefined) return fail('Msg.body is missing')

  const header = walkMessage(buf, headerSpan.start, headerSpan.end, HEADER_RULES, 'Header')
  if (!header.ok) return header
  const msgIdSpan = header.fields[1]
  if (msgIdSpan === undefined || msgIdSpan.end === msgIdSpan.start) return fail('Header.msg_id is missing') // R-MSG.8
  if (msgIdSpan.end - msgIdSpan.start > MAX_ID_BYTES) return fail('Header.msg_id is too long')
  const typeNumber = header.fields[2]?.value ?? 0
  const msgType = MSG_TYPES[typeNumber]
  if (msgType === undefined) return fail(`Header.msg_type ${typeNumber} is unknown`)

  const body = walkMessage(buf, bodySpan.start, bodySpan.end, BODY_RULES, 'Body')
  if (!body.ok) return body
  const bodyField = oneField(body.fields, BODY_KINDS.length, 'Body.msg_body')
  if (typeof bodyField !== 'number') return bodyField
  const kind = BODY_KINDS[bodyField - 1]!

  let bodyType: MsgBodyType = 'error'
  if (kind !== 'error') {
    const span = body.fields[bodyField]!
    const rules = kind === 'request' ? REQUEST_RULES : RESPONSE_RULES
    const typeName = kind === 'request' ? 'Request.req_type' : 'Response.resp_type'
    const inner = walkMessage(buf, span.start, span.end, rules, kind === 'request' ? 'Request' : 'Response')
    if (!inner.ok) return inner
    const member = oneField(inner.fields, REQUEST_TYPES.length, typeName)
    if (typeof member !== 'number') return member
    bodyType = rules[member]!.name as MsgBodyType
  }
  // The header's msg_type must name the body actually carried (R-MSG.10: one msg_type per Msg).
  if (msgType[1] !== kind || msgType[2] !== bodyType) {
    return fail(`Header.msg_type ${msgType[0]} does not match a ${bodyType} body`)
  }
  return { ok: true, msgId: stringField(buf, msgIdSpan), msgType: msgType[0], kind, bodyType }
}

/**
 * For a no_session_context Record: its Msg's id, type and body kind, e.g.
 * `{msgId, msgType: 'GET', kind: 'request', bodyType: 'get'}`. Never reads parameter values.
 * Fails closed on anything else (other record types, encrypted payloads, malformed bytes).
 */
export function decodeMsgHeader (recordBuf: Uint8Array, options?: PeekOptions): MsgHeaderResult {
  try {
    const read = readRecord(recordBuf, options)
    if (!('envelope' in read)) return read
    return msgHeaderOf(recordBuf, read)
  } catch (err) {
    return fail(`internal decode error: ${(err as Error).message}`) // not expected; fail closed
  }
}

/** Internal: the Msg header of an already-read Record. */
export function msgHeaderOf (buf: Uint8Array, read: RecordRead): MsgHeaderResult {
  if (read.envelope.recordType !== 'no_session_context' || read.msgPayload === undefined) {
    return fail(`a ${read.envelope.recordType} record carries no readable Msg`)
  }
  if (read.envelope.payloadSecurity !== 'PLAINTEXT') return fail('Msg payload is not plaintext')
  return readMsgHeader(buf, read.msgPayload.start, read.msgPayload.end)
}
