// Patch of aedes-persistence-redis 11 retained messages: kept in a topic index, so a SUBSCRIBE with a
// wildcard reads only the retained messages under the filter's literal prefix.
//
// Upstream (asyncPersistence.js, matchRetained) keeps every retained message in ONE hash `retained`
// and answers every SUBSCRIBE with a wildcard filter by HSCANning the whole hash: HSCAN's MATCH is
// applied after the scan, so the prefix it passes does not shorten it, and the cost of a SUBSCRIBE is
// O(all retained messages). The gateway keeps one retained presence message per agent and every
// TR-369 agent subscribes `<inbox>/#`, so connecting a fleet of K agents costs O(K²) Redis work: in
// the 2-node bench at K = 15,000, Redis spent 419 ms of one window in 56,660 HSCANs and 4.5 ms in
// the PUBLISHes that routed the messages. Upstream: moscajs/aedes-persistence-redis#10 (slow client
// connections with many retained messages) and #119 / PR #122 (KEYS replaced by SCAN/HSCAN, still a
// scan of every retained message; #119 asks for "some pattern matching" in the scan).
//
// Layout, under the connection's keyPrefix, per first topic level L (the tenant for gateway topics):
//   retained:{L}:topics   ZSET of the topics, every score 0, so members are ordered bytewise and
//                         ZRANGEBYLEX returns the topics below a prefix in O(log n + matches)
//   retained:{L}:packets  HASH topic → packet, msgpack-encoded as the library does
//   retained:levels       SET of the first levels that have (or had) a retained message, read only
//                         for a filter whose first level is a wildcard (`#`, `+/...`)
// L is the hash tag (URI-encoded, so it never contains `}`; `%` for an empty first level, which URI
// encoding never produces alone): a level's two keys share a slot on Redis Cluster, so setting or
// deleting a topic is a single-slot MULTI; `retained:levels` is written by a separate command before it.
// A level that loses its last topic stays in `retained:levels` (removing it would race with a
// concurrent set on another node, and a lookup of an empty level costs one empty range read).
//
// Matching is MQTT's: `+` is exactly one level (possibly empty), `#` the parent level and everything
// below it [MQTT-4.7.1-2], and a filter whose first level is a wildcard does not match topics whose
// first level starts with `$` [MQTT-4.7.2-1] (upstream's qlobber does not apply that rule). A topic
// matched by several filters of one SUBSCRIBE is returned once, as upstream does.
//
// Data of the unpatched library (the `retained` hash) is migrated at setup(), before the node serves:
// each entry is moved by a script that copies it only if the index has no value for that topic yet
// and deletes it from the old hash, so nodes starting together move each entry once and a value set
// (or deleted) through the index since is not overwritten by the old one. Nothing reads the old hash
// afterwards: a node of an older version writing into it while patched nodes run (a mixed-version
// cluster) is not supported; its writes are picked up by the next patched node's start.
const LEGACY_KEY = 'retained' // upstream's hash topic → packet
const LEVELS_KEY = 'retained:levels'
/** Topics per ZRANGEBYLEX page and per HMGET. */
export const RETAINED_BATCH = 500

const tag = (level: string): string => level === '' ? '%' : encodeURIComponent(level)
export const retainedKeys = {
  topics: (level: string): string => `retained:{${tag(level)}}:topics`,
  packets: (level: string): string => `retained:{${tag(level)}}:packets`,
  levels: LEVELS_KEY,
  legacy: LEGACY_KEY
}

/** KEYS: the old hash, the level's topics and packets, the levels set. ARGV: topic, level. */
const MIGRATE_ONE = `local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
redis.call('SADD', KEYS[4], ARGV[2])
if redis.call('HSETNX', KEYS[3], ARGV[1], v) == 1 then redis.call('ZADD', KEYS[2], 0, ARGV[1]) end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1`

