// aedes persistence with the fixes of aedes 1.2.0 that 2.0.0-beta.1 lacks, and fixes for queue
// accounting bugs of aedes-persistence 10 and aedes-persistence-redis 11 that lose QoS 1/2 messages.
import memoryPersistence from 'aedes-persistence'
import { indexRetained } from './retained-index.ts'
import { markRedeliveries } from './redelivery-dup.ts'

type AnyPersistence = Record<string, any> & {
  incomingDelPacket(client: unknown, packet: unknown): Promise<void>
  outgoingClearMessageId(client: unknown, packet: unknown): Promise<unknown>
}

/**
 * Wraps an aedes persistence so that deleting an incoming QoS 2 packet twice
 * is a no-op. In 2.0.0-beta.1, lib/handlers/pubrel.js does
 * `incomingDelPacket(...).finally(done)`: when two PUBRELs for one message id
 * race, the second delete rejects ("no such packet") outside any handler and
 * the unhandled rejection kills the process (fixed upstream in aedes 1.2.0).
 */
export function hardenPersistence<T extends AnyPersistence> (persistence: T): T {
  markRedeliveries(persistence as unknown as Parameters<typeof markRedeliveries>[0])
  const del = persistence.incomingDelPacket.bind(persistence)
  persistence.incomingDelPacket = (client: unknown, packet: unknown) =>
    Promise.resolve(del(client, packet)).catch(() => undefined)
  // A live delivery that authorizeForward refuses (or aedes dedupes) is "cleared" from a persistent
  // session's queue with the packet as it came off the emitter, which has no message id yet. The
  // memory persistence then removes the first queued entry whose id is also still undefined: a
  // different message, not yet delivered, is lost. Clearing needs an id; without one it is a no-op
  // (the refused message stays queued and is decided again, by authorizeForward, on the next connect).
  const clear = persistence.outgoingClearMessageId.bind(persistence) as (client: unknown, packet: { messageId?: number | null }) => Promise<unknown>
  persistence.outgoingClearMessageId = (client: unknown, packet: { messageId?: number | null }) =>
    packet.messageId === undefined || packet.messageId === null ? Promise.resolve(undefined) : clear(client, packet)
  return persistence
}

export function createMemoryPersistence (): AnyPersistence & { countRetained(): number } {
  const persistence = (memoryPersistence as unknown as () => AnyPersistence)()
  // aedes-persistence 10 has no call that empties a session's queue (cleanSubscriptions keeps it, and the
  // hardened clear below needs a message id): remove every queued entry with the library's own clear, by id.
  const clear = persistence.outgoingClearMessageId.bind(persistence) as (client: unknown, packet: { messageId?: number }) => Promise<unknown>
  persistence.dropOutgoingQueue = async (client: { id: string }) => {
    const queued: Array<{ messageId?: number }> = []
    for await (const p of persistence.outgoingStream(client) as AsyncIterable<{ messageId?: number }>) queued.push(p)
    for (const p of queued) await clear(client, p.messageId === undefined ? {} : { messageId: p.messageId })
  }
  // retained messages looked up by topic level, not by testing each one (retained-index.ts)
  return indexRetained(hardenPersistence(persistence))
}

/** The subset of an ioredis connection (with the persistence's keyPrefix) the fix below needs. */
export interface PersistenceConnection {
  getBuffer(key: string): Promise<Buffer | null>
  lrem(key: string, count: number, value: string): Promise<number>
  decrby(key: string, by: number): Promise<number>
  del(...keys: string[]): Promise<number>
}

/** Where a message id handed to one client points: the shared packet, or its QoS 2 PUBREL copy. */
interface Delivery { brokerId: string, brokerCounter: string, pubrel: boolean }

/** Deliveries remembered per node, like the library's own message id cache (which is also bounded). */
const MAX_REMEMBERED_DELIVERIES = 100_000

/**
 * Makes aedes-persistence-redis (11.x) count each queued message once per subscriber.
 *
 * The library stores a QoS 1/2 message once (`packet:<broker>:<counter>`) with a count of the
 * persistent subscribers it was queued for, and pushes the key onto each subscriber's list. Its
 * `outgoingClearMessageId` decrements that count on every acknowledgement, without checking that
 * the subscriber's list still held the message. A subscriber that reconnects while messages are
 * being published receives some of them twice, live and from its queue (allowed: QoS 1 is
 * at-least-once); its second PUBACK decremented the count again, the count reached zero early and
 * the message was deleted before the *other* subscribers' sessions had read it. In cluster tests
 * this lost 1–11 of 20 messages for the second persistent subscriber of a killed node.
 *
 * This replacement decrements by what `LREM` actually removed from this subscriber's list, so the
 * count always equals the number of queues still holding the message. It also removes a QoS 2
 * message's PUBREL entry from the list at PUBCOMP, which the library left behind. It keeps its own map of
 * (client, message id) → message, filled by `outgoingUpdate` (the only place ids are assigned).
 */
type QueuePersistence = AnyPersistence & {
  outgoingUpdate(client: { id: string }, packet: Record<string, unknown>): Promise<void>
  outgoingClearMessageId(client: { id: string }, packet: { messageId?: number }): Promise<Record<string, unknown> | undefined>
}

export function countEachAckOnce<T extends QueuePersistence> (persistence: T, db: PersistenceConnection, decode: (buf: Buffer) => Record<string, unknown>): T {
  const deliveries = new Map<string, Delivery>()
  const key = (clientId: string, messageId: unknown): string => `${clientId}\u0000${String(messageId)}`
  const update = persistence.outgoingUpdate.bind(persistence)

  persistence.outgoingUpdate = async (client: { id: string }, packet: Record<string, unknown>) => {
    // the library resolves brokerId/brokerCounter of a PUBREL from its cache and writes them onto the packet
    await update(client, packet)
    const k = key(client.id, packet.messageId)
    deliveries.delete(k) // re-insert at the end: the oldest entries are the ones evicted
    deliveries.set(k, { brokerId: String(packet.brokerId), brokerCounter: String(packet.brokerCounter), pubrel: packet.cmd === 'pubrel' })
    if (deliveries.size > MAX_REMEMBERED_DELIVERIES) deliveries.delete(deliveries.keys().next().value!)
  }

  persistence.outgoingClearMessageId = async (client: { id: string }, packet: { messageId?: number }) => {
    const k = key(client.id, packet.messageId)
    const delivery = deliveries.get(k)
    if (delivery === undefined) return undefined
    deliveries.delete(k)
    // key layout of aedes-persistence-redis 11 (asyncPersistence.js)
    const listKey = `outgoing:${encodeURIComponent(client.id)}`
    const packetKey = `packet:${delivery.brokerId}:${delivery.brokerCounter}`
    const countKey = `${packetKey}:offlineCount`
    const pubrelKey = `${listKey}:${delivery.brokerId}:${delivery.brokerCounter}`

    const buf = await db.getBuffer(delivery.pubrel ? pubrelKey : packetKey)
    let original: Record<string, unknown> | undefined
    if (buf !== null) {
      original = decode(buf)
      original.messageId = packet.messageId
    }
    let removed = await db.lrem(listKey, 0, packetKey)
    if (delivery.pubrel) {
      removed += await db.lrem(listKey, 0, pubrelKey)
      await db.del(pubrelKey)
    }
    if (removed > 0 && await db.decrby(countKey, removed) <= 0) await db.del(packetKey, countKey)
    return original
  }
  return persistence
}
