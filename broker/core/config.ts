// Gateway settings: environment variables (USPGATE_*) overridden by CLI flags.
// Every setting is validated up front so a bad value stops start-up with one
// clear line that names the setting, instead of failing later at runtime.
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { resolve } from 'node:path'
import { distance } from 'fastest-levenshtein'
import { DEFAULT_AUDIT_FILE } from './security-events.ts'
import { SYSLOG_FACILITIES } from './syslog-sink.ts'
import { DEFAULT_WEBHOOK } from './webhook-sink.ts'
import type { EventExportSettings } from './event-export.ts'

export interface GatewayConfig {
  dataDir: string
  mqttHost: string
  mqttPort: number
  adminHost: string
  adminPort: number
  /** Bootstrap admin token; when unset one is generated on first start. */
  adminToken?: string
  nodeId?: string
  logLevel: string
  limits: Limits
  /** MQTT over TLS with client certificates; absent = no MQTTS listener (see broker/certificates.ts). */
  mqtts?: MqttsConfig
  /** DNS names / IP addresses in the MQTTS server certificate. Default localhost, 127.0.0.1. */
  serverSans?: string[]
  /** Secret that encrypts the CA keys at rest; default: generated into <dataDir>/pki-master-key (0600). */
  pkiMasterKey?: string
  /** MQTT over WebSocket (path /mqtt, subprotocol mqtt); absent = off. */
  ws?: { host: string, port: number }
  /** MQTT over secure WebSocket, with the gateway's server certificate (as MQTTS); absent = off. */
  wss?: { host: string, port: number }
  /** Networks whose connections may start with a PROXY protocol v1/v2 header (load balancers); absent = none. */
  proxyTrusted?: string[]
  /** Base URL of the CRL endpoint written into device certificates (default: the admin listener's URL). */
  crlBaseUrl?: string
  /** Probe + metrics listener (USPGATE_PROBE_PORT): /healthz, /readyz, /metrics without the admin API's auth; absent = off. */
  probe?: { host: string, port: number }
  /** Seconds a SIGTERM drain may take before the process exits anyway (USPGATE_DRAIN_SECONDS). */
  drainSeconds?: number
  /** Cluster mode (USPGATE_REDIS_URL): state, sessions and routing on Redis (broker/cluster.ts). Absent = embedded. */
  redis?: { url: string, prefix: string, eventStreamMax?: number, tls?: { ca?: string, cert?: string, key?: string } }
}

export interface MqttsConfig {
  host: string
  port: number
  /** required: every MQTTS client must present a certificate; optional: password logins over TLS too. */
  clientCert: 'required' | 'optional'
}

export const DEFAULT_SERVER_SANS = ['localhost', '127.0.0.1']

export interface Limits {
  /** Maximum MQTT packet size in bytes, enforced as soon as the fixed header is read. */
  maxPacketBytes: number
  maxTopicBytes: number
  maxTopicLevels: number
  maxClientIdBytes: number
  maxUsernameBytes: number
  /** Seconds a socket may stay open before CONNECT arrives (slow-loris guard). */
  connectTimeoutSeconds: number
  /** Upper bound on the keep-alive a client may ask for (MQTT 5 Server Keep Alive imposes it). */
  maxKeepAliveSeconds: number
  /**
   * QoS 2 PUBLISHes awaiting PUBREL per client (aedes 1.1.3 maxInflightInbound, GHSA-5jvp-3p2v-5qgf);
   * advertised to MQTT 5 clients as the CONNACK Receive Maximum (§3.2.2.3.3, [MQTT-3.3.4-9]).
   */
  maxInflightQos2: number
  /** MQTT 5 Topic Alias Maximum offered to clients (client → server aliases); 0 turns aliases off. */
  topicAliasMaximum: number
  /**
   * Bytes the gateway holds for a subscriber that is not reading. Above it, live deliveries to that
   * subscriber are dropped (a persistent session keeps QoS 1/2 ones queued for its next connection).
   */
  maxClientBufferBytes: number
  /** Per-client publish rate (messages/second, token bucket); 0 disables. */
  publishRatePerSecond: number
  publishBurst: number
  /** Filters in one SUBSCRIBE; above it the connection is closed before any filter is decided (0 = no limit). */
  maxFiltersPerSubscribe: number
  /** Subscriptions one client may hold; further new filters are refused (0 = no limit). */
  maxSubscriptionsPerClient: number
  /**
   * Subscription decisions (tenant invariants + policy) made per event-loop turn across all clients;
   * the rest wait for the next turn, so a huge SUBSCRIBE never blocks other tenants' traffic.
   */
  subscribeDecisionsPerTurn: number
  /** Auth failures per (username, address) before back-off starts. */
  authFailuresBeforeBackoff: number
  /** Longest back-off lock, so an attacker can never lock a device out for good. */
  authMaxBackoffSeconds: number
}

