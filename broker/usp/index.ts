// Public surface of broker/usp: USP Record envelope peek, Msg header read, topic layout helpers,
// PUBLISH inspection, and (for tests and tools) schema-backed encoders. Other folders import only
// from here. Nothing in this folder depends on aedes.

export {
  peekRecord,
  decodeMsgHeader,
  RECORD_TYPES,
  DEFAULT_MAX_RECORD_BYTES,
  MAX_ID_BYTES,
  type RecordType,
  type RecordEnvelope,
  type PayloadSecurity,
  type MqttVersion,
  type PeekResult,
  type PeekOptions,
  type UspFailure,
  type MsgHeader,
  type MsgHeaderResult,
  type MsgKind,
  type MsgTypeName,
  type MsgBodyType
} from './peek.ts'

export {
  parseUspTopic,
  isUspInbox,
  inboxTopic,
  withReplyTo,
  type UspTopic,
  type UspTopicKind,
  type InboxRole
} from './topics.ts'

export {
  inspectUspPublish,
  type UspPublishContext,
  type UspInspection,
  type UspInspectionMode,
  type UspAuditLevel,
  type UspFindingCode,
  type InspectedEnvelope,
  type InspectedMessage
} from './inspect.ts'

export {
  encodeRecord,
  encodeMsg,
  uspSchema,
  fullyDecodeRecord,
  fullyDecodeMsg,
  type UspSchema,
  type RecordInput,
  type MsgInput,
  type MsgBodyInput,
  type RequestInput,
  type ResponseInput,
  type GetInput,
  type GetRespInput,
  type NotifyInput,
  type NotifyRespInput,
  type ErrorInput
} from './schema.ts'

export { UspAuditTrail, USP_AUDIT_PER_TENANT, USP_AUDIT_BYTES_PER_TENANT, type UspAuditEntry, type SharedUspAudit } from './audit.ts'
export { EndpointRegistry, mqttVersion, offlineTransition, PRESENCE_HISTORY, type Endpoints, type OfflineCause } from './endpoints.ts'
export { Presence, presenceTopic, type PublishRetained } from './presence.ts'
export { uspRecordObserver, type RecordCounter } from './observer.ts'

export {
  UspController,
  UspErrorReply,
  UspTimeout,
  USP_CONTENT_TYPE,
  USP_ERROR_CODES,
  NOT_SUPPORTED_CODES,
  uspErrorName,
  type ControllerOptions,
  type RecordTrace,
  type UspReply,
  type NotifyEvent,
  type ConnectRecordEvent
} from './controller/index.ts'
