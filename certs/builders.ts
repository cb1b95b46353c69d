// X.509 construction (RFC 5280 profiles) for the four kinds of certificate the
// gateway issues: root CA, tenant issuing CA, server, device. Pure: keys in,
// certificates out.
import { randomBytes } from 'node:crypto'
import * as x509 from './x509-lib.ts'
import { SIGNING_ALGORITHM } from './keys.ts'
import { ENDPOINT_ID_URN_PREFIX, type CertificateRole, type JsonName } from './identity.ts'

const DAY_MS = 86_400_000

/** Positive 128-bit serial whose first byte is 0x01..0x7f, so its hex form never changes under normalization. */
export function randomSerial (): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0]! % 0x7f) + 1
  return bytes.toString('hex')
}

export function addDays (date: Date, days: number): Date {
  return new Date(date.getTime() + days * DAY_MS)
}

export interface Issuer {
  cert: x509.X509Certificate
  key: CryptoKey
}

interface CommonParams {
  subject: JsonName
  publicKey: CryptoKey
  notBefore: Date
  notAfter: Date
}

async function keyIdentifiers (publicKey: CryptoKey, issuer: Issuer | undefined): Promise<x509.Extension[]> {
  const ski = await x509.SubjectKeyIdentifierExtension.create(publicKey)
  const aki = issuer === undefined
    ? new x509.AuthorityKeyIdentifierExtension(ski.keyId)
    : new x509.AuthorityKeyIdentifierExtension(issuerKeyId(issuer.cert))
  return [ski, aki]
}

export function issuerKeyId (cert: x509.X509Certificate): string {
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension)
  if (ski === null) throw new Error('issuer certificate has no subjectKeyIdentifier')
  return ski.keyId
}

async function sign (params: CommonParams, issuer: Issuer | undefined, signingKey: CryptoKey, extensions: x509.Extension[]): Promise<x509.X509Certificate> {
  return await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: params.subject,
    issuer: issuer === undefined ? params.subject : issuer.cert.subjectName,
    notBefore: params.notBefore,
    notAfter: params.notAfter,
    publicKey: params.publicKey,
    signingKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [...extensions, ...await keyIdentifiers(params.publicKey, issuer)]
  })
}

const CA_KEY_USAGE = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign
const TLS_KEY_USAGE = x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment

export async function createRootCertificate (params: CommonParams & { privateKey: CryptoKey }): Promise<x509.X509Certificate> {
  return await sign(params, undefined, params.privateKey, [
    new x509.BasicConstraintsExtension(true, 1, true),
    new x509.KeyUsagesExtension(CA_KEY_USAGE, true)
  ])
}

/** A tenant's issuing CA: may sign end-entity certificates only (pathLen 0). */
export async function createTenantCaCertificate (params: CommonParams, root: Issuer): Promise<x509.X509Certificate> {
  return await sign(params, root, root.key, [
    new x509.BasicConstraintsExtension(true, 0, true),
    new x509.KeyUsagesExtension(CA_KEY_USAGE | x509.KeyUsageFlags.digitalSignature, true)
  ])
}

export async function createServerCertificate (
  params: CommonParams & { sans: Array<{ type: 'dns' | 'ip', value: string }> }, root: Issuer
): Promise<x509.X509Certificate> {
  return await sign(params, root, root.key, [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(TLS_KEY_USAGE, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    new x509.SubjectAlternativeNameExtension(params.sans)
  ])
}

/**
 * A device (Agent or Controller) client certificate. The Endpoint ID goes in
 * subjectAltName as a URI in the URN form [TR-369 R-SEC.0a]; clientAuth only,
 * so it can never pose as a server.
 */
export async function createDeviceCertificate (
  params: CommonParams & { principal: string, role: CertificateRole, crlUrl?: string | undefined }, tenantCa: Issuer
): Promise<x509.X509Certificate> {
  return await sign(params, tenantCa, tenantCa.key, [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(TLS_KEY_USAGE, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: ENDPOINT_ID_URN_PREFIX + params.principal }]),
    // RFC 5280 §4.2.1.13: where relying parties fetch the issuing CA's CRL (served without a token)
    ...(params.crlUrl !== undefined ? [new x509.CRLDistributionPointsExtension([params.crlUrl])] : [])
  ])
}
