// aedes persistence with the fixes of aedes 1.2.0 that 2.0.0-beta.1 lacks.
import memoryPersistence from 'aedes-persistence'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyPersistence = Record<string, any> & { incomingDelPacket(client: unknown, packet: unknown): Promise<void> }

/**
 * Wraps an aedes persistence so that deleting an incoming QoS 2 packet twice
 * is a no-op. In 2.0.0-beta.1, lib/handlers/pubrel.js does
 * `incomingDelPacket(...).finally(done)`: when two PUBRELs for one message id
 * race, the second delete rejects ("no such packet") outside any handler and
 * the unhandled rejection kills the process (fixed upstream in aedes 1.2.0).
 */
export function hardenPersistence<T extends AnyPersistence> (persistence: T): T {
  const del = persistence.incomingDelPacket.bind(persistence)
  persistence.incomingDelPacket = (client: unknown, packet: unknown) =>
    Promise.resolve(del(client, packet)).catch(() => undefined)
  return persistence
}

export function createMemoryPersistence (): AnyPersistence {
  return hardenPersistence((memoryPersistence as unknown as () => AnyPersistence)())
}
