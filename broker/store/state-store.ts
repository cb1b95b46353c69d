// The state store contract: tenants, device credentials (incl. revocations) and admin tokens.
// Two implementations: FileStateStore (embedded default, <dataDir>/state.json) and RedisStateStore
// (cluster mode). Reads are synchronous map lookups on an in-memory copy (the CONNECT hot path);
// writes are async and reach the durable store before they resolve.
import type { FileStateStore } from './file-store.ts'
import type { AdminTokenRecord, CredentialRecord, DeviceMatrixRecord, TenantRecord } from './types.ts'

export interface StateStore {
  /** Fills the in-memory copy from the durable store. */
  load(): Promise<void>
  getTenant(id: string): TenantRecord | undefined
  listTenants(): TenantRecord[]
  /** StoreError('conflict') when the tenant exists. */
  addTenant(t: TenantRecord): Promise<TenantRecord>
  /** StoreError('not_found') when there is no such tenant. */
  updateTenant(id: string, patch: Partial<Pick<TenantRecord, 'name' | 'usp' | 'quotas' | 'disabled'>>): Promise<TenantRecord>
  getCredential(tenant: string, principal: string): CredentialRecord | undefined
  listCredentials(tenant: string): CredentialRecord[]
  /** StoreError('conflict') while an active (unrevoked) credential exists for the identity. */
  putCredential(c: CredentialRecord): Promise<void>
  /**
   * Stores many new credentials at once (bulk import), all or nothing: refused with
   * StoreError('conflict'), changing nothing, when any identity has an active credential.
   */
  putCredentials(cs: CredentialRecord[]): Promise<void>
  /** Idempotent (an earlier revocation is returned as is); StoreError('not_found') for no credential. */
  revokeCredential(tenant: string, principal: string, at: string): Promise<CredentialRecord>
  listAdminTokens(): AdminTokenRecord[]
  findAdminTokenByHash(hash: string): AdminTokenRecord | undefined
  putAdminToken(t: AdminTokenRecord): Promise<void>
  /** Certification device-matrix rows (broker/certify), one per key. */
  listMatrixRows(): DeviceMatrixRecord[]
  putMatrixRow(row: DeviceMatrixRecord): Promise<void>
  /** Waits for pending writes. */
  flush(): Promise<void>
}

// Compile-time check: the embedded store implements the contract.
const _fileStoreIsAStateStore = (s: FileStateStore): StateStore => s
void _fileStoreIsAStateStore
