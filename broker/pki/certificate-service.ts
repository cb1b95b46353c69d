// Certificates on the gateway side: the MQTTS listener (mutual TLS), the life
// of the certificate authority (<dataDir>/pki and its master key), revocation
// that reaches live sessions, TLS trust reloads, expiry metrics and warnings,
// and the certificate operations the control plane exposes to the admin API.
// certs/ is the CA and knows nothing of aedes; this module is where they meet.
//
// Who decides: the TLS layer only requests the client certificate
// (rejectUnauthorized: false). identifyPeer then decides — tenant from the CA
// that verifiably signed it, Endpoint ID from its urn:bbf:usp:id: SAN — so
// every refusal is a security event with its own code, and a certificate of
// one tenant's CA can never authenticate as another tenant.
import * as tls from 'node:tls'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { Gauge } from 'prom-client'
import type { Logger } from 'pino'
import {
  CertificateAuthority, CertError, loadOrCreateMasterKey, TLS_MIN_VERSION, type CertErrorCode, type RevocationReason
} from '../../certs/index.ts'
import { ConfigError, DEFAULT_SERVER_SANS, type GatewayConfig, type MqttsConfig } from '../core/config.ts'
import { ControlError, type Actor } from '../control/control-plane.ts'
import { isTenantId, usernameOf } from '../core/identity.ts'
import type { CertIdentity, GatewayClient } from '../mqtt/hooks.ts'
import type { Metrics } from '../core/metrics.ts'
import type { SecurityEvents } from '../core/security-events.ts'
import type { ClientState, SessionHandle, SessionIndex } from '../mqtt/sessions.ts'
import type { StateStore } from '../store/state-store.ts'
import { requireClusterMasterKey } from '../cluster/pki-mirror.ts'

/** Listener name in sessions, metrics and the policy input. */
export const MQTTS_LISTENER = 'mqtts'
/** A client must finish the TLS handshake within this time (slow-loris guard before CONNECT). */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000
/** cert.expiring is raised when a CA or the server certificate has fewer days than this left. */
export const EXPIRY_WARNING_DAYS = 30
/** File in the data dir holding the generated PKI master key (when USPGATE_PKI_MASTER_KEY is not set). */
export const MASTER_KEY_FILE = 'pki-master-key'

const DAY_MS = 86_400_000
const DISCONNECT_NOT_AUTHORIZED = 0x87
/** A revoked peer that does not read its DISCONNECT is cut off at the socket after this. */
const CUT_BACKSTOP_MS = 500
/** Closed cleanly (close_notify + FIN) after a refusal; destroyed if the peer lingers. */
const REFUSE_BACKSTOP_MS = 1000

/** What the service needs from the gateway (kept structural: no import of gateway.ts). */
export interface CertificateHost {
  readonly config: GatewayConfig
  readonly log: Logger
  readonly events: SecurityEvents
  readonly sessions: SessionIndex
  readonly metrics: Metrics
  readonly store: StateStore
}

/** Cluster mode: how the service shares its pki directory through Redis (broker/cluster-pki.ts). */
export interface PkiSync {
  /** Around the first load (init): download the shared PKI, or create and upload it, under the cluster lock. */
  initialize: (init: () => Promise<void>) => Promise<void>
  /** Around every CA mutation: newest shared copy first, upload after, under the cluster lock. */
  mutate: <T>(task: () => Promise<T>) => Promise<T>
  /** Cluster resync (start, reconnect): apply a newer shared copy. */
  resync: () => Promise<void>
}

/** Hands an authenticated-at-TLS socket to aedes (Gateway.handleConnection) and returns its client. */
export type Handoff = (socket: Socket, listener: string) => GatewayClient

/** One mTLS connection that authenticated by certificate, from handshake until the socket closes. */
interface CertConnection {
  socket: tls.TLSSocket
  client: GatewayClient
  /** DER of the client certificate, re-checked whenever trust changes. */
  peer: Buffer
  identity: CertIdentity
  cut: boolean
}

export interface IssuedCertificateView {
  tenant: string
  principal: string
  role: 'agent' | 'controller'
  username: string
  serial: string
  notAfter: string
  certPem: string
  keyPem: string
  chainPem: string
}

