// RFC 9457 problem details: every 4xx/5xx body of the admin API.
import type { FastifyReply } from 'fastify'

export interface Problem {
  type: string
  title: string
  status: number
  detail?: string
  instance?: string
}

export const PROBLEM_TYPE = 'application/problem+json'

export function sendProblem (reply: FastifyReply, status: number, title: string, detail?: string): FastifyReply {
  const body: Problem = { type: `https://uspgate.dev/problems/${title.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`, title, status }
  if (detail !== undefined) body.detail = detail
  return reply.code(status).type(PROBLEM_TYPE).send(body)
}

export const problemSchema = {
  type: 'object',
  required: ['type', 'title', 'status'],
  additionalProperties: false,
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer', minimum: 400, maximum: 599 },
    detail: { type: 'string' },
    instance: { type: 'string' }
  }
} as const

/** Problem bodies for the given status codes, for a route's `schema.response`. */
export function problems (...codes: number[]): Record<number, typeof problemSchema> {
  return Object.fromEntries(codes.map(c => [c, problemSchema]))
}

export function isProblemSchema (schema: unknown): boolean {
  const p = (schema as { properties?: Record<string, unknown> } | undefined)?.properties
  return p !== undefined && 'type' in p && 'title' in p && 'status' in p
}
