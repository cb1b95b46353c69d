// mqtt-packet's parser keeps the CONNECT packet it parsed as its `settings` (`_parseConnect`:
// `this.settings = packet`, "need for right parse auth packet and self set up") for as long as the
// connection lives, and reads only `protocolVersion` and `bridgeMode` from it afterwards. That packet
// holds the client's password — a slice of the socket read the CONNECT arrived in, which it keeps
// alive as well — its username, client id, will and CONNECT properties: every connected router's
// password stayed in the gateway's heap (a heap dump, a core file) until it disconnected, and each
// connection kept ~0.7 kB it never used (heap snapshots of the fleet bench, bench/FLEET.md,
// twenty-sixth pass). Plain aedes has the same parser; no upstream issue names it.
//
// The fix: as soon as the parser has read a CONNECT, its settings become a new object with the two
// fields it reads. aedes gets the packet itself as before (it authenticates with it and lets it go);
// the parser parses every later packet with the same protocol version and bridge flag.

interface ConnectSettings { protocolVersion?: number, bridgeMode?: boolean }

interface MqttParser {
  settings: ConnectSettings
  _parseConnect(): ConnectSettings | undefined
}

let originalParseConnect: ((this: MqttParser) => ConnectSettings | undefined) | undefined

function parseConnectKeepingSettingsOnly (this: MqttParser): ConnectSettings | undefined {
  const packet = originalParseConnect!.call(this)
  if (packet !== undefined && this.settings === packet) {
    this.settings = { protocolVersion: packet.protocolVersion, bridgeMode: packet.bridgeMode }
  }
  return packet
}

/** Installs the release on one aedes client's parser (per connection: mqtt.js clients in the process keep theirs). */
export function releaseConnectPacket (client: object): void {
  const parser = (client as { _parser: MqttParser })._parser
  originalParseConnect ??= (Object.getPrototypeOf(parser) as MqttParser)._parseConnect
  parser._parseConnect = parseConnectKeepingSettingsOnly
}
