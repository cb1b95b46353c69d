// PROXY protocol v1 (text) and v2 (binary) in front of the MQTT listeners (TCP, MQTTS, WebSocket):
// behind a TCP load balancer the header carries the device's real address, so throttling, lockouts,
// security events and the USP audit see the device, not the balancer. A header is accepted only
// from the configured trusted networks (USPGATE_PROXY_PROTOCOL_TRUSTED); one from anywhere else is
// refused with proxy.untrusted. Spec: haproxy.org/download/2.9/doc/proxy-protocol.txt. Parsing of a
// complete header is proxy-protocol-js's; this module only frames it off the stream.
import { BlockList, isIP, type Socket } from 'node:net'
import { Duplex } from 'node:stream'
import { V1ProxyProtocol, V2ProxyProtocol, Command } from 'proxy-protocol-js'
import type { SecurityEventInput } from '../core/index.ts'

/** "PROXY " — a v1 header; MQTT's first byte (0x10 CONNECT) can never start like this. */
const V1_PREFIX = Buffer.from('PROXY ', 'ascii')
/** The 12-byte v2 signature (spec §2.2). */
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])
/** v1: at most 107 bytes including CRLF (spec §2.1). */
const V1_MAX = 107
/** v2: 16-byte header + address block; we accept TLVs up to this total. */
const V2_MAX = 16 + 512

export type Framed =
  | { kind: 'more' }
  | { kind: 'none', rest: Buffer }
  | { kind: 'header', source: string | undefined, rest: Buffer }
  | { kind: 'malformed', reason: string }

function startsWithPartial (buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length)
  return buf.subarray(0, n).equals(prefix.subarray(0, n))
}

/** Frames an optional PROXY header off the first bytes of a connection. */
export function frameProxyHeader (buf: Buffer): Framed {
  if (buf.length === 0) return { kind: 'more' }
  if (startsWithPartial(buf, V1_PREFIX)) {
    const end = buf.indexOf('\r\n')
    if (end < 0) return buf.length >= V1_MAX ? { kind: 'malformed', reason: 'v1 header without CRLF within 107 bytes' } : { kind: 'more' }
    try {
      const p = V1ProxyProtocol.parse(buf.subarray(0, end + 2).toString('ascii'))
      // "PROXY UNKNOWN": the balancer does not know the source; keep the socket's address.
      const source = p.inetProtocol === 'UNKNOWN' ? undefined : p.source.ipAddress
      if (source !== undefined && isIP(source) === 0) return { kind: 'malformed', reason: 'v1 source is not an IP address' }
      return { kind: 'header', source, rest: buf.subarray(end + 2) }
    } catch (err) {
      return { kind: 'malformed', reason: `v1: ${(err as Error).message}`.slice(0, 200) }
    }
  }
  if (startsWithPartial(buf, V2_SIGNATURE)) {
    if (buf.length < 16) return { kind: 'more' }
    const total = 16 + buf.readUInt16BE(14)
    if (total > V2_MAX) return { kind: 'malformed', reason: `v2 header of ${total} bytes` }
    if (buf.length < total) return { kind: 'more' }
    try {
      const p = V2ProxyProtocol.parse(new Uint8Array(buf.subarray(0, total)))
      // LOCAL: a connection of the balancer itself (health check); keep the socket's address.
      const source = p.command === Command.LOCAL ? undefined : v2Source(p.proxyAddress)
      return { kind: 'header', source, rest: buf.subarray(total) }
    } catch (err) {
      return { kind: 'malformed', reason: `v2: ${(err as Error).message}`.slice(0, 200) }
    }
  }
  return { kind: 'none', rest: buf }
}

function v2Source (addr: unknown): string | undefined {
  const a = addr as { sourceAddress?: { address?: number[] } } | undefined
  const bytes = a?.sourceAddress?.address
  if (!Array.isArray(bytes)) return undefined
  if (bytes.length === 4) return bytes.join('.')
  if (bytes.length === 16) {
    const groups: string[] = []
    for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16))
    return groups.join(':')
  }
  return undefined
}

