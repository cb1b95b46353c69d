// mqtt-packet (aedes' parser and serializer) logs through the `debug` package: 46 call sites in
// parser.js and 12 in writeToStream.js; reading one MQTT 5 PUBLISH with a Response Topic makes 93
// calls (counted with DEBUG=mqtt-packet:*), writing it 13. debug 4's logger is
// `function debug (...args) { if (!debug.enabled) return; ... }`: even switched off, every call
// allocates its rest-arguments array and runs the `enabled` getter (a namespace-cache check). In
// the fleet bench's allocation profile (K = 10,000) the gateway allocated 38.0 kB per USP round
// trip with it and 29.9 kB without (plain aedes 32.4 kB); in a micro-benchmark (medians of five
// rounds) reading a PUBLISH cost 3.2 µs with it and 2.7 without, writing one 4.1 and 2.6. (debug
// 3.2.6 removed the same cost from its transpiled build, debug-js/debug#625; debug 4's rest
// parameters brought it back.)
//
// The fix: mqtt-packet's two loggers are created through a wrapper that hands out one shared
// function doing nothing when the namespace is off at start-up. DEBUG=mqtt-packet:* (or any
// pattern naming them) still gets the real loggers; what is lost is switching them on later
// with debug.enable() in a running process, which the gateway never does. Every other user of
// `debug` (ioredis, mqtt.js) gets the package untouched.
//
// It has to run before mqtt-packet is first loaded: it is the first export of patches/index.ts,
// that the first of broker/mqtt/index.ts, which broker/index.ts and broker/gateway.ts import first.
// `quietDebug.applied` says whether it was in time (a process that loaded mqtt-packet earlier, e.g.
// a test that imported mqtt.js first, keeps the package's own loggers: only slower).
import { createRequire } from 'node:module'

const NAMESPACE_PREFIX = 'mqtt-packet:'

type CreateDebug = ((namespace: string) => unknown) & { enabled(namespace: string): boolean }

/** The logger every switched-off mqtt-packet namespace gets: a call does nothing at all. */
const switchedOff = Object.assign(function debugOff (): void {}, { enabled: false })

function install (): boolean {
  const require = createRequire(import.meta.url)
  // resolved from aedes, as aedes resolves it (the gateway's own `mqtt-packet` is the same copy)
  const packetMain = createRequire(require.resolve('aedes')).resolve('mqtt-packet')
  const fromPacket = createRequire(packetMain)
  const parserPath = fromPacket.resolve('./parser.js')
  const writerPath = fromPacket.resolve('./writeToStream.js')
  if (require.cache[parserPath] !== undefined || require.cache[writerPath] !== undefined) return false
  const debugPath = fromPacket.resolve('debug')
  const createDebug = fromPacket('debug') as CreateDebug
  const cached = require.cache[debugPath]
  if (cached === undefined) return false
  const wrapper = function createDebugQuietly (namespace: string): unknown {
    if (typeof namespace === 'string' && namespace.startsWith(NAMESPACE_PREFIX) && !createDebug.enabled(namespace)) return switchedOff
    return createDebug(namespace)
  }
  // enable(), disable(), names, formatters ... read through to the package itself
  Object.setPrototypeOf(wrapper, createDebug)
  cached.exports = wrapper
  try {
    // mqtt-packet loads its two modules now, with the wrapper; then the package is restored for everyone else
    fromPacket('./parser.js')
    fromPacket('./writeToStream.js')
  } finally {
    cached.exports = createDebug
  }
  return true
}

export const quietDebug: { readonly applied: boolean } = { applied: install() }
