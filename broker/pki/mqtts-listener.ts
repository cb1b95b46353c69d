// The MQTTS listener (mutual TLS): who decides is identifyPeer, not the TLS layer — the tenant from
// the CA that verifiably signed the client certificate, the Endpoint ID from its urn:bbf:usp:id: SAN —
// so every refusal is a security event with its own code, and a certificate of one tenant's CA can
// never authenticate as another tenant. Live certificate connections are re-checked whenever trust
// shrinks and cut with the sessions' one cut primitive.
import * as tls from 'node:tls'
import type { Server as NetServer, Socket } from 'node:net'
import type { Logger } from 'pino'
import { TLS_MIN_VERSION, type CertificateAuthority } from '../../certs/index.ts'
import { listen, type Metrics, type MqttsConfig, type SecurityEvents } from '../core/index.ts'
import { prefacedStream, type CertIdentity, type ClientState, type GatewayClient, type Handoff, type OnConnection, type SessionHandle, type SessionIndex } from '../mqtt/index.ts'

/** Listener name in sessions, metrics and the policy input. */
export const MQTTS_LISTENER = 'mqtts'
/** A client must finish the TLS handshake within this time (slow-loris guard before CONNECT). */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000
/** Closed cleanly (close_notify + FIN) after a refusal; destroyed if the peer lingers. */
const REFUSE_BACKSTOP_MS = 1000

/** One mTLS connection that authenticated by certificate, from handshake until the socket closes. */
interface CertConnection {
  socket: tls.TLSSocket
  client: GatewayClient
  /** DER of the client certificate, re-checked whenever trust changes. */
  peer: Buffer
  identity: CertIdentity
  cut: boolean
}

export interface MqttsListenerDeps {
  settings: MqttsConfig
  log: Logger
  events: SecurityEvents
  metrics: Metrics
  sessions: SessionIndex
  handoff: Handoff
  /** The listening socket in front of TLS (reads PROXY protocol headers when configured; broker/mqtt/listeners.ts). */
  frontServer: (listener: string, next: OnConnection) => NetServer
  /** TLS handshake deadline (default TLS_HANDSHAKE_TIMEOUT_MS; the gateway passes its connect timeout). */
  handshakeTimeoutMs?: number | undefined
}

export class MqttsListener {
  port = 0
  /** The TLS context of new handshakes (replaced when trust changes). */
  private context: tls.SecureContext | undefined
  private front: NetServer | undefined
  private ca: CertificateAuthority | undefined
  /** Raw sockets until their TLS handshake ends (closed on shutdown). */
  private readonly handshaking = new Set<Socket>()
  private readonly connections = new Set<CertConnection>()
  /** Connections cut per tenant (revocation responses report how many were disconnected). */
  private readonly cutsByTenant = new Map<string, number>()
  /** The CA certificates trusted for clients at the last trust change (PEM blocks). */
  private trusted = new Set<string>()
  private closed = false

  constructor (private readonly deps: MqttsListenerDeps) {}

  async start (ca: CertificateAuthority): Promise<void> {
    this.ca = ca
    this.trusted = pemBlocks(ca.trustBundlePem())
    this.context = secureContextOf(ca)
    const { settings, log } = this.deps
    // TLS starts after the PROXY protocol gate (if any) has read its header off the raw socket
    this.front = this.deps.frontServer(MQTTS_LISTENER, (raw, remote, rest) => this.handshake(raw, remote, rest))
    this.port = await listen(this.front, settings.host, settings.port)
    log.info({ mqtts: `${settings.host}:${this.port}`, clientCert: settings.clientCert }, 'mqtts listener started')
  }

  /** Server side of one TLS handshake, with a deadline (slow-loris guard before CONNECT). */
  private handshake (raw: Socket, remote: string, rest: Buffer | undefined): void {
    if (this.closed || this.context === undefined) { raw.destroy(); return }
    const socket = new tls.TLSSocket(rest === undefined ? raw : prefacedStream(raw, rest, remote), {
      isServer: true,
      secureContext: this.context,
      requestCert: true,
      // identifyPeer decides (onSecureConnection), so each refusal carries its own security event code.
      rejectUnauthorized: false
    })
    this.handshaking.add(raw)
    const done = (): void => { clearTimeout(timer); this.handshaking.delete(raw) }
    const timer = setTimeout(() => {
      // a peer that never completes the handshake holds a file descriptor: closed, and reported (issue 14)
      this.deps.events.emit({ code: 'limits.handshake_timeout', remoteAddress: remote, action: MQTTS_LISTENER, reason: `TLS handshake not completed within ${(this.deps.handshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS) / 1000}s; socket closed` })
      socket.destroy()
      raw.destroy()
    }, this.deps.handshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS)
    timer.unref()
    raw.once('close', done)
    // Failed handshakes (TLS < 1.2, no shared cipher, timeout, port scans) are not MQTT clients: logged only.
    socket.once('error', (err: Error) => {
      if (!this.handshaking.has(raw)) return
      done()
      this.deps.log.debug({ err: err.message, remoteAddress: remote }, 'mqtts handshake failed')
      raw.destroy()
    })
    socket.once('secure', () => {
      done()
      this.onSecureConnection(socket, remote)
    })
  }

  /**
   * Stops accepting MQTTS connections and drops those still in their TLS handshake. Connections
   * already handed to aedes are closed by the gateway (MQTT 5 clients get DISCONNECT 0x8B first).
   */
  close (): void {
    if (this.closed) return
    this.closed = true
    this.front?.close()
    for (const raw of this.handshaking) raw.destroy()
    this.handshaking.clear()
  }