export const defaultLimits: Limits = {
  maxPacketBytes: 256 * 1024,
  maxTopicBytes: 1024,
  maxTopicLevels: 32,
  maxClientIdBytes: 256,
  maxUsernameBytes: 256,
  connectTimeoutSeconds: 10,
  maxKeepAliveSeconds: 1200,
  maxInflightQos2: 100,
  topicAliasMaximum: 32,
  maxClientBufferBytes: 4 * 1024 * 1024,
  publishRatePerSecond: 1000,
  publishBurst: 2000,
  authFailuresBeforeBackoff: 5,
  authMaxBackoffSeconds: 300,
  maxFiltersPerSubscribe: 32,
  maxSubscriptionsPerClient: 256,
  subscribeDecisionsPerTurn: 256
}

export class ConfigError extends Error {
  constructor (readonly setting: string, message: string) {
    super(`invalid setting ${setting}: ${message}`)
  }
}

/** Flag name (without --) → environment variable. */
const settings = {
  'data-dir': 'USPGATE_DATA_DIR',
  'mqtt-host': 'USPGATE_MQTT_HOST',
  'mqtt-port': 'USPGATE_MQTT_PORT',
  'admin-host': 'USPGATE_ADMIN_HOST',
  'admin-port': 'USPGATE_ADMIN_PORT',
  'admin-token': 'USPGATE_ADMIN_TOKEN',
  'node-id': 'USPGATE_NODE_ID',
  'log-level': 'USPGATE_LOG_LEVEL',
  'max-packet-bytes': 'USPGATE_MAX_PACKET_BYTES',
  'publish-rate': 'USPGATE_PUBLISH_RATE',
  'max-client-buffer-bytes': 'USPGATE_MAX_CLIENT_BUFFER_BYTES',
  'connect-timeout': 'USPGATE_CONNECT_TIMEOUT',
  'max-filters-per-subscribe': 'USPGATE_MAX_FILTERS_PER_SUBSCRIBE',
  'max-subscriptions-per-client': 'USPGATE_MAX_SUBSCRIPTIONS_PER_CLIENT',
  'mqtts-host': 'USPGATE_MQTTS_HOST',
  'mqtts-port': 'USPGATE_MQTTS_PORT',
  'mqtts-client-cert': 'USPGATE_MQTTS_CLIENT_CERT',
  'server-sans': 'USPGATE_SERVER_SANS',
  'pki-master-key': 'USPGATE_PKI_MASTER_KEY',
  'ws-host': 'USPGATE_WS_HOST',
  'ws-port': 'USPGATE_WS_PORT',
  'wss-host': 'USPGATE_WSS_HOST',
  'wss-port': 'USPGATE_WSS_PORT',
  'proxy-protocol-trusted': 'USPGATE_PROXY_PROTOCOL_TRUSTED',
  'crl-base-url': 'USPGATE_CRL_BASE_URL',
  'probe-host': 'USPGATE_PROBE_HOST',
  'probe-port': 'USPGATE_PROBE_PORT',
  'drain-seconds': 'USPGATE_DRAIN_SECONDS',
  'redis-url': 'USPGATE_REDIS_URL',
  'redis-prefix': 'USPGATE_REDIS_PREFIX',
  'redis-tls-ca': 'USPGATE_REDIS_TLS_CA',
  'redis-tls-cert': 'USPGATE_REDIS_TLS_CERT',
  'redis-tls-key': 'USPGATE_REDIS_TLS_KEY'
} as const

