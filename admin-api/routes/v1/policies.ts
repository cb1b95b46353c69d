// /v1/policies: policy versions, shadow, tenant canary, promote, rollback and shadow diff.
// Registered inside the authenticated /v1 scope; errors are ControlErrors → problem+json.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ControlPlane, GoldenCase, PolicyInput } from '../../../broker/control/index.ts'
import { MAX_BUNDLE_BYTES } from '../../../broker/control/index.ts'
import { problems, sendProblem } from '../../plugins/problem.ts'
import * as S from '../../schemas.ts'

// Policy versions span every tenant: NOC (or admin) role, tenant-unscoped tokens only.
const read = (action: string): { access: { permission: 'read', scope: 'unscoped', action: string } } => ({ access: { permission: 'read', scope: 'unscoped', action } })
const write = (action: string): { access: { permission: 'policy.write', scope: 'unscoped', action: string } } => ({ access: { permission: 'policy.write', scope: 'unscoped', action } })

const revision = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' } as const
const revisionParams = { type: 'object', required: ['revision'], additionalProperties: false, properties: { revision } } as const

const version = {
  type: 'object',
  properties: {
    revision: { type: 'string' },
    sha256: { type: 'string' },
    size: { type: 'integer' },
    uploadedBy: { type: 'string' },
    uploadedAt: { type: 'string' },
    notes: { type: 'string' }
  }
} as const

const versionsView = {
  type: 'object',
  properties: {
    versions: { type: 'array', items: version },
    active: {
      type: 'object',
      properties: {
        stable: { type: 'string' },
        previous: { type: 'array', items: { type: 'string' } },
        canary: { type: 'object', properties: { revision: { type: 'string' }, tenants: { type: 'array', items: { type: 'string' } }, startedAt: { type: 'string' } } },
        shadow: { type: 'string' }
      }
    }
  }
} as const

const answer = { type: 'object', properties: { allow: { type: 'boolean' }, reason: { type: 'string' } } } as const
const diffView = {
  type: 'object',
  properties: {
    revision: { type: 'string' },
    stable: { type: 'string' },
    since: { type: 'string' },
    compared: { type: 'integer' },
    disagreements: { type: 'integer' },
    counts: { type: 'array', items: { type: 'object', properties: { action: { type: 'string' }, stable: { type: 'string' }, shadow: { type: 'string' }, count: { type: 'integer' } } } },
    sample: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          time: { type: 'string' }, tenant: { type: 'string' }, principal: { type: 'string' }, role: { type: 'string' },
          action: { type: 'string' }, topic: { type: 'string' }, stable: answer, shadow: answer
        }
      }
    }
  }
} as const

/** A deployment's golden decisions may be many: more than the 64 KiB of other admin requests. */
const GOLDEN_MAX_BYTES = 4 * 1024 * 1024

const reasonBody = { type: 'object', additionalProperties: false, properties: { reason: { type: 'string', minLength: 1, maxLength: 500 } } } as const
/** The body is optional (a bare POST works); a JSON null is refused like any non-object. */
const optionalBody = async (req: { body: unknown }): Promise<void> => { if (req.body === undefined) req.body = {} }

const historyEntry = {
  type: 'object',
  required: ['time', 'action', 'actor', 'stable'],
  additionalProperties: false,
  properties: {
    time: { type: 'string' },
    action: { type: 'string', enum: ['upload', 'shadow', 'canary', 'promote', 'rollback', 'guard_rollback', 'golden'] },
    actor: { type: 'string' },
    revision: { type: 'string' },
    stable: { type: 'string' },
    tenants: { type: 'array', items: { type: 'string' } },
    reason: { type: 'string' }
  }
} as const

const shortText = { type: 'string', minLength: 1, maxLength: 256 } as const
/** The policy input contract (policies/types.ts). */
const policyInput = {
  type: 'object',
  required: ['action', 'client'],
  additionalProperties: false,
  properties: {
    action: { type: 'string', enum: ['connect', 'publish', 'subscribe', 'deliver'] },
    client: {
      type: 'object',
      required: ['tenant', 'principal', 'role', 'client_id', 'protocol', 'auth', 'listener'],
      additionalProperties: false,
      properties: { tenant: shortText, principal: shortText, role: shortText, client_id: shortText, protocol: { type: 'integer', enum: [3, 4, 5] }, auth: shortText, listener: shortText }
    },
    topic: { type: 'string', minLength: 1, maxLength: 4096 },
    qos: { type: 'integer', enum: [0, 1, 2] },
    retain: { type: 'boolean' },
    target: { type: 'object', required: ['tenant', 'principal', 'role'], additionalProperties: false, properties: { tenant: shortText, principal: shortText, role: shortText } }
  },
  examples: [{ action: 'publish', client: { tenant: 'acme', principal: 'os::00256D-0001', role: 'agent', client_id: 'os::00256D-0001', protocol: 5, auth: 'password', listener: 'mqtt' }, topic: 'acme/bulkdata/os::00256D-0001/1', qos: 1, retain: false }]
} as const

