export { FileStateStore, StoreError } from './file-store.ts'
export { writeFileAtomic } from './file-io.ts'
export { credentialView, DEFAULT_USP_SETTINGS } from './types.ts'
export type { TenantUspSettings, UspInspectionMode, UspAuditLevel, EndpointRecord, TenantRecord, CredentialRecord, CredentialView, AdminTokenRecord, AdminRole } from './types.ts'
