// A system under test, as the load generators see it. The single-node targets are one broker
// child each; the cluster target (gateway-2node) is a redis-server and two gateway children in
// cluster mode, publishers (and the connect storm) on node 1, subscribers on node 2, stats summed.
import { startBroker, type BrokerHandle, type ChildStats, type CredentialRequest, type StartOptions } from './brokers.ts'
import { startBenchRedis, type BenchRedis } from './redis.ts'
import type { MqttIdentity } from './fanout.ts'

export interface Target {
  /** Short name used in tables and JSON ("aedes", "gateway", later e.g. "gateway-2node"). */
  name: string
  /** A control (no targets apply to it), as opposed to the baseline or a system under test. */
  control: boolean
  /** Whether clients must present issued credentials. */
  auth: boolean
  /** Port for publishers and connect-storm clients. */
  publisherPort: number
  /** Port for subscribers (differs from publisherPort only on a multi-node target). */
  subscriberPort: number
  notes: string[]
  /** Issues credentials (no-op without auth); returns the secrets in request order. */
  provision: (tenant: string, credentials: CredentialRequest[]) => Promise<{ secrets: string[], ms: number }>
  /** CPU/RSS summed over the target's processes; connectedClients summed over its nodes. */
  stats: () => Promise<ChildStats>
  /** CPU profiling of a measurement window (files are per process: <base>.<node>.cpuprofile). */
  profileStart: () => Promise<void>
  profileStop: (base: string) => Promise<string[]>
  stop: () => Promise<void>
}

export interface TargetContext {
  /** node flags for gateway processes (e.g. --cpu-prof) */
  gatewayNodeFlags: string[]
}

export type TargetFactory = (ctx: TargetContext) => Promise<Target>

function fromBroker (name: string, b: BrokerHandle, auth: boolean, control = false): Target {
  return {
    name,
    control,
    auth,
    publisherPort: b.port,
    subscriberPort: b.port,
    notes: b.notes,
    provision: auth ? (tenant, creds) => b.provision(tenant, creds) : async () => ({ secrets: [], ms: 0 }),
    stats: () => b.stats(),
    profileStart: () => b.profileStart(),
    profileStop: async base => [await b.profileStop(`${base}.cpuprofile`)],
    stop: () => b.stop()
  }
}

export const plainAedes: TargetFactory = async () => fromBroker('aedes', await startBroker('aedes'), false)

/** Control: plain aedes with TCP_NODELAY on every socket, no hooks. */
export const aedesNoDelay: TargetFactory = async () => fromBroker('aedes+nodelay', await startBroker('aedes-nodelay'), false, true)

/** Control: TCP_NODELAY plus writes coalesced per event-loop turn, no hooks. */
export const aedesNoDelayCork: TargetFactory = async () => fromBroker('aedes+nodelay+cork', await startBroker('aedes-nodelay-cork'), false, true)

export const singleGateway: TargetFactory = async ctx => {
  const opts: StartOptions = { nodeFlags: ctx.gatewayNodeFlags }
  return fromBroker('gateway', await startBroker('gateway', opts), true)
}

/** How long node 2 may take to see, through Redis, the credentials issued on node 1. */
const CREDENTIAL_SYNC_TIMEOUT_MS = 60_000

/**
 * Two uspgate Gateways in cluster mode on one redis-server started for the run (no persistence).
 * Tenant and credentials are issued once, through node 1's control plane; node 2 serves them from
 * the Redis store (provisioning waits until node 2 knows every principal). Publishers and the
 * connect storm use node 1, subscribers node 2: every delivery crosses Redis (one PUBLISH to node 2's channel).
 */
export const clusterGateway: TargetFactory = async ctx => {
  let redis: BenchRedis | undefined
  const nodes: BrokerHandle[] = []
  const stopAll = async (): Promise<void> => {
    const errors: string[] = []
    for (const n of [...nodes].reverse()) { try { await n.stop() } catch (err) { errors.push((err as Error).message) } }
    nodes.length = 0
    try { await redis?.stop() } catch (err) { errors.push((err as Error).message) }
    if (errors.length > 0) throw new Error(errors.join('; '))
  }
  try {
    redis = await startBenchRedis()
    for (const nodeId of ['node1', 'node2']) {
      // one after the other: the first node initialises the shared state in Redis
      nodes.push(await startBroker('gateway', { nodeFlags: ctx.gatewayNodeFlags, cluster: { redisUrl: redis.url, nodeId } }))
    }
  } catch (err) {
    await stopAll().catch(() => {})
    throw err
  }
  const [n1, n2] = nodes as [BrokerHandle, BrokerHandle]
  const r = redis
  return {
    name: 'gateway-2node',
    control: false,
    auth: true,
    publisherPort: n1.port,
    subscriberPort: n2.port,
    notes: [
      ...n1.notes.filter(n => !n.startsWith('cluster mode')),
      `two nodes in cluster mode on one redis-server (${r.url}, pid ${r.pid}, no persistence, started by the bench): publishers and the connect storm on node1, subscribers on node2; broker CPU = both gateways + redis-server, RSS = both gateways`
    ],
    provision: async (tenant, creds) => {
      const t0 = Date.now()
      const res = await n1.provision(tenant, creds)
      await n2.awaitCredentials(tenant, creds.map(c => c.principal), CREDENTIAL_SYNC_TIMEOUT_MS)
      return { secrets: res.secrets, ms: Date.now() - t0 }
    },
    stats: async () => {
      const [a, b] = await Promise.all([n1.stats(), n2.stats()])
      return {
        // redis-server's CPU is part of the cost of a cluster delivery: counted as user time
        cpuUserUs: a.cpuUserUs + b.cpuUserUs + r.cpuUs(),
        cpuSystemUs: a.cpuSystemUs + b.cpuSystemUs,
        rssBytes: a.rssBytes + b.rssBytes,
        connectedClients: a.connectedClients + b.connectedClients
      }
    },
    profileStart: async () => { await Promise.all([n1.profileStart(), n2.profileStart()]) },
    profileStop: async base => await Promise.all([n1.profileStop(`${base}.node1.cpuprofile`), n2.profileStop(`${base}.node2.cpuprofile`)]),
    stop: stopAll
  }
}

/** Username of an issued credential: "<tenant>:<principal>". */
export function withCredentials (ids: MqttIdentity[], tenant: string, secrets: string[]): MqttIdentity[] {
  return ids.map((id, i) => ({ ...id, username: `${tenant}:${id.endpointId}`, password: secrets[i]! }))
}
