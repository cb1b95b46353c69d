// JSON schemas for the admin routes. additionalProperties: false everywhere:
// an unknown field is a mistake the caller must hear about, not silently drop.
// `examples` steer the OpenAPI fuzz run (test/admin/fuzz.test.ts) to data that exists.
import { TENANT_ID } from '../certs/index.ts'

/** The tenant-id rule's pattern (certs/identity.ts); USP Endpoint ID schemes are refused by the control plane. */
export const tenantId = { type: 'string', pattern: TENANT_ID.source, examples: ['acme'] } as const
export const principal = { type: 'string', minLength: 1, maxLength: 128, examples: ['os::00256D-0001'] } as const

export const uspSettings = {
  type: 'object',
  additionalProperties: false,
  properties: {
    inspection: { type: 'string', enum: ['enforce', 'observe', 'off'] },
    audit: { type: 'string', enum: ['envelope', 'message'] }
  }
} as const

/** Per-node fairness quotas of a tenant (0 = no limit). */
export const tenantQuotas = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    maxConnections: { type: 'integer', minimum: 0, maximum: 10_000_000, description: 'Live MQTT connections of the tenant per node; a CONNECT above it gets CONNACK 0x97 (3.1.1: 3).' },
    maxSubscriptions: { type: 'integer', minimum: 0, maximum: 100_000_000, description: 'Subscriptions held by the tenant\'s live clients per node; new filters above it are refused in the SUBACK.' }
  }
} as const

export const tenant = {
  type: 'object',
  required: ['id', 'name', 'createdAt'],
  additionalProperties: false,
  properties: { id: { type: 'string' }, name: { type: 'string' }, createdAt: { type: 'string' }, usp: uspSettings, quotas: tenantQuotas, disabled: { type: 'boolean' } }
} as const

/** PATCH /v1/tenants/:tenant: the tenant, and how many live sessions a disable cut on this node. */
export const updatedTenant = { ...tenant, properties: { ...tenant.properties, disconnected: { type: 'integer' } } } as const

export const endpoint = {
  type: 'object',
  additionalProperties: false,
  properties: {
    tenant: { type: 'string' },
    endpointId: { type: 'string' },
    role: { type: 'string' },
    online: { type: 'boolean' },
    firstContact: { type: 'string' },
    lastSeen: { type: 'string' },
    mqttVersion: { type: 'string' },
    subscribedTopic: { type: 'string' },
    node: { type: 'string' }
  }
} as const

/** One presence change of an endpoint (GET …/endpoints/{endpointId}/presence). */
export const presenceTransition = {
  type: 'object',
  required: ['state', 'time', 'node', 'mqttVersion'],
  additionalProperties: false,
  properties: {
    state: { type: 'string', enum: ['online', 'offline'] },
    time: { type: 'string' },
    node: { type: 'string' },
    mqttVersion: { type: 'string' },
    reason: { type: 'string', enum: ['disconnect', 'revoked', 'cut', 'keepalive', 'error', 'closed'], description: 'offline only: its DISCONNECT, cut for a revocation, another cut by the gateway, keep-alive timeout, socket error, or closed without DISCONNECT' },
    detail: { type: 'string' }
  }
} as const

export const uspAuditEntry = {
  type: 'object',
  additionalProperties: false,
  properties: {
    time: { type: 'string' },
    tenant: { type: 'string' },
    fromId: { type: 'string' },
    toId: { type: 'string' },
    topic: { type: 'string' },
    recordType: { type: 'string' },
    result: { type: 'string' },
    code: { type: 'string' },
    msgId: { type: 'string' },
    msgType: { type: 'string' },
    kind: { type: 'string' }
  }
} as const

export const credential = {
  type: 'object',
  required: ['username', 'tenant', 'principal', 'role', 'createdAt', 'revoked'],
  additionalProperties: false,
  properties: {
    username: { type: 'string' },
    tenant: { type: 'string' },
    principal: { type: 'string' },
    role: { type: 'string' },
    createdAt: { type: 'string' },
    revoked: { type: 'boolean' },
    revokedAt: { type: 'string' }
  }
} as const

