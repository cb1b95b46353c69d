// Public surface of broker/certify: certification runs against a live agent, the evidence bundles
// they file (and their verification), the device matrix, the checklist as data.
export { CertificationService, CertifyError, DEFAULT_CONTROLLER_ID, type RunView, type CertifyOptions } from './service.ts'
export { verifyEvidence, MANIFEST_FILE, SIGNATURE_FILE, type VerifyResult } from './evidence.ts'
export { matrixCsv, matrixMarkdown, matrixStatus, type MatrixRow, type MatrixStatus } from './matrix.ts'
export { loadChecklist, workflowsOf, type Checklist } from './checklist.ts'
export { CERTIFY_PROBE_TENANT, CERTIFY_PROBE_ID, DEFAULT_TIMINGS, type RunTimings } from './run.ts'
export type { CertifyHost } from './host.ts'
