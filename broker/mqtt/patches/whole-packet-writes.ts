// mqtt-packet's writeToStream writes a packet to the socket field by field: an MQTT 5 PUBLISH with a
// Response Topic and a Content Type is 13 `socket.write` calls (fixed header, remaining length, topic
// length, topic, packet id, property length, and an id, length and value per property, then the
// payload), a PUBACK is 5 — two of them `Buffer.from([..])` of one byte. Every call is a chunk in the
// socket's Writable: a buffered entry, a slot in writev's array, a string encoded on its own. A USP
// round trip through the broker is two PUBLISHes and two PUBACKs out, 36 chunks. Plain aedes pays the
// same. The field writes are a choice, not a bug: mqtt-packet PR #6 ("Write directly to the Stream",
// 2015) traded the whole-packet buffer for them to allocate less, with each packet corked and
// uncorked on nextTick; the gateway now holds a socket corked for a whole event-loop turn
// (socket-writes.ts), where what costs is the number of chunks, not one small pooled buffer.
//
// The fix: aedes' connections get each packet serialized by mqtt-packet itself into a collector, then
// written as one buffer — or, when the packet would not fit a pooled buffer (4 kB), its fields as one
// buffer and the payload after it, without a copy. The bytes on the wire are the same. Streams that are
// not an aedes connection (mqtt.js clients in the same process) keep mqtt-packet's own writes.
//
// Installed by the gateway at construction (not on import: the bench's plain-aedes peers load the
// gateway's modules too, and must stay plain), before the other writeToStream wrappers
// (connack-user-properties.ts, outbound-limits.ts), so that they run first and this one serializes:
// under them it would hand them a collector instead of the connection. Installing it after another
// wrapper throws.
import { createRequire } from 'node:module'
import mqttPacket from 'mqtt-packet'

type Writer = (packet: { cmd: string }, stream: unknown, opts?: unknown) => unknown
interface Sink { write(chunk: Buffer | string): boolean, destroy(err: Error): void, cork?(): void, uncork?(): void }

/** Buffer.allocUnsafe takes sizes below half of Buffer.poolSize (8 kB) from a shared pool. */
const POOLED_MAX = 4095

/**
 * What mqtt-packet's serializer returns when its result is its last write's (`return stream.write(...)`),
 * as opposed to a literal true (acks) or false (an invalid packet): the real socket's answer is returned
 * then, so backpressure reaches aedes exactly as before.
 */
const LAST_WRITE = Object.freeze({ lastWrite: true })

/** The fields of one packet, as mqtt-packet writes them; one collector, reused (serializing is synchronous). */
const collected = {
  chunks: [] as Array<Buffer | string>,
  bytes: 0,
  failure: undefined as Error | undefined,
  write (chunk: Buffer | string): typeof LAST_WRITE {
    this.chunks.push(chunk)
    this.bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length
    return LAST_WRITE
  },
  destroy (err: Error): void {
    this.failure ??= err
  },
  reset (): void {
    this.chunks.length = 0
    this.bytes = 0
    this.failure = undefined
  }
}

let original: Writer | undefined

function writeWholePacket (packet: { cmd: string }, stream: unknown, opts?: unknown): unknown {
  if ((stream as { client?: unknown } | null)?.client === undefined) return original!(packet, stream, opts)
  const sink = stream as Sink
  // the collector is empty here: every way out of this function resets it
  let result: unknown
  try {
    result = original!(packet, collected, opts)
  } catch (err) {
    collected.reset()
    throw err
  }
  const { chunks, failure } = collected
  let written = true
  if (chunks.length > 0) {
    const last = chunks[chunks.length - 1]!
    // a large payload goes after the fields as it is: copying it would cost more than the write it saves
    const separate = collected.bytes > POOLED_MAX && typeof last !== 'string' && chunks.length > 1
    const head = Buffer.allocUnsafe(separate ? collected.bytes - last.length : collected.bytes)
    let at = 0
    for (let i = 0; i < chunks.length - (separate ? 1 : 0); i++) {
      const chunk = chunks[i]!
      at += typeof chunk === 'string' ? head.write(chunk, at) : chunk.copy(head, at)
    }
    if (separate) {
      sink.cork?.()
      sink.write(head)
      written = sink.write(last as Buffer)
      sink.uncork?.()
    } else {
      written = sink.write(head)
    }
  }
  collected.reset()
  // as mqtt-packet does: what was written before the problem was found, then the stream destroyed
  if (failure !== undefined) sink.destroy(failure)
  return result === LAST_WRITE ? written : result
}

/** Makes mqtt-packet write whole packets to aedes connections (once per process; see above). */
export function installWholePacketWrites (): void {
  if (original !== undefined) return
  const mp = mqttPacket as unknown as { writeToStream: Writer }
  // the serializer itself, as mqtt-packet's index exports it before anyone wraps it
  const serializer = createRequire(createRequire(import.meta.url).resolve('mqtt-packet'))('./writeToStream.js') as Writer
  if (mp.writeToStream !== serializer) throw new Error('whole-packet writes must be installed before any other wrapper of mqtt-packet\'s writeToStream')
  original = serializer
  mp.writeToStream = writeWholePacket
}

/** Whether this process writes whole packets (the gateway installed it). */
export function wholePacketWritesInstalled (): boolean {
  return original !== undefined
}
