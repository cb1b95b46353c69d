// ioredis (5.x and 6.x) listens to its socket's 'error' with `once`. A TLS connection that fails
// can emit two errors (the certificate check, then the server's alert); the second one had no
// listener and became an uncaught exception that killed the process: a node whose Redis
// certificate stops verifying crashed instead of failing closed (ioredis PRs #961/#962, not merged).
// Every socket of a Redis connection gets a permanent listener; ioredis still reports the first
// error of each socket through its own 'error' event.
import type { EventEmitter } from 'node:events'

interface Connector { connect: (...args: unknown[]) => Promise<EventEmitter>, stream?: EventEmitter }

const guarded = new WeakSet<EventEmitter>()

function guardStream (stream: EventEmitter | undefined): void {
  if (stream === undefined || guarded.has(stream)) return
  guarded.add(stream)
  stream.on('error', () => { /* the connection is already failing; ioredis reported its first error */ })
}

/** Applies to the connection's current socket and to every socket it opens from now on. */
export function guardRedisSocketErrors (redis: object): void {
  const connector = (redis as { connector?: Connector }).connector
  if (connector === undefined) return
  const connect = connector.connect.bind(connector)
  connector.connect = async (...args: unknown[]) => {
    const stream = await connect(...args)
    guardStream(stream)
    return stream
  }
  // a connection created without lazyConnect is already connecting: its socket appears on the next tick
  setImmediate(() => guardStream(connector.stream))
}
