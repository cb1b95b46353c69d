// MQTT listeners: plain TCP and MQTT over WebSocket / secure WebSocket here, TLS (MQTTS) in broker/pki.
// Every connection goes through acceptConnection, which puts the packet-level guards in front of
// aedes' handlers; with trusted load balancers configured, a PROXY protocol gate reads the real
// client address first (proxy-protocol.ts). Same identity, limits, events and policy on every listener.
import { createServer, type Server, type Socket } from 'node:net'
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { SecureContextOptions } from 'node:tls'
import type { Duplex } from 'node:stream'
import type { Aedes } from 'aedes'
import type { Logger } from 'pino'
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws'
import type { Limits, Metrics, SecurityEventInput } from '../core/index.ts'
import { listen } from '../core/index.ts'
import type { GatewayClient } from './client.ts'
import { coalesceWrites } from './socket-writes.ts'
import { ReadGate, type Fairness } from './fairness.ts'
import { DISCONNECT } from './reason-codes.ts'
import { prefacedStream, type ProxyProtocolGate } from './proxy-protocol.ts'
import { deliverPerMatchingSubscriptions, dictionarySubscriptions, enforceOutboundLimits, releaseConnectPacket, releaseIdleParserPacket, type OutboundLimitOptions } from './patches/index.ts'
import type { SharedSubscriptions } from './shared-subscriptions.ts'

/** Hands a socket to aedes and returns its client (the MQTTS listener uses it after the TLS handshake). */
export type Handoff = (socket: Socket, listener: string, remoteAddress?: string) => GatewayClient

/**
 * What a listener does with a new connection once the PROXY gate (if any) is passed: `rest` is
 * undefined when no gate read anything (the socket is untouched), else the bytes read past the header.
 */
export type OnConnection = (socket: Socket, remoteAddress: string, rest: Buffer | undefined) => void

/** The URL path and subprotocol of MQTT over WebSocket (MQTT 5 §6, TR-369 R-MQTT.2). */
export const WS_PATH = '/mqtt'
export const WS_SUBPROTOCOL = 'mqtt'

/** A parsed packet as the guards read it. */
interface GuardedPacket { cmd: string, qos?: number, messageId?: number, subscriptions?: Array<{ topic: string }>, unsubscriptions?: string[] }

/** Packet types a client may send [MQTT-2.1.2]; aedes handles these. */
const SERVER_BOUND = new Set(['connect', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'subscribe', 'unsubscribe', 'pingreq', 'disconnect'])

function unexpectedPacketReason (cmd: string): string {
  // [MQTT-4.12.0-7] a client that sent no Authentication Method in CONNECT must not send AUTH; the
  // gateway offers no enhanced authentication or re-authentication, so AUTH is a protocol error.
  if (cmd === 'auth') return 'AUTH packet: enhanced authentication and re-authentication are not offered [MQTT-4.12.0-7]; connection closed'
  return `${cmd.toUpperCase()} is a server-to-client packet [MQTT-2.1.2]; connection closed`
}

export interface ListenerDeps {
  broker: Aedes
  limits: Limits
  metrics: Metrics
  emit: (e: SecurityEventInput) => void
  /** shared subscription groups (`$share/<group>/<tenant>/...`) */
  shared: SharedSubscriptions
  /** Trusted load balancers: PROXY protocol headers are read from their connections. */
  proxyGate?: ProxyProtocolGate
  /** Per-packet fairness checks (filters, subscription quotas, publish rate) before aedes. */
  fairness?: Fairness
}

export class MqttListeners {
  private readonly conns = new Set<Duplex>()
  private readonly servers: Array<Server | HttpServer> = []
  private tcp: Server | undefined
  port = 0
  wsPort = 0
  wssPort = 0
  // One object and one function each for every connection, not one per connection: at fleet scale
  // the closures and option objects made per connection were ~0.5 kB of heap per agent.
  private readonly outboundLimits: OutboundLimitOptions
  private readonly guardPacket: (this: { client: GatewayClient }, packet: GuardedPacket) => void
  private readonly forgetConn: (this: Duplex) => void

