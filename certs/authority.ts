// The gateway's certificate authority: one root CA, the MQTTS server
// certificate, one issuing CA per tenant, device certificates, CA trust
// (imported vendor CAs) and revocation (CRLs + a serial deny-list).
//
// Hierarchy:   root CA ──┬── server certificate (serverAuth)
//                        └── tenant issuing CA (pathLen 0) ── device certificates (clientAuth)
//              imported vendor CA (trusted for one tenant) ── vendor device certificates
//
// Everything lives under one directory (normally <dataDir>/pki), written
// atomically with mode 0600; CA and server keys are encrypted with the master
// key. Device keys are returned once and never stored. Mutations are
// serialized through one queue, so concurrent calls cannot lose updates.
import { join } from 'node:path'
import { unlink } from 'node:fs/promises'
import * as x509 from './x509-lib.ts'
import { CertError } from './errors.ts'
import { ensurePrivateDir, readTextIfExists, writeFileAtomic } from './files.ts'
import {
  checkMasterKey, decryptPrivateKeyPem, encryptPrivateKeyPem, exportPlainPrivateKeyPem, generateKeyPair, importSigningKey
} from './keys.ts'
import {
  checkEndpointId, checkRole, checkTenant, classifyServerSans, deviceSubject, rootSubject, serverSubject, tenantCaSubject
} from './identity.ts'
import {
  addDays, createDeviceCertificate, createRootCertificate, createServerCertificate, createTenantCaCertificate, type Issuer
} from './builders.ts'
import {
  checkReason, checkSerial, createCrl, crlToPem, normalizeSerial, type CrlEntry, type RevocationReason
} from './revocation.ts'
import { fingerprintOf, loadCert, parseImportedCa, sameKey, type LoadedCa, type LoadedCert } from './material.ts'
import { csrPublicKey } from './csr.ts'
import { identifyPeerCertificate, type PeerCertificateInput, type PeerIdentity, type TrustAnchor } from './peer.ts'
import {
  emptyTenant, loadState, saveState, type PkiState, type Revocation, type TenantRecord
} from './state.ts'
import {
  CRL_REFRESH_DAYS, CRL_VALIDITY_DAYS, DEFAULT_DEVICE_VALIDITY_DAYS, MAX_DEVICE_VALIDITY_DAYS, NOT_BEFORE_SKEW_MS,
  ROOT_CA_VALIDITY_DAYS, SERVER_CERT_RENEW_DAYS, SERVER_CERT_VALIDITY_DAYS, TENANT_CA_VALIDITY_DAYS, TLS_MIN_VERSION,
  type CertificateAuthorityOptions, type CertificateExpiry, type CertificateInfo, type ImportedCaInfo, type InitOptions,
  type IssueCertificateRequest, type IssuedCertificate, type RevocationInfo, type ServerTlsMaterial, type SignRequest, type SignedCertificate
} from './types.ts'

interface CachedCrl {
  pem: string
  thisUpdate: Date
  issuerSerial: string
}

const ROOT_CERT_FILE = 'root-ca.crt.pem'
const ROOT_KEY_FILE = 'root-ca.key.pem'
const ROOT_CRL_FILE = 'root-ca.crl.pem'
const SERVER_CERT_FILE = 'server.crt.pem'
const SERVER_KEY_FILE = 'server.key.pem'
const TENANT_CRL_FILE = 'crl.pem'

export class CertificateAuthority {
  readonly dir: string
  readonly #masterKey: string | Buffer
  readonly #clock: () => Date
  #queue: Promise<unknown> = Promise.resolve()
  #listeners = new Set<() => void>()

  #state: PkiState | undefined
  #root: LoadedCa | undefined
  #server: { cert: LoadedCert, keyPem: string } | undefined
  #tenantCas = new Map<string, LoadedCa[]>()
  #imported = new Map<string, LoadedCert[]>()
  #crls = new Map<string, CachedCrl>() // tenant → CRL; '' → root CRL
  #anchors: TrustAnchor[] = []
  #revokedByTenant = new Set<string>() // `${tenant}/${serial}`
  #revokedSerials = new Set<string>()

  constructor (options: CertificateAuthorityOptions) {
    this.dir = options.dir
    this.#masterKey = checkMasterKey(options.masterKey)
    this.#clock = options.clock ?? (() => new Date())
  }

  // ---------------------------------------------------------------- lifecycle

