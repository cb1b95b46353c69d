// GET /v1/me: who the bearer token is (role, tenant scope, permissions) — never the token itself.
// The console uses it to show only the pages and buttons the token can use.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { ADMIN_PERMISSIONS, permissionsOf, type AdminPermission } from '../../../broker/control/index.ts'
import * as S from '../../schemas.ts'

const me = {
  type: 'object',
  required: ['id', 'name', 'role', 'permissions'],
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    role: S.adminRole,
    tenants: { type: 'array', items: { type: 'string' } },
    permissions: { type: 'array', items: { type: 'string', enum: Object.keys(ADMIN_PERMISSIONS) } }
  }
} as const

export function registerMeRoutes (v1: FastifyInstance<any, any, any, any>): void {
  v1.get('/me', {
    config: { access: { permission: 'read', scope: 'any', action: 'token.self' } },
    schema: { summary: 'The calling token: id, name, role, tenant scope and permissions (never the token)', response: { 200: me } }
  }, async (req: FastifyRequest) => {
    const a = req.actor!
    const permissions: AdminPermission[] = [...permissionsOf(a.role)]
    return { id: a.id, name: a.name, role: a.role, ...(a.tenants !== undefined ? { tenants: [...a.tenants] } : {}), permissions }
  })
}
