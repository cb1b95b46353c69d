// The seam between the admin API and the gateway: everything admin-api/ may ask of the control plane,
// as an interface (implemented by GatewayControlPlane in control-plane.ts). Routes stay thin; the rules
// live behind this interface.
import type { Registry } from 'prom-client'
import type { CertificateAuthority } from '../../certs/index.ts'
import type { Actor, EventQuery, SecurityEvent, TenantEventStats } from '../core/index.ts'
import type { CredentialView, EndpointRecord, PresenceTransition, TenantRecord } from '../store/index.ts'
import type { SessionView } from '../mqtt/index.ts'
import type { UspAuditEntry } from '../usp/index.ts'
import type { CertificateService } from '../pki/index.ts'
import type { ClusterView } from './cluster-view.ts'
import type { AdminAccess } from './admin-access.ts'
import type { TenantPatch } from './control-plane.ts'
import type { PolicyVersions } from './policy-versions.ts'
import type { ImportRow, ImportResult } from './credential-import.ts'
import type { RunView, VerifyResult } from '../certify/index.ts'

/** Certificate operations of the admin API (and the CA's server TLS material for the admin listener). */
export type CertificateOperations = Pick<CertificateService, 'issue' | 'signCsr' | 'list' | 'revoke' | 'crlPem' | 'publishedCrlPem' | 'rootCrlPem' | 'caChainPem' | 'trustBundlePem' | 'importCa' | 'listImportedCas' | 'removeImportedCa' | 'revokeCa'> & {
  authority(): Promise<Pick<CertificateAuthority, 'serverTlsMaterial'>>
}

/** Policy versions: upload, shadow, canary, promote, rollback, and what the engine runs. */
export type PolicyOperations = Pick<PolicyVersions, 'view' | 'upload' | 'startShadow' | 'startCanary' | 'promote' | 'rollback' | 'diff' | 'history' | 'bundle' | 'compare' | 'evaluate' | 'goldenCases' | 'setGolden'>

/** Admin tokens, roles and the admin audit trail. */
export type AdminOperations = Pick<AdminAccess, 'authenticate' | 'listTokens' | 'createToken' | 'revokeToken' | 'audit' | 'authFailed' | 'rateLimited' | 'openingTimedOut'>

export interface ControlPlane {
  readonly nodeId: string
  /** The node's metrics, for GET /metrics. */
  readonly metrics: { readonly registry: Pick<Registry, 'contentType'>, render(): Promise<string> }
  readonly certificates: CertificateOperations
  readonly policies: PolicyOperations
  readonly admin: AdminOperations
  readiness(): { ready: boolean }
  /** Throws ControlError 503 while shared state cannot be written (cluster mode, Redis down). */
  requireWritable(): void
  clusterView(): Promise<ClusterView>
  listTenants(): TenantRecord[]
  addTenant(input: { id: string, name?: string | undefined }, actor: Actor): Promise<TenantRecord>
  /** `disabled: true` cuts the tenant's live sessions (here; other nodes through the cluster) and refuses its CONNECTs. */
  updateTenant(tenant: string, patch: TenantPatch, actor: Actor): Promise<TenantRecord & { disconnected?: number }>
  listEndpoints(tenant: string): Promise<EndpointRecord[]>
  getEndpoint(tenant: string, endpointId: string): Promise<EndpointRecord>
  /** The endpoint's last online/offline transitions, newest first (404 when it never connected). */
  endpointPresence(tenant: string, endpointId: string): Promise<PresenceTransition[]>
  uspAuditTrail(tenant: string, limit?: number): Promise<UspAuditEntry[]>
  listCredentials(tenant: string): CredentialView[]
  issueCredential(tenant: string, input: { principal: string, role: string }, actor: Actor): Promise<CredentialView & { secret: string }>
  revokeCredential(tenant: string, principal: string, actor: Actor): Promise<CredentialView & { disconnected: number }>
  importCredentials(tenant: string, rows: ImportRow[], actor: Actor): Promise<ImportResult>
  listSessions(tenant?: string): SessionView[]
  /** One page of events, newest first; `next` is the cursor of the older page. Throws ControlError 400 on a bad cursor. */
  queryEvents(q: EventQuery): { events: SecurityEvent[], next?: string }
  /** Live events matching `q` (and, after `lastEventId`, the backlog since it); close() ends the subscription. */
  followEvents(q: EventQuery, onEvent: (ev: SecurityEvent) => void, lastEventId?: string): { backlog: SecurityEvent[], close: () => void }
  /** Per-tenant event counts since a time (the console's security posture); `tenants` limits the answer. */
  securityStats(since: string, tenants?: readonly string[]): TenantEventStats[]
  /** Successful connects per tenant in the whole hours since `since`; undefined while Redis cannot be read (cluster mode). */
  connectCounts(since: string, tenants?: readonly string[]): Promise<Map<string, number> | undefined>
  /** Certification runs (broker/certify): start (202, in the background), list, get, cancel, evidence. */
  startCertification(tenant: string, input: { endpointId: string, level?: string | undefined, workflows?: string[] | undefined, onlineTimeoutSeconds?: number | undefined }, actor: Actor): Promise<RunView>
  listCertifications(tenant: string): Promise<RunView[]>
  getCertification(tenant: string, id: string): Promise<RunView>
  cancelCertification(tenant: string, id: string): Promise<RunView>
  /** Resumes a run interrupted by a restart (202, in the background). */
  resumeCertification(tenant: string, id: string, actor: Actor): Promise<RunView>
  certificationEvidence(tenant: string, id: string): Promise<{ manifest: Record<string, unknown>, verification: VerifyResult }>
  /** The device matrix as JSON, CSV or Markdown (only the given tenants' rows when scoped). */
  deviceMatrix(format: 'json' | 'csv' | 'markdown', tenants?: readonly string[]): { type: string, body: string }
}
