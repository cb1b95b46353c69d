// Admin API v1: the USP endpoint registry and USP audit trail of a tenant, and the registry across
// every tenant a token sees, searchable and paged (the console's device list).
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ControlPlane } from '../../../broker/control/index.ts'
import { visibleTenants } from '../../plugins/access.ts'
import { problems } from '../../plugins/problem.ts'
import * as S from '../../schemas.ts'

interface SearchQuery { tenant?: string, q?: string, status?: 'online' | 'offline', offset?: number, limit?: number }

export function registerEndpointsRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
  v1.get('/tenants/:tenant/endpoints', {
    config: { access: { permission: 'read', scope: 'tenant-param', action: 'endpoint.list' } },
    // 503: cluster mode, Redis unreachable from this node
    schema: { summary: 'USP endpoints seen for a tenant', params: S.tenantParams, response: { 200: S.listOf('endpoints', S.endpoint), ...problems(503) } }
  }, async (req: FastifyRequest<{ Params: { tenant: string } }>) => ({ endpoints: await control.listEndpoints(req.params.tenant) }))

  v1.get('/tenants/:tenant/endpoints/:endpointId', {
    config: { access: { permission: 'read', scope: 'tenant-param', action: 'endpoint.get' } },
    schema: {
      summary: 'One USP endpoint',
      params: { type: 'object', required: ['tenant', 'endpointId'], additionalProperties: false, properties: { tenant: S.tenantId, endpointId: S.principal } },
      response: { 200: S.endpoint, ...problems(503) }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string, endpointId: string } }>) => await control.getEndpoint(req.params.tenant, req.params.endpointId))

  v1.get('/tenants/:tenant/endpoints/:endpointId/presence', {
    config: { access: { permission: 'read', scope: 'tenant-param', action: 'endpoint.presence' } },
    schema: {
      summary: 'Presence timeline of one USP endpoint: its last 50 online/offline transitions on every node, newest first, with the reason a session ended when known (embedded mode: since the gateway started)',
      params: { type: 'object', required: ['tenant', 'endpointId'], additionalProperties: false, properties: { tenant: S.tenantId, endpointId: S.principal } },
      response: { 200: S.listOf('transitions', S.presenceTransition), ...problems(503) }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string, endpointId: string } }>) => ({ transitions: await control.endpointPresence(req.params.tenant, req.params.endpointId) }))

  v1.get('/tenants/:tenant/usp-audit', {
    config: { access: { permission: 'read', scope: 'tenant-param', action: 'usp-audit.list' } },
    schema: {
      summary: 'USP Record audit trail of a tenant, newest first',
      params: S.tenantParams,
      // endpoint: only records sent by or to that Endpoint ID (among the newest 1000)
      querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 }, endpoint: S.principal } },
      response: { 200: S.listOf('records', S.uspAuditEntry), ...problems(503) }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string }, Querystring: { limit?: number, endpoint?: string } }>) => {
    const { limit, endpoint } = req.query
    if (endpoint === undefined) return { records: await control.uspAuditTrail(req.params.tenant, limit) }
    const all = await control.uspAuditTrail(req.params.tenant, 1000)
    return { records: all.filter(r => r.fromId === endpoint || r.toId === endpoint).slice(0, limit ?? 100) }
  })

  v1.get('/endpoints', {
    config: { access: { permission: 'read', scope: 'tenant-query', action: 'endpoint.search' } },
    schema: {
      summary: 'USP endpoints of every tenant the token sees, filtered and paged (sorted by tenant, then Endpoint ID)',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          tenant: S.tenantId,
          // case-insensitive substring of the Endpoint ID, tenant or role
          q: { type: 'string', minLength: 1, maxLength: 128 },
          status: { type: 'string', enum: ['online', 'offline'] },
          offset: { type: 'integer', minimum: 0, maximum: 10_000_000, default: 0 },
          limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 }
        }
      },
      response: {
        200: {
          type: 'object',
          required: ['endpoints', 'total', 'offset', 'limit'],
          additionalProperties: false,
          properties: { endpoints: { type: 'array', items: S.endpoint }, total: { type: 'integer' }, offset: { type: 'integer' }, limit: { type: 'integer' } }
        },
        ...problems(503)
      }
    }
  }, async (req: FastifyRequest<{ Querystring: SearchQuery }>) => {
    const scope = visibleTenants(req)
    const { tenant, q, status } = req.query
    const offset = req.query.offset ?? 0
    const limit = req.query.limit ?? 50
    const tenants = control.listTenants().map(t => t.id)
      .filter(t => (scope === undefined || scope.includes(t)) && (tenant === undefined || t === tenant))
      .sort()
    const needle = q?.toLowerCase()
    const found: Awaited<ReturnType<ControlPlane['listEndpoints']>> = []
    for (const t of tenants) {
      for (const e of await control.listEndpoints(t)) {
        if (status !== undefined && e.online !== (status === 'online')) continue
        if (needle !== undefined && !`${e.endpointId}\u0000${e.tenant}\u0000${e.role}`.toLowerCase().includes(needle)) continue
        found.push(e)
      }
    }
    return { endpoints: found.slice(offset, offset + limit), total: found.length, offset, limit }
  })
}
