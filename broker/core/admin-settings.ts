// Settings of the admin API listener: transport (plain, TLS, mutual TLS) and
// rate limits. Environment variables only (like USPGATE_POLICY_HISTORY),
// validated up front so a bad value stops start-up with one line naming it.
import { readFileSync } from 'node:fs'
import { ConfigError } from './config.ts'

export type AdminTlsMode = 'off' | 'on' | 'mtls'

export interface AdminSettings {
  /**
   * off: plain HTTP (bind it to loopback). on: HTTPS with the gateway's server certificate (the one the
   * MQTTS listener uses, issued by the gateway root CA; clients verify with GET /v1/ca).
   * mtls: HTTPS and a client certificate issued by one of `clientCaPem` is required on every request.
   */
  tls: AdminTlsMode
  /** PEM of the CA(s) that issue admin client certificates (mtls only). Never the device CAs. */
  clientCaPem?: string
  /** Requests per second per admin token (token bucket, burst 4×); 0 disables. */
  tokenRate: number
  /** Requests per second per remote address, authenticated or not (burst 4×); 0 disables. */
  addressRate: number
  /** Failed authentications per address per minute before the address is refused (429) for `authLockSeconds`; 0 disables. */
  authFailuresPerMinute: number
  authLockSeconds: number
}

export const DEFAULT_ADMIN_SETTINGS: AdminSettings = {
  tls: 'off',
  tokenRate: 50,
  addressRate: 100,
  authFailuresPerMinute: 10,
  authLockSeconds: 60
}

function count (name: string, raw: string, max: number): number {
  if (!/^\d{1,9}$/.test(raw) || Number(raw) > max) throw new ConfigError(name, `"${raw}" is not a whole number in 0..${max}`)
  return Number(raw)
}

export function adminSettingsFromEnv (env: NodeJS.ProcessEnv = process.env): AdminSettings {
  const s: AdminSettings = { ...DEFAULT_ADMIN_SETTINGS }
  const get = (name: string): string | undefined => env[name] === '' ? undefined : env[name]
  const tls = get('USPGATE_ADMIN_TLS')
  if (tls !== undefined) {
    if (tls !== 'off' && tls !== 'on' && tls !== 'mtls') throw new ConfigError('USPGATE_ADMIN_TLS', `"${tls}" is not one of off, on, mtls`)
    s.tls = tls
  }
  const caFile = get('USPGATE_ADMIN_CLIENT_CA')
  if (s.tls === 'mtls') {
    if (caFile === undefined) throw new ConfigError('USPGATE_ADMIN_CLIENT_CA', 'USPGATE_ADMIN_TLS=mtls needs the PEM file of the CA that issues admin client certificates')
    let pem: string
    try { pem = readFileSync(caFile, 'utf8') } catch (err) { throw new ConfigError('USPGATE_ADMIN_CLIENT_CA', `cannot read ${caFile}: ${(err as Error).message}`) }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError('USPGATE_ADMIN_CLIENT_CA', `${caFile} holds no PEM certificate`)
    s.clientCaPem = pem
  }
  const tokenRate = get('USPGATE_ADMIN_TOKEN_RATE')
  if (tokenRate !== undefined) s.tokenRate = count('USPGATE_ADMIN_TOKEN_RATE', tokenRate, 1_000_000)
  const addressRate = get('USPGATE_ADMIN_ADDRESS_RATE')
  if (addressRate !== undefined) s.addressRate = count('USPGATE_ADMIN_ADDRESS_RATE', addressRate, 1_000_000)
  const failures = get('USPGATE_ADMIN_AUTH_FAILURES')
  if (failures !== undefined) s.authFailuresPerMinute = count('USPGATE_ADMIN_AUTH_FAILURES', failures, 1_000_000)
  return s
}

/** Validates explicit settings (tests, embedding) the same way. */
export function checkAdminSettings (s: AdminSettings): AdminSettings {
  if (s.tls === 'mtls' && (s.clientCaPem === undefined || !s.clientCaPem.includes('-----BEGIN CERTIFICATE-----'))) {
    throw new ConfigError('USPGATE_ADMIN_CLIENT_CA', 'USPGATE_ADMIN_TLS=mtls needs the PEM of the CA that issues admin client certificates')
  }
  return s
}
