// The OpenAPI 3.1 document of the admin API, generated from the routes as
// fastify registers them (onRoute): paths, parameters, bodies and every
// response code come from the same JSON schemas that validate requests and
// serialize replies, so the document cannot drift from the code.
//
// onRoute also completes each route's contract before fastify compiles it:
// the problem+json replies every route can give (400, 429; 401/403 under /v1;
// 404 with path parameters; 413/415 and 503 for writes) and, under /v1, a
// querystring schema that refuses unknown parameters.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance, RouteOptions } from 'fastify'
import { isProblemSchema, PROBLEM_TYPE, problemSchema } from './plugins/problem.ts'

export interface OpenApiRouteConfig {
  /** 2xx media types and their schemas (default: application/json with the response schema). */
  produces?: Record<string, object>
  /** Request body media types and their schemas (default: application/json with schema.body). */
  consumes?: Record<string, object>
  /** The body may be left out. */
  bodyOptional?: boolean
}

declare module 'fastify' {
  interface FastifyContextConfig { openapi?: OpenApiRouteConfig }
  interface FastifySchema { summary?: string, description?: string, tags?: string[], hide?: boolean }
}

export interface CollectedRoute {
  method: string
  /** fastify form: /v1/tenants/:tenant */
  url: string
  schema: {
    summary?: string
    description?: string
    tags?: string[]
    params?: JsonSchema
    querystring?: JsonSchema
    headers?: JsonSchema
    body?: JsonSchema
    response: Record<string, JsonSchema>
  }
  openapi: OpenApiRouteConfig
  authenticated: boolean
}

type JsonSchema = Record<string, unknown>

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

const STATUS_TEXT: Record<string, string> = {
  200: 'OK', 201: 'Created', 400: 'Invalid request (schema, JSON or value)', 401: 'Missing, unknown or revoked bearer token',
  403: 'The token\'s role lacks the permission, or the tenant is outside its scope', 404: 'Not found',
  409: 'Conflict with the current state', 413: 'Body too large', 414: 'Path parameter too long', 415: 'Unsupported content type',
  429: 'Rate limited (see retry-after)', 503: 'Not ready / state store unavailable (cluster mode)'
}

/** The problem responses every route can give, added to its schema before fastify compiles it. */
function standardCodes (method: string, url: string, hasInput: boolean): number[] {
  const codes = [429]
  const v1 = url.startsWith('/v1/') || url === '/v1'
  if (v1 || hasInput) codes.push(400)
  if (v1) codes.push(401, 403)
  if (url.includes(':')) codes.push(404, 414)
  if (WRITE_METHODS.has(method)) {
    codes.push(413, 415)
    if (v1) codes.push(503)
  }
  return codes
}

/**
 * Installs the onRoute hook (call before registering routes) and returns the
 * list it fills: one entry per method of each route, in registration order.
 */
export function collectRoutes (app: FastifyInstance): CollectedRoute[] {
  const routes: CollectedRoute[] = []
  app.addHook('onRoute', (opts: RouteOptions) => {
    const methods = (Array.isArray(opts.method) ? opts.method : [opts.method]).map(m => m.toUpperCase())
    const url = opts.url
    // Static files (the console's assets) are not part of the API contract.
    if ((opts.schema as { hide?: boolean } | undefined)?.hide === true) return
    const schema = (opts.schema ?? {}) as CollectedRoute['schema'] & { response?: Record<string, JsonSchema> }
    const v1 = url.startsWith('/v1/')
    if (v1 && schema.querystring === undefined) schema.querystring = { type: 'object', additionalProperties: false, properties: {} }
    const response: Record<string, JsonSchema> = { ...(schema.response ?? {}) }
    const hasInput = schema.params !== undefined || schema.querystring !== undefined || schema.body !== undefined
    for (const m of methods) {
      for (const code of standardCodes(m, url, hasInput)) response[code] ??= problemSchema as unknown as JsonSchema
    }
    schema.response = response
    opts.schema = schema
    const config = (opts.config ?? {}) as { openapi?: OpenApiRouteConfig }
    for (const method of methods) {
      if (method === 'HEAD' || method === 'OPTIONS') continue
      routes.push({ method, url, schema: schema as CollectedRoute['schema'], openapi: config.openapi ?? {}, authenticated: v1 })
    }
  })
  return routes
}

function version (): string {
  try {
    return (JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { version: string }).version
  } catch { return '0.0.0' }
}

