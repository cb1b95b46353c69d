// The USP Record / Msg schemas (proto/*.proto) loaded with protobufjs, and encoders that build
// real USP bytes for tests and tools. The gateway's hot path never uses these: it peeks the wire
// format (peek.ts) and must not decode payloads (TR-369 R-SEC.4c).

import { readFileSync } from 'node:fs'
import protobuf from 'protobufjs'
import { msgTypeForBody, type MsgTypeName } from './peek.ts'

export interface UspSchema {
  root: protobuf.Root
  Record: protobuf.Type
  Msg: protobuf.Type
}

const PROTO_FILES = ['usp-record-1-4.proto', 'usp-msg-1-4.proto']
let schema: UspSchema | undefined

/** Loads (once) and returns the parsed schemas. Field names are camelCase, as protobufjs makes them. */
export function uspSchema (): UspSchema {
  if (schema !== undefined) return schema
  const root = new protobuf.Root()
  for (const file of PROTO_FILES) {
    protobuf.parse(readFileSync(new URL(`./proto/${file}`, import.meta.url), 'utf8'), root)
  }
  root.resolveAll()
  schema = { root, Record: root.lookupType('usp_record.Record'), Msg: root.lookupType('usp.Msg') }
  return schema
}

// ---------------------------------------------------------------------------------------------
// Record

type Bytes = Uint8Array
type Uint64 = number | string

export interface RecordInput {
  /** USP protocol version; default "1.3" (what obuspa stamps). */
  version?: string
  toId: string
  fromId: string
  payloadSecurity?: 'PLAINTEXT' | 'TLS12'
  macSignature?: Bytes
  senderCert?: Bytes
  // exactly one record type:
  noSessionContext?: { payload: Bytes }
  sessionContext?: {
    sessionId?: Uint64
    sequenceId?: Uint64
    expectedId?: Uint64
    retransmitId?: Uint64
    payloadSarState?: 'NONE' | 'BEGIN' | 'INPROCESS' | 'COMPLETE'
    payloadrecSarState?: 'NONE' | 'BEGIN' | 'INPROCESS' | 'COMPLETE'
    payload?: Bytes[]
  }
  websocketConnect?: Record<string, never>
  mqttConnect?: { version: 0 | 1 | 'V3_1_1' | 'V5'; subscribedTopic: string }
  stompConnect?: { version?: 0 | 'V1_2'; subscribedDestination: string }
  disconnect?: { reason?: string; reasonCode?: number }
  udsConnect?: Record<string, never>
}

const RECORD_TYPE_KEYS = [
  'noSessionContext', 'sessionContext', 'websocketConnect', 'mqttConnect',
  'stompConnect', 'disconnect', 'udsConnect'
] as const

/** Encodes a USP Record. Throws unless exactly one record type is given. */
export function encodeRecord (input: RecordInput): Buffer {
  const types = RECORD_TYPE_KEYS.filter(key => input[key] !== undefined)
  if (types.length !== 1) throw new TypeError(`a Record needs exactly one record type, got ${types.length}`)
  const { Record } = uspSchema()
  const message = Record.fromObject({ ...input, version: input.version ?? '1.3' })
  return toBuffer(Record.encode(message).finish())
}

// ---------------------------------------------------------------------------------------------
// Msg (inputs typed for the common messages; other bodies are accepted as plain objects)

type StringMap = Record<string, string>

export interface GetInput { paramPaths: string[]; maxDepth?: number }
export interface GetRespInput {
  reqPathResults: Array<{
    requestedPath: string
    errCode?: number
    errMsg?: string
    resolvedPathResults?: Array<{ resolvedPath: string; resultParams?: StringMap }>
  }>
}
export interface NotifyInput {
  subscriptionId?: string
  sendResp?: boolean
  /** e.g. Boot!: `{objPath: 'Device.', eventName: 'Boot!', params: {Cause: 'LocalReboot', ...}}` */
  event?: { objPath: string; eventName: string; params?: StringMap }
  valueChange?: { paramPath: string; paramValue: string }
  objCreation?: { objPath: string; uniqueKeys?: StringMap }
  objDeletion?: { objPath: string }
  onBoardReq?: { oui: string; productClass: string; serialNumber: string; agentSupportedProtocolVersions: string }
}
export interface NotifyRespInput { subscriptionId?: string }
export interface ErrorInput {
  errCode: number
  errMsg?: string
  paramErrs?: Array<{ paramPath: string; errCode: number; errMsg?: string }>
}

export interface RequestInput {
  get?: GetInput
  notify?: NotifyInput
  getSupportedProtocol?: { controllerSupportedProtocolVersions: string }
  [otherRequest: string]: unknown
}
export interface ResponseInput {
  getResp?: GetRespInput
  notifyResp?: NotifyRespInput
  getSupportedProtocolResp?: { agentSupportedProtocolVersions: string }
  [otherResponse: string]: unknown
}
export type MsgBodyInput = { request: RequestInput } | { response: ResponseInput } | { error: ErrorInput }

export interface MsgInput {
  msgId: string
  /** Defaults to the type that matches the body (e.g. `{request: {get}}` → 'GET'). */
  msgType?: MsgTypeName
  body: MsgBodyInput
}

/** Encodes a USP Msg. Throws when the body does not name exactly one message. */
export function encodeMsg (input: MsgInput): Buffer {
  const msgType = input.msgType ?? inferMsgType(input.body)
  const { Msg } = uspSchema()
  const message = Msg.fromObject({ header: { msgId: input.msgId, msgType }, body: input.body })
  return toBuffer(Msg.encode(message).finish())
}

function inferMsgType (body: MsgBodyInput): MsgTypeName {
  if ('error' in body) return 'ERROR'
  const inner: object = 'request' in body ? body.request : body.response
  const keys = Object.keys(inner).filter(k => (inner as Record<string, unknown>)[k] !== undefined)
  const camel = keys.length === 1 ? keys[0]! : ''
  const msgType = msgTypeForBody(camel.replace(/[A-Z]/g, c => `_${c.toLowerCase()}`))
  if (msgType === undefined) throw new TypeError(`cannot infer msg_type from body ${JSON.stringify(keys)}`)
  return msgType
}

// ---------------------------------------------------------------------------------------------
// Full decoding, for tests and tools only (enums as names, 64-bit integers as strings).

const TO_OBJECT: protobuf.IConversionOptions = { enums: String, longs: String, oneofs: true }

/** Fully decodes a Record with protobufjs (throws on bytes protobufjs rejects). Not for the gateway. */
export function fullyDecodeRecord (buf: Uint8Array): Record<string, unknown> {
  const { Record } = uspSchema()
  return Record.toObject(Record.decode(buf), TO_OBJECT)
}

/** Fully decodes a Msg with protobufjs (throws on bytes protobufjs rejects). Not for the gateway. */
export function fullyDecodeMsg (buf: Uint8Array): Record<string, unknown> {
  const { Msg } = uspSchema()
  return Msg.toObject(Msg.decode(buf), TO_OBJECT)
}

function toBuffer (bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}
