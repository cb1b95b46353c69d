// GET /v1/security-stats: per-tenant security posture over the last 24 h or 7 d (event counts by
// code, cross-tenant attempts made by and made against each tenant). The console's overview.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ControlPlane } from '../../../broker/control/index.ts'
import { visibleTenants } from '../../plugins/access.ts'

const WINDOWS = { '24h': 24 * 3600_000, '7d': 7 * 24 * 3600_000 } as const

const tenantStats = {
  type: 'object',
  required: ['tenant', 'codes', 'crossTenantBy', 'crossTenantAgainst'],
  additionalProperties: false,
  properties: {
    tenant: { type: 'string' },
    codes: { type: 'object', additionalProperties: { type: 'integer' } },
    crossTenantBy: { type: 'integer' },
    crossTenantAgainst: { type: 'integer' }
  }
} as const

export function registerSecurityStatsRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
  v1.get('/security-stats', {
    config: { access: { permission: 'read', scope: 'tenant-query', action: 'security-stats.get' } },
    schema: {
      summary: 'Security event counts per tenant and code over a window (cross-tenant attempts by and against each tenant); bounded by the newest 100,000 events this node holds',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { window: { type: 'string', enum: Object.keys(WINDOWS), default: '24h' }, tenant: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,31}$' } }
      },
      response: {
        200: {
          type: 'object',
          required: ['window', 'since', 'tenants'],
          additionalProperties: false,
          properties: { window: { type: 'string' }, since: { type: 'string' }, tenants: { type: 'array', items: tenantStats } }
        }
      }
    }
  }, async (req: FastifyRequest<{ Querystring: { window?: keyof typeof WINDOWS, tenant?: string } }>) => {
    const window = req.query.window ?? '24h'
    const since = new Date(Date.now() - WINDOWS[window]).toISOString()
    const scope = visibleTenants(req)
    const only = req.query.tenant !== undefined ? [req.query.tenant] : scope
    return { window, since, tenants: control.securityStats(since, only) }
  })
}
