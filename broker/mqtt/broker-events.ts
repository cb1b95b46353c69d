// aedes' events, turned into the gateway's: sessions come and go (session index, connection gauge,
// online/offline callbacks), and client/connection errors become security events.
import type { Aedes, Client } from 'aedes'
import { labelled, type Limits, type Metrics, type SecurityEventInput } from '../core/index.ts'
import type { OfflineReason } from '../store/index.ts'
import type { ClientState, SessionHandle, SessionIndex } from './sessions.ts'
import { isGatewayDenial, type GatewayClient } from './client.ts'

export interface SessionEvents {
  sessions: SessionIndex
  metrics: Metrics
  /** A session of this identity is live on this node. */
  online: (st: ClientState) => void
  /** The identity's last session on this node ended, and why (as far as this node knows). */
  offline: (st: ClientState, cause: { reason: OfflineReason, detail?: string }) => void
}

type TrackedClient = GatewayClient & { gwHandle?: SessionHandle, gwLastError?: string, _disconnected?: boolean, disconnectReasonCode?: number | null }

/** Why a session ended: its DISCONNECT, a revocation or another cut by the gateway, the keep-alive, a socket error, or a plain close. */
function offlineCause (c: TrackedClient, st: ClientState): { reason: OfflineReason, detail?: string } {
  if (st.revoked) return { reason: 'revoked' }
  if (c._disconnected === true) return { reason: 'disconnect' }
  if (c.gwLastError === 'keep alive timeout') return { reason: 'keepalive' }
  if (typeof c.disconnectReasonCode === 'number') return { reason: 'cut', detail: `DISCONNECT 0x${c.disconnectReasonCode.toString(16).padStart(2, '0')} sent by the gateway` }
  if (c.gwLastError !== undefined) return { reason: 'error', detail: c.gwLastError.slice(0, 200) }
  return { reason: 'closed', detail: 'connection closed without DISCONNECT' }
}

/** A live client as the session index sees it (methods on a class: no closures per connection). */
class ClientHandle implements SessionHandle {
  constructor (readonly state: ClientState, private readonly client: Client) {}
  disconnect (reasonCode: number): void { this.client.disconnect({ reasonCode }) }
  destroy (): void { (this.client.conn as { destroy?: () => void }).destroy?.() }
}

export function trackSessions (broker: Aedes, ev: SessionEvents): void {
  const connections = labelled(ev.metrics.connections)
  broker.on('client', (client: Client) => {
    const st = (client as GatewayClient).gw
    if (!st) return
    const handle = new ClientHandle(st, client)
    ;(client as TrackedClient).gwHandle = handle
    ev.sessions.add(handle)
    connections(st.listener, String(st.protocol)).inc()
    ev.online(st)
  })
  broker.on('clientDisconnect', (client: Client) => {
    const c = client as TrackedClient
    if (!c.gwHandle) return
    ev.sessions.remove(c.gwHandle)
    c.gwHandle = undefined
    const st = c.gw!
    connections(st.listener, String(st.protocol)).dec()
    // offline only when this was the endpoint's last session on this node
    if (ev.sessions.ofIdentity(st.identity).length === 0) ev.offline(st, offlineCause(c, st))
  })
  // the last error of a session, for the reason it went offline (one per connection at most, never per message)
  broker.on('clientError', (client: Client, err: Error) => {
    const c = client as TrackedClient
    if (c.gwHandle !== undefined && c.gwLastError === undefined) c.gwLastError = err?.message ?? String(err)
  })
}

/** Client and connection errors aedes reports, as security events (a refusal by the gateway was reported already). */
export function reportBrokerErrors (broker: Aedes, emit: (e: SecurityEventInput) => void, limits: Limits): void {
  const onError = (client: Client | null, err: Error & { errorCode?: number }): void => {
    if (isGatewayDenial(err)) return
    const c = client as GatewayClient | null
    const base = {
      tenant: c?.gw?.tenant,
      principal: c?.gw?.principal,
      clientId: c?.gw?.wireClientId ?? c?.gwWireId,
      remoteAddress: (c?.conn as { remoteAddress?: string } | undefined)?.remoteAddress
    }
    // aedes 2.0.0-beta.1 reports these by message text only
    const msg = err.message ?? ''
    if (msg === 'packet too large') {
      emit({ ...base, code: 'limits.packet_too_large', reason: `packet of ${String((err as { size?: number }).size)} bytes above ${limits.maxPacketBytes}` })
    } else if (msg === 'connect did not arrive in time') {
      emit({ ...base, code: 'limits.connect_timeout', reason: msg })
    } else if (msg === 'keep alive timeout') {
      emit({ ...base, code: 'limits.keepalive', reason: msg })
    } else if (msg === 'topic has too many levels') {
      emit({ ...base, code: 'acl.invalid_topic', reason: msg })
    } else if (/ECONNRESET|EPIPE|ETIMEDOUT|write after end|connection closed/.test(msg + ((err as NodeJS.ErrnoException).code ?? ''))) {
      // the peer went away: not a security event
    } else {
      emit({ ...base, code: 'protocol.error', reason: msg.slice(0, 200) })
    }
  }
  broker.on('clientError', onError)
  broker.on('connectionError', onError)
}
