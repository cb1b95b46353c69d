// MQTT listeners: every accepted socket (TCP here, TLS from broker/pki) goes through acceptConnection,
// which puts the packet-level guards in front of aedes' handlers.
import { createServer, type Server, type Socket } from 'node:net'
import type { Aedes } from 'aedes'
import type { Logger } from 'pino'
import type { Limits, SecurityEventInput } from '../core/index.ts'
import { listen } from '../core/index.ts'
import type { GatewayClient } from './client.ts'
import { coalesceWrites } from './socket-writes.ts'
import { DISCONNECT } from './reason-codes.ts'

/** Hands a socket to aedes and returns its client (the MQTTS listener uses it after the TLS handshake). */
export type Handoff = (socket: Socket, listener: string) => GatewayClient

export interface ListenerDeps {
  broker: Aedes
  limits: Limits
  emit: (e: SecurityEventInput) => void
}

export class MqttListeners {
  private readonly sockets = new Set<Socket>()
  private tcp: Server | undefined
  port = 0

  constructor (private readonly deps: ListenerDeps) {}

  /** Hands a new socket to aedes with the packet-level guards in front of its handlers. */
  readonly accept: Handoff = (socket, listener) => {
    const { broker, limits, emit } = this.deps
    this.sockets.add(socket)
    socket.once('close', () => this.sockets.delete(socket))
    coalesceWrites(socket)
    // Dead peers of 3.1.1 clients that asked for no keep-alive are still noticed.
    socket.setKeepAlive(true, 60_000)
    const client = broker.handle(socket) as GatewayClient & { _parser: NodeJS.EventEmitter }
    client.gwListener = listener
    client.gwRemote = socket.remoteAddress ?? 'unknown'
    const maxInflight = limits.maxInflightQos2
    // Runs before aedes sees each parsed packet.
    client._parser.prependListener('packet', (packet: { cmd: string, qos?: number, messageId?: number, subscriptions?: Array<{ topic: string }> }) => {
      const st = client.gw
      if (packet.cmd === 'publish' && packet.qos === 2 && st) {
        // GHSA-5jvp-3p2v-5qgf: a client sending QoS 2 PUBLISHes and withholding
        // PUBREL grew the broker's incoming store without bound (aedes 1.1.3
        // added maxInflightInbound). Over the cap the connection is closed.
        st.inflightQos2.add(packet.messageId!)
        if (st.inflightQos2.size > maxInflight) {
          emit({ code: 'limits.qos2_inflight', tenant: st.tenant, principal: st.principal, clientId: st.wireClientId, remoteAddress: st.remoteAddress, reason: `more than ${maxInflight} QoS 2 messages awaiting PUBREL` })
          if (client.version === 5) client.disconnect({ reasonCode: DISCONNECT.QUOTA_EXCEEDED })
          else socket.destroy()
        }
      } else if (packet.cmd === 'pubrel' && st) {
        st.inflightQos2.delete(packet.messageId!)
      } else if (packet.cmd === 'subscribe' && client.version === 5) {
        // aedes answers MQTT 5 "$share/..." with 0x9E before any hook runs; report it here.
        for (const s of packet.subscriptions ?? []) {
          if (s.topic.startsWith('$share/')) {
            emit({ code: 'acl.reserved_topic', tenant: st?.tenant, principal: st?.principal, clientId: st?.wireClientId, remoteAddress: st?.remoteAddress, action: 'subscribe', topic: s.topic, reason: 'shared subscriptions are not available to tenants' })
          }
        }
      }
    })
    return client
  }

  /** The plain MQTT (TCP) listener. */
  async startTcp (host: string, port: number, log: Logger): Promise<number> {
    const server = createServer(socket => this.accept(socket, 'mqtt'))
    this.tcp = server
    // a listener error after start (EMFILE...) must not kill the process
    server.on('error', err => log.error({ err }, 'mqtt listener error'))
    this.port = await listen(server, host, port)
    return this.port
  }

  get listening (): boolean { return this.tcp?.listening === true }

  /** Stops accepting. */
  stopAccepting (): void { this.tcp?.close() }

  /** Destroys every socket still open (after the broker has closed its clients). */
  destroyAll (): void {
    for (const s of this.sockets) s.destroy()
  }
}
