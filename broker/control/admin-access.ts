// Admin principals: admin tokens (created, listed, revoked through the API),
// their roles and tenant scopes, and the admin audit trail. Tokens are
// generated here (256 random bits), shown once, and stored only as a SHA-256
// digest (see credentials.ts for why no slow KDF). Audit records go to the
// same durable sink as every security event (the NDJSON audit file).
import { randomBytes } from 'node:crypto'
import { generateSecret, hashSecret } from '../core/index.ts'
import { ControlError, type Actor } from '../core/index.ts'
import { isTenantId } from '../core/index.ts'
import { isAdminRole } from './admin-roles.ts'
import type { AdminRole, AdminTokenRecord } from '../store/index.ts'
import type { SecurityEvent, SecurityEventInput } from '../core/index.ts'

/** The token created by `uspgate start` (USPGATE_ADMIN_TOKEN or <data>/admin-token). */
export const BOOTSTRAP_TOKEN_ID = 'bootstrap'
/** A scoped token names at most this many tenants. */
export const MAX_TOKEN_TENANTS = 256
export const TOKEN_ID = /^[A-Za-z0-9._-]{1,64}$/

/** The caller of an admin API request, once its bearer token is known. */
export interface AdminPrincipal extends Actor {
  role: AdminRole
  name: string
  /** Tenant-scoped token: only these tenants. Absent = every tenant. */
  tenants?: readonly string[]
}

export interface AdminTokenView {
  id: string
  name: string
  role: AdminRole
  tenants?: string[]
  createdAt: string
  createdBy?: string
  revoked: boolean
  revokedAt?: string
  bootstrap: boolean
}

export interface AdminAuditInput {
  code: 'admin.action' | 'admin.forbidden'
  actor?: AdminPrincipal | undefined
  action: string
  target: string
  tenant?: string | undefined
  status: number
  requestId: string
  remoteAddress: string
  reason?: string | undefined
}

/** What this needs from the state store (embedded or Redis) and the event sink. */
interface TokenStore {
  listAdminTokens(): AdminTokenRecord[]
  findAdminTokenByHash(hash: string): AdminTokenRecord | undefined
  putAdminToken(t: AdminTokenRecord): Promise<void>
}
interface EventSink {
  emit(input: SecurityEventInput): SecurityEvent | undefined
  record(input: SecurityEventInput): SecurityEvent
}

export function tokenView (t: AdminTokenRecord): AdminTokenView {
  const v: AdminTokenView = { id: t.id, name: t.name, role: t.role, createdAt: t.createdAt, revoked: t.revokedAt !== undefined, bootstrap: t.id === BOOTSTRAP_TOKEN_ID }
  if (t.tenants !== undefined) v.tenants = [...t.tenants]
  if (t.createdBy !== undefined) v.createdBy = t.createdBy
  if (t.revokedAt !== undefined) v.revokedAt = t.revokedAt
  return v
}

export class AdminAccess {
  constructor (private readonly store: TokenStore, private readonly events: EventSink, private readonly assertWritable: () => void = () => {}) {}

  /** The principal of a bearer token, or undefined for an unknown or revoked one. */
  authenticate (token: string, address: string): AdminPrincipal | undefined {
    const t = this.store.findAdminTokenByHash(hashSecret(token))
    if (t === undefined || t.revokedAt !== undefined || !isAdminRole(t.role)) return undefined
    const p: AdminPrincipal = { id: t.id, name: t.name, role: t.role, address }
    if (t.tenants !== undefined) p.tenants = Object.freeze([...t.tenants])
    return p
  }

