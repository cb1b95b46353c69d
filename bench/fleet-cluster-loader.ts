// Idle TR-369 agents for the fleet-scale cluster bench (bench/fleet-cluster.ts), in a child process
// so that no process holds more than its share of the 20,000 file descriptors. Each agent is a raw
// socket: a pre-encoded CONNECT (persistent session: MQTT 3.1.1 clean=false, or MQTT 5 clean start
// off + Session Expiry 1 day), then one SUBSCRIBE (QoS 1) to its inbox filter, then nothing (keep
// alive 1200 s, the gateway's maximum: a PINGREQ every 10 minutes). Started by fleet-cluster.ts through `sh -c 'ulimit -Sn <hard>; exec node …'`
// (Node cannot raise its own soft fd limit) with an IPC channel; requests:
//   {type:'connect', port, agents, concurrency} → {connected, failed, ms, firstError?}
//   {type:'close'} → sockets ended, then exit
import { connect as netConnect, type Socket } from 'node:net'
import mqttPacket from 'mqtt-packet'

export interface LoaderAgent { clientId: string, username: string, password: string, v: 4 | 5, filter: string }
export type LoaderRequest =
  | { type: 'connect', port: number, agents: LoaderAgent[], concurrency: number }
  | { type: 'close' }
export interface LoaderResult { connected: number, failed: number, ms: number, firstError?: string }

const STEP_TIMEOUT_MS = 60_000
/** the gateway's default limits.maxKeepAliveSeconds (MQTT 3.1.1 CONNACK 6 above it or at 0) */
const KEEPALIVE_S = 1200
const sockets: Socket[] = []
const PINGREQ = Buffer.from([0xc0, 0x00])
setInterval(() => { for (const s of sockets) if (!s.destroyed) s.write(PINGREQ) }, KEEPALIVE_S * 500).unref()

function connectAgent (port: number, a: LoaderAgent): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1')
    const parser = mqttPacket.parser({ protocolVersion: a.v })
    let step: 'connack' | 'suback' | 'idle' = 'connack'
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`${a.clientId}: no ${step} within ${STEP_TIMEOUT_MS} ms`)) }, STEP_TIMEOUT_MS)
    const fail = (why: string): void => { clearTimeout(timer); s.destroy(); reject(new Error(`${a.clientId}: ${why}`)) }
    s.setNoDelay(true)
    s.on('error', err => { if (step !== 'idle') fail(err.message) })
    s.on('close', () => { if (step !== 'idle') fail(`closed before ${step}`) })
    s.on('data', d => parser.parse(d))
    parser.on('error', err => fail(`bad packet: ${err.message}`))
    parser.on('packet', (p: mqttPacket.Packet) => {
      if (step === 'connack' && p.cmd === 'connack') {
        const code = (p as mqttPacket.IConnackPacket).reasonCode ?? (p as mqttPacket.IConnackPacket).returnCode ?? 0
        if (code !== 0) { fail(`CONNACK ${code}`); return }
        step = 'suback'
        s.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: a.filter, qos: 1 }], ...(a.v === 5 ? { properties: {} } : {}) } as mqttPacket.ISubscribePacket, { protocolVersion: a.v }))
      } else if (step === 'suback' && p.cmd === 'suback') {
        const granted = (p as mqttPacket.ISubackPacket).granted[0]
        if (typeof granted !== 'number' || granted > 2) { fail(`SUBACK ${JSON.stringify(granted)}`); return }
        step = 'idle'
        clearTimeout(timer)
        sockets.push(s)
        resolve()
      } else if (p.cmd === 'publish' && (p as mqttPacket.IPublishPacket).qos === 1) {
        // an idle agent gets nothing in this bench; acknowledge anything that does arrive
        s.write(mqttPacket.generate({ cmd: 'puback', messageId: (p as mqttPacket.IPublishPacket).messageId! }, { protocolVersion: a.v }))
      }
    })
    s.write(mqttPacket.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: a.v,
      clientId: a.clientId,
      clean: false,
      keepalive: KEEPALIVE_S,
      username: a.username,
      password: Buffer.from(a.password),
      ...(a.v === 5 ? { properties: { sessionExpiryInterval: 86_400 } } : {})
    } as mqttPacket.IConnectPacket, { protocolVersion: a.v }))
  })
}

async function connectAll (req: Extract<LoaderRequest, { type: 'connect' }>): Promise<LoaderResult> {
  const t0 = Date.now()
  let next = 0
  let connected = 0
  let failed = 0
  let firstError: string | undefined
  const worker = async (): Promise<void> => {
    while (next < req.agents.length) {
      const a = req.agents[next++]!
      try { await connectAgent(req.port, a); connected++ } catch (err) { failed++; firstError ??= (err as Error).message }
    }
  }
  await Promise.all(Array.from({ length: Math.min(req.concurrency, req.agents.length) }, worker))
  return { connected, failed, ms: Date.now() - t0, ...(firstError !== undefined ? { firstError } : {}) }
}

process.on('disconnect', () => process.exit(0))
process.on('message', (raw: unknown) => {
  const req = raw as LoaderRequest
  if (req.type === 'connect') {
    connectAll(req).then(r => process.send?.(r), (err: Error) => process.send?.({ connected: 0, failed: req.agents.length, ms: 0, firstError: err.message }))
  } else if (req.type === 'close') {
    for (const s of sockets) s.destroy()
    process.exit(0)
  }
})
process.send?.({ ready: true })
