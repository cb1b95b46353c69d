// Admin API v1: the security-event log (filtered query: codes, severities, tenant, principal, time range; cursor paging).
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ControlPlane } from '../../../broker/control/index.ts'
import { visibleTenants } from '../../plugins/access.ts'
import * as S from '../../schemas.ts'

interface Query {
  tenant?: string, code?: string, severity?: string, minSeverity?: 'info' | 'warning' | 'critical', principal?: string,
  actor?: string, action?: string, since?: string, until?: string, cursor?: string, limit?: number
}

export function registerSecurityEventsRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
  v1.get('/security-events', {
    config: { access: { permission: 'read', scope: 'tenant-query', action: 'security-event.list' } },
    schema: {
      summary: 'Security events and the admin audit trail, newest first (a tenant filter or tenant scope also matches cross-tenant attempts aimed at the tenant); `next` pages to older events',
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
          minSeverity: { type: 'string', enum: ['info', 'warning', 'critical'], description: 'this severity or higher' },
          cursor: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,200}$', description: 'the `next` value of the previous page' },
          limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 }
        }
      },
      response: { 200: S.eventPage }
    }
  }, async (req: FastifyRequest<{ Querystring: Query }>) =>
    control.queryEvents({ ...req.query, tenants: visibleTenants(req) }))
}
