// A system under test, as the load generators see it. The single-node targets are one broker
// child each; a cluster target (a later issue) can put publishers and subscribers on different
// nodes by answering different ports, and sum the stats of its nodes.
import { startBroker, type BrokerHandle, type ChildStats, type CredentialRequest, type StartOptions } from './brokers.ts'
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

/** Username of an issued credential: "<tenant>:<principal>". */
export function withCredentials (ids: MqttIdentity[], tenant: string, secrets: string[]): MqttIdentity[] {
  return ids.map((id, i) => ({ ...id, username: `${tenant}:${id.endpointId}`, password: secrets[i]! }))
}
