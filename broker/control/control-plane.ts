// What the admin API may do to the gateway. The admin API talks only to this
// interface (never to aedes), so routes stay thin and the rules live here.
import { isTenantId, isPrincipal, ROLES, type Role } from '../core/index.ts'
import { generateSecret, hashSecret } from '../core/index.ts'
import { credentialView, StoreError, type CredentialView, type TenantRecord } from '../store/index.ts'
import type { StateStore } from '../store/index.ts'
import type { ClusterAccess, ClusterView } from './cluster-view.ts'
import { InvalidCursorError, type EventQuery, type SecurityEvent, type SecurityEvents, type TenantEventStats } from '../core/index.ts'
import type { SessionIndex, SessionView } from '../mqtt/index.ts'
import type { ConnectCounts, Metrics } from '../core/index.ts'
import type { Logger } from 'pino'
import type { Endpoints } from '../usp/index.ts'
import type { UspAuditEntry, UspAuditTrail } from '../usp/index.ts'
import type { CertificateService } from '../pki/index.ts'
import type { PolicyVersions } from './policy-versions.ts'
import { DEFAULT_USP_SETTINGS, type EndpointRecord, type PresenceTransition, type TenantQuotas, type TenantUspSettings } from '../store/index.ts'
import { AdminAccess } from './admin-access.ts'
import { ControlError, type Actor } from '../core/index.ts'
import type { ControlPlane } from './api.ts'
import { importCredentials, MAX_IMPORT_ROWS, type ImportRow, type ImportResult } from './credential-import.ts'
import { CertifyError, matrixCsv, matrixMarkdown, verifyEvidence, MANIFEST_FILE, type CertificationService, type MatrixRow, type RunView, type VerifyResult } from '../certify/index.ts'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'


interface GatewayLike {
  readonly store: StateStore
  readonly cluster?: ClusterAccess | undefined
  readonly events: SecurityEvents
  readonly sessions: SessionIndex
  readonly metrics: Metrics
  readonly log: Logger
  readonly nodeId: string
  readonly ready: boolean
  readonly endpoints: Endpoints
  readonly connects: ConnectCounts
  readonly uspAudit: UspAuditTrail
  readonly policyVersions?: PolicyVersions
  readonly certificates?: CertificateService
  readonly certify?: CertificationService
  disconnectIdentity(tenant: string, principal: string): number
  disconnectTenant(tenant: string): number
}

export interface TenantPatch {
  name?: string | undefined
  usp?: Partial<TenantUspSettings> | undefined
  quotas?: TenantQuotas | undefined
  disabled?: boolean | undefined
}

export class GatewayControlPlane implements ControlPlane {
  constructor (private readonly gw: GatewayLike) {}

  get metrics (): Metrics { return this.gw.metrics }
  get nodeId (): string { return this.gw.nodeId }
  /** Device certificates, tenant CAs, CA trust and revocation (admin-api/cert-routes.ts). */
  get certificates (): CertificateService {
    if (this.gw.certificates === undefined) throw new Error('certificates are not available')
    return this.gw.certificates
  }
  readiness (): { ready: boolean } { return { ready: this.gw.ready } }
  /** Policy versions, canary, shadow and rollback (admin-api/policy-routes.ts). */
  get policies (): PolicyVersions {
    if (this.gw.policyVersions === undefined) throw new Error('policy versions are not available')
    return this.gw.policyVersions
  }
  /** Admin tokens, roles and the admin audit trail (admin-api/access.ts, admin-api/token-routes.ts). */
  get admin (): AdminAccess {
    this.adminAccess ??= new AdminAccess(this.gw.store, this.gw.events, () => this.requireWritable())
    return this.adminAccess
  }

  private adminAccess: AdminAccess | undefined

  listTenants (): TenantRecord[] { return this.gw.store.listTenants() }

  /** Cluster mode: state writes need Redis and a resynchronised copy; otherwise 503 (never a silent local-only write). */
  requireWritable (): void {
    const c = this.gw.cluster
    if (c !== undefined && !c.trusted) throw new ControlError(503, 'state store unavailable', 'Redis is unreachable or this node is resynchronising; retry shortly')
  }

