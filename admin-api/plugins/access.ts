// Who may call what: request ids, rate limits, bearer authentication, role
// and tenant-scope authorization, and the admin audit trail. Every /v1 route
// declares `config.access` ({permission, scope, action}); a route that does
// not is admin-only for unscoped tokens (fail closed).
//
// Order of the checks on /v1, each one a problem+json:
//   429 address over its rate (every route) → 429 address locked after failed
//   authentications → 401 no / unknown / revoked token → 429 token over its
//   rate → 403 role lacks the permission, or tenant outside the token's scope.
// Authorization runs before the body is read (onRequest), so a forbidden
// caller cannot make the gateway parse a 10 MiB policy bundle; only the scope
// of POST /v1/tenants (the tenant is in the body) is checked after parsing.
import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ControlPlane } from '../../broker/control/index.ts'
import type { AdminPrincipal } from '../../broker/control/index.ts'
import { roleAllows, type AdminPermission } from '../../broker/control/index.ts'
import type { AdminSettings } from '../../broker/control/index.ts'
import { sendProblem } from './problem.ts'
import { AuthFailureLock, TokenBuckets } from './rate-limit.ts'

/**
 * How a tenant-scoped token is checked on a route:
 * - any: the route shows no tenant data (scoped tokens pass);
 * - tenant-param: the :tenant path parameter must be one of the token's tenants;
 * - tenant-body: the body's `id` (POST /v1/tenants) must be one of them;
 * - tenant-query: `?tenant=`, when given, must be one of them; the handler filters otherwise;
 * - filtered: the handler returns only the token's tenants;
 * - unscoped: tenant-scoped tokens are refused (policies, tokens, cross-tenant trust).
 */
export type ScopeRule = 'any' | 'tenant-param' | 'tenant-body' | 'tenant-query' | 'filtered' | 'unscoped'

export interface RouteAccess {
  permission: AdminPermission
  scope: ScopeRule | ((req: FastifyRequest) => ScopeRule)
  /** Audit action name, e.g. credential.issue (queryable with ?action=). */
  action: string
}

declare module 'fastify' {
  interface FastifyRequest { actor?: AdminPrincipal }
  interface FastifyContextConfig { access?: RouteAccess }
}

const FAIL_CLOSED: Omit<RouteAccess, 'action'> = { permission: 'token.manage', scope: 'unscoped' }
const BEARER = /^Bearer ([A-Za-z0-9_\-.~+/=]{16,512})$/
const REQUEST_ID = /^[A-Za-z0-9._:+/=-]{1,128}$/
const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** A sane incoming x-request-id is kept (so a caller can correlate); anything else is replaced. */
export function requestIdOf (raw: { headers: Record<string, string | string[] | undefined> }): string {
  const h = raw.headers['x-request-id']
  return typeof h === 'string' && REQUEST_ID.test(h) ? h : randomUUID()
}

function accessOf (req: FastifyRequest): RouteAccess {
  return req.routeOptions.config.access ?? { ...FAIL_CLOSED, action: `${req.method} ${req.routeOptions.url ?? ''}` }
}

function pathOf (req: FastifyRequest): string {
  const q = req.url.indexOf('?')
  return (q === -1 ? req.url : req.url.slice(0, q)).slice(0, 512)
}

/** The tenant a request is about, for the audit record (and the scope check). */
function tenantOf (req: FastifyRequest, rule: ScopeRule): string | undefined {
  const pick = (v: unknown): string | undefined => typeof v === 'string' ? v : undefined
  if (rule === 'tenant-param') return pick((req.params as Record<string, unknown> | undefined)?.tenant)
  if (rule === 'tenant-query') return pick((req.query as Record<string, unknown> | undefined)?.tenant)
  if (rule === 'tenant-body') return pick((req.body as Record<string, unknown> | undefined | null)?.id)
  return undefined
}

/** The tenants a scoped caller may see (undefined = every tenant). For handlers of 'filtered' / 'tenant-query' routes. */
export function visibleTenants (req: FastifyRequest): readonly string[] | undefined {
  return req.actor?.tenants
}

/** A 429 with its retry-after, recorded as an admin.rate_limited security event (every refusal is one). */
export function refuseTooMany (admin: ControlPlane['admin'], req: FastifyRequest, reply: FastifyReply, wait: number, reason: string): FastifyReply {
  admin.rateLimited({ remoteAddress: req.ip, requestId: req.id, action: accessOf(req).action, target: pathOf(req), reason, actor: req.actor })
  return sendProblem(reply.header('retry-after', String(wait)), 429, 'too many requests', `${reason}; retry after ${wait} s`)
}

