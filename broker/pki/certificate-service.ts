// Certificates as the control plane offers them to the admin API: device certificates, tenant CAs,
// CA trust and revocation that reaches live sessions. Composes the CA's life (authority.ts) and the
// MQTTS listener (mqtts-listener.ts). certs/ is the CA and knows nothing of aedes; broker/pki is
// where they meet.
import { CertError, toPkcs12, type CertificateAuthority, type CertErrorCode, type RevocationReason, type SignedCertificate } from '../../certs/index.ts'
import { ControlError, isTenantId, usernameOf, type Actor, type GatewayConfig, type Metrics, type SecurityEvents } from '../core/index.ts'
import type { MqttListeners, SessionIndex } from '../mqtt/index.ts'
import type { StateStore } from '../store/index.ts'
import { AuthorityHolder, type PkiSync } from './authority.ts'
import { MqttsListener } from './mqtts-listener.ts'
import type { Logger } from 'pino'

/** What the service needs from the gateway (kept structural: no import of gateway.ts). */
export interface CertificateHost {
  readonly config: GatewayConfig
  readonly log: Logger
  readonly events: SecurityEvents
  readonly sessions: SessionIndex
  readonly metrics: Metrics
  readonly store: StateStore
}

export interface IssuedCertificateView {
  tenant: string
  principal: string
  role: 'agent' | 'controller'
  username: string
  serial: string
  notAfter: string
  certPem: string
  /** Absent when the device sent a CSR (it keeps its own key). */
  keyPem?: string
  chainPem: string
  /** CRL distribution point written into the certificate. */
  crlUrl?: string
  /** PKCS#12 bundle (certificate + key + chain), base64, when a p12 password was given. */
  p12?: string
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
  private readonly holder: AuthorityHolder
  /** The MQTTS listener, when configured (USPGATE_MQTTS_PORT). */
  private readonly listener: MqttsListener | undefined

  constructor (private readonly host: CertificateHost, listeners: Pick<MqttListeners, 'accept' | 'guardedServer'>) {
    this.holder = new AuthorityHolder(host.config, host.events, host.metrics)
    const mqtts = host.config.mqtts
    this.listener = mqtts === undefined ? undefined : new MqttsListener({ settings: mqtts, log: host.log, events: host.events, metrics: host.metrics, sessions: host.sessions, handoff: listeners.accept, handshakeTimeoutMs: host.config.limits.connectTimeoutSeconds * 1000, frontServer: (name, next) => listeners.guardedServer(name, next, host.log) })
    this.holder.onTrustChange = ca => this.listener?.trustChanged(ca)
  }

  /**
   * Base URL of the unauthenticated CRL endpoint (`<base>/crl/<tenant>.crl`), written into every
   * device certificate as its CRL distribution point. USPGATE_CRL_BASE_URL, else the admin listener's URL.
   */
  crlBaseUrl: string | undefined

  /** Port the MQTTS listener is bound to (0 while off). */
  get mqttsPort (): number { return this.listener?.port ?? 0 }

  /** Cluster mode: the pki directory is shared through Redis (broker/cluster/pki-mirror.ts); undefined when embedded. */
  get pkiSync (): PkiSync | undefined { return this.holder.pkiSync }
  set pkiSync (sync: PkiSync | undefined) { this.holder.pkiSync = sync }

  /** The certificate authority, created or loaded on first use. */
  async authority (): Promise<CertificateAuthority> { return await this.holder.authority() }

  /** The MQTTS listener (when configured) and the daily CA expiry checks. */
  async start (): Promise<void> {
    this.holder.startExpiryChecks()
    if (this.listener !== undefined) await this.listener.start(await this.holder.authority())
  }

  close (): void {
    this.holder.stop()
    this.listener?.close()
  }

  /**
   * Cluster mode: the pki directory now holds a newer shared copy. Loads it, reloads the TLS
   * context and re-checks every live certificate connection (revoked serial or CA, removed trust → cut).
   */
  async reloadAuthority (): Promise<void> {
    const ca = await this.holder.reload()
    if (ca === undefined) return
    this.listener?.trustChanged(ca)
    this.listener?.revalidate()
  }

  /** Whether a client certificate (DER) is still accepted (false without an MQTTS listener: no certificate session exists then). */
  peerTrusted (peer: Buffer): boolean { return this.listener?.peerTrusted(peer) ?? false }

