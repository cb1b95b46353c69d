// Starts a real gateway on free ports with its own data dir, and gives tests
// real MQTT clients (mqtt.js) and a real admin API client.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { Gateway, defaultLimits, type GatewayConfig, type Limits } from '../../broker/index.ts'
import type { SecurityEvent } from '../../broker/index.ts'
import { REDACT_PATHS } from '../../broker/core/index.ts'
import { DEFAULT_ADMIN_SETTINGS, DEFAULT_AUDIT_FILE, type AdminSettings, type EventExportSettings } from '../../broker/core/index.ts'

export interface TestGateway {
  gw: Gateway
  dataDir: string
  mqttPort: number
  /** MQTTS (mutual TLS) port when started with `mtls`, else 0. */
  mqttsPort: number
  /** MQTT over WebSocket / secure WebSocket ports when started with `ws` / `wss`, else 0. */
  wsPort: number
  wssPort: number
  adminUrl: string
  token: string
  logText: () => string
  api: (method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<ApiResult>
  /** Closes and starts again on the same data dir; `keepMqttPort`: on the same MQTT port (agents aimed at it come back). */
  restart: (o?: { keepMqttPort?: boolean }) => Promise<TestGateway>
  close: () => Promise<void>
}

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef0123456789'

export interface ApiResult { status: number, body: any, headers: Headers, text: string }

/**
 * One admin API call: `token` defaults to the bootstrap admin token (null: no authorization
 * header); a string body is sent as is, bytes as application/gzip, anything else as JSON.
 */
export async function adminRequest (adminUrl: string, method: string, path: string, o: { token?: string | null, body?: unknown, headers?: Record<string, string> } = {}): Promise<ApiResult> {
  const token = o.token === undefined ? ADMIN_TOKEN : o.token
  const body = o.body
  const isBytes = body instanceof Uint8Array
  const res = await fetch(adminUrl + path, {
    method,
    headers: {
      ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': isBytes ? 'application/gzip' : 'application/json' } : {}),
      ...o.headers
    },
    ...(body !== undefined ? { body: isBytes ? body as unknown as BodyInit : typeof body === 'string' ? body : JSON.stringify(body) } : {})
  })
  const text = await res.text()
  let parsed: unknown = text
  try { parsed = JSON.parse(text) } catch { /* not JSON */ }
  return { status: res.status, body: parsed, headers: res.headers, text }
}

export interface MtlsOptions {
  /** Default 'optional' (password logins still allowed over TLS). */
  clientCert?: 'required' | 'optional'
  serverSans?: string[]
}

export interface StartOptions {
  /** Serve /healthz, /readyz, /metrics on their own listener (USPGATE_PROBE_PORT) on a free port. */
  probe?: boolean
  limits?: Partial<Limits>
  dataDir?: string
  /** The MQTT listener's port (default: a free one). */
  mqttPort?: number
  logLines?: string[]
  mtls?: boolean | MtlsOptions
  redis?: GatewayConfig['redis']
  nodeId?: string
  /** Admin listener settings over the defaults (rate limits, TLS). */
  adminSettings?: Partial<AdminSettings>
  /** Server certificate SANs without an MQTTS listener (the admin TLS listener uses them). */
  serverSans?: string[]
  pkiMasterKey?: string
  /** MQTT over WebSocket (ws://127.0.0.1:<port>/mqtt) and secure WebSocket listeners. */
  ws?: boolean
  wss?: boolean
  /** USPGATE_PROXY_PROTOCOL_TRUSTED */
  proxyTrusted?: string[]
  /** Audit file rotation, syslog and webhook export (default: the defaults, no sinks). */
  eventExport?: EventExportSettings
}

/** Starts a gateway; a gateway that fails to start is closed and the error rethrown. */
export async function startGateway (opts: StartOptions = {}): Promise<TestGateway> {
  const dataDir = opts.dataDir ?? await mkdtemp(join(tmpdir(), 'uspgate-test-'))
  const lines = opts.logLines ?? []
  const sink = new Writable({ write (chunk, _enc, cb) { lines.push(chunk.toString()); cb() } })
  const logger = pino({ level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink)
  const config: GatewayConfig = {
    dataDir,
    mqttHost: '127.0.0.1',
    mqttPort: opts.mqttPort ?? 0,
    adminHost: '127.0.0.1',
    adminPort: 0,
    adminToken: ADMIN_TOKEN,
    nodeId: opts.nodeId ?? 'test-node',
    logLevel: 'info',
    limits: { ...defaultLimits, ...opts.limits },
    // a close waits up to half of it for clients to go: keep tests with frozen clients quick
    drainSeconds: 2,
    ...(opts.probe ? { probe: { host: '127.0.0.1', port: 0 } } : {})
  }
  if (opts.mtls !== undefined && opts.mtls !== false) {
    const m = opts.mtls === true ? {} : opts.mtls
    config.mqtts = { host: '127.0.0.1', port: 0, clientCert: m.clientCert ?? 'optional' }
    config.serverSans = m.serverSans ?? ['localhost', '127.0.0.1']
  }
  if (opts.serverSans !== undefined) config.serverSans = opts.serverSans
  if (opts.redis !== undefined) config.redis = { ...opts.redis }
  if (opts.pkiMasterKey !== undefined) config.pkiMasterKey = opts.pkiMasterKey
  if (opts.ws === true) config.ws = { host: '127.0.0.1', port: 0 }
  if (opts.wss === true) config.wss = { host: '127.0.0.1', port: 0 }
  if (opts.proxyTrusted !== undefined) config.proxyTrusted = opts.proxyTrusted
  const gw = new Gateway(config, {
    logger,
    printAdminToken: false,
    // never the sinks of the environment the tests run in
    eventExport: opts.eventExport ?? { audit: DEFAULT_AUDIT_FILE },
    ...(opts.adminSettings !== undefined ? { adminSettings: { ...DEFAULT_ADMIN_SETTINGS, ...opts.adminSettings } } : {})
  })
  try {
    await gw.start()
  } catch (err) {
    await gw.close().catch(() => {})
    throw err
  }
  const adminUrl = gw.adminUrl
  const t: TestGateway = {
    gw,
    dataDir,
    mqttPort: gw.mqttPort,
    mqttsPort: gw.certificates.mqttsPort,
    wsPort: gw.wsPort,
    wssPort: gw.wssPort,
    adminUrl,
    token: ADMIN_TOKEN,
    logText: () => lines.join(''),
    api: async (method, path, body, headers = {}) => await adminRequest(adminUrl, method, path, { body, headers }),
    async restart (o = {}) {
      const port = gw.mqttPort
      await gw.close()
      return await startGateway({ ...opts, dataDir, logLines: lines, ...(o.keepMqttPort === true ? { mqttPort: port } : {}) })
    },
    async close () {
      await gw.close()
    }
  }
  return t
}

export async function removeDir (dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
}

/** Creates a tenant and a credential; returns the username and secret. */
export async function provision (t: TestGateway, tenant: string, principal: string, role: 'agent' | 'controller' = 'agent'): Promise<{ username: string, secret: string }> {
  const tr = await t.api('POST', '/v1/tenants', { id: tenant })
  if (tr.status !== 201 && tr.status !== 409) throw new Error(`tenant create failed: ${tr.status} ${JSON.stringify(tr.body)}`)
  const cr = await t.api('POST', `/v1/tenants/${tenant}/credentials`, { principal, role })
  if (cr.status !== 201) throw new Error(`credential issue failed: ${cr.status} ${JSON.stringify(cr.body)}`)
  return { username: cr.body.username, secret: cr.body.secret }
}

export interface ConnectOptions extends IClientOptions {
  v?: 4 | 5
}

/** Connects a real mqtt.js client; rejects with the CONNACK error (err.code = reason/return code). */
export function connect (t: TestGateway, opts: ConnectOptions): Promise<MqttClient> {
  const { v = 5, ...rest } = opts
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({
      host: '127.0.0.1',
      port: t.mqttPort,
      protocolVersion: v,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...rest
    })
    const fail = (err: Error): void => { client.end(true); reject(err) }
    client.once('connect', () => { client.off('error', fail); resolve(client) })
    client.once('error', fail)
    client.once('close', () => fail(Object.assign(new Error('closed before CONNACK'), { code: 'closed' })))
  })
}

