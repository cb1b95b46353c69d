// GET /v1/security-stats: per-tenant security posture over the last 24 h or 7 d (event counts by
// code, cross-tenant attempts made by and made against each tenant, successful connects). The
// console's overview.
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
    crossTenantAgainst: { type: 'integer' },
    connectsOk: { type: 'integer', description: 'successful connects (sessions started) in the window, counted by whole hours; absent while Redis cannot be read (cluster mode)' }
  }
} as const

export function registerSecurityStatsRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
  v1.get('/security-stats', {
    config: { access: { permission: 'read', scope: 'tenant-query', action: 'security-stats.get' } },
    schema: {
      summary: 'Security event counts per tenant and code over a window (cross-tenant attempts by and against each tenant; bounded by the newest 100,000 events this node holds) and successful connects per tenant (hourly counters: every node in cluster mode, since start in embedded mode)',
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
    const stats = control.securityStats(since, only)
    const connects = await control.connectCounts(since, only)
    if (connects !== undefined) {
      const byTenant = new Map(stats.map(s => [s.tenant, s]))
      for (const tenant of connects.keys()) {
        let s = byTenant.get(tenant)
        if (s === undefined) { s = { tenant, codes: {}, crossTenantBy: 0, crossTenantAgainst: 0 }; byTenant.set(tenant, s); stats.push(s) }
      }
      for (const s of stats) (s as typeof s & { connectsOk?: number }).connectsOk = connects.get(s.tenant) ?? 0
      stats.sort((a, b) => a.tenant.localeCompare(b.tenant))
    }
    return { window, since, tenants: stats }
  })
}