export type SettingFlag = keyof typeof settings

/** The start-up flags (`uspgate start --mqtt-port 1883`) and the variable each one overrides. */
export const SETTING_FLAGS: Readonly<Record<SettingFlag, string>> = settings

/**
 * Every USPGATE_* variable anything reads: the start-up flags above plus the settings read by the
 * services that use them (below) and by the CLI (USPGATE_ADMIN_URL). A variable not in this list is a
 * typo or a setting of another version, and start-up warns about it (unknownSettings).
 */
export const KNOWN_SETTINGS: readonly string[] = [
  ...Object.values(settings),
  'USPGATE_POLICY_HISTORY', 'USPGATE_CANARY_MAX_DENY_MULTIPLE',
  'USPGATE_ADMIN_TLS', 'USPGATE_ADMIN_CLIENT_CA', 'USPGATE_ADMIN_TOKEN_RATE', 'USPGATE_ADMIN_ADDRESS_RATE', 'USPGATE_ADMIN_AUTH_FAILURES',
  'USPGATE_ADMIN_URL',
  'USPGATE_AUDIT_MAX_BYTES', 'USPGATE_AUDIT_KEEP',
  'USPGATE_SYSLOG_URL', 'USPGATE_SYSLOG_CA', 'USPGATE_SYSLOG_FACILITY', 'USPGATE_SYSLOG_QUEUE',
  'USPGATE_WEBHOOK_URL', 'USPGATE_WEBHOOK_TOKEN', 'USPGATE_WEBHOOK_BATCH', 'USPGATE_WEBHOOK_BUFFER', 'USPGATE_WEBHOOK_RETRY_MAX_SECONDS',
  // read by the certification runs (broker/certify) and by .ci/install-deps.sh
  'USPGATE_CERTIFY_CONTROLLER_ID', 'USPGATE_CERTIFY_PROVISION_CMD', 'USPGATE_CERTIFY_SECRET', 'USPGATE_PEERS_DIR'
]

export interface UnknownSetting {
  name: string
  /** The known setting with the smallest edit distance, when it is close enough to be a typo. */
  suggestion?: string
}

/** USPGATE_* variables in `env` that no part of uspgate reads, each with the setting it most likely meant. */
export function unknownSettings (env: NodeJS.ProcessEnv = process.env, known: readonly string[] = KNOWN_SETTINGS): UnknownSetting[] {
  const out: UnknownSetting[] = []
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('USPGATE_') || known.includes(name)) continue
    let best: string | undefined
    let bestDistance = Infinity
    for (const k of known) {
      const d = distance(name, k)
      if (d < bestDistance) { best = k; bestDistance = d }
    }
    // a third of the name that follows USPGATE_ may be wrong (RAET for RATE is 2 of 12): beyond that a
    // suggestion would be a guess, not a typo fix
    const close = best !== undefined && bestDistance <= Math.max(2, Math.floor((name.length - 'USPGATE_'.length) / 3))
    out.push(close ? { name, suggestion: best } : { name })
  }
  return out
}


export function parseFlags (argv: string[]): Record<string, string> {
  const flags: Record<string, string> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith('--')) throw new ConfigError(arg, 'unexpected argument (flags look like --name value)')
    const eq = arg.indexOf('=')
    if (eq > 0) {
      flags[arg.slice(2, eq)] = arg.slice(eq + 1)
    } else {
      const value = argv[i + 1]
      if (value === undefined || value.startsWith('--')) throw new ConfigError(arg, 'needs a value')
      flags[arg.slice(2)] = value
      i++
    }
  }
  return flags
}

function port (name: string, raw: string): number {
  if (!/^\d{1,5}$/.test(raw)) throw new ConfigError(name, `"${raw}" is not a port number (0-65535)`)
  const n = Number(raw)
  if (n > 65535) throw new ConfigError(name, `${n} is above 65535`)
  return n
}

