// broker/core: the leaf every other folder builds on — settings, errors, identity, secrets, security
// events and their codes, metrics, logger. Imports nothing of broker/.
export * from './config.ts'
export * from './errors.ts'
export * from './identity.ts'
export * from './secrets.ts'
export * from './event-codes.ts'
export * from './security-events.ts'
export * from './metrics.ts'
export * from './logger.ts'
export * from './net.ts'
export * from './handshake-deadline.ts'
export * from './token-bucket.ts'
export { ProbeListener, type ProbeSource } from './probe-listener.ts'
