// Admin API v1: live MQTT sessions on this node.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ControlPlane } from '../../../broker/control/index.ts'
import { visibleTenants } from '../../plugins/access.ts'
import * as S from '../../schemas.ts'

export function registerSessionsRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
  v1.get('/sessions', {
    config: { access: { permission: 'read', scope: 'tenant-query', action: 'session.list' } },
    schema: {
      summary: 'Live sessions on this node',
      querystring: { type: 'object', additionalProperties: false, properties: { tenant: S.tenantId } },
      response: { 200: S.listOf('sessions', S.session) }
    }
  }, async (req: FastifyRequest<{ Querystring: { tenant?: string } }>) => {
    const scope = visibleTenants(req)
    const sessions = control.listSessions(req.query.tenant)
    return { sessions: scope === undefined ? sessions : sessions.filter(s => scope.includes(s.tenant)) }
  })

}
