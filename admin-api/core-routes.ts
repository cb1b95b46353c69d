// /v1 tenants, credentials, sessions, security events, USP endpoints and USP
// audit. Registered inside the authenticated /v1 scope; every route declares
// who may call it (config.access, see access.ts); errors are ControlErrors →
// problem+json.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ControlPlane } from '../broker/control/control-plane.ts'
import type { TenantUspSettings } from '../broker/store/index.ts'
import { visibleTenants } from './access.ts'
import { problems } from './problem.ts'
import * as S from './schemas.ts'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function registerCoreRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
  v1.post('/tenants', {
    config: { access: { permission: 'tenant.write', scope: 'tenant-body', action: 'tenant.create' } },
    schema: {
      summary: 'Create a tenant',
      body: { type: 'object', required: ['id'], additionalProperties: false, properties: { id: S.tenantId, name: { type: 'string', minLength: 1, maxLength: 200 } } },
      response: { 201: S.tenant, ...problems(409) }
    }
  }, async (req: FastifyRequest<{ Body: { id: string, name?: string } }>, reply) => {
    const t = await control.addTenant(req.body, req.actor!)
    return reply.code(201).send(t)
  })

  v1.get('/tenants', {
    config: { access: { permission: 'read', scope: 'filtered', action: 'tenant.list' } },
    schema: { summary: 'List tenants (a tenant-scoped token sees its own)', response: { 200: S.listOf('tenants', S.tenant) } }
  }, async (req) => {
    const scope = visibleTenants(req)
    const all = control.listTenants()
    return { tenants: scope === undefined ? all : all.filter(t => scope.includes(t.id)) }
  })

  v1.patch('/tenants/:tenant', {
    config: { access: { permission: 'tenant.write', scope: 'tenant-param', action: 'tenant.update' } },
    schema: {
      summary: 'Change a tenant\'s name or USP inspection / audit settings',
      params: S.tenantParams,
      body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { name: { type: 'string', minLength: 1, maxLength: 200 }, usp: S.uspSettings } },
      response: { 200: S.tenant }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string }, Body: { name?: string, usp?: Partial<TenantUspSettings> } }>) =>
    await control.updateTenant(req.params.tenant, req.body, req.actor!))

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

  v1.post('/tenants/:tenant/credentials', {
    config: { access: { permission: 'credential.issue', scope: 'tenant-param', action: 'credential.issue' } },
    schema: {
      summary: 'Issue a device credential (the secret is in this reply only)',
      params: S.tenantParams,
      body: { type: 'object', required: ['principal', 'role'], additionalProperties: false, properties: { principal: S.principal, role: { type: 'string', enum: ['agent', 'controller'] } } },
      response: { 201: S.issuedCredential, ...problems(409) }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string }, Body: { principal: string, role: string } }>, reply) => {
    const issued = await control.issueCredential(req.params.tenant, req.body, req.actor!)
    return reply.code(201).header('cache-control', 'no-store').send(issued)
  })

  v1.get('/tenants/:tenant/credentials', {
    config: { access: { permission: 'read', scope: 'tenant-param', action: 'credential.list' } },
    schema: { summary: 'Device credentials of a tenant (never secrets or hashes)', params: S.tenantParams, response: { 200: S.listOf('credentials', S.credential) } }
  }, async (req: FastifyRequest<{ Params: { tenant: string } }>) => ({ credentials: control.listCredentials(req.params.tenant) }))

  v1.delete('/tenants/:tenant/credentials/:principal', {
    config: { access: { permission: 'credential.revoke', scope: 'tenant-param', action: 'credential.revoke' } },
    schema: {
      summary: 'Revoke a device credential; its live sessions are disconnected',
      params: { type: 'object', required: ['tenant', 'principal'], additionalProperties: false, properties: { tenant: S.tenantId, principal: S.principal } },
      response: { 200: S.revokedCredential }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string, principal: string } }>) =>
    await control.revokeCredential(req.params.tenant, req.params.principal, req.actor!))

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
