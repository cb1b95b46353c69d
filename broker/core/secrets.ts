// Device and admin secrets. uspgate generates every secret itself (256 random
// bits), shows it once, and stores only a SHA-256 digest.
//
// Why no slow KDF (bcrypt/scrypt/argon2): those exist to protect low-entropy,
// human-chosen passwords against offline guessing. A 256-bit random secret
// cannot be guessed offline whatever the hash speed, while a slow KDF would
// cost ~50-100 ms of CPU per CONNECT and turn a reconnect storm of 10k routers
// into minutes of saturated event loop. SHA-256 + constant-time compare costs
// about a microsecond.
import { hash, randomBytes, timingSafeEqual } from 'node:crypto'

const SECRET_BYTES = 32

export function generateSecret (prefix = 'usg'): string {
  return `${prefix}_${randomBytes(SECRET_BYTES).toString('base64url')}`
}

export function hashSecret (secret: string | Buffer): string {
  // one-shot crypto.hash (Node 20.12+): no Hash object per CONNECT (micro-benchmark, warm: ~0.5 µs instead of ~1.3)
  return 'sha256:' + hash('sha256', secret, 'hex')
}

export function verifySecret (secret: string | Buffer | undefined, storedHash: string): boolean {
  if (secret === undefined || secret.length === 0 || secret.length > 512) return false
  const actual = Buffer.from(hashSecret(secret))
  const expected = Buffer.from(storedHash)
  return actual.length === expected.length && timingSafeEqual(actual, expected)
}