  /** GET /v1/cluster: nodes, their policy revisions and heartbeats (embedded: this node only). */
  async clusterView (): Promise<ClusterView> {
    const c = this.gw.cluster
    if (c === undefined) {
      const p = this.gw.policyVersions?.view().active
      return {
        mode: 'embedded',
        node: this.gw.nodeId,
        nodes: [{ node: this.gw.nodeId, instance: '', startedAt: '', heartbeat: new Date().toISOString(), revisions: { stable: p?.stable ?? '' , ...(p?.canary ? { canary: p.canary.revision } : {}), ...(p?.shadow ? { shadow: p.shadow } : {}) }, sessions: this.gw.sessions.size, ageMs: 0, self: true, diverged: false }]
      }
    }
    if (!c.up) throw new ControlError(503, 'state store unavailable', 'Redis is unreachable from this node')
    return await c.view()
  }

  async addTenant (input: { id: string, name?: string | undefined }, actor: Actor): Promise<TenantRecord> {
    this.requireWritable()
    if (!isTenantId(input.id)) throw new ControlError(400, 'invalid tenant id', 'tenant id must match ^[a-z0-9][a-z0-9-]{0,31}$ and not be a USP Endpoint ID scheme (os, oui, proto, ...)')
    try {
      const t = await this.gw.store.addTenant({ id: input.id, name: input.name ?? input.id, createdAt: new Date().toISOString() })
      this.gw.events.emit({ code: 'tenant.created', tenant: t.id, actor: actor.id, action: 'tenant.create' })
      return t
    } catch (err) {
      throw mapStoreError(err)
    }
  }

  async updateTenant (tenant: string, patch: TenantPatch, actor: Actor): Promise<TenantRecord & { disconnected?: number }> {
    this.requireWritable()
    this.requireTenant(tenant)
    const current = this.gw.store.getTenant(tenant)!
    const update: { name?: string, usp?: TenantUspSettings, quotas?: TenantQuotas, disabled?: boolean } = {}
    if (patch.name !== undefined) update.name = patch.name
    if (patch.quotas !== undefined) update.quotas = { ...(current.quotas ?? {}), ...patch.quotas }
    if (patch.usp !== undefined) update.usp = { ...(current.usp ?? DEFAULT_USP_SETTINGS), ...patch.usp }
    if (patch.disabled !== undefined) update.disabled = patch.disabled
    const t = await this.gw.store.updateTenant(tenant, update)
    const { disabled, ...settings } = update
    if (Object.keys(settings).length > 0) this.gw.events.emit({ code: 'tenant.updated', tenant, actor: actor.id, action: 'tenant.update', reason: JSON.stringify(settings) })
    if (disabled === true) {
      // stored first, so a device that reconnects at once meets the CONNECT step that refuses it;
      // other nodes cut their sessions when the control channel tells them (cluster mode)
      const disconnected = this.gw.disconnectTenant(tenant)
      this.gw.events.emit({ code: 'tenant.disabled', tenant, actor: actor.id, action: 'tenant.disable', reason: `${disconnected} live session(s) disconnected on ${this.gw.nodeId}` })
      return { ...t, disconnected }
    }
    if (disabled === false && current.disabled === true) this.gw.events.emit({ code: 'tenant.enabled', tenant, actor: actor.id, action: 'tenant.enable' })
    return t
  }

  async listEndpoints (tenant: string): Promise<EndpointRecord[]> {
    this.requireTenant(tenant)
    return await this.sharedRead(async () => await this.gw.endpoints.list(tenant))
  }

  async getEndpoint (tenant: string, endpointId: string): Promise<EndpointRecord> {
    this.requireTenant(tenant)
    const e = await this.sharedRead(async () => await this.gw.endpoints.get(tenant, endpointId))
    if (!e) throw new ControlError(404, 'endpoint not found', `no endpoint "${endpointId}" has connected to tenant "${tenant}"`)
    return e
  }

  async endpointPresence (tenant: string, endpointId: string): Promise<PresenceTransition[]> {
    this.requireTenant(tenant)
    const [e, transitions] = await this.sharedRead(async () =>
      await Promise.all([this.gw.endpoints.get(tenant, endpointId), this.gw.endpoints.presence(tenant, endpointId)]))
    if (e === undefined && transitions.length === 0) throw new ControlError(404, 'endpoint not found', `no endpoint "${endpointId}" has connected to tenant "${tenant}"`)
    return transitions
  }

  async uspAuditTrail (tenant: string, limit?: number): Promise<UspAuditEntry[]> {
    this.requireTenant(tenant)
    return await this.sharedRead(async () => await this.gw.uspAudit.list(tenant, limit))
  }

