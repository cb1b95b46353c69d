// Write coalescing for MQTT sockets. aedes writes each outgoing packet as it
// is produced (mqtt-packet corks per packet and uncorks on nextTick), so a
// fan-out costs one writev syscall per packet, the largest single cost of a
// delivery. Corking the socket at its first write in an event-loop turn and
// uncorking in setImmediate turns a burst of packets into one writev. With
// writes batched here, Nagle adds only delay, so TCP_NODELAY is set.
// Backpressure is unchanged: write() still returns false above the socket's
// high-water mark and aedes waits for 'drain' (bounded by drainTimeout).
// The functions are shared by every socket (state in two symbol-keyed fields) rather than two
// closures per socket: at fleet scale that is memory per connection.
import type { Socket } from 'node:net'

const ORIGINAL_WRITE = Symbol('uspgate.originalWrite')
const CORKED = Symbol('uspgate.corked')

type CoalescingSocket = Socket & { [ORIGINAL_WRITE]: Socket['write'], [CORKED]: boolean }

// Sockets corked in this turn, uncorked together by one setImmediate (not one per socket: a fleet
// of agents each getting one packet per turn made one Immediate per delivery).
let corked: CoalescingSocket[] = []

function uncorkAll (): void {
  const sockets = corked
  corked = []
  for (let i = 0; i < sockets.length; i++) {
    const socket = sockets[i]!
    socket[CORKED] = false
    if (!socket.destroyed) socket.uncork()
  }
}

function coalescedWrite (this: CoalescingSocket, ...args: Parameters<Socket['write']>): boolean {
  if (!this[CORKED] && !this.destroyed) {
    this[CORKED] = true
    this.cork()
    if (corked.push(this) === 1) setImmediate(uncorkAll)
  }
  return (this[ORIGINAL_WRITE] as (...a: Parameters<Socket['write']>) => boolean).apply(this, args)
}

export function coalesceWrites (socket: Socket): void {
  socket.setNoDelay(true)
  const s = socket as CoalescingSocket
  s[ORIGINAL_WRITE] = socket.write
  s[CORKED] = false
  socket.write = coalescedWrite as Socket['write']
}
