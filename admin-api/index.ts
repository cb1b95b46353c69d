// The admin API: fastify, bearer tokens, JSON in and out, problem+json errors.
// It drives the gateway only through the ControlPlane.
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { createHash } from 'node:crypto'
import { ControlError, type Actor, type ControlPlane } from '../broker/control-plane.ts'
import { problemSchema, sendProblem } from './problem.ts'
import * as S from './schemas.ts'
import { registerPolicyRoutes } from './policy-routes.ts'
import { registerCertRoutes } from './cert-routes.ts'

export interface AdminApi {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  app: FastifyInstance<any, any, any, any>
  listen(host: string, port: number): Promise<number>
  close(): Promise<void>
}

declare module 'fastify' {
  interface FastifyRequest { actor?: Actor }
}

const problems = { 400: problemSchema, 401: problemSchema, 404: problemSchema, 409: problemSchema }

export async function buildAdminApi (control: ControlPlane, opts: { logger?: Logger } = {}): Promise<AdminApi> {
  const app = Fastify({
    // per-request logs stay below warn; security-relevant calls are security events
    ...(opts.logger ? { loggerInstance: opts.logger.child({ component: 'admin-api' }, { level: 'warn' }) } : { logger: false }),
    bodyLimit: 64 * 1024,
    // Unknown fields are refused (400), not silently stripped.
    ajv: { customOptions: { removeAdditional: false, allErrors: false } }
  })

  app.setErrorHandler((err: Error & { statusCode?: number, validation?: unknown, code?: string }, req, reply) => {
    if (err instanceof ControlError) return sendProblem(reply, err.status, err.title, err.message)
    if (err.validation) return sendProblem(reply, 400, 'invalid request', err.message)
    const status = err.statusCode ?? 500
    if (status >= 400 && status < 500) {
      const title = err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError ? 'invalid JSON' : 'bad request'
      return sendProblem(reply, status, title, err.message)
    }
    req.log.error({ err }, 'admin request failed')
    return sendProblem(reply, 500, 'internal error', 'the request failed; see the gateway log')
  })
  app.setNotFoundHandler((req, reply) => sendProblem(reply, 404, 'not found', `no route ${req.method} ${req.url.split('?')[0]}`))

  // ---- unauthenticated probes and metrics (no tenant data; labels are bounded)
  app.get('/healthz', { schema: { response: { 200: { type: 'object', properties: { status: { type: 'string' } } } } } }, async () => ({ status: 'ok' }))
  app.get('/readyz', async (_req, reply) => {
    const r = control.readiness()
    return reply.code(r.ready ? 200 : 503).send({ status: r.ready ? 'ready' : 'not ready', node: control.nodeId })
  })
  app.get('/metrics', async (_req, reply) => {
    reply.type(control.metrics.registry.contentType)
    return await control.metrics.render()
  })

  // ---- everything under /v1 needs a bearer token
  app.register(async v1 => {
    v1.addHook('onRequest', async (req, reply) => {
      const header = req.headers.authorization
      const m = typeof header === 'string' ? /^Bearer ([A-Za-z0-9_\-.~+/=]{16,512})$/.exec(header) : null
      const found = m ? control.findAdminToken('sha256:' + createHash('sha256').update(m[1]!).digest('hex')) : undefined
      if (!found) {
        control.recordAdminAuthFailure(req.ip, header === undefined ? 'missing bearer token' : 'unknown or revoked token')
        return sendProblem(reply.header('www-authenticate', 'Bearer realm="uspgate"'), 401, 'unauthorized', 'a valid bearer token is required')
      }
      req.actor = { id: found.id, role: found.role, address: req.ip }
    })

    const tenantParams = { type: 'object', required: ['tenant'], additionalProperties: false, properties: { tenant: S.tenantId } } as const

    v1.post('/tenants', {
      schema: {
        body: { type: 'object', required: ['id'], additionalProperties: false, properties: { id: S.tenantId, name: { type: 'string', minLength: 1, maxLength: 200 } } },
        response: { 201: S.tenant, ...problems }
      }
    }, async (req: FastifyRequest<{ Body: { id: string, name?: string } }>, reply) => {
      const t = await control.addTenant(req.body, req.actor!)
      return reply.code(201).send(t)
    })

    v1.get('/tenants', { schema: { response: { 200: { type: 'object', properties: { tenants: { type: 'array', items: S.tenant } } } } } },
      async () => ({ tenants: control.listTenants() }))

    v1.patch('/tenants/:tenant', {
      schema: {
        params: tenantParams,
        body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { name: { type: 'string', minLength: 1, maxLength: 200 }, usp: S.uspSettings } },
        response: { 200: S.tenant, ...problems }
      }
    }, async (req: FastifyRequest<{ Params: { tenant: string }, Body: { name?: string, usp?: { inspection?: 'enforce' | 'observe' | 'off', audit?: 'envelope' | 'message' } } }>) =>
      await control.updateTenant(req.params.tenant, req.body, req.actor!))

    v1.get('/tenants/:tenant/endpoints', {
      schema: { params: tenantParams, response: { 200: { type: 'object', properties: { endpoints: { type: 'array', items: S.endpoint } } }, ...problems } }
    }, async (req: FastifyRequest<{ Params: { tenant: string } }>) => ({ endpoints: control.listEndpoints(req.params.tenant) }))

    v1.get('/tenants/:tenant/endpoints/:endpointId', {
      schema: {
        params: { type: 'object', required: ['tenant', 'endpointId'], additionalProperties: false, properties: { tenant: S.tenantId, endpointId: S.principal } },
        response: { 200: S.endpoint, ...problems }
      }
    }, async (req: FastifyRequest<{ Params: { tenant: string, endpointId: string } }>) => control.getEndpoint(req.params.tenant, req.params.endpointId))

    v1.get('/tenants/:tenant/usp-audit', {
      schema: {
        params: tenantParams,
        querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } } },
        response: { 200: { type: 'object', properties: { records: { type: 'array', items: S.uspAuditEntry } } }, ...problems }
      }
    }, async (req: FastifyRequest<{ Params: { tenant: string }, Querystring: { limit?: number } }>) => ({ records: control.uspAuditTrail(req.params.tenant, req.query.limit) }))

    v1.post('/tenants/:tenant/credentials', {
      schema: {
        params: tenantParams,
        body: { type: 'object', required: ['principal', 'role'], additionalProperties: false, properties: { principal: S.principal, role: { type: 'string', enum: ['agent', 'controller'] } } },
        response: { 201: S.issuedCredential, ...problems }
      }
    }, async (req: FastifyRequest<{ Params: { tenant: string }, Body: { principal: string, role: string } }>, reply) => {
      const issued = await control.issueCredential(req.params.tenant, req.body, req.actor!)
      return reply.code(201).header('cache-control', 'no-store').send(issued)
    })

    v1.get('/tenants/:tenant/credentials', {
      schema: { params: tenantParams, response: { 200: { type: 'object', properties: { credentials: { type: 'array', items: S.credential } } }, ...problems } }
    }, async (req: FastifyRequest<{ Params: { tenant: string } }>) => ({ credentials: control.listCredentials(req.params.tenant) }))

    v1.delete('/tenants/:tenant/credentials/:principal', {
      schema: {
        params: { type: 'object', required: ['tenant', 'principal'], additionalProperties: false, properties: { tenant: S.tenantId, principal: S.principal } },
        response: { 200: S.revokedCredential, ...problems }
      }
    }, async (req: FastifyRequest<{ Params: { tenant: string, principal: string } }>) =>
      await control.revokeCredential(req.params.tenant, req.params.principal, req.actor!))

    v1.get('/sessions', {
      schema: {
        querystring: { type: 'object', additionalProperties: false, properties: { tenant: S.tenantId } },
        response: { 200: { type: 'object', properties: { sessions: { type: 'array', items: S.session } } }, ...problems }
      }
    }, async (req: FastifyRequest<{ Querystring: { tenant?: string } }>) => ({ sessions: control.listSessions(req.query.tenant) }))

    v1.get('/security-events', {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            tenant: S.tenantId,
            code: { type: 'string', pattern: '^[a-z_]+(\\.[a-z_]*)?$', maxLength: 64 },
            since: { type: 'string', format: 'date-time' },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 }
          }
        },
        response: { 200: { type: 'object', properties: { events: { type: 'array', items: S.securityEvent } } }, ...problems }
      }
    }, async (req: FastifyRequest<{ Querystring: { tenant?: string, code?: string, since?: string, limit?: number } }>) =>
      ({ events: control.queryEvents(req.query) }))

    registerPolicyRoutes(v1, control)
    registerCertRoutes(v1, control)
  }, { prefix: '/v1' })

  await app.ready()
  return {
    app,
    async listen (host, port) {
      await app.listen({ host, port })
      const addr = app.server.address()
      return typeof addr === 'object' && addr ? addr.port : port
    },
    async close () { await app.close() }
  }
}