export interface CertificateView {
  serial: string
  principal: string
  role: string
  notBefore: string
  notAfter: string
  revoked: boolean
  revokedAt?: string
  revocationReason?: string
}

export interface RevokedCertificateView {
  tenant: string
  serial: string
  revokedAt: string
  reason: string
  issuedByGateway: boolean
  disconnected: number
}

export interface ImportedCaView {
  tenant: string
  fingerprint: string
  subject: string
  notAfter: string
}

export class CertificateService {
  /** Port the MQTTS listener is bound to (0 while off). */
  mqttsPort = 0
  private ca: CertificateAuthority | undefined
  private initializing: Promise<CertificateAuthority> | undefined
  private server: tls.Server | undefined
  /** Raw sockets by remote address:port until their TLS handshake ends (closed on shutdown). */
  private readonly handshaking = new Map<string, Socket>()
  private readonly connections = new Set<CertConnection>()
  /** Connections cut per tenant (revocation responses report how many were disconnected). */
  private readonly cutsByTenant = new Map<string, number>()
  private readonly expiryWarned = new Map<string, number>()
  /** The CA certificates trusted for clients at the last trust change (PEM blocks). */
  private trusted = new Set<string>()
  private expiryTimer: NodeJS.Timeout | undefined
  private closed = false
  /** Cluster mode: the pki directory is shared through Redis (broker/cluster-pki.ts); undefined when embedded. */
  pkiSync: PkiSync | undefined
  private masterKey: string | Buffer | undefined
  private untrack: (() => void) | undefined

  constructor (private readonly host: CertificateHost, private readonly handoff: Handoff) {
    const service = this
    // Read at scrape time, so the gauge follows renewals, new tenant CAs and imports.
    new Gauge({
      name: 'uspgate_cert_expiry_timestamp_seconds',
      help: 'Expiry (notAfter, Unix seconds) of the root CA, the MQTTS server certificate and each tenant / imported CA',
      labelNames: ['name'],
      registers: [host.metrics.registry],
      collect () {
        this.reset()
        for (const e of service.ca?.expiries() ?? []) this.labels(e.name).set(Math.floor(e.notAfter.getTime() / 1000))
      }
    })
  }

  private get mqtts (): MqttsConfig | undefined { return this.host.config.mqtts }

  // ---------------------------------------------------------------- lifecycle

  /**
   * The certificate authority, created or loaded on first use: at start when
   * the MQTTS listener is on, else on the first certificate API call (a
   * gateway without MQTTS pays nothing for the PKI until it is used).
   */
  async authority (): Promise<CertificateAuthority> {
    if (this.ca !== undefined) return this.ca
    this.initializing ??= this.createAuthority().catch((err: unknown) => {
      this.initializing = undefined
      throw err
    })
    return await this.initializing
  }

  private async createAuthority (): Promise<CertificateAuthority> {
    const { config } = this.host
    const keySetting = config.pkiMasterKey !== undefined ? 'USPGATE_PKI_MASTER_KEY' : `USPGATE_PKI_MASTER_KEY (unset, so the key in ${join(config.dataDir, MASTER_KEY_FILE)})`
    let ca: CertificateAuthority
    try {
      if (this.pkiSync !== undefined) requireClusterMasterKey(config) // never a per-node generated key
      const masterKey = config.pkiMasterKey ?? await loadOrCreateMasterKey(join(config.dataDir, MASTER_KEY_FILE))
      const created = ca = new CertificateAuthority({ dir: join(config.dataDir, 'pki'), masterKey })
      const init = async (): Promise<void> => { await created.init({ serverSans: config.serverSans ?? DEFAULT_SERVER_SANS }) }
      // cluster mode: download the shared PKI, or create and upload it, under the Redis lock
      await (this.pkiSync !== undefined ? this.pkiSync.initialize(init) : init())
      this.masterKey = masterKey
    } catch (err) {
      // A wrong key or bad SAN is a settings problem: one clear line at start-up.
      if (err instanceof CertError && (err.code === 'cert.bad_master_key' || err.code === 'cert.weak_master_key')) throw new ConfigError(keySetting, err.message)
      if (err instanceof CertError && err.code === 'cert.invalid_san') throw new ConfigError('USPGATE_SERVER_SANS', err.message)
      throw err
    }
    this.untrack = ca.onTrustChange(() => this.onTrustChange())
    this.ca = ca
    this.trusted = pemBlocks(ca.trustBundlePem())
    this.checkExpiry()
    return ca
  }

