// Cluster state store: tenants, credentials (incl. revocations) and admin tokens in Redis hashes
// (one JSON value per record) under the deployment prefix. The hot path reads an in-memory copy
// (synchronous map lookups, exactly like FileStateStore); every write goes to Redis first (atomic
// Lua where a rule must hold cluster-wide), then updates the copy and tells the other nodes through
// the control channel (`onChange`), which refresh the one record named. A node that may have missed
// messages reloads everything (`load()`), replacing its copy in one step.
import { MemoryCopy, credKey } from '../store/index.ts'
import type { Redis } from 'ioredis'
import { StoreError } from '../store/index.ts'
import type { StateStore } from '../store/index.ts'
import type { AdminTokenRecord, CredentialRecord, DeviceMatrixRecord, TenantRecord } from '../store/index.ts'

/** What changed; the cluster publishes it on the control channel. */
export type StoreChange =
  | { kind: 'tenant', id: string }
  | { kind: 'credential', tenant: string, principal: string, revoked: boolean }
  /** new credentials of one tenant (a bulk import batch) */
  | { kind: 'credentials', tenant: string, principals: string[] }
  | { kind: 'admin-token', id: string }
  | { kind: 'matrix-row', key: string }

// KEYS[1] credentials hash; ARGV[1] field, ARGV[2] new record JSON
const PUT_CREDENTIAL = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local c = cjson.decode(cur)
  if c.revokedAt == nil then return 'conflict' end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 'ok'`

// KEYS[1] credentials hash; ARGV: field, record JSON, field, record JSON, ... All or nothing: returns
// the first field that holds an active credential (nothing written), else 'ok'.
const PUT_CREDENTIALS = `
for i = 1, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and cjson.decode(cur).revokedAt == nil then return ARGV[i] end
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 'ok'`

// KEYS[1] tenants hash; ARGV[1] tenant id, ARGV[2] patch JSON (top-level fields replace). Returns the record JSON.
const UPDATE_TENANT = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return false end
local t = cjson.decode(cur)
for k, v in pairs(cjson.decode(ARGV[2])) do t[k] = v end
local out = cjson.encode(t)
redis.call('HSET', KEYS[1], ARGV[1], out)
return out`

