// /v1/tokens: admin tokens. Admin role, unscoped tokens only. A new token is
// in the creation reply only (cache-control: no-store); listings never show
// tokens or hashes. Revocation takes effect on the next request.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ControlPlane } from '../../../broker/control/index.ts'
import { MAX_TOKEN_TENANTS } from '../../../broker/control/index.ts'
import { problems } from '../../plugins/problem.ts'
import * as S from '../../schemas.ts'

export function registerTokenRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
  v1.post('/tokens', {
    config: { access: { permission: 'token.manage', scope: 'unscoped', action: 'token.create' } },
    schema: {
      summary: 'Create an admin token (shown once)',
      body: {
        type: 'object',
        required: ['name', 'role'],
        additionalProperties: false,
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]+$' },
          role: S.adminRole,
          tenants: { type: 'array', minItems: 1, maxItems: MAX_TOKEN_TENANTS, uniqueItems: true, items: S.tenantId }
        }
      },
      response: { 201: S.createdAdminToken }
    }
  }, async (req: FastifyRequest<{ Body: { name: string, role: string, tenants?: string[] } }>, reply) => {
    const created = await control.admin.createToken(req.body, req.actor!)
    return reply.code(201).header('cache-control', 'no-store').send(created)
  })

  v1.get('/tokens', {
    config: { access: { permission: 'token.manage', scope: 'unscoped', action: 'token.list' } },
    schema: { summary: 'List admin tokens (never the tokens or their hashes)', response: { 200: S.listOf('tokens', S.adminToken) } }
  }, async () => ({ tokens: control.admin.listTokens() }))

  v1.delete('/tokens/:id', {
    config: { access: { permission: 'token.manage', scope: 'unscoped', action: 'token.revoke' } },
    schema: {
      summary: 'Revoke an admin token (the bootstrap token cannot be revoked here: 409)',
      params: { type: 'object', required: ['id'], additionalProperties: false, properties: { id: S.tokenId } },
      response: { 200: S.adminToken, ...problems(409) }
    }
  }, async (req: FastifyRequest<{ Params: { id: string } }>) => await control.admin.revokeToken(req.params.id, req.actor!))
}
