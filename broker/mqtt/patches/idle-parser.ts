// mqtt-packet's parser makes the Packet object for a connection's *next* packet as soon as it has
// emitted one (`_newPacket`: `this.packet = new Packet()`) and keeps it until that next packet
// arrives. In a fleet, an agent waits K / (request rate) between its packets: 2 s with 10,000 agents
// answering 5,000 requests a second. So the empty Packet outlives two young-generation collections,
// is promoted to the old generation and dies there: one promoted object per agent message, at 10,000
// agents and not at 1,000, and only a full (mark-compact) collection, whose marking walks a heap
// that grows with the fleet, reclaims them. In the fleet bench (K = 10,000, `--retained-prof` counting
// objects collected by full collections) those placeholders were 34 of the 57 MB promoted during two
// rounds, 60 %; the gateway's windows with full collections cost 10–29 µs per round trip more in
// helper threads (bench/FLEET.md, "Eighth pass"). Plain aedes has the same parser (no upstream
// issue names it).
//
// The fix: when a parse leaves the parser between packets (nothing buffered, no packet begun, no
// error), the placeholder is dropped; the next parse makes it again before reading. aedes reads
// `_parser.packet` only right after parse(), as `pending && pending.length > 0` (its Maximum Packet
// Size check), which a dropped placeholder passes; mqtt-packet's own `_newPacket` checks
// `if (this.packet)` too. One shared function for every connection (no closure per client).

interface PacketLike { length: number }

interface MqttParser {
  packet: PacketLike | null
  error: unknown
  _stateCounter: number
  parse(buf: Buffer): number
}

let originalParse: ((this: MqttParser, buf: Buffer) => number) | undefined
let PacketClass: (new () => PacketLike) | undefined

function parseReleasingIdle (this: MqttParser, buf: Buffer): number {
  if (this.packet === null) this.packet = new PacketClass!()
  const buffered = originalParse!.call(this, buf)
  // between packets: the loop ended after `_newPacket` with an empty buffer and a fresh placeholder
  if (buffered === 0 && this._stateCounter === 0 && this.error === null && this.packet?.length === -1) this.packet = null
  return buffered
}

/** Installs the idle release on one aedes client's parser (before anything wraps its parse). */
export function releaseIdleParserPacket (client: object): void {
  const parser = (client as { _parser: MqttParser })._parser
  if (originalParse === undefined) {
    originalParse = (Object.getPrototypeOf(parser) as MqttParser).parse
    PacketClass = (parser.packet as object).constructor as new () => PacketLike
  }
  parser.parse = parseReleasingIdle
}