// fastify writes a literal ':' as '::' (e.g. credentials::import, an AIP-136 custom method)
const openApiPath = (url: string): string => url.replace(/::/g, '\u0000').replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\u0000/g, ':')
const operationId = (method: string, url: string): string =>
  `${method.toLowerCase()}${url.replace(/[:{}]/g, '').split(/[/-]/).filter(Boolean).map(s => s[0]!.toUpperCase() + s.slice(1)).join('')}`

function parameters (where: 'path' | 'query' | 'header', schema: JsonSchema | undefined): object[] {
  if (schema === undefined) return []
  const props = (schema.properties ?? {}) as Record<string, JsonSchema>
  const required = new Set((schema.required ?? []) as string[])
  return Object.entries(props).map(([name, s]) => ({ name, in: where, required: where === 'path' ? true : required.has(name), schema: s }))
}

const headers = {
  requestId: { description: 'The request id (the caller\'s own x-request-id when it is 1-128 of A-Z a-z 0-9 . _ : + / = -, else a generated UUID); also in the audit record', required: true, schema: { type: 'string', minLength: 1 } },
  retryAfter: { description: 'Seconds to wait before retrying', required: true, schema: { type: 'string', pattern: '^[0-9]+$' } },
  wwwAuthenticate: { description: 'RFC 6750 challenge', required: true, schema: { type: 'string' } }
}

/** The OpenAPI 3.1 document for the collected routes. */
export function buildOpenApi (routes: readonly CollectedRoute[], opts: { https: boolean }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const r of routes) {
    const op: Record<string, unknown> = { operationId: operationId(r.method, r.url) }
    if (r.schema.summary !== undefined) op.summary = r.schema.summary
    if (r.schema.description !== undefined) op.description = r.schema.description
    op.tags = r.schema.tags ?? [r.url.startsWith('/v1/') ? r.url.split('/')[2]! : 'operations']
    op.security = r.authenticated ? [{ bearer: [] }] : []
    const params = [...parameters('path', r.schema.params), ...parameters('query', r.schema.querystring), ...parameters('header', r.schema.headers)]
    if (params.length > 0) op.parameters = params
    if (r.schema.body !== undefined || r.openapi.consumes !== undefined) {
      const body = r.schema.body
      const nullable = Array.isArray(body?.type) && (body.type as string[]).includes('null')
      const content = r.openapi.consumes !== undefined
        ? Object.fromEntries(Object.entries(r.openapi.consumes).map(([type, schema]) => [type, { schema }]))
        : { 'application/json': { schema: nullable ? { ...body, type: (body!.type as string[]).filter(t => t !== 'null')[0] } : body } }
      op.requestBody = { required: !(r.openapi.bodyOptional === true || nullable), content }
    }
    const responses: Record<string, unknown> = {}
    for (const code of Object.keys(r.schema.response).sort()) {
      const schema = r.schema.response[code]!
      const n = Number(code)
      const hdrs: Record<string, unknown> = { 'x-request-id': { $ref: '#/components/headers/RequestId' } }
      if (n === 429) hdrs['retry-after'] = { $ref: '#/components/headers/RetryAfter' }
      if (n === 401) hdrs['www-authenticate'] = { $ref: '#/components/headers/WwwAuthenticate' }
      let content: Record<string, unknown>
      if (isProblemSchema(schema)) content = { [PROBLEM_TYPE]: { schema: { $ref: '#/components/schemas/Problem' } } }
      else if (n < 300 && r.openapi.produces !== undefined) content = Object.fromEntries(Object.entries(r.openapi.produces).map(([type, s]) => [type, { schema: s }]))
      else content = { 'application/json': { schema } }
      responses[code] = { description: STATUS_TEXT[code] ?? `HTTP ${code}`, headers: hdrs, content }
    }
    op.responses = responses
    ;(paths[openApiPath(r.url)] ??= {})[r.method.toLowerCase()] = op
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'uspgate admin API',
      version: version(),
      description: 'Tenants, device credentials and certificates, CA trust, sessions, USP endpoints and audit, security events, ' +
        'policy versions and admin tokens of a uspgate gateway. Bearer tokens carry a role (viewer, security, noc, admin) and ' +
        'optionally a tenant scope; a call the token may not make is a 403 problem. Every error is application/problem+json (RFC 9457).' +
        (opts.https ? '' : ' This listener is plain HTTP: bind it to loopback or set USPGATE_ADMIN_TLS.')
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An admin token (usa_…), from `uspgate token create` or the bootstrap token' } },
      schemas: { Problem: problemSchema },
      headers: { RequestId: headers.requestId, RetryAfter: headers.retryAfter, WwwAuthenticate: headers.wwwAuthenticate }
    },
    security: [{ bearer: [] }],
    paths
  }
}
