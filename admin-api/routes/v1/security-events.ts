// Admin API v1: the security-event log (filtered query).
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ControlPlane } from '../../../broker/control/index.ts'
import { visibleTenants } from '../../plugins/access.ts'
import * as S from '../../schemas.ts'

export function registerSecurityEventsRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
  v1.get('/security-events', {
    config: { access: { permission: 'read', scope: 'tenant-query', action: 'security-event.list' } },
    schema: {
      summary: 'Security events and the admin audit trail, newest first',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          tenant: S.tenantId,
          code: { type: 'string', pattern: '^[a-z_]+(\\.[a-z0-9_]*)?$', maxLength: 64 },
          actor: S.tokenId,
          action: { type: 'string', pattern: '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]*)*$', maxLength: 64 },
          since: { type: 'string', format: 'date-time' },
          limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 }
        }
      },
      response: { 200: S.listOf('events', S.securityEvent) }
    }
  }, async (req: FastifyRequest<{ Querystring: { tenant?: string, code?: string, actor?: string, action?: string, since?: string, limit?: number } }>) =>
    ({ events: control.queryEvents({ ...req.query, tenants: visibleTenants(req) }) }))
}