export const issuedCredential = {
  ...credential,
  required: [...credential.required, 'secret'],
  properties: { ...credential.properties, secret: { type: 'string' } }
} as const

export const revokedCredential = {
  ...credential,
  required: [...credential.required, 'disconnected'],
  properties: { ...credential.properties, disconnected: { type: 'integer' } }
} as const

export const session = {
  type: 'object',
  additionalProperties: false,
  properties: {
    tenant: { type: 'string' },
    principal: { type: 'string' },
    role: { type: 'string' },
    clientId: { type: 'string' },
    protocol: { type: 'string' },
    listener: { type: 'string' },
    auth: { type: 'string' },
    remoteAddress: { type: 'string' },
    connectedAt: { type: 'string' },
    node: { type: 'string' }
  }
} as const

export const securityEvent = {
  type: 'object',
  required: ['id', 'time', 'code', 'severity', 'node'],
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    time: { type: 'string' },
    code: { type: 'string' },
    severity: { type: 'string' },
    node: { type: 'string' },
    tenant: { type: 'string' },
    principal: { type: 'string' },
    clientId: { type: 'string' },
    remoteAddress: { type: 'string' },
    action: { type: 'string' },
    topic: { type: 'string' },
    reason: { type: 'string' },
    policyRevision: { type: 'string' },
    actor: { type: 'string' },
    count: { type: 'integer' },
    role: { type: 'string' },
    target: { type: 'string' },
    result: { type: 'string', enum: ['ok', 'denied', 'error'] },
    status: { type: 'integer' },
    requestId: { type: 'string' },
    targetTenant: { type: 'string' }
  }
} as const

/** ?code=: one event code or a comma-separated list; a code ending in '.' is a prefix (acl.). */
export const eventCodes = { type: 'string', pattern: '^[a-z_]+(\\.[a-z0-9_]*)?(,[a-z_]+(\\.[a-z0-9_]*)?){0,31}$', maxLength: 600, examples: ['acl.cross_tenant,auth.'] } as const
/** ?severity=: comma-separated severities. */
export const severities = { type: 'string', pattern: '^(info|warning|critical)(,(info|warning|critical)){0,2}$', examples: ['warning,critical'] } as const

export const adminRole = { type: 'string', enum: ['viewer', 'security', 'noc', 'admin'] } as const
export const tokenId = { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' } as const

export const adminToken = {
  type: 'object',
  required: ['id', 'name', 'role', 'createdAt', 'revoked', 'bootstrap'],
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    role: adminRole,
    tenants: { type: 'array', items: { type: 'string' } },
    createdAt: { type: 'string' },
    createdBy: { type: 'string' },
    revoked: { type: 'boolean' },
    revokedAt: { type: 'string' },
    bootstrap: { type: 'boolean' }
  }
} as const

export const createdAdminToken = {
  ...adminToken,
  required: [...adminToken.required, 'token'],
  properties: { ...adminToken.properties, token: { type: 'string' } }
} as const

/** { <key>: [items] } list replies. */
export const eventPage = {
  type: 'object',
  required: ['events'],
  additionalProperties: false,
  properties: { events: { type: 'array', items: securityEvent }, next: { type: 'string' } }
} as const

export function listOf<K extends string, T> (key: K, items: T): { type: 'object', required: [K], additionalProperties: false, properties: Record<K, { type: 'array', items: T }> } {
  return { type: 'object', required: [key], additionalProperties: false, properties: { [key]: { type: 'array', items } } as Record<K, { type: 'array', items: T }> }
}

export const tenantParams = { type: 'object', required: ['tenant'], additionalProperties: false, properties: { tenant: tenantId } } as const

/** PEM text (RFC 7468) replies. */
export const pemText = { type: 'string', pattern: '^-----BEGIN ' } as const