  constructor (private readonly deps: ListenerDeps) {
    const { limits, metrics, shared } = deps
    this.outboundLimits = { maxBacklogBytes: limits.maxClientBufferBytes, sharedSubscriptions: shared.available, onDrop: reason => metrics.drops.labels(reason).inc() }
    const listeners = this
    // a parser's listeners run with `this` the parser, and aedes' Client sets parser.client
    this.guardPacket = function (packet) { listeners.guard(this.client, packet) }
    const conns = this.conns
    this.forgetConn = function () { conns.delete(this) }
  }

  /** Hands a new socket to aedes with the packet-level guards in front of its handlers. */
  readonly accept: Handoff = (socket, listener, remoteAddress) => {
    coalesceWrites(socket)
    return this.acceptStream(socket, listener, remoteAddress ?? socket.remoteAddress ?? 'unknown')
  }

  private acceptStream (conn: Duplex, listener: string, remote: string): GatewayClient {
    const { broker, limits } = this.deps
    this.conns.add(conn)
    // on, not once: 'close' comes once, and once() would wrap the listener per connection
    conn.on('close', this.forgetConn)
    const client = broker.handle(conn) as GatewayClient & { _parser: NodeJS.EventEmitter }
    client.gwListener = listener
    client.gwRemote = remote
    dictionarySubscriptions(client)
    // before ReadGate binds the parser's parse
    releaseIdleParserPacket(client)
    // the parser keeps the protocol version, not the CONNECT (its password, will, properties)
    releaseConnectPacket(client)
    // before any subscription captures the delivery functions (also a restored session's)
    deliverPerMatchingSubscriptions(client)
    enforceOutboundLimits(client, this.outboundLimits)
    // publish backpressure: reads stop while the client's publish rate is spent (fairness.ts)
    if (this.deps.fairness !== undefined && limits.publishRatePerSecond > 0) client.gwReadGate = new ReadGate(client as unknown as ConstructorParameters<typeof ReadGate>[0])
    // Runs before aedes sees each parsed packet.
    client._parser.prependListener('packet', this.guardPacket)
    return client
  }

  /** The packet-level guards, before aedes sees a parsed packet of `client`. */
  private guard (client: GatewayClient, packet: GuardedPacket): void {
    const { emit, shared } = this.deps
    const st = client.gw
    if (client.gwOverLimit === true) return
    this.deps.fairness?.onPacket(client, packet)
    if (packet.cmd === 'publish' && packet.qos === 2 && st) {
      // GHSA-5jvp-3p2v-5qgf: a client sending QoS 2 PUBLISHes and withholding
      // PUBREL grew the broker's incoming store without bound (aedes 1.1.3
      // added maxInflightInbound). The cap is the CONNACK Receive Maximum; over it the
      // connection is closed once, an MQTT 5 client told why (0x93) [MQTT-3.3.4-9].
      const maxInflight = this.deps.limits.maxInflightQos2
      const inflight = st.inflightQos2 ??= new Set()
      inflight.add(packet.messageId!)
      if (inflight.size > maxInflight) {
        client.gwOverLimit = true
        emit({ code: 'limits.qos2_inflight', tenant: st.tenant, principal: st.principal, clientId: st.wireClientId, remoteAddress: st.remoteAddress, reason: `more than ${maxInflight} QoS 2 messages awaiting PUBREL` })
        if (client.version === 5) client.disconnect({ reasonCode: DISCONNECT.RECEIVE_MAXIMUM_EXCEEDED })
        else (client.conn as Duplex).destroy()
      }
    } else if (!SERVER_BOUND.has(packet.cmd)) {
      // aedes closes the socket on any other packet type without a word; each refusal is an event.
      emit({ code: 'protocol.unexpected_packet', tenant: st?.tenant, principal: st?.principal, clientId: st?.wireClientId ?? client.gwWireId, remoteAddress: st?.remoteAddress ?? client.gwRemote, action: packet.cmd, reason: unexpectedPacketReason(packet.cmd) })
    } else if (packet.cmd === 'pubrel' && st) {
      st.inflightQos2?.delete(packet.messageId!)
    } else if (packet.cmd === 'unsubscribe') {
      shared.unsubscribing(client, packet.unsubscriptions ?? [])
    } else if (packet.cmd === 'subscribe') {
      // "$share/<group>/<filter>" becomes "<filter>" in a group of the client's tenant
      shared.subscribing(client, packet.subscriptions ?? [])
      // aedes answers MQTT 5 "$share/..." that remain (malformed, cluster mode) with 0x9E before any hook runs; report it here.
      for (const s of packet.subscriptions ?? []) {
        if (client.version === 5 && s.topic.startsWith('$share/')) {
          emit({ code: 'acl.reserved_topic', tenant: st?.tenant, principal: st?.principal, clientId: st?.wireClientId, remoteAddress: st?.remoteAddress, action: 'subscribe', topic: s.topic, reason: shared.available ? 'malformed shared subscription' : 'shared subscriptions are not available in cluster mode' })
        }
      }
    }
  }

