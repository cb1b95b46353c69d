// Public option/result types and the policy constants of the certificate
// authority (validity periods, CRL cadence, TLS floor).
import type { CertificateRole } from './identity.ts'
import type { RevocationReason } from './revocation.ts'

export const ROOT_CA_VALIDITY_DAYS = 3650
export const TENANT_CA_VALIDITY_DAYS = 1825
export const SERVER_CERT_VALIDITY_DAYS = 397
/** The server certificate is renewed at startup when fewer days than this remain. */
export const SERVER_CERT_RENEW_DAYS = 30
export const DEFAULT_DEVICE_VALIDITY_DAYS = 365
export const MAX_DEVICE_VALIDITY_DAYS = 3650
/** CRL lifetime (nextUpdate - thisUpdate); a CRL is re-signed when older than CRL_REFRESH_DAYS. */
export const CRL_VALIDITY_DAYS = 7
export const CRL_REFRESH_DAYS = 1
/** Device certificates start slightly in the past: router clocks drift (cf. TR-369 R-SEC.19). */
export const NOT_BEFORE_SKEW_MS = 5 * 60_000

/** TLS 1.2 is the floor for USP over MQTT [TR-369 R-MQTT.48]. */
export const TLS_MIN_VERSION = 'TLSv1.2'

export interface CertificateAuthorityOptions {
  /** Directory of the PKI, normally <dataDir>/pki. Created 0700 if absent. */
  dir: string
  /** Secret that encrypts CA and server keys at rest (>= 16 characters); see loadOrCreateMasterKey. */
  masterKey: string | Buffer
  /** Time source; tests pass a fixed or shifted clock. */
  clock?: () => Date
}

export interface InitOptions {
  /** Server certificate subjectAltNames: DNS names and IP addresses clients connect to. */
  serverSans: string[]
}

export interface IssueCertificateRequest {
  tenant: string
  /** USP Endpoint ID, e.g. os::00256D-0123456789. */
  principal: string
  role: CertificateRole
  /** Whole days, 1..3650; capped at the issuing CA's expiry. Default 365. */
  validDays?: number
  /** CRL distribution point (RFC 5280 §4.2.1.13) written into the certificate: where relying parties fetch the tenant's CRL. */
  crlUrl?: string
}

/**
 * A PKCS#10 request (PEM) from the device: its public key is certified and no key is generated
 * (the device keeps its own). Subject and SAN are still the gateway's (same identity rules).
 */
export interface SignRequest extends IssueCertificateRequest {
  csrPem: string
}

export type SignedCertificate = Omit<IssuedCertificate, 'keyPem'>

export interface IssuedCertificate {
  tenant: string
  principal: string
  role: CertificateRole
  serial: string
  notAfter: Date
  certPem: string
  /** The device's private key (PKCS#8). Returned once, never stored. */
  keyPem: string
  /** Issuing tenant CA, then root: what the device sends/needs to build its chain. */
  chainPem: string
}

export interface CertificateInfo {
  serial: string
  principal: string
  role: CertificateRole
  notBefore: Date
  notAfter: Date
  revoked: boolean
  revokedAt?: Date
  revocationReason?: RevocationReason
}

export interface RevocationInfo {
  tenant: string
  serial: string
  revokedAt: Date
  reason: RevocationReason
  /** false: a vendor-CA certificate, refused via the deny-list but not in the gateway's CRL. */
  issuedByGateway: boolean
}

export interface ImportedCaInfo {
  tenant: string
  fingerprint: string
  subject: string
  notAfter: Date
}

export interface CertificateExpiry {
  /** 'root' | 'server' | 'tenant:<t>' | 'tenant:<t>:imported:<fingerprint prefix>' */
  name: string
  notAfter: Date
}

export interface ServerTlsMaterial {
  key: string
  cert: string
  ca: string
  minVersion: typeof TLS_MIN_VERSION
}