  private cutCount (tenant: string): number { return this.listener?.cutCount(tenant) ?? 0 }

  // ------------------------------------------------- admin operations (API)

  private requireTenant (tenant: string): void {
    if (!isTenantId(tenant) || this.host.store.getTenant(tenant) === undefined) {
      throw new ControlError(404, 'tenant not found', `no tenant "${tenant}"`)
    }
  }

  /**
   * Issues a device certificate from the tenant's issuing CA (created on first use). The key is
   * returned once, never stored; with `p12Password` also as a PKCS#12 bundle.
   */
  async issue (tenant: string, input: { principal: string, role: string, validDays?: number | undefined, p12Password?: string | undefined }, actor: Actor): Promise<IssuedCertificateView & { keyPem: string }> {
    this.requireTenant(tenant)
    const crlUrl = this.crlUrlOf(tenant)
    const issued = await this.holder.mutating(async ca => await mapCertErrors(async () => {
      await ca.ensureTenantCA(tenant) // also replaces a revoked issuing CA
      return await ca.issueCertificate({ tenant, principal: input.principal, role: input.role as 'agent' | 'controller', ...validity(input), ...(crlUrl ? { crlUrl } : {}) })
    }))
    const view = this.issuedView(tenant, issued, actor, 'generated key')
    if (input.p12Password !== undefined) {
      view.p12 = toPkcs12({ certPem: issued.certPem, keyPem: issued.keyPem, chainPem: issued.chainPem, password: input.p12Password, friendlyName: usernameOf(tenant, issued.principal) }).toString('base64')
    }
    return { ...view, keyPem: issued.keyPem }
  }

  /** Certifies the public key of a device's PKCS#10 request (the device keeps its key); same identity rules as issue. */
  async signCsr (tenant: string, input: { principal: string, role: string, csr: string, validDays?: number | undefined }, actor: Actor): Promise<IssuedCertificateView> {
    this.requireTenant(tenant)
    const crlUrl = this.crlUrlOf(tenant)
    const signed = await this.holder.mutating(async ca => await mapCertErrors(async () => {
      await ca.ensureTenantCA(tenant)
      return await ca.signCertificateRequest({ tenant, principal: input.principal, role: input.role as 'agent' | 'controller', csrPem: input.csr, ...validity(input), ...(crlUrl ? { crlUrl } : {}) })
    }))
    return this.issuedView(tenant, signed, actor, 'CSR')
  }

  /**
   * The CRL of a tenant's issuing CA for anonymous relying parties: unlike crlPem it never creates
   * the CA (an unauthenticated request changes nothing); 404 while the tenant has none.
   */
  async publishedCrlPem (tenant: string): Promise<string> {
    this.requireTenant(tenant)
    return await this.holder.mutating(async ca => await mapCertErrors(async () => await ca.crlPem(tenant))) // may re-sign a stale CRL
  }

  /** The root CA's CRL (PEM): revoked tenant issuing CAs. */
  async rootCrlPem (): Promise<string> {
    return await this.holder.mutating(async ca => await ca.rootCrlPem())
  }

  private crlUrlOf (tenant: string): string | undefined {
    return this.crlBaseUrl === undefined ? undefined : `${this.crlBaseUrl.replace(/\/+$/, '')}/crl/${tenant}.crl`
  }

  private issuedView (tenant: string, c: SignedCertificate, actor: Actor, how: string): IssuedCertificateView {
    const notAfter = c.notAfter.toISOString()
    this.host.events.emit({ code: 'cert.issued', tenant, principal: c.principal, actor: actor.id, action: 'cert.issue', reason: `serial ${c.serial}, role ${c.role}, ${how}, valid until ${notAfter}` })
    const crlUrl = this.crlUrlOf(tenant)
    return {
      tenant,
      principal: c.principal,
      role: c.role,
      username: usernameOf(tenant, c.principal),
      serial: c.serial,
      notAfter,
      certPem: c.certPem,
      chainPem: c.chainPem,
      ...(crlUrl ? { crlUrl } : {})
    }
  }

