// The OpenAPI document: served without a token, lists every route fastify
// actually routes (read back from fastify's own router, not from the
// generator's list) with every response code each can give, and is
// structurally a valid OpenAPI 3.1 document. Schemathesis loads and fuzzes it
// in fuzz.test.ts.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { removeDir } from '../helpers/gateway.ts'
import { buildAdminApi, type AdminApi } from '../../admin-api/index.ts'
import { DEFAULT_ADMIN_SETTINGS } from '../../broker/core/index.ts'
import { EVENT_CODES } from '../../broker/index.ts'
import { startAdminGateway, type AdminGateway } from './helpers.ts'

let g: AdminGateway
let api: AdminApi
let doc: any
before(async () => {
  g = await startAdminGateway()
  // A second, unbound instance of the same API: its router is what we compare the document with.
  api = await buildAdminApi(g.gw.control, { settings: { ...DEFAULT_ADMIN_SETTINGS } })
  const r = await g.call('GET', '/openapi.json', { token: null })
  assert.equal(r.status, 200)
  assert.match(r.headers.get('content-type')!, /^application\/json/)
  doc = r.body
})
after(async () => { await api.close(); await g.close(); await removeDir(g.dataDir) })

/** (METHOD, /path/:param) pairs from fastify's router tree (printRoutes), independent of admin-api/openapi.ts. */
function routedOperations (tree: string): string[] {
  const out: string[] = []
  const stack: string[] = []
  for (const line of tree.split('\n')) {
    const m = /^([│ ]*)[├└]── (\S+)(?: \(([A-Z, ]+)\))?$/.exec(line)
    if (m === null) continue
    const depth = m[1]!.length / 4
    stack.length = depth
    stack.push(m[2]!)
    if (m[3] !== undefined) for (const method of m[3].split(', ')) out.push(`${method} ${stack.join('')}`)
  }
  return out
}

test('GET /openapi.json is served without a token and names every route fastify routes', async () => {
  // the console's static files (/console, /console/*) are pages, not API operations
  const routed = routedOperations(api.app.printRoutes({ commonPrefix: false })).filter(op => !/^[A-Z]+ \/console/.test(op))
  assert.ok(routed.length >= 35, `parsed ${routed.length} routes from the router tree`)
  const documented: string[] = []
  for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
    for (const method of Object.keys(ops)) documented.push(`${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`)
  }
  assert.deepEqual([...documented].sort(), [...routed].sort())
  // the served document is the generator's, for the same routes
  assert.deepEqual(JSON.parse(JSON.stringify(api.openapi())).paths, doc.paths)
})

test('every operation documents every response code it can give, each with a schema and the x-request-id header', async () => {
  for (const r of api.routes) {
    // '::' is fastify's literal ':' (credentials::import → credentials:import)
    const op = doc.paths[r.url.replace(/::/g, '\u0000').replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\u0000/g, ':')][r.method.toLowerCase()]
    const codes = Object.keys(op.responses).map(Number)
    const what = `${r.method} ${r.url} (${codes.join(',')})`
    // the route's compiled reply schemas are exactly the documented responses
    assert.deepEqual(codes.map(String).sort(), Object.keys(r.schema.response).sort(), what)
    const expected = [429]
    if (r.url.startsWith('/v1/')) expected.push(400, 401, 403)
    if (r.url.includes(':')) expected.push(404, 414)
    if (['POST', 'PATCH', 'DELETE'].includes(r.method)) expected.push(413, 415, 503)
    for (const c of expected) assert.ok(codes.includes(c), `${what} lacks ${c}`)
    assert.ok(codes.some(c => c >= 200 && c < 300), `${what} has no success response`)
    for (const [code, resp] of Object.entries(op.responses as Record<string, any>)) {
      assert.equal(typeof resp.description, 'string', `${what} ${code} description`)
      assert.ok(resp.headers['x-request-id'], `${what} ${code} x-request-id`)
      const media = Object.keys(resp.content)
      assert.ok(media.length > 0, `${what} ${code} content`)
      if (Number(code) >= 400 && !(r.url === '/readyz' && code === '503')) {
        assert.deepEqual(media, ['application/problem+json'], `${what} ${code} is a problem`)
      }
      for (const m of media) assert.ok(resp.content[m].schema, `${what} ${code} ${m} schema`)
      if (code === '429') assert.ok(resp.headers['retry-after'])
      if (code === '401') assert.ok(resp.headers['www-authenticate'])
    }
    // security: /v1 needs the bearer token, the rest is open
    assert.deepEqual(op.security, r.url.startsWith('/v1/') ? [{ bearer: [] }] : [], what)
  }
})

