// The limits an MQTT 5 client sets for what the server sends it, which aedes 2.0.0-beta.1 stores but
// does not enforce ("ADVISORY", lib/handlers/connect.js; aedes #831 "Maximum Packet Size", the review of
// aedes PR #1088 "client.maximumPacketSize is stored but never checked on outbound writes"), and a will
// property aedes copies into the will PUBLISH. All three act where every packet is serialized:
// mqtt-packet's writeToStream, looked up on the module object at call time (like connack-user-properties.ts).
//  - Will Delay Interval is a CONNECT will property, not a PUBLISH property (§2.2.2.2 table, §3.3.2.3):
//    stripped from every PUBLISH (live will, retained will, queued will).
//  - Maximum Packet Size [MQTT-3.1.2-24/25]: a PUBLISH larger than the client accepts is not sent; the
//    server behaves as if it had been delivered (its queue entry is cleared) and the drop is counted.
//  - Receive Maximum [MQTT-3.3.4-7/9]: at most that many QoS 1/2 PUBLISHes await PUBACK/PUBCOMP; the rest
//    wait here, in order, and go out as acknowledgements arrive (bounded by the client buffer limit).
//  - CONNACK: aedes always sends Shared Subscription Available 0; where the gateway offers them
//    (broker/mqtt/shared-subscriptions.ts) the property is left out, which means available [§3.2.2.3.13].
//  - [MQTT-3.14.4-1] after the server's DISCONNECT nothing more is sent on that connection: aedes'
//    broker.close() sent a second DISCONNECT after the gateway's 0x8B, and a limit hit by every packet
//    of a burst could send one DISCONNECT per packet.
import mqttPacket from 'mqtt-packet'

const LIMITS = Symbol.for('uspgate.outboundLimits')

type Packet = { cmd: string, qos?: number, messageId?: number, payload?: Buffer | string, topic?: string, properties?: Record<string, unknown> }
type Writer = (packet: Packet, stream: unknown, opts?: unknown) => boolean

/** Why a PUBLISH was not sent to a client. */
export type OutboundDrop = 'client.max_packet_size' | 'client.receive_maximum_backlog'

export interface OutboundLimitOptions {
  /** bytes that may wait for Receive Maximum before further PUBLISHes to this client are dropped */
  maxBacklogBytes: number
  /** the gateway offers shared subscriptions to this client */
  sharedSubscriptions: boolean
  onDrop: (reason: OutboundDrop, packet: Packet) => void
}

interface ClientView {
  version?: number
  maximumPacketSize?: number
  receiveMaximum?: number
  conn: unknown
  broker: { persistence: { outgoingClearMessageId(client: unknown, packet: unknown): Promise<unknown> } }
  _parser: NodeJS.EventEmitter
}

// Per connection only what differs per connection: the options are the listener's (one object for
// all), the in-flight set and the backlog exist once a Receive Maximum below 65,535 needs them.
interface State {
  client: ClientView
  options: OutboundLimitOptions
  inflight: Set<number> | undefined
  backlog: Array<{ packet: Packet, opts: unknown }> | undefined
  backlogBytes: number
  /** the server sent DISCONNECT */
  disconnected: boolean
}

let original: Writer | undefined

function install (): void {
  if (original !== undefined) return
  const mp = mqttPacket as unknown as { writeToStream: Writer }
  original = mp.writeToStream
  mp.writeToStream = function writeToStream (packet, stream, opts) {
    const st = (stream as { client?: { [LIMITS]?: State } } | null)?.client?.[LIMITS]
    if (st !== undefined) {
      if (st.disconnected) return true
      if (packet.cmd === 'disconnect') st.disconnected = true
      else if (packet.cmd === 'connack' && st.options.sharedSubscriptions && packet.properties?.sharedSubscriptionAvailable === false) {
        const { sharedSubscriptionAvailable: _off, ...rest } = packet.properties
        return original!({ ...packet, properties: rest }, stream, opts)
      }
    }
    if (packet.cmd !== 'publish') return original!(packet, stream, opts)
    if (st === undefined) return original!(stripWillDelay(packet), stream, opts)
    return send(st, stripWillDelay(packet), stream, opts)
  }
}

