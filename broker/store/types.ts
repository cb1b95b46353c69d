import type { Role } from '../identity.ts'

export interface TenantRecord {
  id: string
  name: string
  createdAt: string
}

export interface CredentialRecord {
  tenant: string
  principal: string
  role: Role
  secretHash: string
  createdAt: string
  revokedAt?: string
}

export type AdminRole = 'viewer' | 'security' | 'noc' | 'admin'

export interface AdminTokenRecord {
  id: string
  name: string
  role: AdminRole
  tokenHash: string
  createdAt: string
  revokedAt?: string
}

/** Public view of a credential: never the hash. */
export interface CredentialView {
  username: string
  tenant: string
  principal: string
  role: Role
  createdAt: string
  revoked: boolean
  revokedAt?: string
}

export function credentialView (c: CredentialRecord): CredentialView {
  const v: CredentialView = {
    username: `${c.tenant}:${c.principal}`,
    tenant: c.tenant,
    principal: c.principal,
    role: c.role,
    createdAt: c.createdAt,
    revoked: c.revokedAt !== undefined
  }
  if (c.revokedAt !== undefined) v.revokedAt = c.revokedAt
  return v
}
