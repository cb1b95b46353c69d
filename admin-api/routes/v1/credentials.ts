// Admin API v1: device credentials of a tenant (issue, list, revoke).
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ControlPlane } from '../../../broker/control/index.ts'
import { problems } from '../../plugins/problem.ts'
import * as S from '../../schemas.ts'

export function registerCredentialsRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
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

}
