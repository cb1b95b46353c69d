// broker/pki: the certificate service over certs/ — CA lifecycle (authority.ts), the MQTTS listener
// with its session re-checks (mqtts-listener.ts), and the admin operations (certificate-service.ts).
export * from './certificate-service.ts'
export { AuthorityHolder, EXPIRY_WARNING_DAYS, MASTER_KEY_FILE, type PkiSync } from './authority.ts'
export { MQTTS_LISTENER, TLS_HANDSHAKE_TIMEOUT_MS } from './mqtts-listener.ts'
