// Connect storm: N MQTT 5 clients connect as fast as possible with a fixed number of CONNECTs in
// flight; every client keeps its connection until all have connected, then all disconnect.
// Clients are raw sockets with pre-encoded CONNECT packets (no per-client mqtt.js machinery), so
// the load generator stays light and the broker's CONNECT path is what gets measured.
// Latency = net.connect() to CONNACK (TCP handshake included).
import { connect as netConnect, type Socket } from 'node:net'
import mqttPacket from 'mqtt-packet'
import { CpuWindow, Samples, until } from './stats.ts'
import type { ChildStats } from './brokers.ts'
import type { MqttIdentity } from './fanout.ts'

export interface StormOptions {
  port: number
  identities: MqttIdentity[]
  concurrency: number
  /** Identities (the first ones) connected and disconnected once before the timed storm. */
  warmupClients: number
  connectTimeoutMs: number
  brokerStats: () => Promise<ChildStats>
}

export interface StormResult {
  clients: number
  connected: number
  failed: number
  /** first failure reasons (reason code or error), at most 5 */
  failures: string[]
  connectsPerSec: number
  connackP50Us: number
  connackP99Us: number
  connackMaxUs: number
  durationMs: number
  /** CPU over the storm, % of one core: broker, load generator, every other process */
  brokerCpuPct: number
  /** broker CPU time per accepted connection (CONNECT to CONNACK), µs */
  brokerCpuUsPerConnect: number
  loadgenCpuPct: number
  otherCpuPct: number | null
  brokerRssMB: number
  /** time until the broker reported zero clients after all DISCONNECTs were sent */
  disconnectMs: number
}

const DISCONNECT_V5 = Buffer.from([0xe0, 0x00])

function encodeConnect (id: MqttIdentity): Buffer {
  return mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 5,
    clean: true,
    clientId: id.clientId,
    keepalive: 60,
    ...(id.username !== undefined ? { username: id.username } : {}),
    ...(id.password !== undefined ? { password: Buffer.from(id.password) } : {})
  }, { protocolVersion: 5 })
}

/** Reads a CONNACK from the start of buf: undefined if incomplete, else its reason code. */
function connackReason (buf: Buffer): number | undefined {
  if (buf.length < 2) return undefined
  if (buf[0] !== 0x20) return -buf[0]! // not a CONNACK
  let len = 0
  let mul = 1
  let i = 1
  for (;;) {
    if (i >= buf.length) return undefined
    const b = buf[i++]!
    len += (b & 0x7f) * mul
    if ((b & 0x80) === 0) break
    mul *= 128
  }
  if (buf.length < i + len || len < 2) return undefined
  return buf[i + 1]! // [ack flags, reason code, properties...]
}

interface Conn { socket: Socket, ok: boolean }

/** Connects identities[from..to) with bounded concurrency; resolves when all have an outcome. */
function storm (port: number, packets: Buffer[], from: number, to: number, concurrency: number, timeoutMs: number, latency: Samples | undefined, failures: string[]): Promise<Conn[]> {
  return new Promise(resolve => {
    const conns: Conn[] = []
    let next = from
    let done = 0
    const total = to - from
    if (total <= 0) return resolve(conns)
    const launch = (): void => {
      const i = next++
      const start = process.hrtime.bigint()
      const socket = netConnect({ port, host: '127.0.0.1', noDelay: true })
      const conn: Conn = { socket, ok: false }
      conns.push(conn)
      let settled = false
      let buf = Buffer.alloc(0)
      const finish = (ok: boolean, why?: string): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        conn.ok = ok
        if (!ok) {
          if (failures.length < 5) failures.push(`client ${i}: ${why ?? 'failed'}`)
          socket.destroy()
        }
        done++
        if (next < to) launch()
        if (done === total) resolve(conns)
      }
      const timer = setTimeout(() => finish(false, `no CONNACK within ${timeoutMs} ms`), timeoutMs)
      socket.once('connect', () => socket.write(packets[i]!))
      socket.on('data', d => {
        if (settled) return // nothing else is expected; keep the socket drained
        buf = buf.length === 0 ? d : Buffer.concat([buf, d])
        const rc = connackReason(buf)
        if (rc === undefined) return
        if (rc === 0) {
          latency?.add(Number(process.hrtime.bigint() - start) / 1000)
          finish(true)
        } else finish(false, rc < 0 ? `unexpected packet type 0x${(-rc).toString(16)}` : `CONNACK reason 0x${rc.toString(16)}`)
      })
      socket.on('error', err => finish(false, err.message))
      socket.on('close', () => finish(false, 'closed before CONNACK'))
    }
    for (let k = 0; k < Math.min(concurrency, total); k++) launch()
  })
}

async function disconnectAll (conns: Conn[]): Promise<void> {
  await Promise.all(conns.map(c => new Promise<void>(resolve => {
    const s = c.socket
    if (s.destroyed) return resolve()
    const t = setTimeout(() => { s.destroy(); resolve() }, 5000)
    s.once('close', () => { clearTimeout(t); resolve() })
    if (c.ok) s.end(DISCONNECT_V5)
    else s.destroy()
  })))
}

export async function runStorm (o: StormOptions): Promise<StormResult> {
  const packets = o.identities.map(encodeConnect)
  const failures: string[] = []
  const all: Conn[] = []
  try {
    // warm-up: JIT the CONNECT path of broker and client
    const warm = await storm(o.port, packets, 0, Math.min(o.warmupClients, packets.length), o.concurrency, o.connectTimeoutMs, undefined, failures)
    all.push(...warm)
    await disconnectAll(warm)
    all.length = 0
    if (failures.length > 0) throw new Error(`connect storm warm-up failed: ${failures.join('; ')}`)
    await until(async () => (await o.brokerStats()).connectedClients === 0, 10_000, 50)

    const latency = new Samples(packets.length)
    const cpu = new CpuWindow(await o.brokerStats())
    const t0 = process.hrtime.bigint()
    const conns = await storm(o.port, packets, 0, packets.length, o.concurrency, o.connectTimeoutMs, latency, failures)
    const t1 = process.hrtime.bigint()
    all.push(...conns)
    const s1 = await o.brokerStats()
    const durationMs = Number(t1 - t0) / 1e6
    const { brokerPct, loadgenPct, otherPct } = cpu.end(s1)
    const connected = conns.filter(c => c.ok).length

    const d0 = Date.now()
    await disconnectAll(conns)
    await until(async () => (await o.brokerStats()).connectedClients === 0, 20_000, 50)
    const disconnectMs = Date.now() - d0

    const [p50, p99, pmax] = latency.percentiles([50, 99, 100])
    return {
      clients: packets.length,
      connected,
      failed: packets.length - connected,
      failures,
      connectsPerSec: connected / (durationMs / 1000),
      connackP50Us: p50!,
      connackP99Us: p99!,
      connackMaxUs: pmax!,
      durationMs,
      brokerCpuPct: brokerPct,
      brokerCpuUsPerConnect: brokerPct / 100 * durationMs * 1000 / Math.max(1, connected),
      loadgenCpuPct: loadgenPct,
      otherCpuPct: otherPct ?? null,
      brokerRssMB: s1.rssBytes / 1024 / 1024,
      disconnectMs
    }
  } finally {
    for (const c of all) c.socket.destroy()
  }
}
