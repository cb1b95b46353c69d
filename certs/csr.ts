// PKCS#10 certificate requests from devices whose factories keep their own keys: the request's
// signature proves possession of the key, the key must be strong enough, and any name it carries must
// be the endpoint the certificate is issued to. Only the public key is taken; the certificate's
// subject and SAN are the gateway's, as for every device certificate.
import * as x509 from './x509-lib.ts'
import { CertError } from './errors.ts'
import { ENDPOINT_ID_URN_PREFIX } from './identity.ts'

const MAX_CSR_BYTES = 16 * 1024
const MIN_RSA_BITS = 2048
const EC_CURVES = new Set(['P-256', 'P-384', 'P-521'])

/** The public key of a valid CSR for `principal`; throws CertError('cert.invalid_csr') otherwise. */
export async function csrPublicKey (csrPem: string, principal: string): Promise<CryptoKey> {
  if (typeof csrPem !== 'string' || csrPem.length > MAX_CSR_BYTES || !csrPem.includes('-----BEGIN CERTIFICATE REQUEST-----')) {
    throw new CertError('cert.invalid_csr', 'expected a PEM "CERTIFICATE REQUEST" (PKCS#10) of at most 16 KiB')
  }
  let csr: x509.Pkcs10CertificateRequest
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem)
  } catch (err) {
    throw new CertError('cert.invalid_csr', `not a PKCS#10 request: ${(err as Error).message}`.slice(0, 200))
  }
  if (!await csr.verify().catch(() => false)) throw new CertError('cert.invalid_csr', 'the request\'s signature does not verify (proof of possession failed)')
  let key: CryptoKey
  try {
    key = await csr.publicKey.export()
  } catch (err) {
    throw new CertError('cert.invalid_csr', `unsupported public key: ${(err as Error).message}`.slice(0, 200))
  }
  const alg = key.algorithm as Algorithm & { namedCurve?: string, modulusLength?: number }
  const strong = alg.name === 'ECDSA' ? EC_CURVES.has(alg.namedCurve ?? '')
    : alg.name === 'RSASSA-PKCS1-v1_5' || alg.name === 'RSA-PSS' ? (alg.modulusLength ?? 0) >= MIN_RSA_BITS
      : alg.name === 'Ed25519'
  if (!strong) throw new CertError('cert.invalid_csr', `public key ${alg.name}${alg.namedCurve ? ' ' + alg.namedCurve : ''}${alg.modulusLength ? ' ' + alg.modulusLength : ''} is too weak or unsupported (ECDSA P-256/384/521, RSA >= 2048, Ed25519)`)
  // any endpoint the request names must be the one the certificate is for
  const named: string[] = []
  const cn = csr.subjectName.getField('CN')
  for (const v of cn) if (/^[a-z][a-z0-9-]*:[A-Za-z0-9._%-]*:/.test(v)) named.push(v)
  const san = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension)
  for (const n of san?.names.items ?? []) {
    if (n.type === 'url' && n.value.startsWith(ENDPOINT_ID_URN_PREFIX)) named.push(n.value.slice(ENDPOINT_ID_URN_PREFIX.length))
  }
  const other = named.find(n => n !== principal)
  if (other !== undefined) throw new CertError('cert.invalid_csr', `the request names endpoint ${JSON.stringify(other.slice(0, 80))}, not ${principal}`)
  return key
}
