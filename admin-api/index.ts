// The admin API: fastify, bearer tokens with roles and tenant scopes, JSON in
// and out, problem+json errors, an admin audit record for every change, rate
// limits, optional TLS / mutual TLS, and an OpenAPI document generated from
// the routes. It drives the gateway only through the ControlPlane.
import type { Socket } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { TLS_MIN_VERSION } from '../certs/index.ts'
import { ControlError, type ControlPlane } from '../broker/control/index.ts'
import { adminSettingsFromEnv, checkAdminSettings, HandshakeDeadline, type AdminSettings } from '../broker/control/index.ts'
import { sendProblem } from './plugins/problem.ts'
import { installAccess, requestIdOf } from './plugins/access.ts'
import { buildOpenApi, collectRoutes, type CollectedRoute } from './openapi.ts'
import { registerCrlRoutes } from './routes/crl.ts'
import { registerTenantsRoutes } from './routes/v1/tenants.ts'
import { registerEndpointsRoutes } from './routes/v1/endpoints.ts'
import { registerCredentialsRoutes } from './routes/v1/credentials.ts'
import { registerSessionsRoutes } from './routes/v1/sessions.ts'
import { registerSecurityEventsRoutes } from './routes/v1/security-events.ts'
import { registerTokenRoutes } from './routes/v1/tokens.ts'
import { registerPolicyRoutes } from './routes/v1/policies.ts'
import { registerCertRoutes } from './routes/v1/certificates.ts'
import { registerClusterRoutes } from './routes/v1/cluster.ts'
import { registerMeRoutes } from './routes/v1/me.ts'
import { registerSecurityStatsRoutes } from './routes/v1/security-stats.ts'
import { consolePlugin } from './plugins/console.ts'
import { registerCertificationsRoutes } from './routes/v1/certifications.ts'

export type { AdminSettings } from '../broker/control/index.ts'
export type { RouteAccess, ScopeRule } from './plugins/access.ts'
export type { CollectedRoute } from './openapi.ts'

export interface AdminApi {
  app: FastifyInstance<any, any, any, any>
  /** https when USPGATE_ADMIN_TLS is on or mtls. */
  scheme: 'http' | 'https'
  /** Every route as registered (method, url, schemas, OpenAPI hints), for the OpenAPI document and tests. */
  routes: readonly CollectedRoute[]
  openapi(): Record<string, unknown>
  listen(host: string, port: number): Promise<number>
  close(): Promise<void>
}

