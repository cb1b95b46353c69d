// Write coalescing for MQTT sockets. aedes writes each outgoing packet as it
// is produced (mqtt-packet corks per packet and uncorks on nextTick), so a
// fan-out costs one writev syscall per packet, the largest single cost of a
// delivery. Corking the socket at its first write in an event-loop turn and
// uncorking in setImmediate turns a burst of packets into one writev. With
// writes batched here, Nagle adds only delay, so TCP_NODELAY is set.
// Backpressure is unchanged: write() still returns false above the socket's
// high-water mark and aedes waits for 'drain' (bounded by drainTimeout).
import type { Socket } from 'node:net'

export function coalesceWrites (socket: Socket): void {
  socket.setNoDelay(true)
  const write = socket.write
  let corked = false
  const uncork = (): void => {
    corked = false
    if (!socket.destroyed) socket.uncork()
  }
  socket.write = function coalescedWrite (this: Socket, ...args: Parameters<Socket['write']>): boolean {
    if (!corked && !socket.destroyed) {
      corked = true
      socket.cork()
      setImmediate(uncork)
    }
    return write.apply(this, args)
  } as Socket['write']
}