interface Multi {
  zadd(key: string, score: number, member: string): Multi
  zrem(key: string, member: string): Multi
  hset(key: string, field: string, value: Buffer): Multi
  hdel(key: string, field: string): Multi
  exec(): Promise<Array<[Error | null, unknown]> | null>
}
/** The ioredis connection (with the persistence's keyPrefix) the patch uses. */
export interface RetainedConnection {
  multi(): Multi
  sadd(key: string, member: string): Promise<number>
  smembers(key: string): Promise<string[]>
  zcard(key: string): Promise<number>
  hlen(key: string): Promise<number>
  zrangebylex(key: string, min: string, max: string, limit: 'LIMIT', offset: number, count: number): Promise<string[]>
  hgetBuffer(key: string, field: string): Promise<Buffer | null>
  hmgetBuffer(key: string, ...fields: string[]): Promise<Array<Buffer | null>>
  hscanBuffer(key: string, cursor: string, count: 'COUNT', n: number): Promise<[Buffer, Buffer[]]>
  eval(script: string, numKeys: number, ...args: string[]): Promise<unknown>
}
export interface Codec { encode(value: unknown): Buffer, decode(buf: Buffer): unknown }
interface RetainedPacket { topic: string, payload: Buffer }

const firstLevel = (topic: string): string => { const i = topic.indexOf('/'); return i === -1 ? topic : topic.slice(0, i) }
const isWildcard = (w: string): boolean => w === '+' || w === '#'

/** MQTT match of a topic against filter levels whose first level is literal (the `$` rule is the caller's). */
export function filterMatches (filter: string[], topic: string): boolean {
  const t = topic.split('/')
  for (let i = 0; i < filter.length; i++) {
    const f = filter[i]!
    if (f === '#') return true // [MQTT-4.7.1-2] the parent level (i === t.length) included
    if (i >= t.length || (f !== '+' && f !== t[i])) return false
  }
  return t.length === filter.length
}

async function checked (m: Multi): Promise<void> {
  const results = await m.exec()
  for (const [err] of results ?? []) if (err !== null) throw err
}

export class RetainedTopicIndex {
  constructor (private readonly conn: RetainedConnection, private readonly codec: Codec) {}

  async store (packet: RetainedPacket): Promise<void> {
    const level = firstLevel(packet.topic)
    if (packet.payload.length === 0) {
      await checked(this.conn.multi().zrem(retainedKeys.topics(level), packet.topic).hdel(retainedKeys.packets(level), packet.topic))
      return
    }
    // the level is registered first (both commands are sent at once): a filter starting with a
    // wildcard never misses a level that holds a topic
    await Promise.all([
      this.conn.sadd(LEVELS_KEY, level),
      checked(this.conn.multi().zadd(retainedKeys.topics(level), 0, packet.topic).hset(retainedKeys.packets(level), packet.topic, this.codec.encode(packet)))
    ])
  }

  /** The retained packets matching any of the filters, each topic once. */
  async * match (filters: string[]): AsyncGenerator<unknown> {
    const sent = new Set<string>()
    let levels: string[] | undefined
    for (const filter of filters) {
      const words = filter.split('/')
      if (isWildcard(words[0]!)) {
        // [MQTT-4.7.2-1] a wildcard first level does not match `$SYS/...` and other `$` topics
        levels ??= (await this.conn.smembers(LEVELS_KEY)).sort()
        for (const level of levels) {
          if (level.startsWith('$')) continue
          const literal = [...words]
          // `#` at the first level is the level and everything below it; `+` is that level only
          if (words[0] === '#') literal.splice(0, 1, level, '#')
          else literal[0] = level
          yield * this.matchLiteralFirst(literal, sent)
        }
      } else {
        yield * this.matchLiteralFirst(words, sent)
      }
    }
  }

