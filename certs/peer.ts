// Who is on the other end of a mutual-TLS connection: tenant, Endpoint ID and
// role, derived from a client certificate.
//
// The tenant is decided by *which trusted CA verifiably signed the
// certificate* (signature checked against that CA's public key), never by
// strings in the certificate: a certificate from tenant B's CA that claims
// tenant A in its subject or SAN is refused, not mapped to A. The Endpoint ID
// comes from the subjectAltName URI urn:bbf:usp:id:<id> [TR-369 R-SEC.0a], so
// the broker can tie USP from_id to it [TR-369 R-SEC.4b, R-SEC.4c].
import { X509Certificate as NodeX509Certificate } from 'node:crypto'
import type { PeerCertificate } from 'node:tls'
import * as x509 from './x509-lib.ts'
import { normalizeSerial } from './revocation.ts'
import {
  ENDPOINT_ID_URN_PREFIX, ROLE_OU_PREFIX, TENANT_OU_PREFIX, CERTIFICATE_ROLES, isEndpointId, type CertificateRole
} from './identity.ts'

/** What identifyPeer accepts: what `socket.getPeerCertificate(true)` returns, or the certificate as DER or PEM. */
export type PeerCertificateInput = PeerCertificate | Uint8Array | string

export type PeerRejectCode = 'auth.cert_untrusted' | 'auth.cert_revoked' | 'auth.cert_expired'

/** Who issued the certificate: one of the gateway's tenant CAs, or a vendor CA imported for one tenant. */
export type PeerTrust = 'tenant-ca' | 'imported-ca'

export type PeerIdentity =
  | {
    ok: true
    tenant: string
    principal: string
    role: CertificateRole
    serial: string
    /** Subject DN of the CA that signed the certificate. */
    issuer: string
    trust: PeerTrust
    notAfter: Date
  }
  | {
    ok: false
    code: PeerRejectCode
    reason: string
    /** Whatever was established before the refusal, for the security event. */
    tenant?: string
    principal?: string
    serial?: string
  }

/** A CA certificate that can vouch for client certificates of exactly one tenant. */
export interface TrustAnchor {
  tenant: string
  trust: PeerTrust
  cert: NodeX509Certificate
  revoked: boolean
  /**
   * For the gateway's own CAs: the serials it issued. A certificate with any
   * other serial was not made by issueCertificate (e.g. forged with a stolen
   * CA key) and is refused. Absent for imported vendor CAs.
   */
  issuedSerials?: ReadonlySet<string>
}

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0'

function parsePeerCertificate (input: PeerCertificateInput): { node: NodeX509Certificate, parsed: x509.X509Certificate } | string {
  let data: Buffer | string
  if (typeof input === 'string') data = input
  else if (input instanceof Uint8Array) data = Buffer.from(input)
  else if (input !== null && typeof input === 'object' && Buffer.isBuffer(input.raw)) data = input.raw
  else return 'no client certificate presented'
  try {
    const node = new NodeX509Certificate(data)
    return { node, parsed: new x509.X509Certificate(node.raw) }
  } catch {
    return 'client certificate cannot be parsed as X.509'
  }
}

function isValidAt (cert: NodeX509Certificate, now: Date): boolean {
  return new Date(cert.validFrom).getTime() <= now.getTime() && now.getTime() <= new Date(cert.validTo).getTime()
}

/** Endpoint IDs named by urn:bbf:usp:id: URIs in subjectAltName (duplicates collapsed). */
export function endpointIdsFromSan (cert: x509.X509Certificate): string[] {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)
  const ids = new Set<string>()
  for (const name of san?.names.items ?? []) {
    if (name.type === 'url' && name.value.toLowerCase().startsWith(ENDPOINT_ID_URN_PREFIX)) {
      ids.add(name.value.slice(ENDPOINT_ID_URN_PREFIX.length))
    }
  }
  return [...ids]
}

function fields (cert: x509.X509Certificate, attribute: string): string[] {
  return cert.subjectName.getField(attribute)
}

