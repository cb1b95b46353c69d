// Admin API v1: the USP endpoint registry and USP audit trail of a tenant.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ControlPlane } from '../../../broker/control/index.ts'
import { problems } from '../../plugins/problem.ts'
import * as S from '../../schemas.ts'

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

  v1.get('/tenants/:tenant/usp-audit', {
    config: { access: { permission: 'read', scope: 'tenant-param', action: 'usp-audit.list' } },
    schema: {
      summary: 'USP Record audit trail of a tenant, newest first',
      params: S.tenantParams,
      querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } } },
      response: { 200: S.listOf('records', S.uspAuditEntry), ...problems(503) }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string }, Querystring: { limit?: number } }>) => ({ records: await control.uspAuditTrail(req.params.tenant, req.query.limit) }))

}
