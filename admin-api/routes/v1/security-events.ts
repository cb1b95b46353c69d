// Admin API v1: the security-event log (filtered query: codes, severities, tenant, principal, time range).
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ControlPlane } from '../../../broker/control/index.ts'
import { visibleTenants } from '../../plugins/access.ts'
import * as S from '../../schemas.ts'

export function registerSecurityEventsRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
  v1.get('/security-events', {
    config: { access: { permission: 'read', scope: 'tenant-query', action: 'security-event.list' } },
    schema: {
      summary: 'Security events and the admin audit trail, newest first (a tenant filter or tenant scope also matches cross-tenant attempts aimed at the tenant)',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          tenant: S.tenantId,
          code: S.eventCodes,
          severity: S.severities,
          principal: S.principal,
          actor: S.tokenId,
          action: { type: 'string', pattern: '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]*)*$', maxLength: 64 },
          since: { type: 'string', format: 'date-time' },
          until: { type: 'string', format: 'date-time' },
          limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 }
        }
      },
      response: { 200: S.listOf('events', S.securityEvent) }
    }
  }, async (req: FastifyRequest<{ Querystring: { tenant?: string, code?: string, severity?: string, principal?: string, actor?: string, action?: string, since?: string, until?: string, limit?: number } }>) =>
    ({ events: control.queryEvents({ ...req.query, tenants: visibleTenants(req) }) }))
}
