// Admin API v1: device credentials of a tenant (issue, list, revoke).
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { MAX_IMPORT_ROWS, type ControlPlane, type ImportRow } from '../../../broker/control/index.ts'
import { problems } from '../../plugins/problem.ts'
import * as S from '../../schemas.ts'

/** Import bodies are bounded: about 250 bytes per row at the row cap. */
const IMPORT_BODY_LIMIT = 256 * 1024 * 1024

const importRow = {
  type: 'object',
  required: ['principal', 'role'],
  additionalProperties: false,
  properties: {
    principal: { type: 'string', maxLength: 256, examples: ['os::00256D-0002'] },
    role: { type: 'string', maxLength: 32, examples: ['agent'] },
    secretHash: { type: 'string', maxLength: 80, description: 'sha256:<64 hex> of a secret the factory installed; omit to have one generated' }
  }
} as const

const importResult = {
  type: 'object',
  required: ['total', 'success', 'skipped', 'failed', 'results'],
  additionalProperties: false,
  properties: {
    total: { type: 'integer' },
    success: { type: 'integer' },
    skipped: { type: 'integer' },
    failed: { type: 'integer' },
    results: {
      type: 'array',
      items: {
        type: 'object',
        required: ['row', 'status'],
        additionalProperties: false,
        properties: {
          row: { type: 'integer' },
          principal: { type: 'string' },
          status: { type: 'string', enum: ['created', 'skipped', 'failed'] },
          reason: { type: 'string' },
          secret: { type: 'string' }
        }
      }
    }
  }
} as const

/** NDJSON (one JSON object per line, blank lines ignored) into rows; a bad line is a 400 naming it. */
function parseNdjson (text: string): unknown[] {
  const rows: unknown[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (line.length === 0) continue
    try {
      rows.push(JSON.parse(line))
    } catch {
      throw Object.assign(new Error(`line ${i + 1} is not JSON`), { statusCode: 400 })
    }
  }
  return rows
}

export function registerCredentialsRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
  // bulk imports may be sent as NDJSON, one row per line (what factory tooling streams out)
  v1.addContentTypeParser('application/x-ndjson', { parseAs: 'string', bodyLimit: IMPORT_BODY_LIMIT }, (_req: unknown, body: string, done: (err: Error | null, value?: unknown) => void) => {
    try { done(null, parseNdjson(body)) } catch (err) { done(err as Error) }
  })

  v1.post('/tenants/:tenant/credentials::import', {
    bodyLimit: IMPORT_BODY_LIMIT,
    config: { access: { permission: 'credential.issue', scope: 'tenant-param', action: 'credential.import' } },
    schema: {
      summary: 'Import device credentials in bulk (JSON array or NDJSON), idempotent per principal; generated secrets are in this reply only',
      params: S.tenantParams,
      body: { type: 'array', maxItems: MAX_IMPORT_ROWS, items: importRow },
      response: { 200: importResult }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string }, Body: ImportRow[] }>, reply) => {
    const result = await control.importCredentials(req.params.tenant, req.body, req.actor!)
    return reply.header('cache-control', 'no-store').send(result)
  })

  v1.post('/tenants/:tenant/credentials', {
    config: { access: { permission: 'credential.issue', scope: 'tenant-param', action: 'credential.issue' } },
    schema: {
      summary: 'Issue a device credential (the secret is in this reply only)',
      params: S.tenantParams,
      body: { type: 'object', required: ['principal', 'role'], additionalProperties: false, properties: { principal: S.principal, role: { type: 'string', enum: ['agent', 'controller'] } } },
      response: { 201: S.issuedCredential, ...problems(409) }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string }, Body: { principal: string, role: string } }>, reply) => {
    const issued = await control.issueCredential(req.params.tenant, req.body, req.actor!)
    return reply.code(201).header('cache-control', 'no-store').send(issued)
  })

  v1.get('/tenants/:tenant/credentials', {
    config: { access: { permission: 'read', scope: 'tenant-param', action: 'credential.list' } },
    schema: { summary: 'Device credentials of a tenant (never secrets or hashes)', params: S.tenantParams, response: { 200: S.listOf('credentials', S.credential) } }
  }, async (req: FastifyRequest<{ Params: { tenant: string } }>) => ({ credentials: control.listCredentials(req.params.tenant) }))

  v1.delete('/tenants/:tenant/credentials/:principal', {
    config: { access: { permission: 'credential.revoke', scope: 'tenant-param', action: 'credential.revoke' } },
    schema: {
      summary: 'Revoke a device credential; its live sessions are disconnected',
      params: { type: 'object', required: ['tenant', 'principal'], additionalProperties: false, properties: { tenant: S.tenantId, principal: S.principal } },
      response: { 200: S.revokedCredential }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string, principal: string } }>) =>
    await control.revokeCredential(req.params.tenant, req.params.principal, req.actor!))

}