  /**
   * A net.Server whose connections first pass the PROXY protocol gate (when configured), then go
   * to `next`: aedes directly, or a TLS / HTTP server that takes the socket from there.
   */
  guardedServer (listener: string, next: OnConnection, log: Logger): Server {
    const gate = this.deps.proxyGate
    const server = createServer(socket => gate ? gate.preface(socket, listener, next) : next(socket, socket.remoteAddress ?? 'unknown', undefined))
    // a listener error after start (EMFILE...) must not kill the process
    server.on('error', err => log.error({ err, listener }, 'listener error'))
    this.servers.push(server)
    return server
  }

  /** The plain MQTT (TCP) listener. */
  async startTcp (host: string, port: number, log: Logger): Promise<number> {
    this.tcp = this.guardedServer('mqtt', (socket, remote, rest) => {
      // aedes reads the socket through its stream buffer, so bytes read past a PROXY header go back there
      if (rest !== undefined && rest.length > 0) socket.unshift(rest)
      this.accept(socket, 'mqtt', remote)
    }, log)
    this.port = await listen(this.tcp, host, port)
    return this.port
  }

  /**
   * MQTT over WebSocket on `path` /mqtt with subprotocol "mqtt" (plain, or TLS when `tls` is given:
   * the gateway's server certificate). One WebSocket binary message stream carries the MQTT bytes.
   */
  async startWebSocket (host: string, port: number, tls: SecureContextOptions | undefined, log: Logger): Promise<number> {
    const listener = tls ? 'wss' : 'ws'
    const http = tls ? createHttpsServer({ ...tls, minVersion: 'TLSv1.2' }) : createHttpServer()
    http.on('error', err => log.error({ err, listener }, 'listener error'))
    // Upgrade only: plain HTTP requests to this port get 426.
    http.on('request', (_req, res) => { res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' }).end('MQTT over WebSocket: connect to /mqtt with subprotocol mqtt\n') })
    const wss = new WebSocketServer({
      server: http,
      path: WS_PATH,
      // the MQTT packet size limit bounds a WebSocket message too (+ framing slack)
      maxPayload: this.deps.limits.maxPacketBytes + 16,
      // [MQTT-6.0.0-3] the server selects "mqtt" (MQTT 3.1.1 and 5); a client offering no "mqtt" is refused
      handleProtocols: (protocols: Set<string>) => protocols.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false
    })
    wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
      const stream = createWebSocketStream(ws)
      stream.on('error', () => { /* reported by aedes once handed over */ })
      this.acceptStream(stream, listener, req.socket.remoteAddress ?? 'unknown')
    })
    wss.on('error', err => log.error({ err, listener }, 'websocket listener error'))
    // the net server in front reads PROXY headers (if any), then hands the socket to HTTP(S)
    const front = this.guardedServer(listener, (socket, remote, rest) => {
      http.emit('connection', rest === undefined ? socket : prefacedStream(socket, rest, remote))
    }, log)
    this.servers.push(http)
    const bound = await listen(front, host, port)
    if (tls) this.wssPort = bound
    else this.wsPort = bound
    log.info({ [listener]: `${host}:${bound}${WS_PATH}` }, `${listener} listener started`)
    return bound
  }

  get listening (): boolean { return this.tcp?.listening === true }

  /** Stops accepting on every listener. */
  stopAccepting (): void {
    for (const s of this.servers) s.close()
  }

  /** Destroys every connection still open (after the broker has closed its clients). */
  destroyAll (): void {
    for (const c of this.conns) c.destroy()
  }
}