export function identifyPeerCertificate (
  input: PeerCertificateInput,
  anchors: readonly TrustAnchor[],
  isSerialRevoked: (tenant: string, serial: string) => boolean,
  now: Date
): PeerIdentity {
  const untrusted = (reason: string, extra: { tenant?: string, principal?: string, serial?: string } = {}): PeerIdentity =>
    ({ ok: false, code: 'auth.cert_untrusted', reason, ...extra })

  const leaf = parsePeerCertificate(input)
  if (typeof leaf === 'string') return untrusted(leaf)
  const serial = normalizeSerial(leaf.node.serialNumber)

  // Chain: the leaf must be signed by one trust anchor. A CA certificate is
  // never a client identity (that also stops a self-signed anchor from
  // "issuing" itself).
  if (leaf.node.ca) return untrusted('a CA certificate cannot be used as a client certificate', { serial })
  const anchor = anchors.find((a) => leaf.node.checkIssued(a.cert) && leaf.node.verify(a.cert.publicKey))
  if (anchor === undefined) {
    // The issuer name is attacker-chosen text: bounded before it reaches logs.
    return untrusted(`certificate (issuer "${leaf.parsed.issuer.slice(0, 200)}") is not signed by a CA trusted for any tenant`, { serial })
  }
  const tenant = anchor.tenant
  const issuer = anchor.cert.subject.replace(/\n/g, ', ')
  if (anchor.issuedSerials !== undefined && !anchor.issuedSerials.has(serial)) {
    return untrusted(`certificate ${serial} was not issued by the gateway (unknown serial for tenant ${tenant}'s CA)`, { tenant, serial })
  }

  const eku = leaf.node.keyUsage as string[] | undefined
  if (eku !== undefined && !eku.includes(CLIENT_AUTH) && !eku.includes(ANY_EXTENDED_KEY_USAGE)) {
    return untrusted('certificate is not valid for TLS client authentication (extendedKeyUsage)', { tenant, serial })
  }

  // Identity [TR-369 R-SEC.0a]: exactly one Endpoint ID in subjectAltName.
  // Only for vendor certificates without one, fall back to the CN.
  const sanIds = endpointIdsFromSan(leaf.parsed)
  if (sanIds.length > 1) return untrusted(`certificate names ${sanIds.length} different Endpoint IDs`, { tenant, serial })
  const commonNames = fields(leaf.parsed, 'CN')
  let principal = sanIds[0]
  if (principal === undefined && anchor.trust === 'imported-ca' && commonNames.length === 1) principal = commonNames[0]
  if (principal === undefined) {
    return untrusted(`certificate has no subjectAltName URI ${ENDPOINT_ID_URN_PREFIX}<endpoint-id>`, { tenant, serial })
  }
  if (!isEndpointId(principal)) {
    return untrusted(`certificate Endpoint ID ${JSON.stringify(principal)} is not a valid, non-wildcard USP Endpoint ID`, { tenant, serial })
  }

  let role: CertificateRole = 'agent' // vendor CAs identify devices; they are not trusted to grant roles
  if (anchor.trust === 'tenant-ca') {
    // The gateway wrote these attributes; any disagreement with the signing CA
    // means the certificate was not produced by issueCertificate (e.g. a
    // stolen tenant CA key used to impersonate another tenant).
    const tenantClaims = fields(leaf.parsed, 'OU').filter((ou) => ou.startsWith(TENANT_OU_PREFIX))
    if (tenantClaims.some((ou) => ou !== TENANT_OU_PREFIX + tenant)) {
      return untrusted(`certificate claims ${tenantClaims.join(', ')} but was issued by the CA of tenant ${tenant}`, { tenant, principal, serial })
    }
    if (commonNames.length > 0 && (commonNames.length !== 1 || commonNames[0] !== principal)) {
      return untrusted('certificate CN differs from its subjectAltName Endpoint ID', { tenant, principal, serial })
    }
    const roles = fields(leaf.parsed, 'OU').filter((ou) => ou.startsWith(ROLE_OU_PREFIX)).map((ou) => ou.slice(ROLE_OU_PREFIX.length))
    if (roles.length !== 1 || !CERTIFICATE_ROLES.includes(roles[0] as CertificateRole)) {
      return untrusted('certificate does not record exactly one role (OU=role:agent|controller)', { tenant, principal, serial })
    }
    role = roles[0] as CertificateRole
  }

  if (anchor.revoked) {
    return { ok: false, code: 'auth.cert_revoked', reason: `the issuing CA of tenant ${tenant} is revoked`, tenant, principal, serial }
  }
  if (isSerialRevoked(tenant, serial)) {
    return { ok: false, code: 'auth.cert_revoked', reason: `certificate ${serial} is revoked`, tenant, principal, serial }
  }
  if (!isValidAt(leaf.node, now)) {
    return { ok: false, code: 'auth.cert_expired', reason: `certificate is outside its validity (${leaf.node.validFrom} .. ${leaf.node.validTo})`, tenant, principal, serial }
  }
  if (!isValidAt(anchor.cert, now)) {
    return { ok: false, code: 'auth.cert_expired', reason: `the issuing CA is outside its validity (${anchor.cert.validFrom} .. ${anchor.cert.validTo})`, tenant, principal, serial }
  }
  return { ok: true, tenant, principal, role, serial, issuer, trust: anchor.trust, notAfter: leaf.parsed.notAfter }
}
