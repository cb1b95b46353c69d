// The gateway's view of an aedes client: the private fields the pipelines read or set, the namespaced
// internal client id, and the error a pipeline hands aedes for a refusal.
import type { Client } from 'aedes'
import type { ClientState } from './sessions.ts'

/** aedes' Client plus the private fields this folder reads or sets (pinned aedes 2.0.0-beta.1). */
export type GatewayClient = Client & {
  gw?: ClientState
  /** aedes: the client's live subscriptions by filter */
  subscriptions: Record<string, unknown>
  /** set by aedes init() from CONNECT: the Clean Start flag */
  _cleanStart?: boolean
  /** aedes reports this as the MQTT 5 Assigned Client Identifier */
  _assignedClientId?: string
  _will?: { topic: string, qos?: number, retain?: boolean } | null
  /** set by preConnect */
  gwWireId?: string
  gwListener?: string
  /** client id chosen in preConnect for an empty one (sent to MQTT 5 clients as Assigned Client Identifier) */
  gwAssigned?: string
  /** CONNECT Keep Alive and Clean Session / Clean Start, kept by preConnect for the connect steps */
  gwKeepAlive?: number
  gwCleanSession?: boolean
  /** shared subscriptions of this client: plain filter → group key (shared-subscriptions.ts) */
  gwShared?: Map<string, string>
  /** aedes: the MQTT 5 Server Keep Alive it applies and sends in CONNACK */
  _serverKeepAlive?: number
  /** MQTT 5 CONNECT user property usp-endpoint-id (TR-369 R-MQTT.13) */
  gwUspEndpointId?: string | string[]
  /** Remote address, read once when the socket was accepted (each read of socket.remoteAddress is a syscall). */
  gwRemote?: string
  /** Pauses reading and parsing this client's packets while its publish rate is spent (fairness.ts). */
  gwReadGate?: { hold(ms: number): boolean }
  /** More QoS 2 PUBLISHes awaiting PUBREL than allowed: the connection is being closed, later packets are ignored (listeners.ts). */
  gwOverLimit?: boolean
  /** Set by the MQTTS listener when the client presented a certificate that passed identifyPeer. */
  gwCertIdentity?: CertIdentity
}

/** Identity proven by a client certificate (tenant from the CA that signed it, principal from its urn:bbf:usp:id SAN). */
export interface CertIdentity {
  tenant: string
  principal: string
  role: 'agent' | 'controller'
  serial: string
  /** DER of the certificate: re-checked when a will fires after the connection is gone. */
  peer?: Buffer
}

/** Separates the identity from the wire client id in aedes' internal client id. */
export const INTERNAL_ID_SEPARATOR = '|'

/** Tenant and principal from aedes' internal client id (used for wills whose client is gone). */
export function identityFromInternalId (internalId: string | undefined): { tenant: string, principal: string } | undefined {
  if (!internalId) return undefined
  const sep = internalId.indexOf(INTERNAL_ID_SEPARATOR)
  const colon = internalId.indexOf(':')
  if (sep < 0 || colon < 1 || colon > sep) return undefined
  return { tenant: internalId.slice(0, colon), principal: internalId.slice(colon + 1, sep) }
}

export function remoteOf (client: Client): string {
  return (client as GatewayClient).gwRemote ?? (client.conn as { remoteAddress?: string }).remoteAddress ?? 'unknown'
}

/** Error passed to aedes for a deny; the event was already emitted. The message is the generic MQTT 5 Reason String. */
export class DeniedError extends Error {
  readonly gatewayDenied = true
}

export function connectError (returnCode: number): Error & { returnCode: number } {
  const err = new DeniedError('connection refused') as DeniedError & { returnCode: number }
  err.returnCode = returnCode
  return err
}

export function isGatewayDenial (err: unknown): boolean {
  return (err as { gatewayDenied?: boolean } | null)?.gatewayDenied === true
}
