// Every listener (MQTT, MQTTS, admin, and any later one) closes a socket that has not finished its
// opening in time — the TLS handshake, the MQTT CONNECT, the first HTTP request — and reports it:
// an unauthenticated peer cannot hold file descriptors by connecting and saying nothing.
import type { Server, Socket } from 'node:net'

/** What the socket was still waiting for when its deadline passed. */
export type OpeningPhase = 'tls' | 'connect' | 'request'

export interface HandshakeDeadlineOptions {
  timeoutMs: number
  /** Called once for each socket closed by its deadline (before it is destroyed). */
  onExpired: (info: { listener: string, phase: OpeningPhase, remoteAddress: string }) => void
}

interface Pending { timer: NodeJS.Timeout, listener: string, phase: OpeningPhase, remoteAddress: string }

export class HandshakeDeadline {
  private readonly pending = new Map<Socket, Pending>()

  constructor (private readonly o: HandshakeDeadlineOptions) {}

  /** Arms a deadline for every socket `server` accepts; `phase` is what it must do first. */
  watch (server: Server, listener: string, phase: OpeningPhase): void {
    server.on('connection', (socket: Socket) => this.arm(socket, listener, phase))
  }

  private arm (socket: Socket, listener: string, phase: OpeningPhase): void {
    const p: Pending = {
      listener,
      phase,
      remoteAddress: socket.remoteAddress ?? 'unknown',
      timer: setTimeout(() => {
        this.pending.delete(socket)
        if (socket.destroyed) return
        this.o.onExpired({ listener: p.listener, phase: p.phase, remoteAddress: p.remoteAddress })
        socket.destroy()
      }, this.o.timeoutMs)
    }
    p.timer.unref()
    this.pending.set(socket, p)
    socket.once('close', () => this.done(socket))
  }

  /** The socket moved on to its next opening step (TLS done, CONNECT still due): same deadline. */
  progress (socket: Socket, phase: OpeningPhase): void {
    const p = this.pending.get(acceptedSocket(socket))
    if (p !== undefined) p.phase = phase
  }

  /** The socket finished its opening (CONNECT received, first HTTP request): no deadline any more. */
  done (socket: Socket): void {
    const raw = acceptedSocket(socket)
    const p = this.pending.get(raw)
    if (p === undefined) return
    clearTimeout(p.timer)
    this.pending.delete(raw)
  }

  /** Sockets still in their opening. */
  get size (): number { return this.pending.size }
}

/** A TLSSocket made by a tls.Server wraps the socket the server accepted (Node keeps it as `_parent`). */
function acceptedSocket (socket: Socket): Socket {
  return (socket as Socket & { _parent?: Socket | null })._parent ?? socket
}