export async function buildAdminApi (control: ControlPlane, opts: { logger?: Logger, settings?: AdminSettings } = {}): Promise<AdminApi> {
  const settings = checkAdminSettings(opts.settings ?? adminSettingsFromEnv())
  let https: Record<string, unknown> | undefined
  if (settings.tls !== 'off') {
    // The gateway's server certificate (root-signed, SANs from USPGATE_SERVER_SANS), as on the MQTTS listener.
    const material = (await control.certificates.authority()).serverTlsMaterial()
    https = { key: material.key, cert: material.cert, minVersion: TLS_MIN_VERSION }
    if (settings.tls === 'mtls') {
      // Only the admin client CA: device CAs (tenant issuing CAs, imported vendor CAs) never open the admin API.
      Object.assign(https, { ca: settings.clientCaPem, requestCert: true, rejectUnauthorized: true })
    }
  }
  const app = Fastify({
    // per-request logs stay below warn; security-relevant calls are security events
    ...(opts.logger ? { loggerInstance: opts.logger.child({ component: 'admin-api' }, { level: 'warn' }) } : { logger: false }),
    ...(https !== undefined ? { https } : {}),
    bodyLimit: 64 * 1024,
    exposeHeadRoutes: false,
    // A path parameter longer than this is a 414 problem before any handler (schemas bound them far lower).
    routerOptions: { maxParamLength: 512 },
    // Malformed URLs and over-long path parameters are refused by the router: still a problem+json with a request id.
    frameworkErrors: (err: Error & { statusCode?: number }, req, reply) => {
      reply.header('x-request-id', req.id)
      const status = err.statusCode ?? 400
      return sendProblem(reply, status, status === 414 ? 'URI too long' : 'bad request', err.message)
    },
    requestIdHeader: false,
    genReqId: requestIdOf,
    // Unknown fields are refused (400), not silently stripped; a JSON false is not the tenant "false"
    // (no type coercion: query-string numbers are converted by coerceQuery below, nothing else is).
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } }
  }) as unknown as FastifyInstance

  if (settings.tls === 'mtls') {
    // A peer without a certificate from the admin client CA never reaches HTTP; the refusal is still an event.
    app.server.on('tlsClientError', (err: Error, socket: { remoteAddress?: string }) => {
      control.admin.authFailed({ remoteAddress: socket.remoteAddress ?? 'unknown', requestId: '-', action: 'tls.handshake', target: '-', reason: `TLS handshake refused: ${err.message.slice(0, 200)}` })
    })
  }

  // Every socket must finish its opening (TLS handshake, first request) in time, or it is closed with an event.
  const openingSeconds = settings.openingTimeoutSeconds ?? 10
  const openings = new HandshakeDeadline({
    timeoutMs: openingSeconds * 1000,
    onExpired: ({ phase, remoteAddress }) => control.admin.openingTimedOut({ remoteAddress, phase, seconds: openingSeconds })
  })
  openings.watch(app.server, 'admin', https !== undefined ? 'tls' : 'request')
  if (https !== undefined) app.server.on('secureConnection', (socket: Socket) => openings.progress(socket, 'request'))
  app.server.on('request', (req: { socket: Socket }) => openings.done(req.socket))

  app.setErrorHandler((err: Error & { statusCode?: number, validation?: unknown, code?: string }, req, reply) => {
    if (err instanceof ControlError) return sendProblem(reply, err.status, err.title, err.message)
    if (err.validation) return sendProblem(reply, 400, 'invalid request', err.message)
    const status = err.statusCode ?? 500
    if (status >= 400 && status < 500) {
      const title = err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError ? 'invalid JSON'
        : status === 413 ? 'body too large' : status === 415 ? 'unsupported media type' : 'bad request'
      return sendProblem(reply, status, title, err.message)
    }
    req.log.error({ err }, 'admin request failed')
    return sendProblem(reply, 500, 'internal error', 'the request failed; see the gateway log')
  })
  app.setNotFoundHandler((req, reply) => sendProblem(reply, 404, 'not found', `no route ${req.method} ${req.url.split('?')[0]}`))

  const routes = collectRoutes(app)
  app.addHook('preValidation', coerceQuery)
  const { v1Hooks } = installAccess(app, control, settings)
  let document: Record<string, unknown> | undefined
  const openapi = (): Record<string, unknown> => (document ??= buildOpenApi(routes, { https: https !== undefined }))

  // ---- unauthenticated: probes, metrics (no tenant data; labels are bounded) and the API description
  app.get('/healthz', {
    schema: { summary: 'Liveness probe', response: { 200: { type: 'object', required: ['status'], additionalProperties: false, properties: { status: { type: 'string', enum: ['ok'] } } } } }
  }, async () => ({ status: 'ok' }))

  const readiness = { type: 'object', required: ['status', 'node'], additionalProperties: false, properties: { status: { type: 'string', enum: ['ready', 'not ready'] }, node: { type: 'string' } } } as const
  app.get('/readyz', { schema: { summary: 'Readiness probe', response: { 200: readiness, 503: readiness } } }, async (_req, reply) => {
    const r = control.readiness()
    return reply.code(r.ready ? 200 : 503).send({ status: r.ready ? 'ready' : 'not ready', node: control.nodeId })
  })

  app.get('/metrics', {
    config: { openapi: { produces: { 'text/plain': { type: 'string' } } } },
    schema: { summary: 'Prometheus metrics (prefix uspgate_)', response: { 200: { type: 'string' } } }
  }, async (_req, reply) => {
    reply.type(control.metrics.registry.contentType)
    return await control.metrics.render()
  })

  app.get('/openapi.json', {
    schema: { summary: 'This OpenAPI 3.1 document', response: { 200: { type: 'object', additionalProperties: true, required: ['openapi', 'info', 'paths'], properties: {} } } }
  }, async (_req, reply) => reply.type('application/json').send(JSON.stringify(openapi())))

  registerCrlRoutes(app, control)

  // ---- everything under /v1 needs a bearer token whose role (and tenant scope) allows the call
  app.register(async v1 => {
    v1Hooks(v1)
    registerTenantsRoutes(v1, control)
    registerEndpointsRoutes(v1, control)
    registerCredentialsRoutes(v1, control)
    registerSessionsRoutes(v1, control)
    registerSecurityEventsRoutes(v1, control)
    registerTokenRoutes(v1, control)
    registerPolicyRoutes(v1, control)
    registerCertRoutes(v1, control)
    registerClusterRoutes(v1, control)
    registerMeRoutes(v1)
    registerSecurityStatsRoutes(v1, control)
    registerCertificationsRoutes(v1, control)
  }, { prefix: '/v1' })

  // ---- the web console: static assets only (it calls /v1 with the token the user types in)
  app.get('/console', { schema: { hide: true } }, async (_req, reply) => await reply.redirect('/console/'))
  app.register(consolePlugin, { prefix: '/console' })

  await app.ready()
  return {
    app,
    scheme: https !== undefined ? 'https' : 'http',
    routes,
    openapi,
    async listen (host, port) {
      await app.listen({ host, port })
      const addr = app.server.address()
      return typeof addr === 'object' && addr ? addr.port : port
    },
    async close () { await app.close() }
  }
}


/** Query strings are text: integer parameters (limit=5) become numbers before validation; anything else stays a string. */
async function coerceQuery (req: FastifyRequest): Promise<void> {
  const props = (req.routeOptions.schema?.querystring as { properties?: Record<string, { type?: unknown }> } | undefined)?.properties
  const query = req.query as Record<string, unknown> | undefined
  if (props === undefined || query === undefined || query === null) return
  for (const [name, schema] of Object.entries(props)) {
    const v = query[name]
    if (schema.type === 'integer' && typeof v === 'string' && /^-?\d{1,15}$/.test(v)) query[name] = Number(v)
  }
}