/** Trusted networks from "10.0.0.0/8,192.0.2.7,::1/128"; throws on a bad entry (the caller names the setting). */
export function parseTrustedNetworks (list: string[]): BlockList {
  const bl = new BlockList()
  for (const entry of list) {
    const [ip, bits] = entry.split('/')
    const family = isIP(ip ?? '')
    if (family === 0) throw new Error(`"${entry}" is not an IP address or CIDR`)
    const type = family === 4 ? 'ipv4' : 'ipv6'
    if (bits === undefined) { bl.addAddress(ip!, type); continue }
    const n = Number(bits)
    if (!/^\d+$/.test(bits) || n > (family === 4 ? 32 : 128)) throw new Error(`"${entry}" has a bad prefix length`)
    bl.addSubnet(ip!, n, type)
  }
  return bl
}

export interface ProxyGateDeps {
  trusted: BlockList
  emit: (e: SecurityEventInput) => void
  /** A connection must have sent enough to decide within this time (slow-loris guard before aedes' own timer). */
  timeoutMs: number
}

/**
 * The bytes already read off `socket` followed by the rest of it, as a plain Duplex. TLS and HTTP
 * read a net.Socket's handle directly, past anything put back with unshift(); a JS stream makes
 * them read through us instead. `remoteAddress` is the client's real address.
 */
export function prefacedStream (socket: Socket, rest: Buffer, remoteAddress: string): Duplex & { remoteAddress: string, remotePort: number | undefined } {
  const d = new Duplex({
    read () { socket.resume() },
    write (chunk, enc, cb) { socket.write(chunk, enc, cb) },
    final (cb) { socket.end(); cb() },
    destroy (err, cb) { socket.destroy(err ?? undefined); cb(err) }
  })
  if (rest.length > 0) d.push(rest)
  socket.on('data', chunk => { if (!d.push(chunk)) socket.pause() })
  socket.on('end', () => d.push(null))
  socket.on('close', () => d.destroy())
  socket.on('error', () => { /* the consumer sees the close */ })
  socket.resume()
  return Object.assign(d, { remoteAddress, remotePort: socket.remotePort })
}

/** What the gate hands on: the socket (paused, nothing consumed but `rest`), the client's address, the bytes read past the header. */
export type AfterPreface = (socket: Socket, remoteAddress: string, rest: Buffer) => void

/**
 * Reads the first bytes of each connection: a PROXY header from a trusted network gives the real
 * address; a header from elsewhere, a malformed one, or silence past the deadline closes the socket
 * with an event; no header means a direct connection.
 */
export class ProxyProtocolGate {
  constructor (private readonly deps: ProxyGateDeps) {}

  preface (socket: Socket, listener: string, next: AfterPreface): void {
    const peer = socket.remoteAddress ?? 'unknown'
    const family = socket.remoteFamily === 'IPv6' ? 'ipv6' : 'ipv4'
    const trusted = peer !== 'unknown' && this.deps.trusted.check(peer, family)
    let buf: Buffer = Buffer.alloc(0)
    const refuse = (code: 'proxy.untrusted' | 'proxy.malformed' | 'limits.connect_timeout', reason: string): void => {
      cleanup()
      this.deps.emit({ code, remoteAddress: peer, action: 'connect', reason: `${listener}: ${reason}` })
      socket.destroy()
    }
    const timer = setTimeout(() => refuse('limits.connect_timeout', 'nothing decisive received in time'), this.deps.timeoutMs)
    timer.unref()
    const cleanup = (): void => {
      clearTimeout(timer)
      socket.removeListener('data', onData)
      socket.removeListener('close', cleanup)
    }
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
      const f = frameProxyHeader(buf)
      if (f.kind === 'more') return
      if (f.kind === 'malformed') return refuse('proxy.malformed', f.reason)
      if (f.kind === 'header' && !trusted) return refuse('proxy.untrusted', `PROXY header from ${peer}, which is not a trusted network (USPGATE_PROXY_PROTOCOL_TRUSTED)`)
      cleanup()
      socket.pause()
      next(socket, f.kind === 'header' && f.source !== undefined ? f.source : peer, f.rest)
    }
    socket.on('data', onData)
    socket.once('close', cleanup)
    socket.on('error', () => { /* a reset before the handoff is not an event */ })
  }
}