export function installAccess (app: FastifyInstance, control: ControlPlane, settings: AdminSettings): { v1Hooks: (v1: FastifyInstance) => void } {
  const admin = control.admin
  const byAddress = new TokenBuckets(settings.addressRate, settings.addressRate * 4)
  const byToken = new TokenBuckets(settings.tokenRate, settings.tokenRate * 4)
  const authLock = new AuthFailureLock(settings.authFailuresPerMinute, settings.authLockSeconds)

  const tooMany = (req: FastifyRequest, reply: FastifyReply, wait: number, reason: string): FastifyReply => refuseTooMany(admin, req, reply, wait, reason)

  // Every response says which request it answers; nothing is CORS-enabled (no Access-Control-* headers).
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id)
    reply.header('x-content-type-options', 'nosniff')
    const wait = byAddress.take(req.ip)
    if (wait > 0) return tooMany(req, reply, wait, `more than ${settings.addressRate} requests/s from ${req.ip}`)
  })

  const v1Hooks = (v1: FastifyInstance): void => {
    v1.addHook('onRequest', async (req, reply) => {
      reply.header('cache-control', 'no-store')
      const locked = authLock.lockedFor(req.ip)
      // Before the token is even looked at: a locked address learns nothing about any token.
      if (locked > 0) return tooMany(req, reply, locked, `too many failed authentications from ${req.ip}`)
      const header = req.headers.authorization
      const m = typeof header === 'string' ? BEARER.exec(header) : null
      const principal = m ? admin.authenticate(m[1]!, req.ip) : undefined
      if (principal === undefined) {
        const reason = header === undefined ? 'missing bearer token' : m === null ? 'malformed authorization header' : 'unknown or revoked token'
        admin.authFailed({ remoteAddress: req.ip, requestId: req.id, action: accessOf(req).action, target: pathOf(req), reason })
        if (authLock.fail(req.ip)) {
          admin.rateLimited({ remoteAddress: req.ip, requestId: req.id, action: accessOf(req).action, target: pathOf(req), reason: `${settings.authFailuresPerMinute} failed authentications within a minute: address locked for ${settings.authLockSeconds} s` })
        }
        return sendProblem(reply.header('www-authenticate', 'Bearer realm="uspgate"'), 401, 'unauthorized', 'a valid bearer token is required')
      }
      req.actor = principal
      const wait = byToken.take(principal.id)
      if (wait > 0) return tooMany(req, reply, wait, `more than ${settings.tokenRate} requests/s with token ${principal.id}`)
      const access = accessOf(req)
      if (!roleAllows(principal.role, access.permission)) {
        return sendProblem(reply, 403, 'forbidden', `role ${principal.role} may not ${access.action} (needs permission ${access.permission})`)
      }
      const rule = typeof access.scope === 'function' ? access.scope(req) : access.scope
      if (principal.tenants !== undefined && rule !== 'tenant-body') {
        const denied = scopeDenial(rule, tenantOf(req, rule), principal.tenants)
        if (denied !== undefined) return sendProblem(reply, 403, 'forbidden', denied)
      }
    })

    // The tenant of POST /v1/tenants is in the body: checked once it is parsed and validated.
    v1.addHook('preHandler', async (req, reply) => {
      const principal = req.actor
      if (principal?.tenants === undefined) return
      const access = accessOf(req)
      const rule = typeof access.scope === 'function' ? access.scope(req) : access.scope
      if (rule !== 'tenant-body') return
      const denied = scopeDenial(rule, tenantOf(req, rule), principal.tenants)
      if (denied !== undefined) return sendProblem(reply, 403, 'forbidden', denied)
    })

    // The audit record is written before the response leaves: a caller that sees the answer can query it.
    v1.addHook('onSend', async (req, reply, payload) => {
      const status = reply.statusCode
      if (req.actor === undefined || status === 401 || status === 429) return payload
      const forbidden = status === 403
      if (!forbidden && !STATE_CHANGING.has(req.method)) return payload
      const access = accessOf(req)
      const rule = typeof access.scope === 'function' ? access.scope(req) : access.scope
      admin.audit({
        code: forbidden ? 'admin.forbidden' : 'admin.action',
        actor: req.actor,
        action: access.action,
        target: pathOf(req),
        tenant: tenantOf(req, rule),
        status,
        requestId: req.id,
        remoteAddress: req.ip,
        reason: forbidden || status >= 400 ? problemDetail(payload) : undefined
      })
      return payload
    })
  }
  return { v1Hooks }
}

function scopeDenial (rule: ScopeRule, tenant: string | undefined, scope: readonly string[]): string | undefined {
  switch (rule) {
    case 'any':
    case 'filtered':
      return undefined
    case 'unscoped':
      return `this call spans every tenant: it needs a token that is not scoped to tenants (this one is scoped to ${scope.join(', ')})`
    case 'tenant-query':
    case 'tenant-param':
    case 'tenant-body':
      if (rule === 'tenant-query' && tenant === undefined) return undefined
      if (tenant !== undefined && scope.includes(tenant)) return undefined
      return `the token is scoped to ${scope.join(', ')}; tenant "${String(tenant ?? '')}" is outside it`
  }
}

function problemDetail (payload: unknown): string | undefined {
  if (typeof payload !== 'string' || !payload.startsWith('{')) return undefined
  try {
    const p = JSON.parse(payload) as { title?: unknown, detail?: unknown }
    const text = [p.title, p.detail].filter(x => typeof x === 'string').join(': ')
    return text.length > 0 ? text.slice(0, 300) : undefined
  } catch { return undefined }
}
