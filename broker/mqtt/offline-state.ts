// What aedes keeps for a connection after it ended — a delayed will (timer + persisted will), a
// persistent session's subscriptions, its queued messages and its expiry timer — dropped for client
// ids the gateway no longer trusts (revoked credential, certificate or CA). Called through
// SessionIndex.discardOffline, so every revocation path reaches it.
import type { Aedes } from 'aedes'

/** aedes 2.0.0-beta.1 internals used here (pinned version). */
interface BrokerInternals {
  id: string
  clients: Record<string, unknown>
  delayedWills: Map<string, unknown>
  expiringSessions: Map<string, unknown>
  clearDelayedWill(id: string): void
  clearSessionExpiry(id: string): void
  persistence: {
    delWill(client: { id: string, brokerId: string }): Promise<unknown>
    cleanSubscriptions(client: { id: string }): Promise<unknown>
    /** memory persistence only (patches/persistence.ts); Redis drops the queue list in cleanSubscriptions */
    dropOutgoingQueue?: (client: { id: string }) => Promise<void>
  }
}

/** Client ids with a delayed will or an expiring session held by this broker. */
export function pendingClientIds (broker: Aedes): Iterable<string> {
  const b = broker as unknown as BrokerInternals
  return new Set([...b.delayedWills.keys(), ...b.expiringSessions.keys()])
}

/** Drops the offline state of these client ids; a client id that is connected again is left alone. */
export async function discardOfflineState (broker: Aedes, internalIds: readonly string[]): Promise<number> {
  const b = broker as unknown as BrokerInternals
  let discarded = 0
  for (const id of internalIds) {
    if (b.clients[id] !== undefined) continue
    b.clearDelayedWill(id) // [MQTT-3.1.3-9] the will is not sent: the identity is no longer trusted
    b.clearSessionExpiry(id)
    const client = { id, brokerId: b.id }
    await b.persistence.delWill(client)
    await b.persistence.cleanSubscriptions(client)
    await b.persistence.dropOutgoingQueue?.(client)
    discarded++
  }
  return discarded
}
