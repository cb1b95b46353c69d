// The in-memory copy both state stores hold, and the synchronous reads the
// CONNECT hot path makes on it. Maps, not plain objects: keys come from users
// (tenant ids, Endpoint IDs) and must never collide with Object.prototype.
import type { AdminTokenRecord, CredentialRecord, DeviceMatrixRecord, TenantRecord } from './types.ts'

export function credKey (tenant: string, principal: string): string {
  return `${tenant}:${principal}`
}

export abstract class MemoryCopy {
  protected tenants = new Map<string, TenantRecord>()
  protected credentials = new Map<string, CredentialRecord>()
  protected adminTokens = new Map<string, AdminTokenRecord>()
  protected matrix = new Map<string, DeviceMatrixRecord>()

  getTenant (id: string): TenantRecord | undefined { return this.tenants.get(id) }
  listTenants (): TenantRecord[] { return [...this.tenants.values()].sort((a, b) => a.id.localeCompare(b.id)) }

  getCredential (tenant: string, principal: string): CredentialRecord | undefined {
    return this.credentials.get(credKey(tenant, principal))
  }

  listCredentials (tenant: string): CredentialRecord[] {
    return [...this.credentials.values()].filter(c => c.tenant === tenant).sort((a, b) => a.principal.localeCompare(b.principal))
  }

  listAdminTokens (): AdminTokenRecord[] { return [...this.adminTokens.values()] }

  listMatrixRows (): DeviceMatrixRecord[] { return [...this.matrix.values()].sort((a, b) => a.key.localeCompare(b.key)) }

  findAdminTokenByHash (hash: string): AdminTokenRecord | undefined {
    for (const t of this.adminTokens.values()) if (t.tokenHash === hash) return t
    return undefined
  }
}
