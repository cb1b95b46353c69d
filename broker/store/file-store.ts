// Embedded state store: one JSON document in the data dir, held in memory for
// the hot path (authentication reads are synchronous map lookups) and
// rewritten atomically on every change. Writes are serialized so two admin
// calls can never interleave and lose one another's change.
import { MemoryCopy, credKey } from './memory-copy.ts'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from './file-io.ts'
import type { AdminTokenRecord, CredentialRecord, DeviceMatrixRecord, TenantRecord } from './types.ts'

interface StateFile {
  version: 1
  tenants: TenantRecord[]
  credentials: CredentialRecord[]
  adminTokens: AdminTokenRecord[]
  /** Certification device matrix (absent in files written before it existed). */
  deviceMatrix?: DeviceMatrixRecord[]
}

export class StoreError extends Error {
  constructor (readonly code: 'conflict' | 'not_found' | 'corrupt', message: string) {
    super(message)
  }
}

export class FileStateStore extends MemoryCopy {
  readonly path: string
  private writing: Promise<void> = Promise.resolve()

  constructor (dataDir: string) {
    super()
    this.path = join(dataDir, 'state.json')
  }

  async load (): Promise<void> {
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    let doc: StateFile
    try {
      doc = JSON.parse(text) as StateFile
    } catch (err) {
      throw new StoreError('corrupt', `state file ${this.path} is not valid JSON: ${(err as Error).message}`)
    }
    if (doc.version !== 1) throw new StoreError('corrupt', `state file ${this.path} has unknown version ${String(doc.version)}`)
    for (const t of doc.tenants ?? []) this.tenants.set(t.id, t)
    for (const c of doc.credentials ?? []) this.credentials.set(credKey(c.tenant, c.principal), c)
    for (const a of doc.adminTokens ?? []) this.adminTokens.set(a.id, a)
    for (const r of doc.deviceMatrix ?? []) this.matrix.set(r.key, r)
  }

  private persist (): Promise<void> {
    const doc: StateFile = {
      version: 1,
      tenants: [...this.tenants.values()],
      credentials: [...this.credentials.values()],
      adminTokens: [...this.adminTokens.values()],
      deviceMatrix: [...this.matrix.values()]
    }
    const text = JSON.stringify(doc, null, 1)
    // Chain writes so they land in call order; a failed write surfaces to its caller.
    const next = this.writing.catch(() => {}).then(() => writeFileAtomic(this.path, text))
    this.writing = next
    return next
  }

  // ---- tenants
  async addTenant (t: TenantRecord): Promise<TenantRecord> {
    if (this.tenants.has(t.id)) throw new StoreError('conflict', `tenant ${t.id} already exists`)
    this.tenants.set(t.id, t)
    try { await this.persist() } catch (err) { this.tenants.delete(t.id); throw err }
    return t
  }

  async updateTenant (id: string, patch: Partial<Pick<TenantRecord, 'name' | 'usp'>>): Promise<TenantRecord> {
    const existing = this.tenants.get(id)
    if (!existing) throw new StoreError('not_found', `no tenant "${id}"`)
    const updated = { ...existing, ...patch }
    this.tenants.set(id, updated)
    try { await this.persist() } catch (err) { this.tenants.set(id, existing); throw err }
    return updated
  }

  // ---- device credentials
  /** Stores a new credential; a principal whose credential was revoked may be issued a new one. */
  async putCredential (c: CredentialRecord): Promise<void> {
    const key = credKey(c.tenant, c.principal)
    const existing = this.credentials.get(key)
    if (existing && existing.revokedAt === undefined) {
      throw new StoreError('conflict', `an active credential for ${key} exists; revoke it before issuing a new one`)
    }
    this.credentials.set(key, c)
    try { await this.persist() } catch (err) { restore(this.credentials, key, existing); throw err }
  }

  async revokeCredential (tenant: string, principal: string, at: string): Promise<CredentialRecord> {
    const key = credKey(tenant, principal)
    const existing = this.credentials.get(key)
    if (!existing) throw new StoreError('not_found', `no credential for ${key}`)
    if (existing.revokedAt !== undefined) return existing
    const revoked = { ...existing, revokedAt: at }
    this.credentials.set(key, revoked)
    try { await this.persist() } catch (err) { this.credentials.set(key, existing); throw err }
    return revoked
  }

  // ---- admin tokens
  async putAdminToken (t: AdminTokenRecord): Promise<void> {
    const existing = this.adminTokens.get(t.id)
    this.adminTokens.set(t.id, t)
    try { await this.persist() } catch (err) { restore(this.adminTokens, t.id, existing); throw err }
  }

  // ---- certification device matrix
  async putMatrixRow (row: DeviceMatrixRecord): Promise<void> {
    const existing = this.matrix.get(row.key)
    this.matrix.set(row.key, row)
    try { await this.persist() } catch (err) { restore(this.matrix, row.key, existing); throw err }
  }

  async flush (): Promise<void> { await this.writing.catch(() => {}) }
}


function restore<V> (map: Map<string, V>, key: string, previous: V | undefined): void {
  if (previous === undefined) map.delete(key)
  else map.set(key, previous)
}