// KEYS[1] credentials hash; ARGV[1] field, ARGV[2] revokedAt. Returns the stored record JSON.
const REVOKE_CREDENTIAL = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return false end
local c = cjson.decode(cur)
if c.revokedAt ~= nil then return cur end
c.revokedAt = ARGV[2]
local out = cjson.encode(c)
redis.call('HSET', KEYS[1], ARGV[1], out)
return out`

export class RedisStateStore extends MemoryCopy implements StateStore {
  readonly keys: { tenants: string, credentials: string, adminTokens: string, matrix: string }
  private pending = new Set<Promise<unknown>>()
  /** Called after every successful write (the cluster broadcasts it). */
  onChange: (change: StoreChange) => Promise<void> | void = () => {}

  constructor (private readonly redis: Redis, prefix: string) {
    super()
    this.keys = { tenants: `${prefix}state:tenants`, credentials: `${prefix}state:credentials`, adminTokens: `${prefix}state:admin-tokens`, matrix: `${prefix}state:device-matrix` }
  }

  /** Full reload: the in-memory copy is replaced only once everything was read. */
  async load (): Promise<void> {
    const [t, c, a, m] = await Promise.all([
      this.redis.hgetall(this.keys.tenants),
      this.redis.hgetall(this.keys.credentials),
      this.redis.hgetall(this.keys.adminTokens),
      this.redis.hgetall(this.keys.matrix)
    ])
    const tenants = new Map<string, TenantRecord>()
    const credentials = new Map<string, CredentialRecord>()
    const adminTokens = new Map<string, AdminTokenRecord>()
    const matrix = new Map<string, DeviceMatrixRecord>()
    for (const [k, v] of Object.entries(m)) matrix.set(k, parse(v, this.keys.matrix))
    for (const [k, v] of Object.entries(t)) tenants.set(k, parse(v, this.keys.tenants))
    for (const [k, v] of Object.entries(c)) credentials.set(k, parse(v, this.keys.credentials))
    for (const [k, v] of Object.entries(a)) adminTokens.set(k, parse(v, this.keys.adminTokens))
    this.tenants = tenants
    this.credentials = credentials
    this.adminTokens = adminTokens
    this.matrix = matrix
  }

  // ---- refreshes driven by the control channel (one record)
  async refreshTenant (id: string): Promise<void> {
    setOrDelete(this.tenants, id, await this.read<TenantRecord>(this.keys.tenants, id))
  }

  async refreshCredential (tenant: string, principal: string): Promise<void> {
    const key = credKey(tenant, principal)
    setOrDelete(this.credentials, key, await this.read<CredentialRecord>(this.keys.credentials, key))
  }

  async refreshAdminToken (id: string): Promise<void> {
    setOrDelete(this.adminTokens, id, await this.read<AdminTokenRecord>(this.keys.adminTokens, id))
  }

  async refreshMatrixRow (key: string): Promise<void> {
    setOrDelete(this.matrix, key, await this.read<DeviceMatrixRecord>(this.keys.matrix, key))
  }

  /** Marks a credential revoked in the copy at once (before the refresh from Redis lands). */
  markRevoked (tenant: string, principal: string, at: string): void {
    const key = credKey(tenant, principal)
    const c = this.credentials.get(key)
    if (c !== undefined && c.revokedAt === undefined) this.credentials.set(key, { ...c, revokedAt: at })
  }

  private async read<T> (hash: string, field: string): Promise<T | undefined> {
    const v = await this.redis.hget(hash, field)
    return v === null ? undefined : parse<T>(v, hash)
  }

  private async track<T> (p: Promise<T>): Promise<T> {
    this.pending.add(p)
    try { return await p } finally { this.pending.delete(p) }
  }

  private async changed (change: StoreChange): Promise<void> {
    await this.onChange(change)
  }

  // ---- tenants
  async addTenant (t: TenantRecord): Promise<TenantRecord> {
    return await this.track((async () => {
      const created = await this.redis.hsetnx(this.keys.tenants, t.id, JSON.stringify(t))
      if (created === 0) {
        await this.refreshTenant(t.id)
        throw new StoreError('conflict', `tenant ${t.id} already exists`)
      }
      this.tenants.set(t.id, t)
      await this.changed({ kind: 'tenant', id: t.id })
      return t
    })())
  }

  async updateTenant (id: string, patch: Partial<Pick<TenantRecord, 'name' | 'usp' | 'quotas' | 'disabled'>>): Promise<TenantRecord> {
    return await this.track((async () => {
      // merged in Redis (one script) so a concurrent update of another field on another node is never lost
      const r = await this.redis.eval(UPDATE_TENANT, 1, this.keys.tenants, id, JSON.stringify(patch)) as string | null
      if (r === null) {
        this.tenants.delete(id)
        throw new StoreError('not_found', `no tenant "${id}"`)
      }
      const updated = parse<TenantRecord>(r, this.keys.tenants)
      this.tenants.set(id, updated)
      await this.changed({ kind: 'tenant', id })
      return updated
    })())
  }

  // ---- device credentials
  async putCredential (c: CredentialRecord): Promise<void> {
    await this.track((async () => {
      const key = credKey(c.tenant, c.principal)
      const r = await this.redis.eval(PUT_CREDENTIAL, 1, this.keys.credentials, key, JSON.stringify(c))
      if (r === 'conflict') {
        await this.refreshCredential(c.tenant, c.principal)
        throw new StoreError('conflict', `an active credential for ${key} exists; revoke it before issuing a new one`)
      }
      this.credentials.set(key, c)
      await this.changed({ kind: 'credential', tenant: c.tenant, principal: c.principal, revoked: false })
    })())
  }

  /** Bulk import: one script per batch of one tenant's credentials, one control message per batch. */
  async putCredentials (cs: CredentialRecord[]): Promise<void> {
    if (cs.length === 0) return
    const tenant = cs[0]!.tenant
    if (cs.some(c => c.tenant !== tenant)) throw new StoreError('conflict', 'a batch holds one tenant\'s credentials')
    await this.track((async () => {
      const keys = cs.map(c => credKey(c.tenant, c.principal))
      if (new Set(keys).size !== keys.length) throw new StoreError('conflict', 'an identity appears twice in the batch')
      const args = cs.flatMap((c, i) => [keys[i]!, JSON.stringify(c)])
      const r = await this.redis.eval(PUT_CREDENTIALS, 1, this.keys.credentials, ...args) as string
      if (r !== 'ok') {
        const i = keys.indexOf(r)
        if (i >= 0) await this.refreshCredential(cs[i]!.tenant, cs[i]!.principal)
        throw new StoreError('conflict', `an active credential for ${r} exists; revoke it before issuing a new one`)
      }
      cs.forEach((c, i) => this.credentials.set(keys[i]!, c))
      await this.changed({ kind: 'credentials', tenant, principals: cs.map(c => c.principal) })
    })())
  }

  /** The named credentials of one tenant, re-read (another node imported them). */
  async refreshCredentials (tenant: string, principals: string[]): Promise<void> {
    if (principals.length === 0) return
    const keys = principals.map(p => credKey(tenant, p))
    const values = await this.redis.hmget(this.keys.credentials, ...keys)
    keys.forEach((key, i) => {
      const v = values[i]
      setOrDelete(this.credentials, key, v === null || v === undefined ? undefined : parse<CredentialRecord>(v, this.keys.credentials))
    })
  }

  async revokeCredential (tenant: string, principal: string, at: string): Promise<CredentialRecord> {
    return await this.track((async () => {
      const key = credKey(tenant, principal)
      const r = await this.redis.eval(REVOKE_CREDENTIAL, 1, this.keys.credentials, key, at) as string | null
      if (r === null) {
        this.credentials.delete(key)
        throw new StoreError('not_found', `no credential for ${key}`)
      }
      const record = parse<CredentialRecord>(r, this.keys.credentials)
      this.credentials.set(key, record)
      await this.changed({ kind: 'credential', tenant, principal, revoked: true })
      return record
    })())
  }

  // ---- admin tokens
  async putAdminToken (t: AdminTokenRecord): Promise<void> {
    await this.track((async () => {
      await this.redis.hset(this.keys.adminTokens, t.id, JSON.stringify(t))
      this.adminTokens.set(t.id, t)
      await this.changed({ kind: 'admin-token', id: t.id })
    })())
  }

  // ---- certification device matrix
  async putMatrixRow (row: DeviceMatrixRecord): Promise<void> {
    await this.track((async () => {
      await this.redis.hset(this.keys.matrix, row.key, JSON.stringify(row))
      this.matrix.set(row.key, row)
      await this.changed({ kind: 'matrix-row', key: row.key })
    })())
  }

  async flush (): Promise<void> {
    await Promise.allSettled([...this.pending])
  }
}


function parse<T> (text: string, where: string): T {
  try {
    return JSON.parse(text) as T
  } catch (err) {
    throw new StoreError('corrupt', `${where} holds a value that is not valid JSON: ${(err as Error).message}`)
  }
}

function setOrDelete<V> (map: Map<string, V>, key: string, value: V | undefined): void {
  if (value === undefined) map.delete(key)
  else map.set(key, value)
}
