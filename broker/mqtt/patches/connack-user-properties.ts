// MQTT 5 CONNACK steering for USP Agents (TR-369 R-MQTT.15/.44): the CONNACK
// carries a `subscribe-topic` user property naming the Agent's inbox. aedes
// 2.0.0-beta.1 has no hook for CONNACK user properties, but it serializes every
// packet through mqtt-packet's writeToStream, looked up on the module object at
// call time; wrapping that one function (once per process) adds the property
// for connections that asked for it. The cost per write is one comparison.
import mqttPacket from 'mqtt-packet'

const STEERING = Symbol.for('uspgate.connackUserProperties')
const REFUSAL_REASON = Symbol.for('uspgate.connackRefusalReason')
let installed = false

type Writer = (packet: { cmd: string, properties?: Record<string, unknown> }, stream: unknown, opts?: unknown) => boolean

export function installConnackSteering (): void {
  if (installed) return
  installed = true
  const mp = mqttPacket as unknown as { writeToStream: Writer }
  const original = mp.writeToStream
  mp.writeToStream = function writeToStream (packet, stream, opts) {
    if (packet.cmd === 'connack') {
      const client = (stream as { client?: { [STEERING]?: Record<string, string | string[]>, [REFUSAL_REASON]?: number } } | null)?.client
      const extra = client?.[STEERING]
      const p = packet as { reasonCode?: number }
      if (extra !== undefined && p.reasonCode === 0) {
        packet.properties = { ...(packet.properties ?? {}), userProperties: extra }
      }
      // aedes maps an authenticate error only to the MQTT 3.1.1 codes 2-5; a refusal that has a more
      // precise MQTT 5 reason (0x9F Connection rate exceeded) gets it here.
      const refusal = client?.[REFUSAL_REASON]
      if (refusal !== undefined && p.reasonCode !== undefined && p.reasonCode >= 0x80) p.reasonCode = refusal
    }
    return original(packet, stream, opts)
  }
}

/** MQTT 5: the refusing CONNACK of this connection carries this reason code instead of aedes' mapped one. */
export function setConnackRefusalReason (client: object, reasonCode: number): void {
  (client as { [REFUSAL_REASON]?: number })[REFUSAL_REASON] = reasonCode
}

/** Marks a connection's CONNACK to carry these user properties (MQTT 5 only; aedes sets conn.client). */
export function setConnackUserProperties (client: object, props: Record<string, string | string[]>): void {
  (client as { [STEERING]?: Record<string, string | string[]> })[STEERING] = props
}
