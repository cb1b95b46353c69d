// The MQTT part of a drain (SIGTERM): the listeners are already closed, so no new client arrives; each
// connected client is told to go (MQTT 5: DISCONNECT 0x8B "Server shutting down" [MQTT-3.14.2-1]; 3.1.1
// has no server DISCONNECT, so its connection is ended) and the drain waits for their connections to
// close, up to a bound, so the DISCONNECT packets reach the clients instead of being cut off by a destroy.
import { DISCONNECT } from './reason-codes.ts'

export interface DrainableClient {
  version?: number | null
  disconnect: (opts?: { reasonCode?: number }) => void
  conn?: unknown
}

interface Conn { destroyed?: boolean, end?: () => void, destroy?: () => void }

/**
 * Tells every client to go and resolves once all their connections are closed, or after `timeoutMs`
 * with those still open destroyed. Resolves the number of connections that had to be destroyed.
 */
export async function drainClients (clients: DrainableClient[], timeoutMs: number): Promise<number> {
  const conns: Conn[] = []
  for (const client of clients) {
    const conn = client.conn as Conn | undefined
    if (conn !== undefined) conns.push(conn)
    try {
      if (client.version === 5) client.disconnect({ reasonCode: DISCONNECT.SERVER_SHUTTING_DOWN })
      else conn?.end?.()
    } catch { /* already closing */ }
  }
  const open = (): Conn[] => conns.filter(c => c.destroyed !== true)
  const deadline = Date.now() + timeoutMs
  while (open().length > 0 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 25))
  const left = open()
  for (const c of left) c.destroy?.()
  return left.length
}