function host (name: string, raw: string): string {
  if (raw === 'localhost' || isIP(raw) !== 0) return raw
  if (!/^[a-zA-Z0-9.-]{1,253}$/.test(raw)) throw new ConfigError(name, `"${raw}" is not a host name or IP address`)
  return raw
}

function positiveInt (name: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `"${raw}" is not a whole number`)
  const n = Number(raw)
  if (n < min || n > max) throw new ConfigError(name, `${n} is outside ${min}..${max}`)
  return n
}

/** Builds the config from flags (which win) and the environment. Throws ConfigError. */
export function loadConfig (flags: Record<string, string> = {}, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  for (const key of Object.keys(flags)) {
    if (!(key in settings)) throw new ConfigError(`--${key}`, 'unknown flag')
  }
  const get = (flag: SettingFlag): [string, string | undefined] => {
    if (flags[flag] !== undefined) return [`--${flag}`, flags[flag]]
    const envName = settings[flag]
    const v = env[envName]
    return [envName, v === '' ? undefined : v]
  }
  const read = <T>(flag: SettingFlag, fallback: T, parse: (name: string, raw: string) => T): T => {
    const [name, raw] = get(flag)
    return raw === undefined ? fallback : parse(name, raw)
  }

  const limits = { ...defaultLimits }
  limits.maxPacketBytes = read('max-packet-bytes', limits.maxPacketBytes, (n, r) => positiveInt(n, r, 1024, 256 * 1024 * 1024))
  limits.publishRatePerSecond = read('publish-rate', limits.publishRatePerSecond, (n, r) => positiveInt(n, r, 0, 10_000_000))
  limits.publishBurst = Math.max(limits.publishBurst, limits.publishRatePerSecond * 2)
  // at least one packet of the largest size must fit, or a big message could never be delivered
  limits.maxClientBufferBytes = read('max-client-buffer-bytes', Math.max(limits.maxClientBufferBytes, limits.maxPacketBytes), (n, r) => positiveInt(n, r, limits.maxPacketBytes, 1024 * 1024 * 1024))

  limits.connectTimeoutSeconds = read('connect-timeout', limits.connectTimeoutSeconds, (n, r) => positiveInt(n, r, 1, 600))
  limits.maxFiltersPerSubscribe = read('max-filters-per-subscribe', limits.maxFiltersPerSubscribe, (n, r) => positiveInt(n, r, 0, 100_000))
  limits.maxSubscriptionsPerClient = read('max-subscriptions-per-client', limits.maxSubscriptionsPerClient, (n, r) => positiveInt(n, r, 0, 1_000_000))

  const adminToken = read('admin-token', undefined as string | undefined, (n, r) => {
    if (r.length < 32) throw new ConfigError(n, 'must be at least 32 characters (use a generated secret)')
    return r
  })
  const nodeId = read('node-id', undefined as string | undefined, (n, r) => {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(r)) throw new ConfigError(n, 'use 1-64 letters, digits, ".", "_" or "-"')
    return r
  })
  const logLevel = read('log-level', 'info', (n, r) => {
    if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(r)) throw new ConfigError(n, `"${r}" is not one of fatal, error, warn, info, debug, trace, silent`)
    return r
  })
  const dataDir = read('data-dir', './data', (n, r) => {
    if (r.includes('\0')) throw new ConfigError(n, 'contains a NUL byte')
    return r
  })

  const config: GatewayConfig = {
    dataDir: resolve(dataDir),
    mqttHost: read('mqtt-host', '127.0.0.1', host),
    mqttPort: read('mqtt-port', 1883, port),
    adminHost: read('admin-host', '127.0.0.1', host),
    adminPort: read('admin-port', 8080, port),
    logLevel,
    limits,
    drainSeconds: read('drain-seconds', 10, (n, r) => positiveInt(n, r, 1, 600))
  }
  const probePort = read('probe-port', 'off' as number | 'off', (n, r) => r === 'off' ? 'off' : port(n, r))
  if (probePort !== 'off') config.probe = { host: read('probe-host', '127.0.0.1', host), port: probePort }
  if (adminToken !== undefined) config.adminToken = adminToken
  if (nodeId !== undefined) config.nodeId = nodeId
  // MQTTS: on by default; USPGATE_MQTTS_PORT=off disables the listener (the CA and its API stay available).
  const mqttsPort = read('mqtts-port', 8883 as number | 'off', (n, r) => r === 'off' ? 'off' : port(n, r))
  const clientCert = read('mqtts-client-cert', 'optional' as MqttsConfig['clientCert'], (n, r) => {
    if (r !== 'required' && r !== 'optional') throw new ConfigError(n, `"${r}" is not one of required, optional`)
    return r
  })
  const mqttsHost = read('mqtts-host', '127.0.0.1', host)
  if (mqttsPort !== 'off') config.mqtts = { host: mqttsHost, port: mqttsPort, clientCert }
  config.serverSans = read('server-sans', DEFAULT_SERVER_SANS, (n, r) => {
    const sans = r.split(',').map(x => x.trim()).filter(x => x.length > 0)
    if (sans.length === 0) throw new ConfigError(n, 'needs at least one DNS name or IP address')
    for (const san of sans) {
      if (isIP(san) === 0 && !/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/.test(san)) {
        throw new ConfigError(n, `"${san}" is not a DNS name or IP address`)
      }
    }
    return sans
  })
  // WebSocket listeners are off unless a port is given.
  const wsPort = read('ws-port', 'off' as number | 'off', (n, r) => r === 'off' ? 'off' : port(n, r))
  if (wsPort !== 'off') config.ws = { host: read('ws-host', '127.0.0.1', host), port: wsPort }
  const wssPort = read('wss-port', 'off' as number | 'off', (n, r) => r === 'off' ? 'off' : port(n, r))
  if (wssPort !== 'off') config.wss = { host: read('wss-host', '127.0.0.1', host), port: wssPort }
  const proxyTrusted = read('proxy-protocol-trusted', undefined as string[] | undefined, (n, r) => {
    const list = r.split(',').map(x => x.trim()).filter(x => x.length > 0)
    for (const entry of list) {
      const [ip, bits] = entry.split('/')
      const family = isIP(ip ?? '')
      if (family === 0 || (bits !== undefined && (!/^\d{1,3}$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128)))) {
        throw new ConfigError(n, `"${entry}" is not an IP address or CIDR (e.g. 10.0.0.0/8)`)
      }
    }
    if (list.length === 0) throw new ConfigError(n, 'needs at least one address or CIDR')
    return list
  })
  if (proxyTrusted !== undefined) config.proxyTrusted = proxyTrusted
  const crlBaseUrl = read('crl-base-url', undefined as string | undefined, (n, r) => {
    let u: URL
    try { u = new URL(r) } catch { throw new ConfigError(n, 'is not a URL (e.g. http://pki.example.net)') }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(n, 'must be an http:// or https:// URL (relying parties fetch CRLs over HTTP)')
    return r.replace(/\/+$/, '')
  })
  if (crlBaseUrl !== undefined) config.crlBaseUrl = crlBaseUrl
  const pkiMasterKey = read('pki-master-key', undefined as string | undefined, (n, r) => {
    if (r.length < 16) throw new ConfigError(n, 'must be at least 16 characters (it encrypts the CA keys)')
    return r
  })
  if (pkiMasterKey !== undefined) config.pkiMasterKey = pkiMasterKey
  const redisUrl = read('redis-url', undefined as string | undefined, (n, r) => {
    let u: URL
    try { u = new URL(r) } catch { throw new ConfigError(n, 'is not a URL (redis://[user:password@]host:port[/db] or rediss:// for TLS)') }
    if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new ConfigError(n, `scheme ${u.protocol} is not redis: or rediss:`)
    if (u.pathname !== '' && u.pathname !== '/' && !/^\/\d+$/.test(u.pathname)) throw new ConfigError(n, 'the path must be a database number (/0)')
    return r
  })
  if (redisUrl !== undefined) {
    const prefix = read('redis-prefix', 'uspgate:', (n, r) => {
      if (!/^[A-Za-z0-9._:{}-]{1,64}$/.test(r)) throw new ConfigError(n, 'use 1-64 letters, digits, ".", "_", "-", ":", "{" or "}"')
      return r
    })
    config.redis = { url: redisUrl, prefix }
    const pem = (flag: 'redis-tls-ca' | 'redis-tls-cert' | 'redis-tls-key', marker: RegExp): string | undefined => read(flag, undefined as string | undefined, (n, path) => {
      if (!redisUrl.startsWith('rediss:')) throw new ConfigError(n, 'applies to TLS connections only: use a rediss:// URL')
      let text: string
      try { text = readFileSync(path, 'utf8') } catch (err) { throw new ConfigError(n, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`) }
      if (!marker.test(text)) throw new ConfigError(n, `${path} holds no PEM ${flag === 'redis-tls-key' ? 'private key' : 'certificate'}`)
      return text
    })
    const ca = pem('redis-tls-ca', /-----BEGIN CERTIFICATE-----/)
    const cert = pem('redis-tls-cert', /-----BEGIN CERTIFICATE-----/)
    const key = pem('redis-tls-key', /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/)
    if ((cert === undefined) !== (key === undefined)) throw new ConfigError(cert === undefined ? settings['redis-tls-cert'] : settings['redis-tls-key'], 'USPGATE_REDIS_TLS_CERT and USPGATE_REDIS_TLS_KEY go together (a client certificate and its key)')
    if (ca !== undefined || cert !== undefined) config.redis.tls = { ...(ca !== undefined ? { ca } : {}), ...(cert !== undefined ? { cert, key } : {}) }
  }
  return config
}

// ---- settings read by the services that use them (validated the same way)

export const DEFAULT_POLICY_HISTORY = 10

/** USPGATE_POLICY_HISTORY, validated. */
export function policyHistoryFromEnv (env: NodeJS.ProcessEnv = process.env): number {
  const v = env.USPGATE_POLICY_HISTORY
  if (v === undefined || v === '') return DEFAULT_POLICY_HISTORY
  const n = Number(v)
  if (!Number.isInteger(n) || n < 2 || n > 1000) throw new ConfigError('USPGATE_POLICY_HISTORY', `expected an integer 2..1000, got "${v}"`)
  return n
}

/** USPGATE_CANARY_MAX_DENY_MULTIPLE, validated (default 3). */
export function canaryDenyMultipleFromEnv (env: NodeJS.ProcessEnv = process.env): number {
  const v = env.USPGATE_CANARY_MAX_DENY_MULTIPLE
  if (v === undefined || v === '') return 3
  const n = Number(v)
  if (!Number.isFinite(n) || n < 1 || n > 1000) throw new ConfigError('USPGATE_CANARY_MAX_DENY_MULTIPLE', `expected a number 1..1000, got "${v}"`)
  return n
}

export const MASTER_KEY_REQUIRED = 'must be set in cluster mode (USPGATE_REDIS_URL): the CA is shared through Redis and every node needs the same key to decrypt it (the key itself is never stored in Redis)'

/** Cluster mode with the PKI in use: the master key must come from the setting, identical on every node. */
export function requireClusterMasterKey (config: GatewayConfig): void {
  if (config.redis !== undefined && config.pkiMasterKey === undefined) throw new ConfigError('USPGATE_PKI_MASTER_KEY', MASTER_KEY_REQUIRED)
}

// ---- the admin API listener: transport (plain, TLS, mutual TLS) and rate limits (environment only)

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
  /** A socket must finish its TLS handshake (https) and send its first request within this (slow-loris guard). */
  openingTimeoutSeconds?: number
}

export const DEFAULT_ADMIN_SETTINGS: AdminSettings = {
  tls: 'off',
  tokenRate: 50,
  addressRate: 100,
  authFailuresPerMinute: 10,
  authLockSeconds: 60,
  openingTimeoutSeconds: 10
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

// ---- security event export: audit file rotation, syslog, webhook (environment only)

/** USPGATE_AUDIT_*, USPGATE_SYSLOG_*, USPGATE_WEBHOOK_*, validated. */
export function eventExportFromEnv (env: NodeJS.ProcessEnv = process.env): EventExportSettings {
  const get = (name: string): string | undefined => env[name] === '' ? undefined : env[name]
  const num = (name: string, fallback: number, max: number, min = 0): number => {
    const raw = get(name)
    if (raw === undefined) return fallback
    const n = count(name, raw, max)
    if (n < min) throw new ConfigError(name, `${n} is below ${min}`)
    return n
  }
  const out: EventExportSettings = {
    audit: { maxBytes: num('USPGATE_AUDIT_MAX_BYTES', DEFAULT_AUDIT_FILE.maxBytes, 1024 ** 4), keep: num('USPGATE_AUDIT_KEEP', DEFAULT_AUDIT_FILE.keep, 1000, 1) }
  }
  if (out.audit.maxBytes > 0 && out.audit.maxBytes < 4096) throw new ConfigError('USPGATE_AUDIT_MAX_BYTES', 'must be 0 (never rotate) or at least 4096')
  const syslogUrl = get('USPGATE_SYSLOG_URL')
  if (syslogUrl !== undefined) {
    let u: URL
    try { u = new URL(syslogUrl) } catch { throw new ConfigError('USPGATE_SYSLOG_URL', 'is not a URL (udp://host:514, tcp://host:601 or tls://host:6514)') }
    if (!['udp:', 'tcp:', 'tls:'].includes(u.protocol)) throw new ConfigError('USPGATE_SYSLOG_URL', `scheme ${u.protocol} is not udp:, tcp: or tls:`)
    if (u.port === '' || u.hostname === '') throw new ConfigError('USPGATE_SYSLOG_URL', 'needs a host and a port (udp://host:514)')
    const facilityName = get('USPGATE_SYSLOG_FACILITY') ?? 'auth'
    const facility = SYSLOG_FACILITIES[facilityName]
    if (facility === undefined) throw new ConfigError('USPGATE_SYSLOG_FACILITY', `"${facilityName}" is not one of ${Object.keys(SYSLOG_FACILITIES).join(', ')}`)
    const caFile = get('USPGATE_SYSLOG_CA')
    let ca: string | undefined
    if (caFile !== undefined) {
      if (u.protocol !== 'tls:') throw new ConfigError('USPGATE_SYSLOG_CA', 'applies to tls:// only')
      try { ca = readFileSync(caFile, 'utf8') } catch (err) { throw new ConfigError('USPGATE_SYSLOG_CA', `cannot read ${caFile}: ${(err as Error).message}`) }
      if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError('USPGATE_SYSLOG_CA', `${caFile} holds no PEM certificate`)
    }
    out.syslog = { url: syslogUrl, facility, queue: num('USPGATE_SYSLOG_QUEUE', 10_000, 10_000_000, 1), ...(ca !== undefined ? { ca } : {}) }
  }
  const webhookUrl = get('USPGATE_WEBHOOK_URL')
  if (webhookUrl !== undefined) {
    let u: URL
    try { u = new URL(webhookUrl) } catch { throw new ConfigError('USPGATE_WEBHOOK_URL', 'is not a URL (https://siem.example/hook)') }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError('USPGATE_WEBHOOK_URL', `scheme ${u.protocol} is not http: or https:`)
    const token = get('USPGATE_WEBHOOK_TOKEN')
    out.webhook = {
      ...DEFAULT_WEBHOOK,
      url: webhookUrl,
      ...(token !== undefined ? { token } : {}),
      batch: num('USPGATE_WEBHOOK_BATCH', DEFAULT_WEBHOOK.batch, 10_000, 1),
      buffer: num('USPGATE_WEBHOOK_BUFFER', DEFAULT_WEBHOOK.buffer, 10_000_000, 1),
      retryMaxMs: num('USPGATE_WEBHOOK_RETRY_MAX_SECONDS', DEFAULT_WEBHOOK.retryMaxMs / 1000, 86_400, 1) * 1000
    }
  } else if (get('USPGATE_WEBHOOK_TOKEN') !== undefined) {
    throw new ConfigError('USPGATE_WEBHOOK_TOKEN', 'needs USPGATE_WEBHOOK_URL')
  }
  return out
}