  private onSecureConnection (socket: tls.TLSSocket, remoteAddress: string): void {
    const ca = this.ca
    if (ca === undefined || this.closed) { socket.destroy(); return }
    socket.on('error', () => { /* reported by aedes once handed over; before that a reset is not an event */ })
    const peer = socket.getPeerCertificate(true) as tls.DetailedPeerCertificate | null
    const presented = peer !== null && typeof peer === 'object' && Buffer.isBuffer(peer.raw)
    if (!presented && this.deps.settings.clientCert === 'optional') {
      // No certificate: an ordinary username/password login, over TLS.
      this.deps.handoff(socket, MQTTS_LISTENER, remoteAddress)
      return
    }
    const identity = ca.identifyPeer(peer ?? {} as tls.PeerCertificate)
    if (!identity.ok) {
      this.deps.metrics.connectResults.labels('refused', identity.code).inc()
      this.deps.events.emit({
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
    const certIdentity: CertIdentity = { tenant: identity.tenant, principal: identity.principal, role: identity.role, serial: identity.serial, peer: peer!.raw }
    const client = this.deps.handoff(socket, MQTTS_LISTENER, remoteAddress)
    // Set before aedes reads CONNECT (its first read is on a later tick): the
    // hooks then take the identity from the certificate.
    client.gwCertIdentity = certIdentity
    const conn: CertConnection = { socket, client, peer: peer!.raw, identity: certIdentity, cut: false }
    this.connections.add(conn)
    socket.once('close', () => { this.connections.delete(conn) })
  }

  /** New tenant CA, imported / removed vendor CA, revoked tenant CA, or a reloaded authority. */
  trustChanged (ca: CertificateAuthority): void {
    this.ca = ca
    // New handshakes use the new trust; established connections keep theirs
    // (and are re-checked below, so a revoked CA still cuts them).
    try {
      this.context = secureContextOf(ca)
    } catch (err) {
      this.deps.log.error({ err }, 'mqtts trust reload failed; the previous TLS context stays in use')
    }
    // Only a change that removed trust (revoked tenant CA, removed vendor CA) can
    // invalidate a live connection; a new tenant CA or import cannot.
    const now = pemBlocks(ca.trustBundlePem())
    const shrank = [...this.trusted].some(pem => !now.has(pem))
    this.trusted = now
    if (shrank) setImmediate(() => this.revalidate())
  }

  /** Re-identifies every live certificate connection (optionally of one tenant); cuts those no longer accepted. */
  revalidate (tenant?: string): void {
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
    // sessions whose connection already ended keep nothing either (delayed will, subscriptions, queue)
    this.deps.sessions.revokeOffline(s => s.certPeer !== undefined && (tenant === undefined || s.tenant === tenant) && !ca.identifyPeer(s.certPeer).ok)
  }

  /** Whether a certificate (DER) is still accepted now (a will re-checks its connection's certificate). */
  peerTrusted (peer: Buffer): boolean {
    return this.ca?.identifyPeer(peer).ok === true
  }

  /** Cuts every live session of one certificate serial (on any listener); returns how many. */
  cutSerial (tenant: string, serial: string): number {
    const conns = [...this.connections].filter(c => c.identity.tenant === tenant && c.identity.serial === serial)
    const cut = this.cut(conns, s => s.auth === 'certificate' && s.tenant === tenant && s.certSerial === serial)
    this.deps.sessions.revokeOffline(s => s.tenant === tenant && s.certSerial === serial)
    return cut
  }

  cutCount (tenant: string): number { return this.cutsByTenant.get(tenant) ?? 0 }

  /**
   * Cuts connections with the sessions' cut primitive; a connection not yet admitted (no session)
   * is destroyed. Sessions matching `alsoSessions` that are not tracked here (another listener)
   * are cut too.
   */
  private cut (conns: CertConnection[], alsoSessions: (s: ClientState) => boolean): number {
    const { sessions } = this.deps
    const handles = new Map<ClientState, SessionHandle>(sessions.matching(s => s.auth === 'certificate').map(h => [h.state, h]))
    let count = 0
    const counted = (tenant: string): void => {
      count++
      this.cutsByTenant.set(tenant, (this.cutsByTenant.get(tenant) ?? 0) + 1)
    }
    const done = new Set<ClientState>()
    for (const conn of conns) {
      if (conn.cut) continue
      conn.cut = true
      counted(conn.identity.tenant)
      const state = conn.client.gw
      const handle = state !== undefined ? handles.get(state) : undefined
      if (state !== undefined) done.add(state)
      if (handle !== undefined) sessions.cut(handle)
      else {
        if (state !== undefined) state.revoked = true
        conn.socket.destroy() // not yet admitted: there is no session to tell
      }
    }
    for (const [state, handle] of handles) {
      if (done.has(state) || state.revoked || !alsoSessions(state)) continue
      counted(state.tenant)
      sessions.cut(handle)
    }
    return count
  }
}

/** TLS 1.2 or later [TR-369 R-MQTT.48]; the server certificate and every CA trusted for clients. */
function secureContextOf (ca: CertificateAuthority): tls.SecureContext {
  return tls.createSecureContext({ ...ca.serverTlsMaterial(), minVersion: TLS_MIN_VERSION })
}

function pemBlocks (bundle: string): Set<string> {
  return new Set(bundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [])
}