  async list (tenant: string): Promise<CertificateView[]> {
    this.requireTenant(tenant)
    const ca = await this.holder.authority()
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
    const info = await this.holder.mutating(async ca => await mapCertErrors(async () => {
      try {
        return await ca.revokeCertificate(tenant, serial, reason)
      } catch (err) {
        // A tenant without any CA yet has no certificates either.
        if (err instanceof CertError && err.code === 'cert.unknown_tenant') throw new CertError('cert.not_found', `tenant ${tenant} has no certificate with serial ${serial}`)
        throw err
      }
    }))
    const already = info.revokedAt.getTime() < started // revocation is idempotent: an earlier one is returned as is
    const disconnected = this.listener?.cutSerial(tenant, info.serial) ?? 0
    if (!already) {
      this.host.events.emit({ code: 'cert.revoked', tenant, actor: actor.id, action: 'cert.revoke', reason: `serial ${info.serial} (${info.reason}); ${disconnected} live session(s) disconnected` })
    }
    return { tenant, serial: info.serial, revokedAt: info.revokedAt.toISOString(), reason: info.reason, issuedByGateway: info.issuedByGateway, disconnected }
  }

  /** The tenant CA's CRL (PEM). */
  async crlPem (tenant: string): Promise<string> {
    this.requireTenant(tenant)
    return await this.holder.mutating(async ca => await mapCertErrors(async () => {
      await ca.ensureTenantCA(tenant)
      return await ca.crlPem(tenant) // may re-sign (refresh): shared like any change
    }))
  }

  /** The tenant's issuing CA then the root (what a device needs besides its own certificate). */
  async caChainPem (tenant: string): Promise<string> {
    this.requireTenant(tenant)
    return await this.holder.mutating(async ca => await mapCertErrors(async () => {
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
    const ca = await this.holder.authority()
    return options.clientCas === true ? ca.trustBundlePem() : ca.rootCaPem()
  }

  async importCa (tenant: string, pem: string, actor: Actor): Promise<ImportedCaView> {
    this.requireTenant(tenant)
    const info = await this.holder.mutating(async ca => await mapCertErrors(async () => await ca.importTenantCA(tenant, pem)))
    this.host.events.emit({ code: 'ca.imported', tenant, actor: actor.id, action: 'ca.import', reason: `fingerprint ${info.fingerprint}, subject "${info.subject.slice(0, 200)}", valid until ${info.notAfter.toISOString()}` })
    return { tenant, fingerprint: info.fingerprint, subject: info.subject, notAfter: info.notAfter.toISOString() }
  }

  async listImportedCas (tenant: string): Promise<ImportedCaView[]> {
    this.requireTenant(tenant)
    const ca = await this.holder.authority()
    return ca.listImportedCAs(tenant).map(i => ({ tenant, fingerprint: i.fingerprint, subject: i.subject, notAfter: i.notAfter.toISOString() }))
  }

  /** Stops trusting an imported vendor CA; sessions it authenticated are cut. */
  async removeImportedCa (tenant: string, fingerprint: string, actor: Actor): Promise<{ tenant: string, fingerprint: string, disconnected: number }> {
    this.requireTenant(tenant)
    const before = this.cutCount(tenant)
    const removed = await this.holder.mutating(async ca => await mapCertErrors(async () => await ca.removeImportedCA(tenant, fingerprint)))
    if (!removed) throw new ControlError(404, 'not found', `tenant ${tenant} trusts no imported CA with fingerprint ${fingerprint}`)
    this.listener?.revalidate(tenant)
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
    const r = await this.holder.mutating(async ca => await mapCertErrors(async () => {
      try {
        return await ca.revokeTenantCA(tenant, reason)
      } catch (err) {
        if (err instanceof CertError && err.code === 'cert.unknown_tenant') {
          throw new ControlError(404, 'no issuing CA', `tenant ${tenant} has no issuing CA yet (it is created with the tenant's first certificate)`)
        }
        throw err
      }
    }))
    this.listener?.revalidate(tenant)
    const disconnected = this.cutCount(tenant) - before
    if (r.revokedAt.getTime() >= started) { // not a repeat of an earlier revocation
      this.host.events.emit({ code: 'ca.revoked', tenant, actor: actor.id, action: 'ca.revoke', reason: `issuing CA ${r.serial} (${reason ?? 'cACompromise'}); ${disconnected} live session(s) disconnected` })
    }
    return { tenant, serial: r.serial, revokedAt: r.revokedAt.toISOString(), disconnected }
  }
}

function validity (input: { validDays?: number | undefined }): { validDays?: number } {
  return input.validDays !== undefined ? { validDays: input.validDays } : {}
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
  'cert.invalid_csr': 400,
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
