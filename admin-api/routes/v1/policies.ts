// /v1/policies: policy versions, shadow, tenant canary, promote, rollback and shadow diff.
// Registered inside the authenticated /v1 scope; errors are ControlErrors → problem+json.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ControlPlane } from '../../../broker/control/index.ts'
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

  v1.post('/policies/rollback', {
    config: { ...write('policy.rollback'), openapi: { bodyOptional: true } },
    // The body is optional (a bare POST rolls back without a reason); a JSON null is refused like any non-object.
    preValidation: async (req) => { if (req.body === undefined) req.body = {} },
    schema: {
      summary: 'Roll back: end the canary, or restore the previous stable revision',
      body: { type: 'object', additionalProperties: false, properties: { reason: { type: 'string', minLength: 1, maxLength: 500 } } },
      response: { 200: versionsView, ...problems(409) }
    }
  }, async (req: FastifyRequest<{ Body: { reason?: string } }>) =>
    await control.policies.rollback(req.actor!.id, req.body.reason))

  v1.post('/policies/:revision/shadow', {
    config: write('policy.shadow'),
    schema: { summary: 'Evaluate a revision in shadow beside stable', params: revisionParams, response: { 200: versionsView, ...problems(409) } }
  }, async (req: FastifyRequest<{ Params: { revision: string } }>) => await control.policies.startShadow(req.params.revision, req.actor!.id))

  v1.post('/policies/:revision/canary', {
    config: write('policy.canary'),
    schema: {
      summary: 'Start a canary of a revision for some tenants',
      params: revisionParams,
      body: { type: 'object', required: ['tenants'], additionalProperties: false, properties: { tenants: { type: 'array', minItems: 1, maxItems: 1000, items: S.tenantId } } },
      response: { 200: versionsView, ...problems(409) }
    }
  }, async (req: FastifyRequest<{ Params: { revision: string }, Body: { tenants: string[] } }>) =>
    await control.policies.startCanary(req.params.revision, req.body.tenants, req.actor!.id))

  v1.post('/policies/:revision/promote', {
    config: write('policy.promote'),
    schema: { summary: 'Make a revision stable for every tenant', params: revisionParams, response: { 200: versionsView, ...problems(409) } }
  }, async (req: FastifyRequest<{ Params: { revision: string } }>) => await control.policies.promote(req.params.revision, req.actor!.id))

  v1.get('/policies/:revision/diff', {
    config: read('policy.diff'),
    schema: { summary: 'Shadow disagreements of a revision against stable', params: revisionParams, response: { 200: diffView, ...problems(409) } }
  }, async (req: FastifyRequest<{ Params: { revision: string } }>) => control.policies.diff(req.params.revision))
}
