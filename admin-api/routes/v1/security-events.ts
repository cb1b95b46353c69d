// Admin API v1: the security-event log (filtered query: codes, severities, tenant, principal, time range;
// cursor paging) and its live tail as Server-Sent Events (same filters and tenant scope).
import { PassThrough } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ControlPlane } from '../../../broker/control/index.ts'
import { refuseTooMany, visibleTenants } from '../../plugins/access.ts'
import { problems } from '../../plugins/problem.ts'
import * as S from '../../schemas.ts'

interface Query {
  tenant?: string, code?: string, severity?: string, minSeverity?: 'info' | 'warning' | 'critical', principal?: string,
  actor?: string, action?: string, since?: string, until?: string, cursor?: string, limit?: number
}

interface StreamQuery {
  tenant?: string, code?: string, severity?: string, minSeverity?: 'info' | 'warning' | 'critical', principal?: string,
  actor?: string, action?: string, maxSeconds?: number, limit?: number, heartbeatSeconds?: number
}

/** Open streams per admin token; one more is a 429. */
export const MAX_STREAMS_PER_TOKEN = 4
/** A reader this far behind (bytes not yet taken by the socket) is ended; it resumes with Last-Event-ID. */
const MAX_BUFFERED_BYTES = 1024 * 1024

const filters = {
  tenant: S.tenantId,
  code: S.eventCodes,
  severity: S.severities,
  principal: S.principal,
  actor: S.tokenId,
  action: { type: 'string', pattern: '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]*)*$', maxLength: 64 },
  minSeverity: { type: 'string', enum: ['info', 'warning', 'critical'], description: 'this severity or higher' }
} as const

export function registerSecurityEventsRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
  v1.get('/security-events', {
    config: { access: { permission: 'read', scope: 'tenant-query', action: 'security-event.list' } },
    schema: {
      summary: 'Security events and the admin audit trail, newest first (a tenant filter or tenant scope also matches cross-tenant attempts aimed at the tenant); `next` pages to older events',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          ...filters,
          since: { type: 'string', format: 'date-time' },
          until: { type: 'string', format: 'date-time' },
          cursor: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,200}$', description: 'the `next` value of the previous page' },
          limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 }
        }
      },
      response: { 200: S.eventPage }
    }
  }, async (req: FastifyRequest<{ Querystring: Query }>) =>
    control.queryEvents({ ...req.query, tenants: visibleTenants(req) }))

  // Open streams per token id; ended when the admin listener closes.
  const open = new Map<string, number>()
  const streams = new Set<() => void>()
  v1.addHook('preClose', async () => { for (const end of [...streams]) end() })

  v1.get('/security-events/stream', {
    config: {
      access: { permission: 'read', scope: 'tenant-query', action: 'security-event.stream' },
      openapi: {
        produces: {
          // one Server-Sent Event (the schema of each event, as OpenAPI 3.2 itemSchema and schemathesis read it)
          'text/event-stream': {
            type: 'object',
            description: 'Server-Sent Events: `id:` (the event id) and `data:` (one security event as JSON) per event; `:` comment lines are heartbeats',
            required: ['data'],
            properties: {
              event: { type: 'string', enum: ['message'] },
              id: { type: 'string' },
              retry: { type: 'integer' },
              data: { type: 'string', contentMediaType: 'application/json', contentSchema: S.securityEvent }
            }
          }
        }
      }
    },
    schema: {
      summary: 'Live tail of the security events matching the filters (Server-Sent Events), tenant scope as for GET /v1/security-events',
      description: 'Each event is sent as `id: <event id>` and `data: <the event as JSON>`, oldest first. With a `Last-Event-ID` header ' +
        '(what EventSource sends when it reconnects) the events after that one are sent first (at most 1000), then the live ones, ' +
        'without duplicates; without it, only events recorded after the request. A comment line is sent every `heartbeatSeconds`. ' +
        'The stream ends after `maxSeconds` (0: right after the backlog) or `limit` events, at the first heartbeat after the token is revoked, or when this reader falls 1 MiB behind: ' +
        `reconnect with Last-Event-ID. At most ${MAX_STREAMS_PER_TOKEN} open streams per token (429 beyond). ` +
        'The bearer token goes in the Authorization header, never in the URL (read it with fetch() and a stream reader).',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          ...filters,
          maxSeconds: { type: 'integer', minimum: 0, maximum: 3600, default: 300, description: 'end the stream after this many seconds (0: after the backlog)' },
          limit: { type: 'integer', minimum: 1, maximum: 10000, description: 'end the stream after this many events' },
          heartbeatSeconds: { type: 'integer', minimum: 1, maximum: 60, default: 15 }
        }
      },
      headers: {
        type: 'object',
        properties: { 'last-event-id': { type: 'string', pattern: '^[0-9a-z]{1,12}-[0-9a-z]{1,12}$', description: 'resume after this event id' } }
      },
      response: { 200: { type: 'string' }, ...problems(429) }
    }
  }, async (req: FastifyRequest<{ Querystring: StreamQuery, Headers: { 'last-event-id'?: string } }>, reply: FastifyReply) => {
    const tokenId = req.actor?.id ?? ''
    const n = open.get(tokenId) ?? 0
    if (n >= MAX_STREAMS_PER_TOKEN) {
      return refuseTooMany(control.admin, req, reply, 5, `at most ${MAX_STREAMS_PER_TOKEN} open event streams per token`)
    }
    const { maxSeconds = 300, limit, heartbeatSeconds = 15, ...q } = req.query
    const out = new PassThrough()
    let sent = 0
    let ended = false
    let sub: { close: () => void } | undefined
    let deadline: NodeJS.Timeout | undefined
    let heartbeat: NodeJS.Timeout | undefined
    const end = (): void => {
      if (ended) return
      ended = true
      clearTimeout(deadline)
      clearInterval(heartbeat)
      sub?.close()
      streams.delete(end)
      const left = (open.get(tokenId) ?? 1) - 1
      if (left > 0) open.set(tokenId, left)
      else open.delete(tokenId)
      out.end()
    }
    const send = (ev: { id: string }): void => {
      if (ended) return
      out.write(`id: ${ev.id}\ndata: ${JSON.stringify(ev)}\n\n`)
      sent++
      if ((limit !== undefined && sent >= limit) || out.writableLength > MAX_BUFFERED_BYTES) end()
    }
    open.set(tokenId, n + 1)
    streams.add(end)
    reply.raw.on('close', end)
    out.write('retry: 3000\n: stream open\n\n')
    const live = control.followEvents({ ...q, tenants: visibleTenants(req) }, send, req.headers['last-event-id'])
    sub = live
    for (const ev of live.backlog) send(ev)
    if (maxSeconds === 0) end()
    else {
      deadline = setTimeout(end, maxSeconds * 1000)
      // the token is checked again at every heartbeat: a revoked token's stream ends then
      const bearer = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? ''
      heartbeat = setInterval(() => {
        if (ended) return
        if (control.admin.authenticate(bearer, req.ip) === undefined) { end(); return }
        out.write(': heartbeat\n\n')
      }, heartbeatSeconds * 1000)
    }
    return reply
      .type('text/event-stream; charset=utf-8')
      .header('x-accel-buffering', 'no')
      .send(out)
  })
}
