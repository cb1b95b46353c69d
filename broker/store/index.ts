// broker/store: the store interfaces (state, policy versions) and their file implementations.
export { FileStateStore, StoreError } from './file-store.ts'
export { writeFileAtomic } from './file-io.ts'
export { credentialView, DEFAULT_USP_SETTINGS } from './types.ts'
export type { TenantQuotas, TenantUspSettings, UspInspectionMode, UspAuditLevel, EndpointRecord, OfflineReason, PresenceTransition, TenantRecord, CredentialRecord, CredentialView, AdminTokenRecord, AdminRole, PolicySharedStore, DeviceMatrixRecord } from './types.ts'
export type { StateStore } from './state-store.ts'
export { MemoryCopy, credKey } from './memory-copy.ts'
export { ChangeLog, ChangeLogCorrupt } from './change-log.ts'