  async start (): Promise<void> {
    this.expiryTimer = setInterval(() => { if (this.ca !== undefined) this.checkExpiry() }, DAY_MS)
    this.expiryTimer.unref()
    const mqtts = this.mqtts
    if (mqtts === undefined) return
    const ca = await this.authority()
    const server = tls.createServer({
      ...ca.serverTlsMaterial(),
      minVersion: TLS_MIN_VERSION, // TLS 1.2 or later [TR-369 R-MQTT.48]
      requestCert: true,
      // identifyPeer decides (below), so each refusal carries its own security event code.
      rejectUnauthorized: false,
      handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS
    })
    server.on('connection', (raw: Socket) => {
      const key = `${raw.remoteAddress ?? ''}|${raw.remotePort ?? 0}`
      this.handshaking.set(key, raw)
      raw.once('close', () => { if (this.handshaking.get(key) === raw) this.handshaking.delete(key) })
    })
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      this.handshaking.delete(`${socket.remoteAddress ?? ''}|${socket.remotePort ?? 0}`)
      this.onSecureConnection(socket)
    })
    // Failed handshakes (TLS < 1.2, no shared cipher, timeout, port scans) are not MQTT clients: logged only.
    server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
      this.host.log.debug({ err: err.message, remoteAddress: socket.remoteAddress }, 'mqtts handshake failed')
    })
    server.on('error', err => this.host.log.error({ err }, 'mqtts listener error'))
    this.server = server
    this.mqttsPort = await new Promise<number>((resolve, reject) => {
      server.once('error', reject)
      server.listen(mqtts.port, mqtts.host, () => {
        server.off('error', reject)
        const addr = server.address()
        resolve(typeof addr === 'object' && addr !== null ? addr.port : mqtts.port)
      })
    })
    this.host.log.info({ mqtts: `${mqtts.host}:${this.mqttsPort}`, clientCert: mqtts.clientCert }, 'mqtts listener started')
  }

  /**
   * Stops accepting MQTTS connections and drops those still in their TLS
   * handshake. Connections already handed to aedes are closed by the gateway
   * (MQTT 5 clients get DISCONNECT 0x8B first).
   */
  close (): void {
    if (this.closed) return
    this.closed = true
    if (this.expiryTimer !== undefined) clearInterval(this.expiryTimer)
    this.server?.close()
    for (const raw of this.handshaking.values()) raw.destroy()
    this.handshaking.clear()
  }

  // ----------------------------------------------------------- the listener

  private onSecureConnection (socket: tls.TLSSocket): void {
    const ca = this.ca
    if (ca === undefined || this.closed) { socket.destroy(); return }
    socket.on('error', () => { /* reported by aedes once handed over; before that a reset is not an event */ })
    const peer = socket.getPeerCertificate(true) as tls.DetailedPeerCertificate | null
    const presented = peer !== null && typeof peer === 'object' && Buffer.isBuffer(peer.raw)
    if (!presented && this.mqtts?.clientCert === 'optional') {
      // No certificate: an ordinary username/password login, over TLS.
      this.handoff(socket, MQTTS_LISTENER)
      return
    }
    const remoteAddress = socket.remoteAddress ?? 'unknown'
    const identity = ca.identifyPeer(peer ?? {} as tls.PeerCertificate)
    if (!identity.ok) {
      this.host.metrics.connectResults.labels('refused', identity.code).inc()
      this.host.events.emit({
        code: identity.code,
        tenant: identity.tenant,
        principal: identity.principal,
        remoteAddress,
        action: 'connect',
        reason: identity.reason + (identity.serial !== undefined && !identity.reason.includes(identity.serial) ? ` (serial ${identity.serial})` : '')
      })
      socket.end()
      setTimeout(() => socket.destroy(), REFUSE_BACKSTOP_MS).unref()
      return
    }
    const certIdentity: CertIdentity = { tenant: identity.tenant, principal: identity.principal, role: identity.role, serial: identity.serial }
    const client = this.handoff(socket, MQTTS_LISTENER)
    // Set before aedes reads CONNECT (its first read is on a later tick): the
    // hooks then take the identity from the certificate.
    client.gwCertIdentity = certIdentity
    const conn: CertConnection = { socket, client, peer: peer!.raw, identity: certIdentity, cut: false }
    this.connections.add(conn)
    socket.once('close', () => { this.connections.delete(conn) })
  }

  // --------------------------------------------------------- trust changes

  /** New tenant CA, imported / removed vendor CA, revoked tenant CA. */
  private onTrustChange (): void {
    const ca = this.ca
    if (ca === undefined) return
    // New handshakes use the new trust; established connections keep theirs
    // (and are re-checked below, so a revoked CA still cuts them).
    try {
      this.server?.setSecureContext({ ...ca.serverTlsMaterial(), minVersion: TLS_MIN_VERSION })
    } catch (err) {
      this.host.log.error({ err }, 'mqtts trust reload failed; the previous TLS context stays in use')
    }
    // Only a change that removed trust (revoked tenant CA, removed vendor CA) can
    // invalidate a live connection; a new tenant CA or import cannot.
    const now = pemBlocks(ca.trustBundlePem())
    const shrank = [...this.trusted].some(pem => !now.has(pem))
    this.trusted = now
    if (shrank) setImmediate(() => this.revalidate())
    this.checkExpiry()
  }

  /**
   * Cluster mode: the pki directory now holds a newer shared copy. Loads it into a
   * fresh authority, swaps it in, reloads the TLS context and re-checks every live
   * certificate connection (revoked serial or CA, removed trust → cut).
   */
  async reloadAuthority (): Promise<void> {
    const old = this.ca
    if (old === undefined || this.masterKey === undefined) return // loaded from the new files on first use
    const ca = new CertificateAuthority({ dir: old.dir, masterKey: this.masterKey })
    try {
      await ca.init({ serverSans: this.host.config.serverSans ?? DEFAULT_SERVER_SANS })
    } catch (err) {
      if (err instanceof CertError && err.code === 'cert.bad_master_key') throw new ConfigError('USPGATE_PKI_MASTER_KEY', `${err.message} (the shared PKI was written with another key: every node needs the same one)`)
      throw err
    }
    this.untrack?.()
    this.untrack = ca.onTrustChange(() => this.onTrustChange())
    this.ca = ca
    this.onTrustChange()
    this.revalidate()
  }

  /** Runs a CA mutation; in cluster mode on the newest shared copy, under the PKI lock, uploaded after. */
  private async mutating<T> (task: (ca: CertificateAuthority) => Promise<T>): Promise<T> {
    await this.authority()
    if (this.pkiSync === undefined) return await task(this.ca!)
    return await this.pkiSync.mutate(async () => await task(this.ca!))
  }

  /** Re-identifies every live certificate connection (optionally of one tenant); cuts those no longer accepted. */
  private revalidate (tenant?: string): void {
    const ca = this.ca
    if (ca === undefined) return
    const doomed: CertConnection[] = []
    for (const conn of this.connections) {
      if (conn.cut || (tenant !== undefined && conn.identity.tenant !== tenant)) continue
      if (!ca.identifyPeer(conn.peer).ok) doomed.push(conn)
    }
    this.cut(doomed, state => {
      if (state.auth !== 'certificate' || state.certSerial === undefined || (tenant !== undefined && state.tenant !== tenant)) return false
      return doomed.some(c => c.identity.tenant === state.tenant && c.identity.serial === state.certSerial)
    })
  }

  /**
   * Cuts connections: the session is marked revoked (the hooks refuse
   * anything further at once), MQTT 5 clients get DISCONNECT 0x87, and the
   * socket is destroyed if the peer does not go. Sessions matching `alsoSessions`
   * that are not tracked here (another listener) are cut too.
   */
  private cut (conns: CertConnection[], alsoSessions: (s: ClientState) => boolean): number {
    const handles = new Map<ClientState, SessionHandle>(this.host.sessions.matching(s => s.auth === 'certificate').map(h => [h.state, h]))
    let count = 0
    const cutSocket = (socket: Socket, state: ClientState | undefined, tenant: string): void => {
      count++
      this.cutsByTenant.set(tenant, (this.cutsByTenant.get(tenant) ?? 0) + 1)
      if (state !== undefined) state.revoked = true
      const handle = state !== undefined ? handles.get(state) : undefined
      if (handle !== undefined) handle.disconnect(DISCONNECT_NOT_AUTHORIZED)
      else socket.destroy() // not yet admitted: there is no session to tell
      setTimeout(() => { if (!socket.destroyed) socket.destroy() }, CUT_BACKSTOP_MS).unref()
    }
    const done = new Set<ClientState>()
    for (const conn of conns) {
      if (conn.cut) continue
      conn.cut = true
      const state = conn.client.gw
      if (state !== undefined) done.add(state)
      cutSocket(conn.socket, state, conn.identity.tenant)
    }
    for (const [state, handle] of handles) {
      if (done.has(state) || state.revoked || !alsoSessions(state)) continue
      count++
      this.cutsByTenant.set(state.tenant, (this.cutsByTenant.get(state.tenant) ?? 0) + 1)
      state.revoked = true
      handle.disconnect(DISCONNECT_NOT_AUTHORIZED)
    }
    return count
  }

  private cutCount (tenant: string): number { return this.cutsByTenant.get(tenant) ?? 0 }

  // ---------------------------------------------------------------- expiry

  /** cert.expiring for each CA / server certificate within 30 days of expiry; at most once a day per certificate. */
  private checkExpiry (): void {
    const ca = this.ca
    if (ca === undefined) return
    const now = Date.now()
    for (const e of ca.expiries()) {
      const left = e.notAfter.getTime() - now
      if (left > EXPIRY_WARNING_DAYS * DAY_MS) continue
      const key = `${e.name}|${e.notAfter.toISOString()}`
      const last = this.expiryWarned.get(key)
      if (last !== undefined && now - last < DAY_MS - 3_600_000) continue
      this.expiryWarned.set(key, now)
      const tenant = /^tenant:([^:]+)/.exec(e.name)?.[1]
      const days = Math.floor(left / DAY_MS)
      this.host.events.emit({
        code: 'cert.expiring',
        tenant,
        action: 'expiry-check',
        reason: `${e.name} certificate ${left <= 0 ? 'expired' : 'expires'} at ${e.notAfter.toISOString()} (${days} day(s) left)`
      })
    }
  }

  // ------------------------------------------------- admin operations (API)

  private requireTenant (tenant: string): void {
    if (!isTenantId(tenant) || this.host.store.getTenant(tenant) === undefined) {
      throw new ControlError(404, 'tenant not found', `no tenant "${tenant}"`)
    }
  }

  /** Issues a device certificate from the tenant's issuing CA (created on first use). The key is returned once, never stored. */
  async issue (tenant: string, input: { principal: string, role: string, validDays?: number | undefined }, actor: Actor): Promise<IssuedCertificateView> {
    this.requireTenant(tenant)
    const issued = await this.mutating(async ca => await mapCertErrors(async () => {
      await ca.ensureTenantCA(tenant) // also replaces a revoked issuing CA
      return await ca.issueCertificate({
        tenant, principal: input.principal, role: input.role as 'agent' | 'controller', ...(input.validDays !== undefined ? { validDays: input.validDays } : {})
      })
    }))
    const notAfter = issued.notAfter.toISOString()
    this.host.events.emit({ code: 'cert.issued', tenant, principal: issued.principal, actor: actor.id, action: 'cert.issue', reason: `serial ${issued.serial}, role ${issued.role}, valid until ${notAfter}` })
    return {
      tenant,
      principal: issued.principal,
      role: issued.role,
      username: usernameOf(tenant, issued.principal),
      serial: issued.serial,
      notAfter,
      certPem: issued.certPem,
      keyPem: issued.keyPem,
      chainPem: issued.chainPem
    }
  }

  async list (tenant: string): Promise<CertificateView[]> {
    this.requireTenant(tenant)
    const ca = await this.authority()
    return await mapCertErrors(async () => ca.listCertificates(tenant).map(c => ({
      serial: c.serial,
      principal: c.principal,
      role: c.role,
      notBefore: c.notBefore.toISOString(),
      notAfter: c.notAfter.toISOString(),
      revoked: c.revoked,
      ...(c.revokedAt !== undefined ? { revokedAt: c.revokedAt.toISOString() } : {}),
      ...(c.revocationReason !== undefined ? { revocationReason: c.revocationReason } : {})
    })))
  }

  /** Revokes one serial (CRL, or the deny-list for vendor-CA serials) and cuts its live sessions at once. */
  async revoke (tenant: string, serial: string, reason: RevocationReason | undefined, actor: Actor): Promise<RevokedCertificateView> {
    this.requireTenant(tenant)
    const started = Date.now()
    const info = await this.mutating(async ca => await mapCertErrors(async () => {
      try {
        return await ca.revokeCertificate(tenant, serial, reason)
      } catch (err) {
        // A tenant without any CA yet has no certificates either.
        if (err instanceof CertError && err.code === 'cert.unknown_tenant') throw new CertError('cert.not_found', `tenant ${tenant} has no certificate with serial ${serial}`)
        throw err
      }
    }))
    const already = info.revokedAt.getTime() < started // revocation is idempotent: an earlier one is returned as is
    const conns = [...this.connections].filter(c => c.identity.tenant === tenant && c.identity.serial === info.serial)
    const disconnected = this.cut(conns, s => s.auth === 'certificate' && s.tenant === tenant && s.certSerial === info.serial)
    if (!already) {
      this.host.events.emit({ code: 'cert.revoked', tenant, actor: actor.id, action: 'cert.revoke', reason: `serial ${info.serial} (${info.reason}); ${disconnected} live session(s) disconnected` })
    }
    return { tenant, serial: info.serial, revokedAt: info.revokedAt.toISOString(), reason: info.reason, issuedByGateway: info.issuedByGateway, disconnected }
  }

  /** The tenant CA's CRL (PEM). */
  async crlPem (tenant: string): Promise<string> {
    this.requireTenant(tenant)
    return await this.mutating(async ca => await mapCertErrors(async () => {
      await ca.ensureTenantCA(tenant)
      return await ca.crlPem(tenant) // may re-sign (refresh): shared like any change
    }))
  }

  /** The tenant's issuing CA then the root (what a device needs besides its own certificate). */
  async caChainPem (tenant: string): Promise<string> {
    this.requireTenant(tenant)
    return await this.mutating(async ca => await mapCertErrors(async () => {
      await ca.ensureTenantCA(tenant)
      return ca.caChainPem(tenant)
    }))
  }

  /**
   * The root CA: what a device trusts to verify the MQTTS server. With
   * `clientCas`, every CA whose client certificates the listener accepts
   * (root, tenant CAs, imported vendor CAs) — for review, never as a device's
   * server trust (a vendor CA must not be able to vouch for the gateway).
   */
  async trustBundlePem (options: { clientCas?: boolean } = {}): Promise<string> {
    const ca = await this.authority()
    return options.clientCas === true ? ca.trustBundlePem() : ca.rootCaPem()
  }

  async importCa (tenant: string, pem: string, actor: Actor): Promise<ImportedCaView> {
    this.requireTenant(tenant)
    const info = await this.mutating(async ca => await mapCertErrors(async () => await ca.importTenantCA(tenant, pem)))
    this.host.events.emit({ code: 'ca.imported', tenant, actor: actor.id, action: 'ca.import', reason: `fingerprint ${info.fingerprint}, subject "${info.subject.slice(0, 200)}", valid until ${info.notAfter.toISOString()}` })
    return { tenant, fingerprint: info.fingerprint, subject: info.subject, notAfter: info.notAfter.toISOString() }
  }

  async listImportedCas (tenant: string): Promise<ImportedCaView[]> {
    this.requireTenant(tenant)
    const ca = await this.authority()
    return ca.listImportedCAs(tenant).map(i => ({ tenant, fingerprint: i.fingerprint, subject: i.subject, notAfter: i.notAfter.toISOString() }))
  }

  /** Stops trusting an imported vendor CA; sessions it authenticated are cut. */
  async removeImportedCa (tenant: string, fingerprint: string, actor: Actor): Promise<{ tenant: string, fingerprint: string, disconnected: number }> {
    this.requireTenant(tenant)
    const before = this.cutCount(tenant)
    const removed = await this.mutating(async ca => await mapCertErrors(async () => await ca.removeImportedCA(tenant, fingerprint)))
    if (!removed) throw new ControlError(404, 'not found', `tenant ${tenant} trusts no imported CA with fingerprint ${fingerprint}`)
    this.revalidate(tenant)
    const disconnected = this.cutCount(tenant) - before
    this.host.events.emit({ code: 'ca.removed', tenant, actor: actor.id, action: 'ca.remove', reason: `fingerprint ${fingerprint}; ${disconnected} live session(s) disconnected` })
    return { tenant, fingerprint: fingerprint.replace(/:/g, '').toLowerCase(), disconnected }
  }

  /**
   * Revokes the tenant's issuing CA: every certificate it issued is refused,
   * live sessions that authenticated with one are cut, the TLS trust reloads.
   * The next issue creates a fresh CA.
   */
  async revokeCa (tenant: string, reason: RevocationReason | undefined, actor: Actor): Promise<{ tenant: string, serial: string, revokedAt: string, disconnected: number }> {
    this.requireTenant(tenant)
    const before = this.cutCount(tenant)
    const started = Date.now()
    const r = await this.mutating(async ca => await mapCertErrors(async () => {
      try {
        return await ca.revokeTenantCA(tenant, reason)
      } catch (err) {
        if (err instanceof CertError && err.code === 'cert.unknown_tenant') {
          throw new ControlError(404, 'no issuing CA', `tenant ${tenant} has no issuing CA yet (it is created with the tenant's first certificate)`)
        }
        throw err
      }
    }))
    this.revalidate(tenant)
    const disconnected = this.cutCount(tenant) - before
    if (r.revokedAt.getTime() >= started) { // not a repeat of an earlier revocation
      this.host.events.emit({ code: 'ca.revoked', tenant, actor: actor.id, action: 'ca.revoke', reason: `issuing CA ${r.serial} (${reason ?? 'cACompromise'}); ${disconnected} live session(s) disconnected` })
    }
    return { tenant, serial: r.serial, revokedAt: r.revokedAt.toISOString(), disconnected }
  }
}

function pemBlocks (bundle: string): Set<string> {
  return new Set(bundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [])
}

/** CertError codes → HTTP problem status (ControlError). Anything else is a server fault (500). */
const CERT_ERROR_STATUS: Partial<Record<CertErrorCode, 400 | 404 | 409>> = {
  'cert.invalid_tenant': 400,
  'cert.invalid_principal': 400,
  'cert.invalid_role': 400,
  'cert.invalid_validity': 400,
  'cert.invalid_serial': 400,
  'cert.invalid_reason': 400,
  'cert.invalid_pem': 400,
  'cert.not_a_ca': 400,
  'cert.ca_expired': 400,
  'cert.unknown_tenant': 404,
  'cert.not_found': 404,
  'cert.ca_conflict': 409,
  'cert.tenant_ca_revoked': 409
}

async function mapCertErrors<T> (task: () => Promise<T>): Promise<T> {
  try {
    return await task()
  } catch (err) {
    const status = err instanceof CertError ? CERT_ERROR_STATUS[err.code] : undefined
    if (err instanceof CertError && status !== undefined) {
      throw new ControlError(status, err.code.slice('cert.'.length).replace(/_/g, ' '), err.message)
    }
    throw err
  }
}
