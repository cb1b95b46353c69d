// Admin roles: what each kind of admin token may do. One table, used by the
// admin API to authorize every route (admin-api/access.ts) and printed in the
// README; a test walks every route × role against it.
//
// The split follows the people in DESIGN.md: NOC engineers provision and roll
// out (tenants, device credentials and certificates, policy versions);
// security teams review and cut off (revocations, CA trust); viewers only
// read. Issuing and revoking are deliberately different roles: the person who
// hands out a device secret is not the one who decides it is compromised.
import type { AdminRole } from '../store/index.ts'

export const ADMIN_ROLES = ['viewer', 'security', 'noc', 'admin'] as const satisfies readonly AdminRole[]

export const ADMIN_PERMISSIONS = {
  read: 'read tenants, credentials (never secrets), sessions, security events, endpoints, USP audit, certificates, CRLs, CAs, policy versions and diffs',
  'tenant.write': 'create tenants, change tenant settings (name, USP inspection / audit)',
  'credential.issue': 'issue device credentials (the secret is returned once)',
  'credential.revoke': 'revoke device credentials (live sessions are cut)',
  'cert.issue': 'issue device certificates (the key is returned once)',
  'cert.revoke': 'revoke device certificates',
  'ca.manage': 'import / remove vendor CAs, revoke a tenant issuing CA',
  'policy.write': 'upload policy bundles, shadow, canary, promote, rollback, set the golden decisions',
  'policy.evaluate': 'dry-run a policy revision on any input (shows what it decides for any identity)',
  'token.manage': 'create, list and revoke admin tokens',
  'certify.run': 'start, cancel and resume certification runs (a run temporarily revokes / rotates the device under test\'s credential and starts a canary on its tenant, and puts both back)'
} as const

export type AdminPermission = keyof typeof ADMIN_PERMISSIONS

const GRANTS: Record<AdminRole, readonly AdminPermission[]> = {
  viewer: ['read'],
  security: ['read', 'credential.revoke', 'cert.revoke', 'ca.manage', 'policy.evaluate'],
  noc: ['read', 'tenant.write', 'credential.issue', 'cert.issue', 'policy.write', 'policy.evaluate', 'certify.run'],
  admin: Object.keys(ADMIN_PERMISSIONS) as AdminPermission[]
}

export function isAdminRole (s: string): s is AdminRole {
  return (ADMIN_ROLES as readonly string[]).includes(s)
}

export function roleAllows (role: string, permission: AdminPermission): boolean {
  return isAdminRole(role) && GRANTS[role].includes(permission)
}

export function permissionsOf (role: AdminRole): readonly AdminPermission[] {
  return GRANTS[role]
}