  /**
   * Cluster mode: endpoints and the USP audit trail are read from Redis, not from a local copy, so
   * while Redis cannot be read the answer is 503 (like GET /v1/cluster), never this node's view only.
   */
  private async sharedRead<T> (read: () => Promise<T>): Promise<T> {
    const c = this.gw.cluster
    if (c === undefined) return await read()
    if (!c.up) throw new ControlError(503, 'state store unavailable', 'Redis is unreachable from this node')
    try {
      return await read()
    } catch (err) {
      this.gw.log.warn({ err }, 'cluster-wide read from Redis failed')
      throw new ControlError(503, 'state store unavailable', 'Redis could not be read from this node; retry shortly')
    }
  }

  private requireTenant (tenant: string): void {
    if (!isTenantId(tenant) || this.gw.store.getTenant(tenant) === undefined) {
      throw new ControlError(404, 'tenant not found', `no tenant "${tenant}"`)
    }
  }

  listCredentials (tenant: string): CredentialView[] {
    this.requireTenant(tenant)
    return this.gw.store.listCredentials(tenant).map(credentialView)
  }

  /** Issues a generated secret; the caller sees it once, the store keeps only its hash. */
  async issueCredential (tenant: string, input: { principal: string, role: string }, actor: Actor): Promise<CredentialView & { secret: string }> {
    this.requireWritable()
    this.requireTenant(tenant)
    if (!isPrincipal(input.principal)) {
      throw new ControlError(400, 'invalid principal', 'principal must be 1-128 characters of A-Z a-z 0-9 . _ % : - (a USP Endpoint ID such as os::00256D-0001)')
    }
    if (!(ROLES as readonly string[]).includes(input.role)) throw new ControlError(400, 'invalid role', `role must be one of ${ROLES.join(', ')}`)
    const secret = generateSecret()
    const record = { tenant, principal: input.principal, role: input.role as Role, secretHash: hashSecret(secret), createdAt: new Date().toISOString() }
    try {
      await this.gw.store.putCredential(record)
    } catch (err) {
      throw mapStoreError(err)
    }
    this.gw.events.emit({ code: 'credential.issued', tenant, principal: input.principal, actor: actor.id, action: 'credential.issue', reason: `role ${input.role}` })
    return { ...credentialView(record), secret }
  }

  /** Bulk import (idempotent per principal); see credential-import.ts. */
  async importCredentials (tenant: string, rows: ImportRow[], actor: Actor): Promise<ImportResult> {
    this.requireWritable()
    this.requireTenant(tenant)
    if (rows.length > MAX_IMPORT_ROWS) throw new ControlError(400, 'import too large', `at most ${MAX_IMPORT_ROWS} rows per import`)
    return await importCredentials(this.gw.store, tenant, rows, e => this.gw.events.emit(e), actor.id)
  }

  /** Revokes and disconnects every live session of the credential on this node. */
  async revokeCredential (tenant: string, principal: string, actor: Actor): Promise<CredentialView & { disconnected: number }> {
    this.requireWritable()
    this.requireTenant(tenant)
    let record
    try {
      record = await this.gw.store.revokeCredential(tenant, principal, new Date().toISOString())
    } catch (err) {
      throw mapStoreError(err)
    }
    const disconnected = this.gw.disconnectIdentity(tenant, principal)
    this.gw.events.emit({ code: 'credential.revoked', tenant, principal, actor: actor.id, action: 'credential.revoke', reason: `${disconnected} live session(s) disconnected` })
    return { ...credentialView(record), disconnected }
  }

  listSessions (tenant?: string): SessionView[] { return this.gw.sessions.list(tenant) }

  // ---- certification runs, evidence, device matrix (broker/certify)

  private get certifyService (): CertificationService {
    if (this.gw.certify === undefined) throw new Error('certification is not available')
    return this.gw.certify
  }

  /** Starts a run in the background (202); progress through getCertification. */
  // cluster mode: the service forwards a run to the node holding the device's session
  async startCertification (tenant: string, input: { endpointId: string, level?: string | undefined, workflows?: string[] | undefined, onlineTimeoutSeconds?: number | undefined }, actor: Actor): Promise<RunView> {
    this.requireTenant(tenant)
    return await certifyCall(async () => await this.certifyService.startRouted({ tenant, ...input }, actor.id))
  }

