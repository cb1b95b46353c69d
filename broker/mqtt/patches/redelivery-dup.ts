// [MQTT-3.3.1-1] / [MQTT-4.4.0-1]: a PUBLISH the server sends again when a session resumes carries its
// original Packet Identifier and DUP 1. aedes 2.0.0-beta.1 (emptyQueue in lib/handlers/connect.js)
// resends the queued message with its identifier but DUP 0. A queued message that already has an
// identifier was sent before (identifiers are assigned at send time, in outgoingUpdate), so the queue
// stream marks it DUP. (MQTT 5 clients drop nothing on DUP 0, but 3.1.1 / 5 conformance suites check it.)
import { Transform, type Readable } from 'node:stream'

type Persistence = { outgoingStream(client: unknown): Readable }

/** Clean Start, or a session that ends with the connection (resumeQueuedMessages clears `clean` before the flush when it must not). */
function isClean (client: unknown): boolean {
  const c = client as { clean?: boolean, _cleanStart?: boolean } | null
  return c?.clean === true || c?._cleanStart === true
}

export function markRedeliveries<T extends Persistence> (persistence: T): T {
  const stream = persistence.outgoingStream.bind(persistence)
  // A clean session's queue is only ever cleared, never written (aedes' emptyQueueFilter and
  // emptyOutgoingQueue), so its stream needs no marking: no Transform and pipe per clean CONNECT
  // (2 % of the broker's CPU while 10,000 agents connected, bench --fleet --cpu-prof).
  persistence.outgoingStream = (client: unknown) => isClean(client) ? stream(client) : stream(client).pipe(new Transform({
    objectMode: true,
    transform (packet: { cmd?: string, messageId?: number | null, dup?: boolean }, _enc, done) {
      if (packet.cmd === 'publish' && typeof packet.messageId === 'number') packet.dup = true
      done(null, packet)
    }
  }))
  return persistence
}