function stripWillDelay (packet: Packet): Packet {
  const props = packet.properties
  if (props === undefined || props.willDelayInterval === undefined) return packet
  const { willDelayInterval: _dropped, ...rest } = props
  return { ...packet, properties: rest }
}

function send (st: State, packet: Packet, stream: unknown, opts: unknown): boolean {
  const c = st.client
  if (c.version !== 5) return original!(packet, stream, opts)
  const max = c.maximumPacketSize
  if (max !== undefined && tooLarge(packet, max, opts)) {
    st.options.onDrop('client.max_packet_size', packet)
    // [MQTT-3.1.2-25] behave as if the message had been sent: nothing waits for its acknowledgement
    if ((packet.qos ?? 0) > 0) c.broker.persistence.outgoingClearMessageId(c, packet).catch(() => undefined)
    return true
  }
  // Receive Maximum absent or 65,535 (§3.1.2.11.3: the default) cannot be exceeded: message ids are 16 bits.
  // Nothing is tracked then, so a client that sets no limit (a fleet's agents) costs no Set work per
  // delivery and acknowledgement.
  const receiveMaximum = c.receiveMaximum ?? 65535
  if (receiveMaximum < 65535 && (packet.qos ?? 0) > 0 && typeof packet.messageId === 'number') {
    const inflight = st.inflight ??= new Set()
    if (!inflight.has(packet.messageId)) {
      if (inflight.size >= receiveMaximum) {
        const size = (packet.payload?.length ?? 0) + (packet.topic?.length ?? 0)
        if (st.backlogBytes + size > st.options.maxBacklogBytes) {
          st.options.onDrop('client.receive_maximum_backlog', packet)
          return true
        }
        (st.backlog ??= []).push({ packet, opts })
        st.backlogBytes += size
        return true
      }
      inflight.add(packet.messageId)
    }
  }
  return original!(packet, stream, opts)
}

/** Serialized size, computed only when a cheap upper bound says it might not fit. */
function tooLarge (packet: Packet, max: number, opts: unknown): boolean {
  const payload = packet.payload?.length ?? 0
  if (packet.properties === undefined && payload + 3 * (packet.topic?.length ?? 0) + 16 <= max) return false
  return mqttPacket.generate(packet as never, opts as never).length > max
}

function acknowledged (st: State, messageId: number | undefined): void {
  if (messageId === undefined || st.inflight === undefined || !st.inflight.delete(messageId)) return
  const stream = st.client.conn
  const backlog = st.backlog
  while (backlog !== undefined && backlog.length > 0 && st.inflight.size < (st.client.receiveMaximum ?? 65535)) {
    const next = backlog.shift()!
    st.backlogBytes -= (next.packet.payload?.length ?? 0) + (next.packet.topic?.length ?? 0)
    send(st, next.packet, stream, next.opts)
  }
}

/** One listener for every client's parser (aedes sets parser.client), not a closure per connection. */
function onAcknowledgement (this: { client: { [LIMITS]?: State } }, p: { cmd: string, messageId?: number, reasonCode?: number }): void {
  // a QoS 1 flow ends at PUBACK, a QoS 2 flow at PUBCOMP, or at a PUBREC with an error code (§4.9)
  if (p.cmd === 'puback' || p.cmd === 'pubcomp' || (p.cmd === 'pubrec' && (p.reasonCode ?? 0) >= 0x80)) {
    const st = this.client[LIMITS]
    if (st !== undefined) acknowledged(st, p.messageId)
  }
}

/**
 * Applies the client's MQTT 5 Maximum Packet Size and Receive Maximum to what is sent to it. `options`
 * is shared by the clients of a listener (pass the same object every time: it is kept, not copied).
 */
export function enforceOutboundLimits (client: object, options: OutboundLimitOptions): void {
  install()
  const c = client as ClientView & { [LIMITS]?: State }
  c[LIMITS] = { client: c, options, inflight: undefined, backlog: undefined, backlogBytes: 0, disconnected: false }
  c._parser.on('packet', onAcknowledgement)
}