test('the document is structurally valid OpenAPI 3.1: required fields, parameters match the templates, refs resolve, ids unique', async () => {
  assert.match(doc.openapi, /^3\.1\.\d+$/)
  assert.equal(typeof doc.info.title, 'string')
  assert.equal(typeof doc.info.version, 'string')
  assert.deepEqual(doc.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer', description: doc.components.securitySchemes.bearer.description })
  const ids = new Set<string>()
  const resolve = (ref: string): unknown => ref.slice(2).split('/').reduce<any>((o, k) => o?.[k], doc)
  const walk = (v: unknown, where: string): void => {
    if (Array.isArray(v)) { v.forEach((x, i) => walk(x, `${where}[${i}]`)); return }
    if (v === null || typeof v !== 'object') return
    for (const [k, x] of Object.entries(v)) {
      if (k === '$ref') assert.ok(typeof x === 'string' && x.startsWith('#/') && resolve(x) !== undefined, `${where}: unresolved ${String(x)}`)
      walk(x, `${where}.${k}`)
    }
  }
  walk(doc, '$')
  for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
    // ':' only as a literal custom-method separator (AIP-136), after a path segment
    assert.match(path, /^\/[A-Za-z0-9_./{}-]*(:[a-z]+)?$/)
    const templated = [...path.matchAll(/\{([^}]+)\}/g)].map(m => m[1]).sort()
    for (const [method, op] of Object.entries(ops)) {
      assert.ok(['get', 'put', 'post', 'delete', 'patch'].includes(method), `${path} ${method}`)
      assert.ok(!ids.has(op.operationId), `duplicate operationId ${op.operationId}`)
      ids.add(op.operationId)
      const params = (op.parameters ?? []) as Array<{ name: string, in: string, required: boolean, schema: unknown }>
      assert.deepEqual(params.filter(p => p.in === 'path').map(p => p.name).sort(), templated, `${method} ${path} path parameters`)
      for (const p of params) {
        assert.ok(['path', 'query', 'header'].includes(p.in) && typeof p.schema === 'object', `${method} ${path} ${p.name}`)
        if (p.in === 'path') assert.equal(p.required, true)
      }
      if (op.requestBody !== undefined) {
        assert.equal(typeof op.requestBody.required, 'boolean')
        for (const m of Object.values(op.requestBody.content as Record<string, { schema: unknown }>)) assert.ok(m.schema)
      }
      assert.ok(Object.keys(op.responses).length > 0)
      for (const code of Object.keys(op.responses)) assert.match(code, /^[1-5][0-9]{2}$/)
    }
  }
})

test('request schemas refuse unknown fields and JSON types the schema does not name (no coercion of bodies)', async () => {
  for (const [method, path, body] of [
    ['GET', '/v1/tenants?unknown=1', undefined],
    ['GET', '/v1/security-events?limit=ten', undefined],
    ['POST', '/v1/tenants', { id: false }],
    ['POST', '/v1/tenants', { id: 'x', unknown: true }],
    ['POST', '/v1/tokens', { name: 'x', role: 'viewer', tenants: [false] }],
    ['POST', '/v1/tenants/acme/ca/revoke', null]
  ] as const) {
    const r = await g.call(method, path, body === undefined ? {} : { body: body === null ? 'null' : body })
    assert.equal(r.status, 400, `${method} ${path} ${JSON.stringify(body)} → ${r.status} ${r.text}`)
    assert.match(r.headers.get('content-type')!, /^application\/problem\+json/)
  }
  assert.equal((await g.call('GET', '/v1/tenants')).body.tenants.some((t: { id: string }) => t.id === 'false'), false)
  assert.equal((await g.call('GET', '/v1/security-events?limit=2')).status, 200) // query integers are still numbers
})

test('admin audit event codes are documented in the event catalogue', () => {
  for (const code of ['admin.action', 'admin.forbidden', 'admin.rate_limited', 'admin.auth_failed', 'admin.token_created', 'admin.token_revoked']) {
    assert.ok(code in EVENT_CODES, code)
  }
})
