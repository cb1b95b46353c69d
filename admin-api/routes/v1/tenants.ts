// Admin API v1: tenants (create, list, update USP settings).
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ControlPlane, TenantQuotas, TenantUspSettings } from '../../../broker/control/index.ts'
import { visibleTenants } from '../../plugins/access.ts'
import { problems } from '../../plugins/problem.ts'
import * as S from '../../schemas.ts'

export function registerTenantsRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
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
      summary: 'Change a tenant\'s name, USP inspection / audit settings or fairness quotas (per node; 0 = no limit), or disable it (its sessions are cut, its CONNECTs refused) and enable it again',
      params: S.tenantParams,
      body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { name: { type: 'string', minLength: 1, maxLength: 200 }, usp: S.uspSettings, quotas: S.tenantQuotas, disabled: { type: 'boolean' } } },
      response: { 200: S.updatedTenant }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string }, Body: { name?: string, usp?: Partial<TenantUspSettings>, quotas?: TenantQuotas, disabled?: boolean } }>) =>
    await control.updateTenant(req.params.tenant, req.body, req.actor!))

}
