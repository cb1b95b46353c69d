// Bulk provisioning of device credentials (POST /v1/tenants/:tenant/credentials:import): an ISP
// onboarding a fleet imports its routers in one call. Idempotent per principal: re-running the same
// file skips what exists, so a partly failed import is simply run again. Each row gets a result;
// generated secrets are in this answer only (the store keeps hashes), or the factory supplies the
// SHA-256 hash of a secret it put on the device (pre-provisioning) and no secret is returned.
import { isPrincipal, ROLES, generateSecret, hashSecret, type Role, type SecurityEventInput } from '../core/index.ts'
import { StoreError, type CredentialRecord, type StateStore } from '../store/index.ts'

export interface ImportRow {
  principal?: unknown
  role?: unknown
  /** "sha256:<64 hex>" of a secret the factory installed; omitted: the gateway generates one. */
  secretHash?: unknown
}

export interface ImportRowResult {
  /** 1-based position in the import */
  row: number
  principal?: string
  status: 'created' | 'skipped' | 'failed'
  reason?: string
  /** generated secret, shown this once */
  secret?: string
}

export interface ImportResult {
  total: number
  success: number
  skipped: number
  failed: number
  results: ImportRowResult[]
}

/** Rows written to the store per batch (one Redis script / one log append each). */
export const IMPORT_BATCH = 1000
export const MAX_IMPORT_ROWS = 1_000_000
const SECRET_HASH = /^sha256:[0-9a-f]{64}$/

export async function importCredentials (store: StateStore, tenant: string, rows: ImportRow[], emit: (e: SecurityEventInput) => void, actor: string): Promise<ImportResult> {
  const results: ImportRowResult[] = []
  const seen = new Set<string>()
  const now = new Date().toISOString()
  let pending: Array<{ record: CredentialRecord, result: ImportRowResult }> = []
  const flush = async (): Promise<void> => {
    const batch = pending
    pending = []
    if (batch.length === 0) return
    try {
      await store.putCredentials(batch.map(b => b.record))
    } catch (err) {
      if (!(err instanceof StoreError) || err.code !== 'conflict') throw err
      // another node created some of them meanwhile: one by one, to tell which
      for (const b of batch) {
        try {
          await store.putCredential(b.record)
        } catch (e) {
          if (!(e instanceof StoreError) || e.code !== 'conflict') throw e
          Object.assign(b.result, { status: 'skipped', reason: 'an active credential exists' })
          delete b.result.secret
        }
      }
    }
  }
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!
    const result: ImportRowResult = { row: i + 1, status: 'failed' }
    results.push(result)
    const principal = row.principal
    if (typeof principal !== 'string' || !isPrincipal(principal)) { result.reason = 'principal must be 1-128 characters of A-Z a-z 0-9 . _ % : - (a USP Endpoint ID)'; continue }
    result.principal = principal
    if (typeof row.role !== 'string' || !(ROLES as readonly string[]).includes(row.role)) { result.reason = `role must be one of ${ROLES.join(', ')}`; continue }
    if (row.secretHash !== undefined && (typeof row.secretHash !== 'string' || !SECRET_HASH.test(row.secretHash))) { result.reason = 'secretHash must be "sha256:" and 64 lowercase hex digits'; continue }
    if (seen.has(principal)) { result.reason = 'the principal appears earlier in this import'; continue }
    seen.add(principal)
    const existing = store.getCredential(tenant, principal)
    if (existing !== undefined) {
      result.status = 'skipped'
      // a revoked device is not brought back by re-running a factory file: issue it explicitly
      result.reason = existing.revokedAt === undefined ? 'an active credential exists' : `revoked at ${existing.revokedAt}; issue a new credential explicitly to replace it`
      continue
    }
    const secret = row.secretHash === undefined ? generateSecret() : undefined
    result.status = 'created'
    if (secret !== undefined) result.secret = secret
    pending.push({ result, record: { tenant, principal, role: row.role as Role, secretHash: secret !== undefined ? hashSecret(secret) : row.secretHash as string, createdAt: now } })
    if (pending.length >= IMPORT_BATCH) await flush()
  }
  await flush()
  const summary: ImportResult = {
    total: rows.length,
    success: results.filter(r => r.status === 'created').length,
    skipped: results.filter(r => r.status === 'skipped').length,
    failed: results.filter(r => r.status === 'failed').length,
    results
  }
  // one summary event, not one per device (a 100k import must not flood the event log)
  emit({ code: 'credential.imported', tenant, actor, action: 'credential.import', reason: `${summary.success} created, ${summary.skipped} skipped, ${summary.failed} failed of ${summary.total}` })
  return summary
}
