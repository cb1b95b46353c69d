export { FileStateStore, StoreError } from './file-store.ts'
export { writeFileAtomic } from './file-io.ts'
export { credentialView } from './types.ts'
export type { TenantRecord, CredentialRecord, CredentialView, AdminTokenRecord, AdminRole } from './types.ts'
