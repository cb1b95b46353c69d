// Certification evidence bundles: `<data dir>/evidence/<run id>/` holds manifest.json (every check,
// result, timings, file hashes), records.ndjson (the USP Records exchanged, decoded and raw),
// security-events.ndjson (the related events) and manifest.sig.json (the manifest's signature by
// the gateway root CA). verifyEvidence re-checks every hash and the signature, so tampering shows.
import { createHash, createPublicKey, verify as verifySignature, X509Certificate } from 'node:crypto'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export const MANIFEST_FILE = 'manifest.json'
export const SIGNATURE_FILE = 'manifest.sig.json'

export interface EvidenceFile { path: string, sha256: string, bytes: number }

export interface SignatureFile {
  algorithm: 'RSASSA-PKCS1-v1_5-SHA256'
  signedFile: typeof MANIFEST_FILE
  manifestSha256: string
  /** base64 */
  signature: string
  /** The gateway root CA certificate that signed (PEM). */
  signerCertificatePem: string
  signerFingerprint256: string
}

export type Signer = (data: Uint8Array<ArrayBuffer>) => Promise<{ algorithm: 'RSASSA-PKCS1-v1_5-SHA256', signature: Buffer, certificatePem: string }>

export function sha256Hex (data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex')
}

/** JSON with bytes as base64 (protobufjs decodes bytes fields to Uint8Array). */
export function toJsonText (value: unknown, indent?: number): string {
  return JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v), indent)
}

/**
 * Writes the data files, then the manifest (with every file's SHA-256 under `files`), then the
 * signature of the manifest's exact bytes. Returns the bundle directory.
 */
export async function writeEvidence (dir: string, data: Record<string, string>, manifest: Record<string, unknown>, sign: Signer): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const files: EvidenceFile[] = []
  for (const [name, text] of Object.entries(data)) {
    if (name === MANIFEST_FILE || name === SIGNATURE_FILE || name.includes('/')) throw new Error(`invalid evidence file name ${name}`)
    const bytes = Buffer.from(text, 'utf8')
    await writeFile(join(dir, name), bytes, { mode: 0o600 })
    files.push({ path: name, sha256: sha256Hex(bytes), bytes: bytes.length })
  }
  const manifestBytes = Buffer.from(toJsonText({ ...manifest, files }, 2) + '\n', 'utf8')
  await writeFile(join(dir, MANIFEST_FILE), manifestBytes, { mode: 0o600 })
  const signed = await sign(new Uint8Array(manifestBytes))
  const sig: SignatureFile = {
    algorithm: signed.algorithm,
    signedFile: MANIFEST_FILE,
    manifestSha256: sha256Hex(manifestBytes),
    signature: signed.signature.toString('base64'),
    signerCertificatePem: signed.certificatePem,
    signerFingerprint256: new X509Certificate(signed.certificatePem).fingerprint256
  }
  await writeFile(join(dir, SIGNATURE_FILE), JSON.stringify(sig, null, 2) + '\n', { mode: 0o600 })
  return dir
}

export interface VerifyResult {
  ok: boolean
  /** One line per problem found (empty when ok). */
  problems: string[]
  runId?: string
  signerFingerprint256?: string
  /** True when the signer is the trusted root given to verifyEvidence. */
  signerTrusted?: boolean
  files: number
}

/**
 * Verifies a bundle: the signature over manifest.json (with the certificate in manifest.sig.json,
 * which must equal `trustedRootPem` when given), every listed file's size and SHA-256, and that the
 * directory holds no file the manifest does not list.
 */
export async function verifyEvidence (dir: string, trustedRootPem?: string): Promise<VerifyResult> {
  const problems: string[] = []
  const result: VerifyResult = { ok: false, problems, files: 0 }
  let manifestBytes: Buffer
  let sig: SignatureFile
  try {
    manifestBytes = await readFile(join(dir, MANIFEST_FILE))
    sig = JSON.parse(await readFile(join(dir, SIGNATURE_FILE), 'utf8')) as SignatureFile
  } catch (err) {
    problems.push(`cannot read ${MANIFEST_FILE} / ${SIGNATURE_FILE}: ${(err as Error).message}`)
    return result
  }
  if (sha256Hex(manifestBytes) !== sig.manifestSha256) problems.push(`${MANIFEST_FILE}: SHA-256 differs from the signed one`)
  try {
    const cert = new X509Certificate(sig.signerCertificatePem)
    result.signerFingerprint256 = cert.fingerprint256
    const good = verifySignature('sha256', manifestBytes, createPublicKey(cert.publicKey.export({ type: 'spki', format: 'pem' })), Buffer.from(sig.signature, 'base64'))
    if (!good) problems.push(`${MANIFEST_FILE}: signature does not verify with the signer certificate`)
    if (trustedRootPem !== undefined) {
      result.signerTrusted = new X509Certificate(trustedRootPem).fingerprint256 === cert.fingerprint256
      if (!result.signerTrusted) problems.push('the signer is not the trusted gateway root CA')
    }
  } catch (err) {
    problems.push(`signature file: ${(err as Error).message}`)
  }
  let manifest: { runId?: string, files?: EvidenceFile[] }
  try {
    manifest = JSON.parse(manifestBytes.toString('utf8')) as typeof manifest
  } catch (err) {
    problems.push(`${MANIFEST_FILE} is not JSON: ${(err as Error).message}`)
    return result
  }
  if (manifest.runId !== undefined) result.runId = manifest.runId
  const listed = new Set<string>([MANIFEST_FILE, SIGNATURE_FILE])
  for (const f of manifest.files ?? []) {
    listed.add(f.path)
    result.files++
    try {
      const bytes = await readFile(join(dir, f.path))
      if (bytes.length !== f.bytes || sha256Hex(bytes) !== f.sha256) problems.push(`${f.path}: SHA-256 differs from the manifest (modified)`)
    } catch {
      problems.push(`${f.path}: missing`)
    }
  }
  for (const name of await readdir(dir)) {
    if (!listed.has(name)) problems.push(`${name}: not listed in the manifest`)
  }
  result.ok = problems.length === 0
  return result
}