  /** Filter levels whose first level is literal. */
  private async * matchLiteralFirst (words: string[], sent: Set<string>): AsyncGenerator<unknown> {
    const level = words[0]!
    const packetsKey = retainedKeys.packets(level)
    const k = words.findIndex(isWildcard)
    if (k === -1) {
      const topic = words.join('/')
      if (sent.has(topic)) return
      const buf = await this.conn.hgetBuffer(packetsKey, topic)
      if (buf !== null) { sent.add(topic); yield this.codec.decode(buf) }
      return
    }
    // the topics below the literal prefix P: bytewise in [P/, P0) ('0' is the byte after '/'), and P
    // itself when `#` follows it
    const prefix = words.slice(0, k).join('/')
    const topicsKey = retainedKeys.topics(level)
    let min = `[${prefix}/`
    const max = `(${prefix}0`
    let pending: string[] = words[k] === '#' && !sent.has(prefix) ? [prefix] : []
    for (;;) {
      const page = await this.conn.zrangebylex(topicsKey, min, max, 'LIMIT', 0, RETAINED_BATCH)
      for (const topic of page) if (!sent.has(topic) && filterMatches(words, topic)) pending.push(topic)
      const more = page.length === RETAINED_BATCH
      if (pending.length > 0 && (pending.length >= RETAINED_BATCH || !more)) {
        const bufs = await this.conn.hmgetBuffer(packetsKey, ...pending)
        for (let i = 0; i < pending.length; i++) {
          const buf = bufs[i]
          const topic = pending[i]!
          // null: deleted since the range read
          if (buf === null || buf === undefined || sent.has(topic)) continue
          sent.add(topic)
          yield this.codec.decode(buf)
        }
        pending = []
      }
      if (!more) return
      // the next page starts after the last member read, so it stays right while topics come and go
      min = `(${page[page.length - 1]!}`
    }
  }

  /** Moves the unpatched library's `retained` hash into the index (see the header). Returns the entries moved. */
  async migrateLegacy (): Promise<number> {
    let moved = 0
    let cursor = '0'
    do {
      const [next, kv] = await this.conn.hscanBuffer(LEGACY_KEY, cursor, 'COUNT', 1000)
      cursor = next.toString()
      const moves: Array<Promise<unknown>> = []
      for (let i = 0; i < kv.length; i += 2) {
        const topic = kv[i]!.toString()
        const level = firstLevel(topic)
        moves.push(this.conn.eval(MIGRATE_ONE, 4, LEGACY_KEY, retainedKeys.topics(level), retainedKeys.packets(level), LEVELS_KEY, topic, level))
      }
      for (const r of await Promise.all(moves)) moved += Number(r)
    } while (cursor !== '0')
    return moved
  }

  /** Number of retained messages: one ZCARD per level, plus what is left in the old hash (0 once migrated). */
  async count (): Promise<number> {
    const levels = await this.conn.smembers(LEVELS_KEY)
    const counts = await Promise.all([...levels.map(l => this.conn.zcard(retainedKeys.topics(l))), this.conn.hlen(LEGACY_KEY)])
    return counts.reduce((a, b) => a + b, 0)
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyPersistence = Record<string, any>

/**
 * Makes an aedes-persistence-redis 11 persistence (the callback wrapper the factory returns) keep its
 * retained messages in a RetainedTopicIndex on `conn` (the connection it was given), migrating the
 * old hash at setup(). The library's own async instance is patched, so both its callback and promise
 * APIs use the index.
 */
export function indexRetainedInRedis<T extends AnyPersistence> (persistence: T, conn: RetainedConnection, codec: Codec): T {
  const index = new RetainedTopicIndex(conn, codec)
  const inner = persistence.asyncPersistence as AnyPersistence
  const setup = inner.setup.bind(inner) as (broker: unknown) => Promise<void>
  // before the library's own setup: aedes serves only once setup() resolved
  inner.setup = async function setupWithRetainedIndex (broker: unknown): Promise<void> {
    await index.migrateLegacy()
    await setup(broker)
  }
  inner.storeRetained = async (packet: RetainedPacket): Promise<void> => { await index.store(packet) }
  inner.createRetainedStreamCombi = (patterns: string[]) => index.match(patterns)
  inner.createRetainedStream = (pattern: string) => index.match([pattern])
  return persistence
}