  /** Creates the root CA and server certificate if absent, else loads everything. Idempotent. */
  async init (options: InitOptions): Promise<void> {
    const sans = classifyServerSans(options.serverSans)
    await this.#exclusive(async () => {
      this.#state = undefined // until everything loaded: a failed init leaves the authority unusable, not half-loaded
      this.#tenantCas = new Map()
      this.#imported = new Map()
      this.#crls = new Map()
      await ensurePrivateDir(this.dir)
      const state = await loadState(this.dir)
      this.#root = await this.#loadOrCreateRoot(state)
      for (const [tenant, record] of Object.entries(state.tenants)) await this.#loadTenant(tenant, record)
      await this.#loadOrCreateServer(state, sans.map((s) => s.value))
      await this.#loadCrl(state, '', ROOT_CRL_FILE)
      for (const tenant of Object.keys(state.tenants)) await this.#loadCrl(state, tenant, join('tenants', tenant, TENANT_CRL_FILE))
      this.#state = state
      this.#reindex()
      this.#notify() // a re-init may have re-issued the server certificate
    })
  }

  /**
   * Called after anything that changes serverTlsMaterial() (new tenant CA,
   * imported or removed CA, revoked tenant CA), so the listener can call
   * tls.Server#setSecureContext. Returns an unsubscribe function.
   */
  onTrustChange (listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  // ------------------------------------------------------------- tenant CAs

  /** The tenant's issuing CA, created under the root if the tenant has none (or only a revoked one). */
  async ensureTenantCA (tenant: string): Promise<{ tenant: string, serial: string, notAfter: Date, created: boolean }> {
    checkTenant(tenant)
    return await this.#exclusive(async () => {
      const state = this.#requireState()
      const current = this.#currentCa(tenant)
      const record = state.tenants[tenant]
      if (current !== undefined && record?.cas.at(-1)?.revocation === undefined) {
        return { tenant, serial: current.serial, notAfter: current.cert.notAfter, created: false }
      }
      const root = await this.#rootIssuer()
      const keys = await generateKeyPair()
      const now = this.#clock()
      const cert = await createTenantCaCertificate({
        subject: tenantCaSubject(tenant),
        publicKey: keys.publicKey,
        notBefore: now,
        notAfter: addDays(now, TENANT_CA_VALIDITY_DAYS)
      }, root)
      const serial = normalizeSerial(cert.serialNumber)
      const keyFile = join('tenants', tenant, `ca-${serial}.key.pem`)
      await writeFileAtomic(join(this.dir, keyFile), await encryptPrivateKeyPem(keys.privateKey, this.#masterKey))
      await writeFileAtomic(join(this.dir, 'tenants', tenant, `ca-${serial}.crt.pem`), cert.toString('pem'))
      const tenantRecord = record ?? (state.tenants[tenant] = emptyTenant())
      tenantRecord.cas.push({ serial, createdAt: now.toISOString(), notAfter: cert.notAfter.toISOString() })
      await saveState(this.dir, state)
      const loaded = { ...loadCert(cert.toString('pem')), serial, keyFile, key: keys.privateKey }
      this.#tenantCas.set(tenant, [...(this.#tenantCas.get(tenant) ?? []), loaded])
      await this.#signTenantCrl(tenant)
      this.#reindex()
      this.#notify()
      return { tenant, serial, notAfter: cert.notAfter, created: true }
    })
  }

  /**
   * Revokes the tenant's current issuing CA (listed in the root CRL): every
   * certificate it issued is refused from now on. ensureTenantCA then creates
   * a fresh CA for re-issuing. Idempotent.
   */
  async revokeTenantCA (tenant: string, reason: RevocationReason = 'cACompromise'): Promise<{ tenant: string, serial: string, revokedAt: Date }> {
    checkTenant(tenant)
    const why = checkReason(reason)
    return await this.#exclusive(async () => {
      const record = this.#tenantRecord(tenant)
      const ca = record.cas.at(-1)
      if (ca === undefined) throw new CertError('cert.unknown_tenant', `tenant ${tenant} has no issuing CA`)
      if (ca.revocation === undefined) {
        ca.revocation = { revokedAt: this.#clock().toISOString(), reason: why }
        await saveState(this.dir, this.#requireState())
        // In force for identifyPeer before the CRL is signed, so a signing failure cannot delay it.
        this.#reindex()
        this.#notify()
        this.#crls.delete('')
        await this.#signRootCrl()
      }
      return { tenant, serial: ca.serial, revokedAt: new Date(ca.revocation.revokedAt) }
    })
  }

  /**
   * Trusts an external (vendor) CA for this tenant only: certificates it signs
   * identify as devices (role agent) of this tenant. Must be a currently valid
   * CA certificate that is not already trusted elsewhere.
   */
  async importTenantCA (tenant: string, certificate: string | Uint8Array): Promise<ImportedCaInfo> {
    checkTenant(tenant)
    const imported = parseImportedCa(certificate, this.#clock())
    return await this.#exclusive(async () => {
      const state = this.#requireState()
      const fingerprint = fingerprintOf(imported.node)
      const own = [this.#root!, ...[...this.#tenantCas.values()].flat()]
      if (own.some((ca) => sameKey(ca.node, imported.node))) {
        throw new CertError('cert.ca_conflict', 'this is one of the gateway\'s own CAs; it cannot be imported as a vendor CA')
      }
      for (const [other, list] of this.#imported) {
        const match = list.find((c) => sameKey(c.node, imported.node))
        if (match === undefined) continue
        if (other === tenant && fingerprintOf(match.node) === fingerprint) return this.#importedInfo(tenant, match)
        throw new CertError('cert.ca_conflict',
          `a CA with this key is already trusted for tenant ${other}; one CA can vouch for one tenant only`)
      }
      await writeFileAtomic(join(this.dir, 'tenants', tenant, `imported-${fingerprint}.crt.pem`), imported.pem)
      const record = state.tenants[tenant] ?? (state.tenants[tenant] = emptyTenant())
      record.imported.push({
        fingerprint,
        subject: imported.cert.subject,
        notAfter: imported.cert.notAfter.toISOString(),
        importedAt: this.#clock().toISOString()
      })
      await saveState(this.dir, state)
      this.#imported.set(tenant, [...(this.#imported.get(tenant) ?? []), imported])
      this.#reindex()
      this.#notify()
      return this.#importedInfo(tenant, imported)
    })
  }

  /** Stops trusting an imported vendor CA (by SHA-256 fingerprint, hex). Returns whether it was trusted. */
  async removeImportedCA (tenant: string, fingerprint: string): Promise<boolean> {
    checkTenant(tenant)
    const wanted = String(fingerprint).replace(/:/g, '').toLowerCase()
    return await this.#exclusive(async () => {
      const record = this.#requireState().tenants[tenant]
      const index = record?.imported.findIndex((c) => c.fingerprint === wanted) ?? -1
      if (record === undefined || index < 0) return false
      record.imported.splice(index, 1)
      await saveState(this.dir, this.#requireState())
      await unlink(join(this.dir, 'tenants', tenant, `imported-${wanted}.crt.pem`)).catch(() => {})
      this.#imported.set(tenant, (this.#imported.get(tenant) ?? []).filter((c) => fingerprintOf(c.node) !== wanted))
      this.#reindex()
      this.#notify()
      return true
    })
  }

  listImportedCAs (tenant: string): ImportedCaInfo[] {
    checkTenant(tenant)
    this.#requireState()
    return (this.#imported.get(tenant) ?? []).map((c) => this.#importedInfo(tenant, c))
  }

  // ------------------------------------------------------ device certificates

  /** A device certificate with a key pair made here; the private key is returned once, never stored. */
  async issueCertificate (request: IssueCertificateRequest): Promise<IssuedCertificate> {
    const keys = await generateKeyPair()
    const signed = await this.#issue(request, async () => keys.publicKey)
    return { ...signed, keyPem: await exportPlainPrivateKeyPem(keys.privateKey) }
  }

  /** A device certificate for the public key of a device's CSR (the device keeps its key). */
  async signCertificateRequest (request: SignRequest): Promise<SignedCertificate> {
    return await this.#issue(request, async principal => await csrPublicKey(request.csrPem, principal))
  }

  async #issue (request: IssueCertificateRequest, publicKeyFor: (principal: string) => Promise<CryptoKey>): Promise<SignedCertificate> {
    const tenant = checkTenant(request.tenant)
    const principal = checkEndpointId(request.principal)
    const role = checkRole(request.role)
    const validDays = request.validDays ?? DEFAULT_DEVICE_VALIDITY_DAYS
    if (!Number.isInteger(validDays) || validDays < 1 || validDays > MAX_DEVICE_VALIDITY_DAYS) {
      throw new CertError('cert.invalid_validity', `validDays must be a whole number from 1 to ${MAX_DEVICE_VALIDITY_DAYS}, got ${JSON.stringify(request.validDays)}`)
    }
    return await this.#exclusive(async () => {
      const record = this.#tenantRecord(tenant)
      const caRecord = record.cas.at(-1)
      if (caRecord?.revocation !== undefined) {
        throw new CertError('cert.tenant_ca_revoked', `the issuing CA of tenant ${tenant} is revoked; create a new one (ensureTenantCA) before issuing`)
      }
      const issuer = await this.#tenantIssuer(tenant)
      const publicKey = await publicKeyFor(principal)
      const now = this.#clock()
      const notAfter = new Date(Math.min(addDays(now, validDays).getTime(), issuer.cert.notAfter.getTime()))
      const cert = await createDeviceCertificate({
        subject: deviceSubject(tenant, principal, role),
        publicKey,
        notBefore: new Date(now.getTime() - NOT_BEFORE_SKEW_MS),
        notAfter,
        principal,
        role,
        crlUrl: request.crlUrl
      }, issuer)
      const serial = normalizeSerial(cert.serialNumber)
      record.certificates.push({
        serial,
        principal,
        role,
        caSerial: normalizeSerial(issuer.cert.serialNumber),
        notBefore: cert.notBefore.toISOString(),
        notAfter: cert.notAfter.toISOString()
      })
      await saveState(this.dir, this.#requireState())
      this.#reindex()
      return {
        tenant,
        principal,
        role,
        serial,
        notAfter: cert.notAfter,
        certPem: cert.toString('pem') + '\n',
        chainPem: this.caChainPem(tenant)
      }
    })
  }

  listCertificates (tenant: string): CertificateInfo[] {
    checkTenant(tenant)
    return (this.#requireState().tenants[tenant]?.certificates ?? []).map((c) => ({
      serial: c.serial,
      principal: c.principal,
      role: c.role,
      notBefore: new Date(c.notBefore),
      notAfter: new Date(c.notAfter),
      revoked: c.revocation !== undefined,
      ...(c.revocation !== undefined ? { revokedAt: new Date(c.revocation.revokedAt), revocationReason: c.revocation.reason } : {})
    }))
  }

  /**
   * Revokes one certificate of the tenant. A gateway-issued serial goes into
   * the tenant CA's CRL; a serial the gateway did not issue is accepted only
   * when the tenant trusts a vendor CA, and goes into the deny-list. Idempotent.
   */
  async revokeCertificate (tenant: string, serial: string, reason?: RevocationReason): Promise<RevocationInfo> {
    checkTenant(tenant)
    const wanted = checkSerial(serial)
    const why = checkReason(reason)
    return await this.#exclusive(async () => {
      const record = this.#tenantRecord(tenant, { allowImportedOnly: true })
      const revocation: Revocation = { revokedAt: this.#clock().toISOString(), reason: why }
      const issued = record.certificates.find((c) => c.serial === wanted)
      const denied = record.deniedSerials.find((c) => c.serial === wanted)
      const existing = issued?.revocation ?? denied
      if (existing !== undefined) {
        return { tenant, serial: wanted, revokedAt: new Date(existing.revokedAt), reason: existing.reason, issuedByGateway: issued !== undefined }
      }
      if (issued !== undefined) {
        issued.revocation = revocation
      } else if (record.imported.length > 0) {
        record.deniedSerials.push({ serial: wanted, ...revocation })
      } else {
        throw new CertError('cert.not_found', `tenant ${tenant} has no certificate with serial ${wanted}`)
      }
      await saveState(this.dir, this.#requireState())
      // In force for identifyPeer before the CRL is signed, so a signing failure cannot delay it.
      this.#reindex()
      if (issued !== undefined && issued.caSerial === this.#currentCa(tenant)?.serial) {
        this.#crls.delete(tenant)
        await this.#signTenantCrl(tenant)
      }
      return { tenant, serial: wanted, revokedAt: new Date(revocation.revokedAt), reason: why, issuedByGateway: issued !== undefined }
    })
  }

  /** Whether a serial is revoked anywhere: a device certificate, a deny-listed vendor serial, or a tenant CA. */
  isRevoked (serial: string): boolean {
    this.#requireState()
    return this.#revokedSerials.has(checkSerial(serial))
  }

  /** All revoked serials of a tenant (gateway-issued and deny-listed vendor serials). */
  listRevocations (tenant: string): RevocationInfo[] {
    checkTenant(tenant)
    const record = this.#requireState().tenants[tenant]
    if (record === undefined) return []
    return [
      ...record.certificates.flatMap((c) => c.revocation === undefined
        ? []
        : [{ tenant, serial: c.serial, revokedAt: new Date(c.revocation.revokedAt), reason: c.revocation.reason, issuedByGateway: true }]),
      ...record.deniedSerials.map((d) => ({ tenant, serial: d.serial, revokedAt: new Date(d.revokedAt), reason: d.reason, issuedByGateway: false }))
    ]
  }

  // -------------------------------------------------------------------- CRLs

  /** The tenant CA's CRL (PEM), re-signed when something was revoked or it is older than a day. */
  async crlPem (tenant: string): Promise<string> {
    checkTenant(tenant)
    return await this.#exclusive(async () => {
      const ca = this.#currentCa(tenant)
      if (ca === undefined) throw new CertError('cert.unknown_tenant', `tenant ${tenant} has no issuing CA`)
      const cached = this.#crls.get(tenant)
      if (cached === undefined || cached.issuerSerial !== ca.serial || this.#isStale(cached)) await this.#signTenantCrl(tenant)
      return this.#crls.get(tenant)!.pem
    })
  }

  /** The root CA's CRL (PEM), listing revoked tenant issuing CAs. */
  async rootCrlPem (): Promise<string> {
    return await this.#exclusive(async () => {
      this.#requireState()
      const cached = this.#crls.get('')
      if (cached === undefined || this.#isStale(cached)) await this.#signRootCrl()
      return this.#crls.get('')!.pem
    })
  }

  // ---------------------------------------------------------------- trust

  /**
   * Signs bytes with the root CA key (RSASSA-PKCS1-v1_5, SHA-256), e.g. a certification evidence
   * manifest, so anyone holding the root certificate can check it was not altered.
   */
  async signWithRoot (data: Uint8Array<ArrayBuffer>): Promise<{ algorithm: 'RSASSA-PKCS1-v1_5-SHA256', signature: Buffer, certificatePem: string }> {
    this.#requireState()
    const issuer = await this.#rootIssuer()
    const signature = await globalThis.crypto.subtle.sign({ name: 'RSASSA-PKCS1-v1_5' }, issuer.key, data)
    return { algorithm: 'RSASSA-PKCS1-v1_5-SHA256', signature: Buffer.from(signature), certificatePem: this.#root!.pem }
  }

  rootCaPem (): string {
    this.#requireState()
    return this.#root!.pem
  }

  /**
   * Every CA whose certificates the MQTTS listener accepts: root, the tenant
   * issuing CAs that are not revoked, and imported vendor CAs. This is the
   * TLS server's `ca`.
   */
  trustBundlePem (): string {
    this.#requireState()
    return this.#anchors.filter((a) => !a.revoked).map((a) => a.cert.toString())
      .reduce((bundle, pem) => bundle + pem, this.#root!.pem)
  }

  /** The tenant's issuing CA followed by the root. */
  caChainPem (tenant: string): string {
    checkTenant(tenant)
    this.#requireState()
    const ca = this.#currentCa(tenant)
    if (ca === undefined) throw new CertError('cert.unknown_tenant', `tenant ${tenant} has no issuing CA`)
    return ca.pem + this.#root!.pem
  }

  /** Options for tls.createServer: server key (decrypted, in memory only), certificate, trust bundle, TLS floor. */
  serverTlsMaterial (): ServerTlsMaterial {
    this.#requireState()
    const server = this.#server!
    return { key: server.keyPem, cert: server.cert.pem, ca: this.trustBundlePem(), minVersion: TLS_MIN_VERSION }
  }

  /**
   * Identifies a client from its TLS certificate, checking in order: signed
   * by a trusted CA (which decides the tenant), Endpoint ID in the SAN URI,
   * revocation of the certificate and of its CA, validity dates.
   */
  identifyPeer (peerCertificate: PeerCertificateInput): PeerIdentity {
    this.#requireState()
    return identifyPeerCertificate(peerCertificate, this.#anchors,
      (tenant, serial) => this.#revokedByTenant.has(`${tenant}/${serial}`), this.#clock())
  }

  /** Expiry dates for the metrics gauge (seconds until expiry per certificate). */
  expiries (): CertificateExpiry[] {
    this.#requireState()
    const result: CertificateExpiry[] = [
      { name: 'root', notAfter: this.#root!.cert.notAfter },
      { name: 'server', notAfter: this.#server!.cert.cert.notAfter }
    ]
    for (const [tenant, record] of Object.entries(this.#requireState().tenants).sort(([a], [b]) => a.localeCompare(b))) {
      const ca = this.#currentCa(tenant)
      const revoked = record.cas.at(-1)?.revocation !== undefined
      if (ca !== undefined && !revoked) result.push({ name: `tenant:${tenant}`, notAfter: ca.cert.notAfter })
      for (const imported of this.#imported.get(tenant) ?? []) {
        result.push({ name: `tenant:${tenant}:imported:${fingerprintOf(imported.node).slice(0, 16)}`, notAfter: imported.cert.notAfter })
      }
    }
    return result
  }

  // ------------------------------------------------------------- internals

  async #exclusive<T> (task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task)
    this.#queue = run.catch(() => {})
    return await run
  }

  #notify (): void {
    for (const listener of this.#listeners) {
      try { listener() } catch { /* a listener's failure must not undo a committed change */ }
    }
  }

  #requireState (): PkiState {
    if (this.#state === undefined) throw new CertError('cert.not_initialized', 'the certificate authority is not initialized (call init first)')
    return this.#state
  }

  #tenantRecord (tenant: string, options: { allowImportedOnly?: boolean } = {}): TenantRecord {
    const record = this.#requireState().tenants[tenant]
    if (record !== undefined && (record.cas.length > 0 || options.allowImportedOnly === true)) return record
    throw new CertError('cert.unknown_tenant', `tenant ${tenant} has no issuing CA (ensureTenantCA first)`)
  }

  #currentCa (tenant: string): LoadedCa | undefined {
    return this.#tenantCas.get(tenant)?.at(-1)
  }

  #isStale (crl: CachedCrl): boolean {
    return this.#clock().getTime() >= addDays(crl.thisUpdate, CRL_REFRESH_DAYS).getTime()
  }

  async #signingKey (ca: LoadedCa, label: string): Promise<CryptoKey> {
    if (ca.key === undefined) {
      const pem = await readTextIfExists(join(this.dir, ca.keyFile))
      if (pem === undefined) throw new CertError('cert.corrupt_state', `the ${label} private key file ${ca.keyFile} is missing`)
      ca.key = await importSigningKey(decryptPrivateKeyPem(pem, this.#masterKey, label).der)
    }
    return ca.key
  }

  async #rootIssuer (): Promise<Issuer> {
    return { cert: this.#root!.cert, key: await this.#signingKey(this.#root!, 'root CA') }
  }

  async #tenantIssuer (tenant: string): Promise<Issuer> {
    const ca = this.#currentCa(tenant)!
    return { cert: ca.cert, key: await this.#signingKey(ca, `tenant ${tenant} CA`) }
  }

  async #loadOrCreateRoot (state: PkiState): Promise<LoadedCa> {
    const certPem = await readTextIfExists(join(this.dir, ROOT_CERT_FILE))
    const keyPem = await readTextIfExists(join(this.dir, ROOT_KEY_FILE))
    if (certPem !== undefined && keyPem !== undefined) {
      const root: LoadedCa = { ...this.#parseStored(certPem, ROOT_CERT_FILE), serial: '', keyFile: ROOT_KEY_FILE }
      root.serial = normalizeSerial(root.cert.serialNumber)
      await this.#signingKey(root, 'root CA') // fails fast on a wrong master key
      return root
    }
    if (certPem !== undefined || keyPem !== undefined || Object.keys(state.tenants).length > 0) {
      throw new CertError('cert.corrupt_state', `${this.dir} has PKI data but no complete root CA (${ROOT_CERT_FILE} + ${ROOT_KEY_FILE}); refusing to create a new root over it`)
    }
    const keys = await generateKeyPair()
    const now = this.#clock()
    const cert = await createRootCertificate({
      subject: rootSubject(), publicKey: keys.publicKey, privateKey: keys.privateKey, notBefore: now, notAfter: addDays(now, ROOT_CA_VALIDITY_DAYS)
    })
    await writeFileAtomic(join(this.dir, ROOT_KEY_FILE), await encryptPrivateKeyPem(keys.privateKey, this.#masterKey))
    await writeFileAtomic(join(this.dir, ROOT_CERT_FILE), cert.toString('pem') + '\n')
    return { ...loadCert(cert.toString('pem')), serial: normalizeSerial(cert.serialNumber), keyFile: ROOT_KEY_FILE, key: keys.privateKey }
  }

  async #loadOrCreateServer (state: PkiState, sans: string[]): Promise<void> {
    const certPem = await readTextIfExists(join(this.dir, SERVER_CERT_FILE))
    const keyPem = await readTextIfExists(join(this.dir, SERVER_KEY_FILE))
    if (certPem !== undefined && keyPem !== undefined) {
      const cert = this.#parseStored(certPem, SERVER_CERT_FILE)
      const sameSans = JSON.stringify([...state.serverSans].sort()) === JSON.stringify([...sans].sort())
      const fresh = cert.cert.notAfter.getTime() > addDays(this.#clock(), SERVER_CERT_RENEW_DAYS).getTime()
      if (sameSans && fresh && cert.node.checkIssued(this.#root!.node) && cert.node.verify(this.#root!.node.publicKey)) {
        this.#server = { cert, keyPem: decryptPrivateKeyPem(keyPem, this.#masterKey, 'server').pem }
        return
      }
    }
    // Absent, SANs changed in configuration, close to expiry, or from another root: issue anew.
    const keys = await generateKeyPair()
    const now = this.#clock()
    const cert = await createServerCertificate({
      subject: serverSubject(sans[0]!),
      publicKey: keys.publicKey,
      notBefore: new Date(now.getTime() - NOT_BEFORE_SKEW_MS),
      notAfter: addDays(now, SERVER_CERT_VALIDITY_DAYS),
      sans: classifyServerSans(sans)
    }, await this.#rootIssuer())
    await writeFileAtomic(join(this.dir, SERVER_KEY_FILE), await encryptPrivateKeyPem(keys.privateKey, this.#masterKey))
    await writeFileAtomic(join(this.dir, SERVER_CERT_FILE), cert.toString('pem') + '\n')
    state.serverSans = [...sans]
    await saveState(this.dir, state)
    this.#server = { cert: loadCert(cert.toString('pem')), keyPem: await exportPlainPrivateKeyPem(keys.privateKey) }
  }

  async #loadTenant (tenant: string, record: TenantRecord): Promise<void> {
    const cas: LoadedCa[] = []
    for (const ca of record.cas) {
      const file = join('tenants', tenant, `ca-${ca.serial}.crt.pem`)
      const pem = await readTextIfExists(join(this.dir, file))
      if (pem === undefined) throw new CertError('cert.corrupt_state', `the certificate of tenant ${tenant}'s CA ${ca.serial} (${file}) is missing`)
      cas.push({ ...this.#parseStored(pem, file), serial: ca.serial, keyFile: join('tenants', tenant, `ca-${ca.serial}.key.pem`) })
    }
    this.#tenantCas.set(tenant, cas)
    const imported: LoadedCert[] = []
    for (const ca of record.imported) {
      const file = join('tenants', tenant, `imported-${ca.fingerprint}.crt.pem`)
      const pem = await readTextIfExists(join(this.dir, file))
      if (pem === undefined) throw new CertError('cert.corrupt_state', `imported CA ${file} of tenant ${tenant} is missing`)
      imported.push(this.#parseStored(pem, file))
    }
    this.#imported.set(tenant, imported)
  }

  /** Reuses a published CRL after restart if it is from the current issuer and lists exactly what the state says is revoked. */
  async #loadCrl (state: PkiState, key: string, file: string): Promise<void> {
    const pem = await readTextIfExists(join(this.dir, file))
    if (pem === undefined) return // signed on first request
    try {
      const crl = new x509.X509Crl(pem)
      const issuer = key === '' ? this.#root : this.#currentCa(key)
      const aki = crl.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId
      const ski = issuer?.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId
      const listed = crl.entries.map((e) => normalizeSerial(e.serialNumber)).sort()
      const expected = this.#crlEntries(state, key).map((e) => e.serial).sort()
      if (issuer !== undefined && aki !== undefined && aki === ski && JSON.stringify(listed) === JSON.stringify(expected)) {
        this.#crls.set(key, { pem, thisUpdate: crl.thisUpdate, issuerSerial: issuer.serial })
      }
    } catch { /* unreadable CRL: it is derived data, re-signed on first request */ }
  }

  /** What a CRL must list: for a tenant, the revoked certificates of its current CA; for the root (''), revoked tenant CAs. */
  #crlEntries (state: PkiState, key: string): CrlEntry[] {
    const toEntry = (serial: string, r: Revocation): CrlEntry => ({ serial, revokedAt: new Date(r.revokedAt), reason: r.reason })
    if (key === '') {
      return Object.values(state.tenants).flatMap((t) => t.cas.flatMap((ca) => ca.revocation === undefined ? [] : [toEntry(ca.serial, ca.revocation)]))
    }
    const caSerial = this.#currentCa(key)?.serial
    return (state.tenants[key]?.certificates ?? [])
      .flatMap((c) => c.revocation === undefined || c.caSerial !== caSerial ? [] : [toEntry(c.serial, c.revocation)])
  }

  async #signTenantCrl (tenant: string): Promise<void> {
    const record = this.#tenantRecord(tenant)
    const ca = this.#currentCa(tenant)!
    const entries = this.#crlEntries(this.#requireState(), tenant)
    record.crlNumber += 1
    await saveState(this.dir, this.#requireState())
    const now = this.#clock()
    const crl = await createCrl({
      issuer: await this.#tenantIssuer(tenant), entries, crlNumber: record.crlNumber, thisUpdate: now, nextUpdate: addDays(now, CRL_VALIDITY_DAYS)
    })
    const pem = crlToPem(crl)
    await writeFileAtomic(join(this.dir, 'tenants', tenant, TENANT_CRL_FILE), pem)
    this.#crls.set(tenant, { pem, thisUpdate: now, issuerSerial: ca.serial })
  }

  async #signRootCrl (): Promise<void> {
    const state = this.#requireState()
    const entries = this.#crlEntries(state, '')
    state.rootCrlNumber += 1
    await saveState(this.dir, state)
    const now = this.#clock()
    const crl = await createCrl({
      issuer: await this.#rootIssuer(), entries, crlNumber: state.rootCrlNumber, thisUpdate: now, nextUpdate: addDays(now, CRL_VALIDITY_DAYS)
    })
    const pem = crlToPem(crl)
    await writeFileAtomic(join(this.dir, ROOT_CRL_FILE), pem)
    this.#crls.set('', { pem, thisUpdate: now, issuerSerial: this.#root!.serial })
  }

  /** Rebuilds the lookup structures identifyPeer and isRevoked use (after load and every change). */
  #reindex (): void {
    const state = this.#requireState()
    const anchors: TrustAnchor[] = []
    const byTenant = new Set<string>()
    const all = new Set<string>()
    for (const [tenant, record] of Object.entries(state.tenants)) {
      const cas = this.#tenantCas.get(tenant) ?? []
      record.cas.forEach((ca, i) => {
        const loaded = cas[i]
        const issuedSerials = new Set(record.certificates.filter((c) => c.caSerial === ca.serial).map((c) => c.serial))
        if (loaded !== undefined) anchors.push({ tenant, trust: 'tenant-ca', cert: loaded.node, revoked: ca.revocation !== undefined, issuedSerials })
        if (ca.revocation !== undefined) all.add(ca.serial)
      })
      for (const imported of this.#imported.get(tenant) ?? []) anchors.push({ tenant, trust: 'imported-ca', cert: imported.node, revoked: false })
      for (const c of record.certificates) {
        if (c.revocation !== undefined) { byTenant.add(`${tenant}/${c.serial}`); all.add(c.serial) }
      }
      for (const d of record.deniedSerials) { byTenant.add(`${tenant}/${d.serial}`); all.add(d.serial) }
    }
    this.#anchors = anchors
    this.#revokedByTenant = byTenant
    this.#revokedSerials = all
  }

  #parseStored (pem: string, file: string): LoadedCert {
    try {
      return loadCert(pem)
    } catch (err) {
      throw new CertError('cert.corrupt_state', `${join(this.dir, file)} is not a readable certificate`, { cause: err })
    }
  }

  #importedInfo (tenant: string, ca: LoadedCert): ImportedCaInfo {
    return { tenant, fingerprint: fingerprintOf(ca.node), subject: ca.cert.subject, notAfter: ca.cert.notAfter }
  }
}