  async listCertifications (tenant: string): Promise<RunView[]> {
    this.requireTenant(tenant)
    return await this.certifyService.listRouted(tenant)
  }

  async getCertification (tenant: string, id: string): Promise<RunView> {
    this.requireTenant(tenant)
    return await certifyCall(async () => await this.certifyService.getRouted(tenant, id))
  }

  async cancelCertification (tenant: string, id: string): Promise<RunView> {
    this.requireTenant(tenant)
    return await certifyCall(async () => await this.certifyService.cancelRouted(tenant, id))
  }

  async resumeCertification (tenant: string, id: string, actor: Actor): Promise<RunView> {
    this.requireTenant(tenant)
    return await certifyCall(async () => await this.certifyService.resumeRouted(tenant, id, actor.id))
  }

  /** The signed manifest of a finished run and a fresh verification of its bundle against the gateway root. */
  async certificationEvidence (tenant: string, id: string): Promise<{ manifest: Record<string, unknown>, verification: VerifyResult }> {
    const run = await this.getCertification(tenant, id)
    if (run.evidencePath === undefined) throw new ControlError(409, 'no evidence yet', `run ${id} is ${run.state}; its evidence is filed when it ends`)
    if (run.node !== undefined && run.node !== this.gw.nodeId) throw new ControlError(409, 'evidence on another node', `run ${id} ran on node ${run.node}: its evidence bundle is in that node's data dir (ask that node)`)
    const root = (await this.certificates.authority()).rootCaPem()
    const verification = await verifyEvidence(run.evidencePath, root)
    const manifest = JSON.parse(await readFile(join(run.evidencePath, MANIFEST_FILE), 'utf8')) as Record<string, unknown>
    return { manifest, verification }
  }

  /** The device matrix (rows of the given tenants only, when scoped) as JSON, CSV or Markdown. */
  deviceMatrix (format: 'json' | 'csv' | 'markdown', tenants?: readonly string[]): { type: string, body: string } {
    const rows: MatrixRow[] = this.certifyService.matrix.list().filter(r => tenants === undefined || tenants.includes(r.tenant))
    if (format === 'csv') return { type: 'text/csv; charset=utf-8', body: matrixCsv(rows) }
    if (format === 'markdown') return { type: 'text/markdown; charset=utf-8', body: matrixMarkdown(rows) }
    return { type: 'application/json; charset=utf-8', body: JSON.stringify({ rules: this.certifyService.checklist.matrixRules, rows }) }
  }

  /** Where evidence bundles are filed (the CLI verifies them locally). */
  get evidenceRoot (): string { return this.certifyService.evidenceRoot }

  queryEvents (q: EventQuery): { events: SecurityEvent[], next?: string } {
    try {
      return this.gw.events.page(q)
    } catch (err) {
      if (err instanceof InvalidCursorError) throw new ControlError(400, 'invalid cursor', err.message)
      throw err
    }
  }

  followEvents (q: EventQuery, onEvent: (ev: SecurityEvent) => void, lastEventId?: string): { backlog: SecurityEvent[], close: () => void } {
    return this.gw.events.follow(q, onEvent, lastEventId)
  }

  /** Per-tenant event counts since a time (the console's security posture); `tenants` limits the answer. */
  securityStats (since: string, tenants?: readonly string[]): TenantEventStats[] { return this.gw.events.stats(since, tenants) }

  async connectCounts (since: string, tenants?: readonly string[]): Promise<Map<string, number> | undefined> {
    try {
      return await this.gw.connects.counts(Date.parse(since), tenants)
    } catch (err) {
      this.gw.log.warn({ err }, 'connect counts could not be read from Redis')
      return undefined
    }
  }
}

async function certifyCall<T> (f: () => Promise<T>): Promise<T> {
  try {
    return await f()
  } catch (err) {
    if (err instanceof CertifyError) {
      const [status, title] = err.kind === 'invalid' ? [400, 'invalid certification request'] as const : err.kind === 'not_found' ? [404, 'not found'] as const : err.kind === 'unavailable' ? [503, 'unavailable'] as const : [409, 'conflict'] as const
      throw new ControlError(status, title, err.message)
    }
    throw err
  }
}

function mapStoreError (err: unknown): Error {
  if (err instanceof StoreError) {
    if (err.code === 'conflict') return new ControlError(409, 'conflict', err.message)
    if (err.code === 'not_found') return new ControlError(404, 'not found', err.message)
  }
  return err as Error
}
