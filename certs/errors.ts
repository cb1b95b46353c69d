// Typed errors of the certificate authority. `code` is a stable contract: the
// admin API maps it to an HTTP problem type and the CLI prints it; add codes,
// never rename them. Messages never contain key material.

export type CertErrorCode =
  | 'cert.not_initialized' // a method was called before init()
  | 'cert.weak_master_key' // the master key is missing or too short to protect keys at rest
  | 'cert.bad_master_key' // a stored private key does not decrypt with the master key given
  | 'cert.corrupt_state' // pki/state.json or a PEM file on disk is unreadable
  | 'cert.invalid_tenant' // tenant id does not match ^[a-z0-9][a-z0-9-]{0,31}$
  | 'cert.invalid_principal' // not a well-formed USP Endpoint ID
  | 'cert.invalid_role' // role is neither 'agent' nor 'controller'
  | 'cert.invalid_validity' // validDays is not a whole number of days in range
  | 'cert.invalid_san' // a server SAN is neither a DNS name nor an IP address
  | 'cert.invalid_serial' // not a hexadecimal certificate serial number
  | 'cert.invalid_reason' // unknown CRL revocation reason
  | 'cert.unknown_tenant' // the tenant has no issuing CA (ensureTenantCA first)
  | 'cert.tenant_ca_revoked' // the tenant's issuing CA is revoked; create a new one first
  | 'cert.not_found' // no certificate with that serial for that tenant
  | 'cert.invalid_pem' // the text is not a PEM/DER X.509 certificate
  | 'cert.invalid_csr' // not a PKCS#10 request, a bad signature, a weak key, or names another endpoint
  | 'cert.not_a_ca' // imported certificate lacks basicConstraints CA:TRUE
  | 'cert.ca_expired' // imported CA is expired or not yet valid
  | 'cert.ca_conflict' // imported CA is already trusted elsewhere (own CA or other tenant)

export class CertError extends Error {
  readonly code: CertErrorCode

  constructor (code: CertErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'CertError'
    this.code = code
  }
}
