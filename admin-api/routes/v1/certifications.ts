// Certification runs (POST /v1/tenants/:tenant/certifications starts one against a live agent),
// their progress, cancellation and evidence, and the device matrix (JSON, CSV, Markdown).
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ControlPlane } from '../../../broker/control/index.ts'
import { problems } from '../../plugins/problem.ts'
import { visibleTenants } from '../../plugins/access.ts'
import * as S from '../../schemas.ts'

const runId = { type: 'string', pattern: '^cr-[0-9]{14}-[0-9a-f]{8}$' } as const
const check = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'result', 'summary'],
  properties: { id: { type: 'string' }, title: { type: 'string' }, category: { type: 'string' }, result: { type: 'string', enum: ['pass', 'fail', 'unsupported', 'manual', 'skipped', 'error'] }, summary: { type: 'string' }, durationMs: { type: 'integer' } }
} as const
const runView = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'tenant', 'endpointId', 'level', 'state', 'startedAt', 'progress', 'checks'],
  properties: {
    id: { type: 'string' },
    tenant: { type: 'string' },
    endpointId: { type: 'string' },
    level: { type: 'string' },
    workflows: { type: 'array', items: { type: 'string' } },
    state: { type: 'string', enum: ['running', 'passed', 'failed', 'cancelled', 'error', 'interrupted'] },
    levelReached: { type: 'string' },
    startedAt: { type: 'string' },
    finishedAt: { type: 'string' },
    error: { type: 'string' },
    progress: { type: 'array', items: { type: 'object', additionalProperties: false, required: ['at', 'message'], properties: { at: { type: 'string' }, check: { type: 'string' }, message: { type: 'string' } } } },
    checks: { type: 'array', items: check },
    evidencePath: { type: 'string' },
    matrixStatus: { type: 'string', enum: ['green', 'yellow', 'red'] },
    attempts: { type: 'integer', description: 'attempts of the run (more than one when it was resumed after a restart)' },
    node: { type: 'string', description: 'the node running it (cluster mode: the node holding the device\'s session)' }
  }
} as const
const runParams = { type: 'object', required: ['tenant', 'id'], additionalProperties: false, properties: { tenant: S.tenantId, id: runId } } as const
const matrixJson = {
  type: 'object',
  required: ['rules', 'rows'],
  properties: {
    rules: { type: 'object', additionalProperties: { type: 'string' } },
    rows: { type: 'array', items: { type: 'object', additionalProperties: true, properties: { status: { type: 'string', enum: ['green', 'yellow', 'red'] }, limitations: { type: 'array', items: { type: 'string' } } } } }
  }
} as const

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function registerCertificationsRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
  v1.post('/tenants/:tenant/certifications', {
    config: { access: { permission: 'certify.run', scope: 'tenant-param', action: 'certify.start' } },
    schema: {
      summary: 'Start a certification run against a live agent of the tenant (one run per device at a time); poll its progress',
      params: S.tenantParams,
      body: {
        type: 'object',
        required: ['endpointId'],
        additionalProperties: false,
        properties: {
          endpointId: S.principal,
          level: { type: 'string', enum: ['integration-ready', 'certified'] },
          workflows: { type: 'array', maxItems: 10, uniqueItems: true, items: { type: 'string', enum: ['set-preview', 'operate', 'reboot'] } },
          onlineTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 3600, description: 'how long to wait for the device to come (back) online; default 60' }
        }
      },
      response: { 202: runView, ...problems(404, 409, 503) }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string }, Body: { endpointId: string, level?: string, workflows?: string[], onlineTimeoutSeconds?: number } }>, reply) =>
    reply.code(202).send(await control.startCertification(req.params.tenant, req.body, req.actor!)))

  v1.get('/tenants/:tenant/certifications', {
    config: { access: { permission: 'read', scope: 'tenant-param', action: 'certify.list' } },
    schema: { summary: 'Certification runs of the tenant since this node started', params: S.tenantParams, response: { 200: S.listOf('runs', runView), ...problems(404) } }
  }, async (req: FastifyRequest<{ Params: { tenant: string } }>) => ({ runs: await control.listCertifications(req.params.tenant) }))

  v1.get('/tenants/:tenant/certifications/:id', {
    config: { access: { permission: 'read', scope: 'tenant-param', action: 'certify.get' } },
    schema: { summary: 'One certification run: state, progress, check results (cluster mode: asked of the node running it)', params: runParams, response: { 200: runView, ...problems(404, 503) } }
  }, async (req: FastifyRequest<{ Params: { tenant: string, id: string } }>) => await control.getCertification(req.params.tenant, req.params.id))

  v1.delete('/tenants/:tenant/certifications/:id', {
    config: { access: { permission: 'certify.run', scope: 'tenant-param', action: 'certify.cancel' } },
    schema: { summary: 'Cancel a running certification run (it puts back what it changed, then files its evidence), or an interrupted one (ends cancelled at once, evidence filed)', params: runParams, response: { 200: runView, ...problems(404, 409, 503) } }
  }, async (req: FastifyRequest<{ Params: { tenant: string, id: string } }>) => await control.cancelCertification(req.params.tenant, req.params.id))

  v1.post('/tenants/:tenant/certifications/:id/resume', {
    config: { access: { permission: 'certify.run', scope: 'tenant-param', action: 'certify.resume' } },
    schema: {
      summary: 'Resume a run interrupted by a gateway restart: a new attempt keeps the finished checks (results and records) and re-runs from the first unfinished one; one evidence bundle for the run',
      params: runParams,
      response: { 202: runView, ...problems(404, 409, 503) }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string, id: string } }>, reply) =>
    reply.code(202).send(await control.resumeCertification(req.params.tenant, req.params.id, req.actor!)))

  v1.get('/tenants/:tenant/certifications/:id/evidence', {
    config: { access: { permission: 'read', scope: 'tenant-param', action: 'certify.evidence' } },
    schema: {
      summary: 'The evidence manifest of a finished run, with a fresh verification (hashes, signature by the gateway root CA)',
      params: runParams,
      response: {
        200: {
          type: 'object',
          required: ['manifest', 'verification'],
          properties: {
            manifest: { type: 'object', additionalProperties: true },
            verification: { type: 'object', additionalProperties: true, properties: { ok: { type: 'boolean' }, problems: { type: 'array', items: { type: 'string' } } } }
          }
        },
        ...problems(404, 409)
      }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string, id: string } }>) => await control.certificationEvidence(req.params.tenant, req.params.id))

  v1.get('/certifications/matrix', {
    config: {
      access: { permission: 'read', scope: 'filtered', action: 'certify.matrix' },
      openapi: { produces: { 'application/json': matrixJson, 'text/csv': { type: 'string' }, 'text/markdown': { type: 'string' } } }
    },
    schema: {
      summary: 'The device matrix (status rules in `rules`): JSON, or ?format=csv / markdown',
      querystring: { type: 'object', additionalProperties: false, properties: { format: { type: 'string', enum: ['json', 'csv', 'markdown'] } } },
      response: { 200: { type: 'string' } }
    }
  }, async (req: FastifyRequest<{ Querystring: { format?: 'json' | 'csv' | 'markdown' } }>, reply) => {
    const out = control.deviceMatrix(req.query.format ?? 'json', visibleTenants(req))
    return reply.type(out.type).send(out.body)
  })
}
