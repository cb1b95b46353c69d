// A raw MQTT peer for attack tests: sends hand-built (or deliberately broken)
// packets on a plain socket and reads what the gateway answers.
import { connect, type Socket } from 'node:net'
import mqttPacket from 'mqtt-packet'

export interface RawPeer {
  socket: Socket
  send: (packet: Record<string, unknown>) => void
  sendRaw: (buf: Buffer) => void
  next: (cmd: string, timeoutMs?: number) => Promise<any>
  received: any[]
  closed: Promise<void>
  isClosed: () => boolean
  end: () => void
}

export function encode (packet: Record<string, unknown>, protocolVersion = 4): Buffer {
  return mqttPacket.generate(packet as any, { protocolVersion })
}

export async function rawPeer (port: number, protocolVersion: 4 | 5 = 4): Promise<RawPeer> {
  const socket = connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  const parser = mqttPacket.parser({ protocolVersion })
  const received: any[] = []
  const waiters: Array<{ cmd: string, resolve: (p: any) => void }> = []
  let closed = false
  parser.on('packet', (p: any) => {
    const i = waiters.findIndex(w => w.cmd === p.cmd)
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(p)
    else received.push(p)
  })
  parser.on('error', () => {})
  socket.on('data', d => parser.parse(d))
  socket.on('error', () => {})
  const closedP = new Promise<void>(resolve => socket.once('close', () => { closed = true; resolve() }))
  return {
    socket,
    received,
    send: p => { socket.write(encode(p, protocolVersion)) },
    sendRaw: b => { socket.write(b) },
    next: (cmd, timeoutMs = 3000) => {
      const i = received.findIndex(p => p.cmd === cmd)
      if (i >= 0) return Promise.resolve(received.splice(i, 1)[0])
      return new Promise((resolve, reject) => {
        const w = { cmd, resolve }
        waiters.push(w)
        const timer = setTimeout(() => {
          const j = waiters.indexOf(w)
          if (j >= 0) waiters.splice(j, 1)
          reject(new Error(`no ${cmd} within ${timeoutMs} ms${closed ? ' (socket closed)' : ''}`))
        }, timeoutMs)
        closedP.then(() => setTimeout(() => clearTimeout(timer), timeoutMs + 10))
      })
    },
    closed: closedP,
    isClosed: () => closed,
    end: () => { socket.destroy() }
  }
}

/** CONNECT + CONNACK on a raw peer. */
export async function rawConnect (port: number, username: string, password: string, opts: { clientId?: string, protocolVersion?: 4 | 5, clean?: boolean } = {}): Promise<RawPeer> {
  const v = opts.protocolVersion ?? 4
  const peer = await rawPeer(port, v)
  peer.send({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: v,
    clean: opts.clean ?? true,
    clientId: opts.clientId ?? `raw-${Math.random().toString(16).slice(2)}`,
    keepalive: 60,
    username,
    password: Buffer.from(password)
  })
  const connack = await peer.next('connack')
  const code = v === 5 ? connack.reasonCode : connack.returnCode
  if (code !== 0) throw new Error(`raw connect refused: ${code}`)
  return peer
}
