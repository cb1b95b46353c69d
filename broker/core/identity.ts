// Identity rules: username = "<tenant>:<principal>" (RabbitMQ's vhost:user
// convention). The principal is everything after the FIRST ':' so a USP
// Endpoint ID such as "os::00256D-0123456789" is a valid principal.
import { USP_AUTHORITY_SCHEMES } from '../../certs/index.ts'

/** The one tenant-id rule (defined in certs/identity.ts, the leaf every layer may import). */
export { TENANT_ID, USP_AUTHORITY_SCHEMES, isTenantId } from '../../certs/index.ts'

export const ROLES = ['agent', 'controller'] as const
export type Role = typeof ROLES[number]

export interface Identity {
  tenant: string
  principal: string
  role: Role
}

export type UsernameParse =
  | { ok: true, tenant: string, principal: string }
  | { ok: false, code: 'auth.bare_username', reason: string }


/**
 * Principals become one MQTT topic level (inboxes are <tenant>/usp/agent/<principal>),
 * so they must not contain topic separators or wildcards. TR-369 R-ARC.5/.6 Endpoint IDs
 * use only ALPHA / DIGIT / "-" / "." / "_" / "%" and ":" as separators.
 */
export const PRINCIPAL = /^[A-Za-z0-9._%:-]{1,128}$/

export function isPrincipal (s: string): boolean {
  return PRINCIPAL.test(s)
}

export function parseUsername (username: string | undefined): UsernameParse {
  if (username === undefined || username.length === 0) {
    return { ok: false, code: 'auth.bare_username', reason: 'no username' }
  }
  const colon = username.indexOf(':')
  if (colon === -1) return { ok: false, code: 'auth.bare_username', reason: 'username has no tenant prefix' }
  if (colon === 0) return { ok: false, code: 'auth.bare_username', reason: 'empty tenant' }
  const tenant = username.slice(0, colon)
  const principal = username.slice(colon + 1)
  if (USP_AUTHORITY_SCHEMES.has(tenant)) return { ok: false, code: 'auth.bare_username', reason: 'username is a bare USP Endpoint ID (no tenant prefix)' }
  if (principal.length === 0) return { ok: false, code: 'auth.bare_username', reason: 'empty principal' }
  return { ok: true, tenant, principal }
}

export function usernameOf (tenant: string, principal: string): string {
  return `${tenant}:${principal}`
}
