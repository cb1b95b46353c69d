// Patch of aedes-persistence-redis 11 `setup()`: load the stored subscriptions with pipelined HGETALLs.
//
// Upstream setup() runs SMEMBERS `clients` and then one awaited HGETALL per client, in sequence: a
// node start with K persistent sessions in Redis costs K round trips (15,000 sessions: seconds of
// start-up on every node). The library keeps its subscription trie in a private field, so the patch
// does not rebuild the trie itself: it fetches every client's hash first, SETUP_BATCH per pipeline,
// and answers upstream's per-client HGETALLs from that prefetch during setup(). A client stored after
// the prefetch is not in it and is read from Redis as before; nothing else changes.

export const SETUP_BATCH = 1000
const CLIENTS_KEY = 'clients' // aedes-persistence-redis' set of client ids (under the connection's keyPrefix)
const clientSubKey = (clientId: string): string => `client:${encodeURIComponent(clientId)}` // as upstream

interface Pipeline { hgetallBuffer(key: string): Pipeline, exec(): Promise<Array<[Error | null, unknown]> | null> }
export interface SetupConnection {
  smembers(key: string): Promise<string[]>
  pipeline(): Pipeline
  hgetallBuffer(key: string, ...rest: unknown[]): Promise<unknown>
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function batchPersistenceSetup<T extends { setup(broker: any): Promise<void> }> (persistence: T, conn: SetupConnection): T {
  const setup = persistence.setup.bind(persistence)
  // aedes requires an AsyncFunction here (it checks setup.constructor.name)
  persistence.setup = async function batchedSetup (broker: unknown): Promise<void> {
    const prefetched = new Map<string, unknown>()
    const ids = await conn.smembers(CLIENTS_KEY)
    for (let i = 0; i < ids.length; i += SETUP_BATCH) {
      const keys = ids.slice(i, i + SETUP_BATCH).map(clientSubKey)
      const p = conn.pipeline()
      for (const k of keys) p.hgetallBuffer(k)
      const results = await p.exec() ?? []
      results.forEach(([err, value], j) => { if (err === null) prefetched.set(keys[j]!, value) })
    }
    const hgetall = conn.hgetallBuffer
    const own = Object.hasOwn(conn, 'hgetallBuffer')
    conn.hgetallBuffer = async function prefetchedHgetall (key: string, ...rest: unknown[]): Promise<unknown> {
      if (prefetched.has(key)) {
        const value = prefetched.get(key)
        prefetched.delete(key)
        return value
      }
      return await hgetall.call(conn, key, ...rest)
    }
    try {
      await setup(broker)
    } finally {
      if (own) conn.hgetallBuffer = hgetall
      else delete (conn as Partial<SetupConnection>).hgetallBuffer
    }
  }
  return persistence
}
