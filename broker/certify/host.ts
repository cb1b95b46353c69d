// What a certification run needs from the gateway, as a narrow interface (the composition root
// builds it), so broker/certify never imports gateway.ts or aedes.
import type { StateStore } from '../store/index.ts'
import type { SessionIndex } from '../mqtt/index.ts'
import type { SecurityEvents } from '../core/index.ts'
import type { Endpoints, UspAuditEntry } from '../usp/index.ts'

export interface CertifyHost {
  dataDir: string
  nodeId: string
  store: StateStore
  sessions: SessionIndex
  events: SecurityEvents
  endpoints: Endpoints
  /** Where the run's own MQTT clients connect (the gateway's TCP listener). */
  mqttAddress(): { host: string, port: number }
  /** Cuts every live session of an identity and marks it revoked (credential revocation). */
  disconnectIdentity(tenant: string, principal: string): number
  uspAuditOf(tenant: string): Promise<UspAuditEntry[]>
  policyAssignment(): { stable: string, canary?: { revision: string, tenants: string[] } }
  revisionFor(tenant: string): string
  /** A stored revision with the stable rules under another name (created once, reused). */
  ensureCanaryRevision(stable: string): Promise<string>
  startCanary(revision: string, tenants: string[], actor: string): Promise<void>
  rollback(actor: string, reason: string): Promise<void>
  /** Signs evidence manifests with the gateway root CA. */
  sign(data: Uint8Array<ArrayBuffer>): Promise<{ algorithm: 'RSASSA-PKCS1-v1_5-SHA256', signature: Buffer, certificatePem: string }>
  /** Throws while the state store cannot be written (cluster mode: Redis down). */
  requireWritable(): void
  /**
   * Cluster mode: requests to another node over Redis (a run is forwarded to the node holding the
   * device's session, and its progress / cancel / resume asked there).
   */
  nodes?: {
    request(node: string, topic: string, body: unknown): Promise<unknown>
    handle(topic: string, handler: (body: unknown) => Promise<unknown>): void
  }
}
