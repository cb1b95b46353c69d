// RFC 9457 problem details: every 4xx/5xx body of the admin API.
import type { FastifyReply } from 'fastify'

export interface Problem {
  type: string
  title: string
  status: number
  detail?: string
  instance?: string
}

export function sendProblem (reply: FastifyReply, status: number, title: string, detail?: string): FastifyReply {
  const body: Problem = { type: `https://uspgate.dev/problems/${title.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`, title, status }
  if (detail !== undefined) body.detail = detail
  return reply.code(status).type('application/problem+json').send(body)
}

export const problemSchema = {
  type: 'object',
  required: ['type', 'title', 'status'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    instance: { type: 'string' }
  }
} as const
