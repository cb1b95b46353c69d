// Embedded state store, held in memory for the hot path (authentication reads are synchronous map
// lookups) and kept in the data dir as a snapshot, state.json (written atomically), plus an
// append-only change log, state.log (one fsync'd line per change, group-committed: change-log.ts).
// A change costs one log append whatever the size of the state; the log is folded into a new
// snapshot when it holds more changes than half the state has records (so that work stays O(1)
// per change, amortised) and at every start. Replaying a change is idempotent (each is a full record).
import { MemoryCopy, credKey } from './memory-copy.ts'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from './file-io.ts'
import { ChangeLog, ChangeLogCorrupt } from './change-log.ts'
import type { AdminTokenRecord, CredentialRecord, DeviceMatrixRecord, TenantRecord } from './types.ts'

interface StateFile {
  version: 1
  tenants: TenantRecord[]
  credentials: CredentialRecord[]
  adminTokens: AdminTokenRecord[]
  /** Certification device matrix (absent in files written before it existed). */
  deviceMatrix?: DeviceMatrixRecord[]
}

/** One line of state.log: the new full value of one record. */
type Change =
  | { t: 'tenant', r: TenantRecord }
  | { t: 'credential', r: CredentialRecord }
  | { t: 'adminToken', r: AdminTokenRecord }
  | { t: 'matrixRow', r: DeviceMatrixRecord }

/**
 * The log is folded into the snapshot once it holds more changes than this and than half the
 * records of the state: a snapshot (O(records)) then follows at least records/2 appends, O(1) per change.
 */
const MIN_COMPACT_CHANGES = 1000

export class StoreError extends Error {
  constructor (readonly code: 'conflict' | 'not_found' | 'corrupt', message: string) {
    super(message)
  }
}

export class FileStateStore extends MemoryCopy {
  /** The snapshot, state.json. */
  readonly path: string
  private readonly log: ChangeLog<Change>
  private compacting: Promise<void> | undefined
  private hadSnapshot = false

  constructor (dataDir: string, private readonly compactAfter = MIN_COMPACT_CHANGES) {
    super()
    this.path = join(dataDir, 'state.json')
    this.log = new ChangeLog(join(dataDir, 'state.log'))
  }

  async load (): Promise<void> {
    await this.loadSnapshot()
    let changes: Change[]
    try {
      changes = await this.log.read()
    } catch (err) {
      if (err instanceof ChangeLogCorrupt) throw new StoreError('corrupt', err.message)
      throw err
    }
    for (const c of changes) this.apply(c)
    // start from a fresh snapshot and an empty log (and a state.json from the first start on)
    if (changes.length > 0 || !this.hadSnapshot) await this.compact()
  }

  private apply (c: Change): void {
    if (c.t === 'tenant') this.tenants.set(c.r.id, c.r)
    else if (c.t === 'credential') this.credentials.set(credKey(c.r.tenant, c.r.principal), c.r)
    else if (c.t === 'adminToken') this.adminTokens.set(c.r.id, c.r)
    else if (c.t === 'matrixRow') this.matrix.set(c.r.key, c.r)
    else throw new StoreError('corrupt', `change log ${this.log.path}: unknown change ${JSON.stringify((c as { t?: unknown }).t)}`)
  }

  private async loadSnapshot (): Promise<void> {
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') { this.hadSnapshot = false; return }
      throw err
    }
    this.hadSnapshot = true
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

  /** Appends changes (already applied to the copy) to the log; resolves once they are durable. */
  private async persist (...changes: Change[]): Promise<void> {
    const written = this.log.append(changes)
    const records = this.tenants.size + this.credentials.size + this.adminTokens.size + this.matrix.size
    if (this.compacting === undefined && this.log.lines > Math.max(this.compactAfter, records / 2)) {
      this.compacting = this.compact().catch(() => {}).finally(() => { this.compacting = undefined })
    }
    try {
      await written
    } catch (err) {
      // A checkpoint may already hold this change (it snapshots the copy): snapshot again once
      // the caller has rolled it back, so the files never keep a change its caller saw fail.
      setImmediate(() => { void this.compact().catch(() => {}) })
      throw err
    }
  }

