// Public surface of certs/: the gateway CA (root, per-tenant issuing CAs,
// server and device certificates), CA trust, revocation and peer
// identification for mutual TLS. Knows nothing of aedes; other folders import
// only from here.
export { CertificateAuthority } from './authority.ts'
export {
  TLS_MIN_VERSION,
  DEFAULT_DEVICE_VALIDITY_DAYS,
  MAX_DEVICE_VALIDITY_DAYS,
  CRL_VALIDITY_DAYS,
  type CertificateAuthorityOptions,
  type InitOptions,
  type IssueCertificateRequest,
  type IssuedCertificate,
  type CertificateInfo,
  type RevocationInfo,
  type ImportedCaInfo,
  type CertificateExpiry,
  type ServerTlsMaterial,
  type SignRequest,
  type SignedCertificate
} from './types.ts'
export { toPkcs12, MIN_P12_PASSWORD_LENGTH } from './pkcs12.ts'
export { CertError, type CertErrorCode } from './errors.ts'
export { loadOrCreateMasterKey } from './keys.ts'
export { ENDPOINT_ID_URN_PREFIX, isEndpointId, isTenantId, TENANT_ID, USP_AUTHORITY_SCHEMES, type CertificateRole } from './identity.ts'
export { REVOCATION_REASONS, type RevocationReason } from './revocation.ts'
export type { PeerCertificateInput, PeerIdentity, PeerRejectCode, PeerTrust } from './peer.ts'
export { writeFileAtomic } from './files.ts'
