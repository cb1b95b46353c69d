// Public surface of broker/usp/controller: the USP Controller role the gateway plays in
// certification runs (requests, responses, USP Error messages, Notify answers, record traces).
export {
  UspController,
  UspErrorReply,
  UspTimeout,
  USP_CONTENT_TYPE,
  type ControllerOptions,
  type RecordTrace,
  type UspReply,
  type NotifyEvent,
  type ConnectRecordEvent
} from './controller.ts'
export { USP_ERROR_CODES, NOT_SUPPORTED_CODES, uspErrorName } from './error-codes.ts'