/** A golden case may ask about any action (the shipped ones check that an unknown action is denied). */
const goldenInput = { ...policyInput, properties: { ...policyInput.properties, action: shortText } } as const
const goldenCase = {
  type: 'object',
  required: ['input', 'expect'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', maxLength: 200 },
    input: goldenInput,
    expect: { type: 'object', required: ['allow'], additionalProperties: false, properties: { allow: { type: 'boolean' }, reason: { type: 'string', maxLength: 200 } } }
  }
} as const
const goldenView = {
  type: 'object',
  required: ['source', 'golden'],
  additionalProperties: false,
  properties: { source: { type: 'string', enum: ['deployment', 'shipped'] }, golden: { type: 'array', items: goldenCase } }
} as const

const comparison = {
  type: 'object',
  required: ['from', 'to', 'sources', 'data'],
  properties: {
    from: { type: 'string' },
    to: { type: 'string' },
    sources: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, status: { type: 'string', enum: ['added', 'removed', 'changed'] }, diff: { type: 'string' } } } },
    data: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, before: {}, after: {} } } }
  }
} as const

export function registerPolicyRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
  // Raw bundle bytes (opa build -t wasm output), only in this scope.
  v1.addContentTypeParser(['application/gzip', 'application/octet-stream'], { parseAs: 'buffer', bodyLimit: MAX_BUNDLE_BYTES }, (_req, body, done) => { done(null, body) })

  v1.get('/policies', { config: read('policy.list'), schema: { summary: 'Stored policy versions and the active assignment', response: { 200: versionsView } } }, async () => control.policies.view())

  v1.post('/policies', {
    bodyLimit: MAX_BUNDLE_BYTES,
    config: {
      ...write('policy.upload'),
      openapi: { consumes: { 'application/gzip': { type: 'string', format: 'binary' }, 'application/octet-stream': { type: 'string', format: 'binary' } } }
    },
    schema: {
      summary: 'Upload a policy bundle (opa build -t wasm output); validated before it is stored',
      querystring: { type: 'object', additionalProperties: false, properties: { notes: { type: 'string', maxLength: 1000 } } },
      response: { 201: version, ...problems(409) }
    }
  }, async (req: FastifyRequest<{ Querystring: { notes?: string } }>, reply) => {
    const body = req.body
    if (!Buffer.isBuffer(body)) {
      return sendProblem(reply, 415, 'unsupported media type', 'send the bundle bytes with content-type application/gzip or application/octet-stream')
    }
    const v = await control.policies.upload(body, req.query.notes, req.actor!.id)
    return reply.code(201).send(v)
  })

  v1.get('/policies/history', {
    config: read('policy.history'),
    schema: {
      summary: 'Who changed which revision decides, when and why (upload, shadow, canary, promote, rollback, guard rollback, golden), newest first',
      querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } } },
      response: { 200: S.listOf('history', historyEntry) }
    }
  }, async (req: FastifyRequest<{ Querystring: { limit?: number } }>) => ({ history: control.policies.history(req.query.limit) }))

  v1.get('/policies/bundle', {
    config: { ...read('policy.bundle'), openapi: { produces: { 'application/gzip': { type: 'string', format: 'binary' } } } },
    schema: {
      summary: 'The bundle.tar.gz of the running stable revision (or ?revision= of any stored one)',
      querystring: { type: 'object', additionalProperties: false, properties: { revision } },
      response: { 200: { type: 'string' }, ...problems(404) }
    }
  }, async (req: FastifyRequest<{ Querystring: { revision?: string } }>, reply) => {
    const b = await control.policies.bundle(req.query.revision)
    return reply.type('application/gzip').header('content-disposition', `attachment; filename="${b.revision}.tar.gz"`).header('x-policy-revision', b.revision).send(b.bytes)
  })

  v1.get('/policies/compare', {
    config: read('policy.compare'),
    schema: {
      summary: 'What changed between two stored revisions: a unified diff per Rego file and the data.json values that differ',
      querystring: { type: 'object', required: ['from', 'to'], additionalProperties: false, properties: { from: revision, to: revision } },
      response: { 200: comparison, ...problems(404) }
    }
  }, async (req: FastifyRequest<{ Querystring: { from: string, to: string } }>) => await control.policies.compare(req.query.from, req.query.to))

  v1.post('/policies/evaluate', {
    config: { access: { permission: 'policy.evaluate', scope: 'unscoped', action: 'policy.evaluate' } },
    schema: {
      summary: 'Dry run: what a revision (default: stable) decides for one input; changes and counts nothing',
      body: { type: 'object', required: ['input'], additionalProperties: false, properties: { revision, input: policyInput } },
      response: { 200: { type: 'object', required: ['revision', 'allow', 'reason'], additionalProperties: false, properties: { revision: { type: 'string' }, allow: { type: 'boolean' }, reason: { type: 'string' }, error: { type: 'string' } } }, ...problems(404) }
    }
  }, async (req: FastifyRequest<{ Body: { revision?: string, input: PolicyInput } }>) => await control.policies.evaluate(req.body.input, req.body.revision))

  v1.get('/policies/golden', {
    config: read('policy.golden.get'),
    schema: { summary: 'The golden decisions every bundle must reproduce (the deployment\'s, else the shipped ones)', response: { 200: goldenView } }
  }, async () => control.policies.goldenCases())

  v1.put('/policies/golden', {
    bodyLimit: GOLDEN_MAX_BYTES,
    config: write('policy.golden.set'),
    schema: {
      summary: 'Replace the deployment\'s golden decisions; the active revisions must reproduce them',
      body: { type: 'object', required: ['golden'], additionalProperties: false, properties: { golden: { type: 'array', minItems: 1, maxItems: 5000, items: goldenCase }, reason: reasonBody.properties.reason } },
      response: { 200: goldenView, ...problems(409) }
    }
  }, async (req: FastifyRequest<{ Body: { golden: GoldenCase[], reason?: string } }>) => await control.policies.setGolden(req.body.golden, req.actor!.id, req.body.reason))

  v1.delete('/policies/golden', {
    config: write('policy.golden.reset'),
    schema: { summary: 'Go back to the shipped golden decisions', response: { 200: goldenView, ...problems(409) } }
  }, async (req) => await control.policies.setGolden(null, req.actor!.id))

  v1.post('/policies/rollback', {
    config: { ...write('policy.rollback'), openapi: { bodyOptional: true } },
    preValidation: optionalBody,
    schema: {
      summary: 'Roll back: end the canary, or restore the previous stable revision',
      body: reasonBody,
      response: { 200: versionsView, ...problems(409) }
    }
  }, async (req: FastifyRequest<{ Body: { reason?: string } }>) =>
    await control.policies.rollback(req.actor!.id, req.body.reason))

  v1.post('/policies/:revision/shadow', {
    config: { ...write('policy.shadow'), openapi: { bodyOptional: true } },
    preValidation: optionalBody,
    schema: { summary: 'Evaluate a revision in shadow beside stable', params: revisionParams, body: reasonBody, response: { 200: versionsView, ...problems(409) } }
  }, async (req: FastifyRequest<{ Params: { revision: string }, Body: { reason?: string } }>) => await control.policies.startShadow(req.params.revision, req.actor!.id, req.body.reason))

  v1.post('/policies/:revision/canary', {
    config: write('policy.canary'),
    schema: {
      summary: 'Start a canary of a revision for some tenants',
      params: revisionParams,
      body: { type: 'object', required: ['tenants'], additionalProperties: false, properties: { tenants: { type: 'array', minItems: 1, maxItems: 1000, items: S.tenantId }, reason: reasonBody.properties.reason } },
      response: { 200: versionsView, ...problems(409) }
    }
  }, async (req: FastifyRequest<{ Params: { revision: string }, Body: { tenants: string[], reason?: string } }>) =>
    await control.policies.startCanary(req.params.revision, req.body.tenants, req.actor!.id, req.body.reason))

  v1.post('/policies/:revision/promote', {
    config: { ...write('policy.promote'), openapi: { bodyOptional: true } },
    preValidation: optionalBody,
    schema: { summary: 'Make a revision stable for every tenant', params: revisionParams, body: reasonBody, response: { 200: versionsView, ...problems(409) } }
  }, async (req: FastifyRequest<{ Params: { revision: string }, Body: { reason?: string } }>) => await control.policies.promote(req.params.revision, req.actor!.id, req.body.reason))

  v1.get('/policies/:revision/diff', {
    config: read('policy.diff'),
    schema: { summary: 'Shadow disagreements of a revision against stable', params: revisionParams, response: { 200: diffView, ...problems(409) } }
  }, async (req: FastifyRequest<{ Params: { revision: string } }>) => control.policies.diff(req.params.revision))
}
