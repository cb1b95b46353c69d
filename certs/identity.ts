// Validation of the names that end up inside certificates, and the subject
// layout that records tenant and role.
import { isIP } from 'node:net'
import { CertError } from './errors.ts'

export type CertificateRole = 'agent' | 'controller'
export const CERTIFICATE_ROLES: readonly CertificateRole[] = ['agent', 'controller']

/**
 * THE tenant-id rule of uspgate (DESIGN.md, "Identity and namespaces"), kept here because certs/ is
 * the leaf both broker/ and admin-api/ may import; broker/core/identity.ts re-exports it.
 */
export const TENANT_ID = /^[a-z0-9][a-z0-9-]{0,31}$/

/**
 * TR-369 Endpoint ID authority schemes (R-ARC.2a-6). They are reserved as tenant
 * ids: a bare Endpoint ID such as "os::00256D-0001" used as a username would
 * otherwise parse as tenant "os", and must be reported as a bare username.
 */
export const USP_AUTHORITY_SCHEMES: ReadonlySet<string> = new Set(['oui', 'cid', 'pen', 'self', 'user', 'os', 'ops', 'uuid', 'imei', 'proto', 'doc', 'fqdn'])

/**
 * USP Endpoint ID: authority-scheme ":" [authority-id] ":" instance-id
 * (TR-369 §2.2), made of the characters R-MQTT.47 lists ("-", ".", "_", "%",
 * ":" plus alphanumerics). No "*": wildcarded shared certificates
 * (R-SEC.11) are not issued nor accepted — a Trusted Broker needs one unique
 * certificate per Endpoint [TR-369 R-SEC.4b].
 */
export const ENDPOINT_ID = /^[a-z][a-z0-9-]*:[A-Za-z0-9._%-]*:[A-Za-z0-9._%:-]+$/
export const MAX_ENDPOINT_ID_LENGTH = 255

/** URN prefix of an Endpoint ID in a certificate's subjectAltName URI [TR-369 R-SEC.0a]. */
export const ENDPOINT_ID_URN_PREFIX = 'urn:bbf:usp:id:'

export function isTenantId (tenant: unknown): tenant is string {
  return typeof tenant === 'string' && TENANT_ID.test(tenant) && !USP_AUTHORITY_SCHEMES.has(tenant)
}

export function isEndpointId (id: unknown): id is string {
  return typeof id === 'string' && id.length <= MAX_ENDPOINT_ID_LENGTH && ENDPOINT_ID.test(id)
}

export function checkTenant (tenant: unknown): string {
  if (!isTenantId(tenant)) {
    throw new CertError('cert.invalid_tenant', `invalid tenant id ${JSON.stringify(tenant)}: expected ${TENANT_ID.source}, not a USP Endpoint ID scheme`)
  }
  return tenant
}

export function checkEndpointId (principal: unknown): string {
  if (!isEndpointId(principal)) {
    throw new CertError('cert.invalid_principal',
      `invalid USP Endpoint ID ${JSON.stringify(principal)}: expected authority-scheme:[authority-id]:instance-id, e.g. os::00256D-0123456789`)
  }
  return principal
}

export function checkRole (role: unknown): CertificateRole {
  if (!CERTIFICATE_ROLES.includes(role as CertificateRole)) {
    throw new CertError('cert.invalid_role', `invalid role ${JSON.stringify(role)}: expected 'agent' or 'controller'`)
  }
  return role as CertificateRole
}

const DNS_NAME = /^(\*\.)?(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$/

/** Server subjectAltNames from configuration: each a DNS name or an IP address. */
export function classifyServerSans (sans: readonly string[]): Array<{ type: 'dns' | 'ip', value: string }> {
  if (!Array.isArray(sans) || sans.length === 0) {
    throw new CertError('cert.invalid_san', 'the server certificate needs at least one subjectAltName (DNS name or IP address)')
  }
  return sans.map((value) => {
    if (typeof value === 'string' && isIP(value) !== 0) return { type: 'ip' as const, value }
    if (typeof value === 'string' && value.length <= 253 && DNS_NAME.test(value)) return { type: 'dns' as const, value }
    throw new CertError('cert.invalid_san', `invalid server subjectAltName ${JSON.stringify(value)}: expected a DNS name or an IP address`)
  })
}

// Subject attributes. The tenant is *never* taken from these strings when
// identifying a peer (it comes from the CA that verifiably signed the
// certificate); they are there for humans and for a consistency check.
export const TENANT_OU_PREFIX = 'tenant:'
export const ROLE_OU_PREFIX = 'role:'

export type JsonName = Array<Record<string, string[]>>

export function rootSubject (): JsonName {
  return [{ O: ['uspgate'] }, { CN: ['uspgate root CA'] }]
}

export function tenantCaSubject (tenant: string): JsonName {
  return [{ O: ['uspgate'] }, { OU: [TENANT_OU_PREFIX + tenant] }, { CN: [`uspgate ${tenant} issuing CA`] }]
}

export function serverSubject (commonName: string): JsonName {
  return [{ O: ['uspgate'] }, { CN: [commonName] }]
}

export function deviceSubject (tenant: string, principal: string, role: CertificateRole): JsonName {
  return [{ O: ['uspgate'] }, { OU: [TENANT_OU_PREFIX + tenant] }, { OU: [ROLE_OU_PREFIX + role] }, { CN: [principal] }]
}
