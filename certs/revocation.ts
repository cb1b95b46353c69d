// Revocation vocabulary and CRLs (RFC 5280 §5). A CRL is signed by the CA
// whose certificates it lists: each tenant CA publishes one for its device
// certificates, the root one for revoked tenant CAs.
import * as x509 from './x509-lib.ts'
import { CertError } from './errors.ts'
import { SIGNING_ALGORITHM } from './keys.ts'
import { issuerKeyId, type Issuer } from './builders.ts'

/** Canonical serial text: lowercase hex, no separators, no leading zero bytes. */
export function normalizeSerial (serial: string): string {
  let hex = serial.replace(/[:\s]/g, '').toLowerCase()
  while (hex.length > 2 && hex.startsWith('00')) hex = hex.slice(2)
  return hex
}

export function checkSerial (serial: unknown): string {
  const normalized = typeof serial === 'string' ? normalizeSerial(serial) : ''
  if (!/^[0-9a-f]{1,40}$/.test(normalized)) {
    throw new CertError('cert.invalid_serial', `invalid certificate serial ${JSON.stringify(serial)}: expected hexadecimal`)
  }
  return normalized
}

export type RevocationReason =
  | 'unspecified' | 'keyCompromise' | 'cACompromise' | 'affiliationChanged'
  | 'superseded' | 'cessationOfOperation' | 'privilegeWithdrawn'

export const REVOCATION_REASONS: readonly RevocationReason[] = [
  'unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'privilegeWithdrawn'
]

export function checkReason (reason: unknown): RevocationReason {
  if (reason === undefined) return 'unspecified'
  if (!REVOCATION_REASONS.includes(reason as RevocationReason)) {
    throw new CertError('cert.invalid_reason', `invalid revocation reason ${JSON.stringify(reason)}: expected one of ${REVOCATION_REASONS.join(', ')}`)
  }
  return reason as RevocationReason
}

export interface CrlEntry {
  serial: string
  revokedAt: Date
  reason: RevocationReason
}

/** DER INTEGER for the cRLNumber extension (RFC 5280 §5.2.3: non-negative, monotonically increasing). */
function crlNumberExtension (crlNumber: number): x509.Extension {
  let hex = crlNumber.toString(16)
  if (hex.length % 2 === 1) hex = '0' + hex
  if (parseInt(hex.slice(0, 2), 16) > 0x7f) hex = '00' + hex
  const content = Buffer.from(hex, 'hex')
  return new x509.Extension('2.5.29.20', false, Buffer.concat([Buffer.from([0x02, content.length]), content]))
}

/**
 * PEM with the RFC 7468 label "X509 CRL": @peculiar/x509 writes "CRL", which
 * openssl refuses to read.
 */
export function crlToPem (crl: x509.X509Crl): string {
  const base64 = Buffer.from(crl.rawData).toString('base64').replace(/.{1,64}/g, '$&\n')
  return `-----BEGIN X509 CRL-----\n${base64}-----END X509 CRL-----\n`
}

/** A v2 CRL signed by `issuer`; its issuer name is the CA's subject, byte for byte, so openssl matches them. */
export async function createCrl (params: {
  issuer: Issuer
  entries: CrlEntry[]
  crlNumber: number
  thisUpdate: Date
  nextUpdate: Date
}): Promise<x509.X509Crl> {
  return await x509.X509CrlGenerator.create({
    issuer: params.issuer.cert.subjectName,
    thisUpdate: params.thisUpdate,
    nextUpdate: params.nextUpdate,
    signingKey: params.issuer.key,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.AuthorityKeyIdentifierExtension(issuerKeyId(params.issuer.cert)),
      crlNumberExtension(params.crlNumber)
    ],
    entries: params.entries.map((entry) => ({
      serialNumber: entry.serial,
      revocationDate: entry.revokedAt,
      reason: x509.X509CrlReason[entry.reason]
    }))
  })
}