  /** Writes the copy as a new snapshot, in order with the log, then empties the log. */
  private compact (): Promise<void> {
    const doc: StateFile = {
      version: 1,
      tenants: [...this.tenants.values()],
      credentials: [...this.credentials.values()],
      adminTokens: [...this.adminTokens.values()],
      deviceMatrix: [...this.matrix.values()]
    }
    const text = JSON.stringify(doc, null, 1)
    return this.log.checkpoint(() => writeFileAtomic(this.path, text))
  }

  // ---- tenants
  async addTenant (t: TenantRecord): Promise<TenantRecord> {
    if (this.tenants.has(t.id)) throw new StoreError('conflict', `tenant ${t.id} already exists`)
    this.tenants.set(t.id, t)
    try { await this.persist({ t: 'tenant', r: t }) } catch (err) { this.tenants.delete(t.id); throw err }
    return t
  }

  async updateTenant (id: string, patch: Partial<Pick<TenantRecord, 'name' | 'usp' | 'quotas' | 'disabled'>>): Promise<TenantRecord> {
    const existing = this.tenants.get(id)
    if (!existing) throw new StoreError('not_found', `no tenant "${id}"`)
    const updated = { ...existing, ...patch }
    this.tenants.set(id, updated)
    try { await this.persist({ t: 'tenant', r: updated }) } catch (err) { this.tenants.set(id, existing); throw err }
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
    try { await this.persist({ t: 'credential', r: c }) } catch (err) { restore(this.credentials, key, existing); throw err }
  }

  /**
   * Stores many new credentials with one log append (bulk import): all or nothing. Refused with
   * StoreError('conflict'), changing nothing, when any identity has an active credential or
   * appears twice in the batch.
   */
  async putCredentials (cs: CredentialRecord[]): Promise<void> {
    const keys = cs.map(c => credKey(c.tenant, c.principal))
    const seen = new Set<string>()
    for (const key of keys) {
      if (seen.has(key)) throw new StoreError('conflict', `${key} appears twice in the batch`)
      seen.add(key)
      const existing = this.credentials.get(key)
      if (existing && existing.revokedAt === undefined) {
        throw new StoreError('conflict', `an active credential for ${key} exists; revoke it before issuing a new one`)
      }
    }
    const previous = keys.map(key => this.credentials.get(key))
    cs.forEach((c, i) => this.credentials.set(keys[i]!, c))
    try {
      await this.persist(...cs.map((c): Change => ({ t: 'credential', r: c })))
    } catch (err) {
      keys.forEach((key, i) => restore(this.credentials, key, previous[i]))
      throw err
    }
  }

  async revokeCredential (tenant: string, principal: string, at: string): Promise<CredentialRecord> {
    const key = credKey(tenant, principal)
    const existing = this.credentials.get(key)
    if (!existing) throw new StoreError('not_found', `no credential for ${key}`)
    if (existing.revokedAt !== undefined) return existing
    const revoked = { ...existing, revokedAt: at }
    this.credentials.set(key, revoked)
    try { await this.persist({ t: 'credential', r: revoked }) } catch (err) { this.credentials.set(key, existing); throw err }
    return revoked
  }

  // ---- admin tokens
  async putAdminToken (t: AdminTokenRecord): Promise<void> {
    const existing = this.adminTokens.get(t.id)
    this.adminTokens.set(t.id, t)
    try { await this.persist({ t: 'adminToken', r: t }) } catch (err) { restore(this.adminTokens, t.id, existing); throw err }
  }

  // ---- certification device matrix
  async putMatrixRow (row: DeviceMatrixRecord): Promise<void> {
    const existing = this.matrix.get(row.key)
    this.matrix.set(row.key, row)
    try { await this.persist({ t: 'matrixRow', r: row }) } catch (err) { restore(this.matrix, row.key, existing); throw err }
  }

  async flush (): Promise<void> {
    await this.compacting
    await this.log.idle()
  }
}


function restore<V> (map: Map<string, V>, key: string, previous: V | undefined): void {
  if (previous === undefined) map.delete(key)
  else map.set(key, previous)
}
