// Security events to a syslog collector: RFC 5424 messages over UDP (one datagram each, RFC 5426),
// TCP or TLS (octet-counting framing, RFC 6587 §3.4.1 / RFC 5425 §4.3). The socket reconnects with
// back-off; while it is down, messages wait in a bounded queue and any beyond it are counted as dropped.
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { hostname } from 'node:os'
import type { SecurityEvent } from './security-events.ts'
import type { EventSink } from './webhook-sink.ts'

export interface SyslogSettings {
  /** udp://host:port, tcp://host:port or tls://host:port */
  url: string
  /** TLS: PEM of the CA(s) that sign the collector's certificate (default: the system CAs). */
  ca?: string
  facility: number
  /** Messages held while the TCP/TLS connection is down. */
  queue: number
}

export const SYSLOG_FACILITIES: Record<string, number> = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, authpriv: 10,
  local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23
}

/** RFC 5424 §6.2.1 severities: critical → 2 (Critical), warning → 4 (Warning), info → 6 (Informational). */
const SEVERITY: Record<string, number> = { critical: 2, warning: 4, info: 6 }
/** The SD-ID's enterprise number: 32473 is the one RFC 5612 reserves for documentation and examples. */
const SD_ID = 'uspgate@32473'
const SD_FIELDS = ['tenant', 'targetTenant', 'principal', 'clientId', 'remoteAddress', 'action', 'topic', 'policyRevision', 'actor', 'role', 'target', 'result', 'status', 'requestId', 'count'] as const

/** PARAM-VALUE escaping, RFC 5424 §6.3.3: '"', '\' and ']' get a backslash. */
function sdValue (v: unknown): string {
  return String(v).replace(/["\\\]]/g, m => `\\${m}`)
}

/** PRINTUSASCII, 1..max characters, or the NILVALUE "-" (RFC 5424 §6.2). */
function header (v: string, max: number): string {
  const s = v.replace(/[^\x21-\x7e]/g, '').slice(0, max)
  return s === '' ? '-' : s
}

/** One RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] BOM JSON`. */
export function formatRfc5424 (ev: SecurityEvent, facility: number, host = hostname()): string {
  const pri = facility * 8 + (SEVERITY[ev.severity] ?? 6)
  const params = [`node="${sdValue(ev.node)}"`, `id="${sdValue(ev.id)}"`, `severity="${ev.severity}"`]
  for (const k of SD_FIELDS) if (ev[k] !== undefined) params.push(`${k}="${sdValue(ev[k])}"`)
  // MSG: the whole event as JSON, UTF-8 with the BOM §6.4 asks for
  return `<${pri}>1 ${ev.time} ${header(host, 255)} uspgate ${process.pid} ${header(ev.code, 32)} [${SD_ID} ${params.join(' ')}] \uFEFF${JSON.stringify(ev)}`
}

export class SyslogSink implements EventSink {
  readonly name = 'syslog'
  private readonly url: URL
  private udp: UdpSocket | undefined
  private socket: Socket | undefined
  private connected = false
  private readonly queue: string[] = []
  private retryMs = 500
  private timer: NodeJS.Timeout | undefined
  private closed = false

  constructor (private readonly settings: SyslogSettings, private readonly onDrop: (n: number) => void, private readonly onError: (err: Error) => void) {
    this.url = new URL(settings.url)
  }

  start (): void {
    if (this.url.protocol === 'udp:') {
      this.udp = createSocket(this.url.hostname.includes(':') || this.url.hostname.startsWith('[') ? 'udp6' : 'udp4')
      this.udp.on('error', err => this.onError(err))
      this.udp.unref()
      for (const msg of this.queue.splice(0)) this.sendDatagram(msg) // events from before start
      return
    }
    this.connect()
  }

  send (ev: SecurityEvent): void {
    const msg = formatRfc5424(ev, this.settings.facility)
    if (this.udp) { this.sendDatagram(msg); return }
    if (this.connected && this.socket && this.queue.length === 0) { this.write(msg); return }
    if (this.queue.length >= this.settings.queue) { this.onDrop(1); return }
    this.queue.push(msg)
  }

  private sendDatagram (msg: string): void {
    this.udp!.send(Buffer.from(msg), Number(this.url.port), this.url.hostname.replace(/^\[|\]$/g, ''), err => { if (err) { this.onDrop(1); this.onError(err) } })
  }

  private write (msg: string): void {
    const bytes = Buffer.from(msg)
    this.socket!.write(`${bytes.length} `)
    this.socket!.write(bytes)
  }

  private connect (): void {
    if (this.closed) return
    const port = Number(this.url.port)
    const host = this.url.hostname.replace(/^\[|\]$/g, '')
    const s = this.url.protocol === 'tls:'
      ? tlsConnect({ host, port, servername: host, ...(this.settings.ca ? { ca: this.settings.ca } : {}) })
      : tcpConnect({ host, port })
    this.socket = s
    s.setKeepAlive(true, 30_000)
    s.once(this.url.protocol === 'tls:' ? 'secureConnect' : 'connect', () => {
      this.connected = true
      this.retryMs = 500
      for (const msg of this.queue.splice(0)) this.write(msg)
    })
    s.on('error', err => this.onError(err))
    s.once('close', () => {
      this.connected = false
      if (this.socket === s) this.socket = undefined
      if (this.closed) return
      this.timer = setTimeout(() => this.connect(), this.retryMs)
      this.timer.unref()
      this.retryMs = Math.min(this.retryMs * 2, 30_000)
    })
  }

  async close (): Promise<void> {
    this.closed = true
    if (this.timer) clearTimeout(this.timer)
    if (this.udp) { this.udp.close(); return }
    const s = this.socket
    if (s && this.connected) await new Promise<void>(resolve => s.end(() => resolve()))
    else s?.destroy()
  }
}