/** The CONNACK reason (MQTT 5) or return code (3.1.1) of a refused connect. */
export async function refusedWith (t: TestGateway, opts: ConnectOptions): Promise<number | string> {
  try {
    const c = await connect(t, opts)
    c.end(true)
  } catch (err) {
    return (err as { code: number | string }).code
  }
  throw new Error('connect was accepted')
}

/** Polls `fn` (sync or async) every 20 ms until it returns a truthy value, which is returned. */
export async function waitFor<T> (fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 3000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 20))
  }
}

export async function waitForEvent (t: TestGateway, match: Partial<Omit<SecurityEvent, 'code'>> & { code?: string }, timeoutMs = 3000): Promise<SecurityEvent> {
  return await waitFor(() => t.gw.events.query({ limit: 1000 }).find(e =>
    Object.entries(match).every(([k, v]) => (e as unknown as Record<string, unknown>)[k] === v)), timeoutMs, `security event ${JSON.stringify(match)}`)
}

/** Resolves at CONNACK of a client made with mqtt.connect (handlers can be attached before it). */
export function untilConnected (m: MqttClient): Promise<void> {
  return new Promise((resolve, reject) => {
    m.once('connect', () => resolve())
    m.once('error', reject)
    m.once('close', () => reject(new Error('closed before CONNACK')))
  })
}

export function closeClient (c: MqttClient | undefined): Promise<void> {
  return new Promise(resolve => { if (!c) return resolve(); c.end(true, {}, () => resolve()) })
}

export const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))
