// Certificates as the authority holds them in memory: PEM text, the
// @peculiar/x509 view (extensions, names) and Node's native view (signature
// checks, fingerprints) of the same DER.
import { X509Certificate as NodeX509Certificate } from 'node:crypto'
import * as x509 from './x509-lib.ts'
import { CertError } from './errors.ts'

export interface LoadedCert {
  pem: string
  cert: x509.X509Certificate
  node: NodeX509Certificate
}

/** One of the gateway's own CAs; its key is decrypted on first use and then kept in memory. */
export interface LoadedCa extends LoadedCert {
  serial: string
  keyFile: string
  key?: CryptoKey
}

export function loadCert (pemOrDer: string | Buffer): LoadedCert {
  const node = new NodeX509Certificate(pemOrDer)
  return { pem: node.toString(), cert: new x509.X509Certificate(node.raw), node }
}

export function sameKey (a: NodeX509Certificate, b: NodeX509Certificate): boolean {
  return a.publicKey.equals(b.publicKey)
}

/** SHA-256 of the DER, lowercase hex without separators. */
export function fingerprintOf (node: NodeX509Certificate): string {
  return node.fingerprint256.replace(/:/g, '').toLowerCase()
}

/**
 * A vendor CA certificate offered for import: exactly one certificate, a CA
 * (basicConstraints CA:TRUE, keyCertSign if keyUsage is present), valid now.
 */
export function parseImportedCa (certificate: string | Uint8Array, now: Date): LoadedCert {
  if (typeof certificate === 'string') {
    if (/PRIVATE KEY-----/.test(certificate)) {
      throw new CertError('cert.invalid_pem', 'the input contains a private key; import only the CA certificate (the key was not stored)')
    }
    if ((certificate.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length > 1) {
      throw new CertError('cert.invalid_pem', 'the input contains several certificates; import one CA certificate at a time')
    }
  }
  let loaded: LoadedCert
  try {
    loaded = loadCert(typeof certificate === 'string' ? certificate : Buffer.from(certificate))
  } catch (err) {
    throw new CertError('cert.invalid_pem', 'not an X.509 certificate (expected one PEM "BEGIN CERTIFICATE" block or DER)', { cause: err })
  }
  const keyUsage = loaded.cert.getExtension(x509.KeyUsagesExtension)
  if (!loaded.node.ca || (keyUsage !== null && (keyUsage.usages & x509.KeyUsageFlags.keyCertSign) === 0)) {
    throw new CertError('cert.not_a_ca', `"${loaded.cert.subject}" is not a CA certificate (needs basicConstraints CA:TRUE and, if keyUsage is present, keyCertSign)`)
  }
  if (now < loaded.cert.notBefore || now > loaded.cert.notAfter) {
    throw new CertError('cert.ca_expired', `CA "${loaded.cert.subject}" is not valid now (valid ${loaded.cert.notBefore.toISOString()} .. ${loaded.cert.notAfter.toISOString()})`)
  }
  return loaded
}
