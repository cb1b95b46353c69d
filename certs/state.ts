// The PKI's persisted metadata (pki/state.json). Certificates and keys live
// in their own PEM files beside it so operators can inspect them with openssl;
// this file records what was issued, what is revoked and what is trusted.
import { join } from 'node:path'
import { CertError } from './errors.ts'
import { readTextIfExists, writeFileAtomic } from './files.ts'
import { isTenantId, type CertificateRole } from './identity.ts'
import type { RevocationReason } from './revocation.ts'

export interface Revocation {
  revokedAt: string // ISO 8601
  reason: RevocationReason
}

export interface IssuingCaRecord {
  serial: string
  createdAt: string
  notAfter: string
  revocation?: Revocation
}

export interface IssuedCertificateRecord {
  serial: string
  principal: string
  role: CertificateRole
  caSerial: string
  notBefore: string
  notAfter: string
  revocation?: Revocation
}

/** A revoked serial of a certificate the gateway did not issue (signed by an imported vendor CA). */
export interface DeniedSerialRecord extends Revocation {
  serial: string
}

export interface ImportedCaRecord {
  fingerprint: string // SHA-256 of the DER, lowercase hex without separators
  subject: string
  notAfter: string
  importedAt: string
}

export interface TenantRecord {
  /** Oldest first; the last one issues (unless revoked: then ensureTenantCA makes a new one). */
  cas: IssuingCaRecord[]
  certificates: IssuedCertificateRecord[]
  deniedSerials: DeniedSerialRecord[]
  imported: ImportedCaRecord[]
  crlNumber: number
}

export interface PkiState {
  version: 1
  serverSans: string[]
  rootCrlNumber: number
  tenants: Record<string, TenantRecord>
}

export const STATE_FILE = 'state.json'

export function emptyState (): PkiState {
  return { version: 1, serverSans: [], rootCrlNumber: 0, tenants: {} }
}

export function emptyTenant (): TenantRecord {
  return { cas: [], certificates: [], deniedSerials: [], imported: [], crlNumber: 0 }
}

export async function loadState (dir: string): Promise<PkiState> {
  const file = join(dir, STATE_FILE)
  const text = await readTextIfExists(file)
  if (text === undefined) return emptyState()
  let state: PkiState
  try {
    state = JSON.parse(text) as PkiState
  } catch (err) {
    throw new CertError('cert.corrupt_state', `${file} is not valid JSON`, { cause: err })
  }
  if (state?.version !== 1 || typeof state.tenants !== 'object' || state.tenants === null ||
      Object.keys(state.tenants).some((t) => !isTenantId(t))) {
    throw new CertError('cert.corrupt_state', `${file} is not a uspgate PKI state (version 1)`)
  }
  return state
}

export async function saveState (dir: string, state: PkiState): Promise<void> {
  await writeFileAtomic(join(dir, STATE_FILE), JSON.stringify(state, null, 2) + '\n')
}
