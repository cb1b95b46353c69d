// The logger: pino with the redaction that keeps secrets and payloads out of every log line.
import { pino, type Logger } from 'pino'

// Secrets must never reach a log line, whatever object a caller passes in.
export const REDACT_PATHS = [
  'password', 'secret', 'token', 'key', 'keyPem', 'privateKey', 'authorization',
  '*.password', '*.secret', '*.token', '*.key', '*.keyPem', '*.privateKey', '*.authorization',
  'req.headers.authorization', 'headers.authorization', 'payload', '*.payload'
]

export function createLogger (level: string, node: string): Logger {
  return pino({
    level,
    base: { node },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' }
  })
}
