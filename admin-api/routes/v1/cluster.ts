// GET /v1/cluster: every node of the deployment with its policy revisions and last heartbeat; a node
// whose stable revision differs from the one stored in Redis (or from the majority) is flagged.
import type { FastifyInstance } from 'fastify'
import type { ControlPlane } from '../../../broker/control/index.ts'
import { problems } from '../../plugins/problem.ts'

const revisions = {
  type: 'object',
  properties: { stable: { type: 'string' }, canary: { type: 'string' }, shadow: { type: 'string' } }
}

const node = {
  type: 'object',
  properties: {
    node: { type: 'string' },
    instance: { type: 'string' },
    startedAt: { type: 'string' },
    heartbeat: { type: 'string' },
    ageMs: { type: 'integer' },
    revisions,
    sessions: { type: 'integer' },
    self: { type: 'boolean' },
    diverged: { type: 'boolean' }
  }
}

export function registerClusterRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
  v1.get('/cluster', {
    // node ids and policy revisions only, no tenant data; a tenant-scoped token cannot see the deployment
    config: { access: { permission: 'read', scope: 'unscoped', action: 'cluster.view' } },
    schema: {
      summary: 'Cluster nodes, their policy revisions and last heartbeat (divergent nodes flagged)',
      response: {
        200: {
          type: 'object',
          properties: {
            mode: { type: 'string', enum: ['cluster', 'embedded'] },
            node: { type: 'string' },
            redis: { type: 'object', properties: { url: { type: 'string' }, prefix: { type: 'string' }, up: { type: 'boolean' }, trusted: { type: 'boolean' } } },
            storeRevision: { type: 'string' },
            majorityRevision: { type: 'string' },
            nodes: { type: 'array', items: node }
          }
        },
        // Redis unreachable from this node (cluster mode)
        ...problems(503)
      }
    }
  }, async () => await control.clusterView())
}