  listTokens (): AdminTokenView[] {
    return this.store.listAdminTokens().map(tokenView).sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id))
  }

  /** Creates a token; the caller sees it once, the store keeps only its hash. */
  async createToken (input: { name: string, role: string, tenants?: string[] | undefined }, actor: Actor): Promise<AdminTokenView & { token: string }> {
    this.assertWritable()
    if (!isAdminRole(input.role)) throw new ControlError(400, 'invalid role', 'role must be one of viewer, security, noc, admin')
    let tenants: string[] | undefined
    if (input.tenants !== undefined) {
      tenants = [...new Set(input.tenants)].sort()
      const bad = tenants.find(t => !isTenantId(t))
      if (bad !== undefined) throw new ControlError(400, 'invalid tenant id', `"${bad}" is not a tenant id`)
      if (tenants.length === 0 || tenants.length > MAX_TOKEN_TENANTS) throw new ControlError(400, 'invalid tenant scope', `a scoped token names 1-${MAX_TOKEN_TENANTS} tenants; omit "tenants" for every tenant`)
    }
    const token = generateSecret('usa')
    const record: AdminTokenRecord = {
      id: `tok-${randomBytes(8).toString('hex')}`,
      name: input.name,
      role: input.role,
      tokenHash: hashSecret(token),
      createdAt: new Date().toISOString(),
      createdBy: actor.id,
      ...(tenants !== undefined ? { tenants } : {})
    }
    await this.store.putAdminToken(record)
    this.events.emit({
      code: 'admin.token_created',
      actor: actor.id,
      action: 'token.create',
      target: record.id,
      reason: `token ${record.id} "${record.name}" role ${record.role}${tenants !== undefined ? `, tenants ${tenants.join(',')}` : ', every tenant'}`
    })
    return { ...tokenView(record), token }
  }

  /**
   * Revokes a token: refused from the next request on. Idempotent. The bootstrap token is not revocable
   * here: it is re-created from USPGATE_ADMIN_TOKEN / <data>/admin-token at every start, so an API revocation
   * would silently undo itself; rotate it there instead.
   */
  async revokeToken (id: string, actor: Actor): Promise<AdminTokenView> {
    const t = this.store.listAdminTokens().find(x => x.id === id)
    if (t === undefined) throw new ControlError(404, 'token not found', `no admin token "${id}"`)
    if (t.id === BOOTSTRAP_TOKEN_ID) {
      throw new ControlError(409, 'bootstrap token', 'the bootstrap token cannot be revoked through the API: rotate it by changing USPGATE_ADMIN_TOKEN (or <data dir>/admin-token) and restarting')
    }
    if (t.revokedAt !== undefined) return tokenView(t)
    this.assertWritable()
    const revoked: AdminTokenRecord = { ...t, revokedAt: new Date().toISOString() }
    await this.store.putAdminToken(revoked)
    this.events.emit({ code: 'admin.token_revoked', actor: actor.id, action: 'token.revoke', target: id, reason: `token ${id} "${t.name}" role ${t.role}` })
    return tokenView(revoked)
  }

  /** admin.action / admin.forbidden: never flood-suppressed (the admin rate limits bound them). */
  audit (a: AdminAuditInput): void {
    const result = a.code === 'admin.forbidden' ? 'denied' : a.status < 400 ? 'ok' : 'error'
    this.events.record({
      code: a.code,
      actor: a.actor?.id,
      role: a.actor?.role,
      action: a.action,
      target: a.target,
      tenant: a.tenant,
      result,
      status: a.status,
      requestId: a.requestId,
      remoteAddress: a.remoteAddress,
      reason: a.reason
    })
  }

  authFailed (a: { remoteAddress: string, requestId: string, action: string, target: string, reason: string }): void {
    this.events.emit({ code: 'admin.auth_failed', ...a, result: 'denied', status: 401 })
  }

  /** A socket that opened the admin listener and did not finish its TLS handshake / first request in time (closed). */
  openingTimedOut (a: { remoteAddress: string, phase: string, seconds: number }): void {
    this.events.emit({ code: 'limits.handshake_timeout', remoteAddress: a.remoteAddress, action: 'admin', reason: `${a.phase === 'tls' ? 'TLS handshake' : 'first HTTP request'} not completed within ${a.seconds}s; socket closed` })
  }

  rateLimited (a: { remoteAddress: string, requestId: string, action: string, target: string, reason: string, actor?: AdminPrincipal | undefined }): void {
    const { actor, ...rest } = a
    this.events.emit({ code: 'admin.rate_limited', ...rest, actor: actor?.id, role: actor?.role, result: 'denied', status: 429 })
  }
}
