// The records the stores keep (tenants, credentials, endpoints, admin tokens) and the store interfaces beside StateStore.
import type { Role } from '../core/index.ts'

export type UspInspectionMode = 'enforce' | 'observe' | 'off'
export type UspAuditLevel = 'envelope' | 'message'

export interface TenantUspSettings {
  /** USP Record checks on inbox PUBLISHes (sender binding, routing, reply-to). */
  inspection: UspInspectionMode
  /** 'envelope' never decodes the Msg (TR-369 R-SEC.4c); 'message' audits msg_id/msg_type too. */
  audit: UspAuditLevel
}

export const DEFAULT_USP_SETTINGS: TenantUspSettings = { inspection: 'enforce', audit: 'envelope' }

export interface TenantRecord {
  id: string
  name: string
  createdAt: string
  usp?: TenantUspSettings
  /** A disabled tenant's sessions are cut and its CONNECTs refused (auth.tenant_disabled) until it is enabled. */
  disabled?: boolean
  /** Fairness quotas of this tenant (absent or 0: no limit). */
  quotas?: TenantQuotas
}

export interface TenantQuotas {
  /** Live MQTT connections of the tenant (cluster mode: across every node); a CONNECT above it is refused (0x97). */
  maxConnections?: number
  /** Subscriptions held by the tenant's live clients (cluster mode: across every node, within a second); new filters above it are refused. */
  maxSubscriptions?: number
}

export interface EndpointRecord {
  tenant: string
  endpointId: string
  role: string
  online: boolean
  firstContact: string
  lastSeen: string
  mqttVersion: string
  /** From the MQTTConnectRecord the endpoint sent (TR-369 R-MTP.6), when seen. */
  subscribedTopic?: string
  node: string
}

/** Why a session ended, when the gateway knows (GET /v1/tenants/{tenant}/endpoints/{id}/presence). */
export type OfflineReason = 'disconnect' | 'revoked' | 'cut' | 'keepalive' | 'error' | 'closed'

/** One presence change of an endpoint on one node. */
export interface PresenceTransition {
  state: 'online' | 'offline'
  time: string
  node: string
  mqttVersion: string
  /** offline only */
  reason?: OfflineReason
  /** e.g. the DISCONNECT reason code the gateway sent, or the socket error */
  detail?: string
}

/** A row of the certification device matrix: its meaning belongs to broker/certify (matrix.ts). */
export interface DeviceMatrixRecord { key: string, [field: string]: unknown }

export interface CredentialRecord {
  tenant: string
  principal: string
  role: Role
  secretHash: string
  createdAt: string
  revokedAt?: string
}

export type AdminRole = 'viewer' | 'security' | 'noc' | 'admin'

export interface AdminTokenRecord {
  id: string
  name: string
  role: AdminRole
  tokenHash: string
  createdAt: string
  revokedAt?: string
  /** Tenant-scoped token: sees and acts on only these tenants (absent = every tenant). */
  tenants?: string[]
  /** Token id of the admin who created it (absent for the bootstrap token). */
  createdBy?: string
}

/** Public view of a credential: never the hash. */
export interface CredentialView {
  username: string
  tenant: string
  principal: string
  role: Role
  createdAt: string
  revoked: boolean
  revokedAt?: string
}

export function credentialView (c: CredentialRecord): CredentialView {
  const v: CredentialView = {
    username: `${c.tenant}:${c.principal}`,
    tenant: c.tenant,
    principal: c.principal,
    role: c.role,
    createdAt: c.createdAt,
    revoked: c.revokedAt !== undefined
  }
  if (c.revokedAt !== undefined) v.revokedAt = c.revokedAt
  return v
}

/** Cluster mode: where policy versions live (Redis) instead of <dataDir>/policies; implemented in broker/cluster. */
export interface PolicySharedStore {
  /** Throws (ControlError 503) while the shared store cannot be written: nothing changes then. */
  assertWritable(): void
  loadIndex(): Promise<string | null>
  /** Writes the index only if it still is `expected` (null: absent); false when another node wrote first. */
  saveIndexIf(text: string, expected: string | null): Promise<boolean>
  getBundle(revision: string): Promise<Buffer | null>
  putBundle(revision: string, bytes: Buffer): Promise<void>
  delBundle(revision: string): Promise<void>
}
