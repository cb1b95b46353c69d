// Child process of quiet-debug.test.ts: loads the gateway the way `uspgate start` does (broker/index.ts
// first), then makes mqtt-packet read one packet and write one, and says whether the patch was in time.
// argv[2]: debug namespaces to switch on at run time, after loading (debug.enable), '' for none.
import { createRequire } from 'node:module'
import { PassThrough } from 'node:stream'
import '../../broker/index.ts'
import { quietDebug } from '../../broker/mqtt/index.ts'

const fromAedes = createRequire(createRequire(import.meta.url).resolve('aedes'))
const fromPacket = createRequire(fromAedes.resolve('mqtt-packet'))
const mqttPacket = fromPacket('mqtt-packet') as typeof import('mqtt-packet')
const createDebug = fromPacket('debug') as ((ns: string) => (...args: unknown[]) => void) & { enable(ns: string): void }

const later = process.argv[2] ?? ''
if (later !== '') createDebug.enable(later)
const parser = mqttPacket.parser({ protocolVersion: 5 })
let packets = 0
parser.on('packet', () => { packets++ })
parser.parse(Buffer.from([0xc0, 0x00])) // PINGREQ
mqttPacket.writeToStream({ cmd: 'publish', topic: 'acme/usp/agent/a1', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }, new PassThrough(), { protocolVersion: 5 })
// a logger of another package, created after loading: the patch must leave it alone
createDebug('ioredis:probe')('other namespaces log as before')
process.stdout.write(JSON.stringify({ applied: quietDebug.applied, packets }))
