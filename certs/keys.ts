// RSA key pairs and their protection at rest.
//
// Why RSA-2048 everywhere (root, tenant CAs, server, devices): it is the one
// key type every party in the chain accepts — node-forge (RSA only), Node TLS,
// the openssl CLI, and the mbedTLS/wolfSSL stacks on older CPE routers that
// TR-369 Agents run on. ECDSA P-256 would be smaller and faster but is not
// universally available on deployed routers. Keys come from WebCrypto, which
// generates natively on the libuv thread pool (no event-loop stall, far
// faster than pure-JS generation).
//
// At rest, CA and server keys are PKCS#8 encrypted with AES-256-CBC under a
// PBKDF2-derived key from the master key ("BEGIN ENCRYPTED PRIVATE KEY"), so
// a copy of the data directory alone does not yield a signing key.
// WebCrypto is the global `crypto` (Node >= 19), typed as @peculiar/x509 expects.
import { createPrivateKey, randomBytes } from 'node:crypto'
import { CertError } from './errors.ts'
import { readTextIfExists, writeFileAtomic } from './files.ts'

/** RSASSA-PKCS1-v1_5 with SHA-256: the signature every TLS 1.2 stack verifies [TR-369 R-MQTT.48]. */
export const SIGNING_ALGORITHM = {
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 2048
} as const

/** Shortest master key accepted: 16 bytes of entropy written as text. */
export const MIN_MASTER_KEY_LENGTH = 16

export function checkMasterKey (masterKey: string | Buffer | undefined): string | Buffer {
  if (masterKey === undefined || masterKey.length < MIN_MASTER_KEY_LENGTH) {
    throw new CertError('cert.weak_master_key',
      `the PKI master key must be at least ${MIN_MASTER_KEY_LENGTH} characters (CA keys are encrypted with it)`)
  }
  return masterKey
}

export async function generateKeyPair (): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey(SIGNING_ALGORITHM, true, ['sign', 'verify'])
}

/** PKCS#8 PEM, unencrypted: only for a device key handed to its owner once. */
export async function exportPlainPrivateKeyPem (key: CryptoKey): Promise<string> {
  const der = Buffer.from(await crypto.subtle.exportKey('pkcs8', key))
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString()
}

export async function encryptPrivateKeyPem (key: CryptoKey, masterKey: string | Buffer): Promise<string> {
  const der = Buffer.from(await crypto.subtle.exportKey('pkcs8', key))
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
    .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: masterKey })
    .toString()
}

/** Decrypts a stored key; `label` names it in the error (never the key itself). */
export function decryptPrivateKeyPem (pem: string, masterKey: string | Buffer, label: string): { pem: string, der: Buffer } {
  let keyObject
  try {
    keyObject = createPrivateKey({ key: pem, format: 'pem', passphrase: masterKey })
  } catch (err) {
    throw new CertError('cert.bad_master_key',
      `cannot decrypt the ${label} private key: wrong PKI master key or corrupt key file`, { cause: err })
  }
  return {
    pem: keyObject.export({ type: 'pkcs8', format: 'pem' }).toString(),
    der: keyObject.export({ type: 'pkcs8', format: 'der' })
  }
}

export async function importSigningKey (pkcs8Der: Buffer): Promise<CryptoKey> {
  return await crypto.subtle.importKey('pkcs8', new Uint8Array(pkcs8Der), SIGNING_ALGORITHM, false, ['sign'])
}

/**
 * The master key stored in a 0600 file, created with 256 random bits on first
 * use. For gateways that do not pass one from the environment.
 */
export async function loadOrCreateMasterKey (file: string): Promise<string> {
  const existing = await readTextIfExists(file)
  if (existing !== undefined) return checkMasterKey(existing.trim()).toString()
  const created = randomBytes(32).toString('base64url')
  await writeFileAtomic(file, created + '\n')
  return created
}
