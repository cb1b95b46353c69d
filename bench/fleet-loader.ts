// A loader process of the fleet scenario (bench/fleet-node.ts): holds a slice of the idle USP
// Agents on raw sockets (pre-encoded CONNECT/SUBSCRIBE, one mqtt-packet parser each), and answers
// every USP Get Record it receives with a GetResp Record carrying the same msg_id, sent to the
// reply-to the Get arrived with (MQTT 5 Response Topic, or the 3.1.1 `/reply-to=` suffix,
// TR-369 R-MQTT.24-26). Started with an IPC channel; see FleetLoaderRequest / FleetLoaderMessage.
import { connect as netConnect, type Socket } from 'node:net'
import mqttPacket from 'mqtt-packet'
import { uspSchema } from '../broker/usp/index.ts'

export interface FleetAgent {
  clientId: string
  endpointId: string
  username?: string
  password?: string
  /** 5: subscribes its inbox (exact); 4 (MQTT 3.1.1): subscribes `<inbox>/#` */
  v: 4 | 5
}

export type FleetLoaderRequest =
  | { type: 'connect', port: number, tenant: string, agents: FleetAgent[], concurrency: number, timeoutMs: number }
  | { type: 'stats' }
  | { type: 'disconnect' }

export type FleetLoaderMessage =
  | { type: 'ready' }
  | { type: 'connected', ok: number, failed: number, failures: string[], failedIds: string[], ms: number }
  | { type: 'stats', answered: number, errors: number, open: number, pinged: number }
  | { type: 'disconnected' }

const REPLY_TO = '/reply-to='
/**
 * Keep Alive of every agent. An agent sends a PINGREQ only when it has sent nothing for KEEPALIVE_S / 2,
 * as real clients do: [MQTT-3.1.2-23] asks for one "in the absence of sending any other MQTT Control
 * Packets", mqtt.js reschedules its ping on every packet it sends (`reschedulePings`, default on) and
 * libmosquitto (obuspa's MQTT client) pings only after a Keep Alive with nothing sent or nothing
 * received. An agent answering Gets sends no PINGREQ; one left idle (between windows, or never
 * addressed) still does. (Until 2026-12-03 every agent pinged every 30 s regardless: 333 PINGREQs per
 * second at 10,000 agents against 33 at 1,000, charged to the USP round trips: bench/FLEET.md.)
 */
const KEEPALIVE_S = 60
const SILENT_MS = KEEPALIVE_S / 2 * 1000
const PINGREQ = Buffer.from([0xc0, 0x00])
const CONTENT_TYPE = 'usp.msg'

function send (m: FleetLoaderMessage): void { process.send?.(m) }

interface AgentConn {
  agent: FleetAgent
  inbox: string
  socket: Socket
  subscribed: boolean
  nextId: number
  /** when this agent last sent a packet (the coarse clock below) */
  lastSentMs: number
}

const conns: AgentConn[] = []
let answered = 0
let errors = 0
let pinged = 0
/** A clock the 100 ms ping tick advances: one Date.now() per tick, not one per packet sent. */
let nowMs = Date.now()

function sendPacket (c: AgentConn, b: Buffer): void {
  c.socket.write(b)
  c.lastSentMs = nowMs
}

const { Record: RecordT, Msg: MsgT } = uspSchema()

/** Answers a Get with a GetResp (same msg_id) to where the Get asked to be answered. */
function answer (c: AgentConn, topic: string, payload: Buffer, responseTopic: string | undefined): void {
  let replyTo = responseTopic
  if (replyTo === undefined) {
    const at = topic.lastIndexOf(REPLY_TO)
    if (at >= 0) replyTo = topic.slice(at + REPLY_TO.length).replace(/%2F/gi, '/')
  }
  if (replyTo === undefined) { errors++; return }
  // protobufjs decode of the Record and of its no_session_context Msg: what a real Agent does
  const rec = RecordT.decode(payload) as unknown as { fromId: string, noSessionContext?: { payload: Uint8Array } }
  const inner = rec.noSessionContext?.payload
  if (inner === undefined) { errors++; return }
  const msg = MsgT.decode(inner) as unknown as { header?: { msgId?: string }, body?: { request?: { get?: { paramPaths?: string[] } } } }
  const paths = msg.body?.request?.get?.paramPaths ?? []
  const resp = MsgT.encode(MsgT.fromObject({
    header: { msgId: msg.header?.msgId ?? '', msgType: 'GET_RESP' },
    body: { response: { getResp: { reqPathResults: paths.map(p => ({ requestedPath: p, resolvedPathResults: [{ resolvedPath: 'Device.DeviceInfo.', resultParams: { [p.slice(p.lastIndexOf('.') + 1)]: 'ACME' } }] })) } } }
  })).finish()
  const out = Buffer.from(RecordT.encode(RecordT.fromObject({ version: '1.3', toId: rec.fromId, fromId: c.agent.endpointId, noSessionContext: { payload: resp } })).finish())
  const id = c.nextId = c.nextId >= 65535 ? 1 : c.nextId + 1
  const packet = c.agent.v === 5
    ? { cmd: 'publish' as const, topic: replyTo, payload: out, qos: 1 as const, messageId: id, retain: false, dup: false, properties: { responseTopic: c.inbox, contentType: CONTENT_TYPE } }
    : { cmd: 'publish' as const, topic: replyTo + REPLY_TO + c.inbox.split('/').join('%2F'), payload: out, qos: 1 as const, messageId: id, retain: false, dup: false }
  sendPacket(c, mqttPacket.generate(packet, { protocolVersion: c.agent.v }))
  answered++
}

function connectOne (port: number, tenant: string, agent: FleetAgent, timeoutMs: number): Promise<string | null> {
  return new Promise(resolve => {
    const inbox = `${tenant}/usp/agent/${agent.endpointId}`
    const socket = netConnect({ port, host: '127.0.0.1', noDelay: true })
    const c: AgentConn = { agent, inbox, socket, subscribed: false, nextId: 1, lastSentMs: nowMs }
    const parser = mqttPacket.parser({ protocolVersion: agent.v })
    let settled = false
    const finish = (why: string | null): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (why === null) conns.push(c)
      else socket.destroy()
      resolve(why)
    }
    const timer = setTimeout(() => finish(`no CONNACK+SUBACK within ${timeoutMs} ms`), timeoutMs)
    parser.on('packet', (p: mqttPacket.Packet) => {
      switch (p.cmd) {
        case 'connack': {
          const rc = (p as mqttPacket.IConnackPacket).reasonCode ?? (p as mqttPacket.IConnackPacket).returnCode ?? 0
          if (rc !== 0) { finish(`CONNACK 0x${rc.toString(16)}`); return }
          socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: agent.v === 5 ? inbox : `${inbox}/#`, qos: 1 }] }, { protocolVersion: agent.v }))
          break
        }
        case 'suback': {
          const g = (p as mqttPacket.ISubackPacket).granted[0]
          const code = typeof g === 'number' ? g : (g as { qos?: number } | undefined)?.qos
          if (code !== 1 && code !== 0) { finish(`SUBACK 0x${String(code)}`); return }
          c.subscribed = true
          finish(null)
          break
        }
        case 'publish': {
          const pub = p as mqttPacket.IPublishPacket
          if (pub.qos === 1) sendPacket(c, mqttPacket.generate({ cmd: 'puback', messageId: pub.messageId! }, { protocolVersion: agent.v }))
          try { answer(c, pub.topic, pub.payload as Buffer, pub.properties?.responseTopic) } catch { errors++ }
          break
        }
        default: break // PUBACKs of our own GetResps
      }
    })
    parser.on('error', () => { errors++ })
    socket.on('data', d => parser.parse(d))
    socket.on('connect', () => {
      socket.write(mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: agent.v,
        clean: true,
        clientId: agent.clientId,
        keepalive: KEEPALIVE_S,
        ...(agent.username !== undefined ? { username: agent.username } : {}),
        ...(agent.password !== undefined ? { password: Buffer.from(agent.password) } : {}),
        // TR-369 R-MQTT.13: an MQTT 5 Agent names its Endpoint ID in CONNECT
        ...(agent.v === 5 ? { properties: { userProperties: { 'usp-endpoint-id': agent.endpointId } } } : {})
      }, { protocolVersion: agent.v }))
    })
    socket.on('error', err => finish(err.message))
    socket.on('close', () => {
      if (!settled) finish('closed before SUBACK')
      else if (c.subscribed) errors++ // an agent of the idle fleet lost its connection
    })
  })
}

async function connectAll (port: number, tenant: string, agents: FleetAgent[], concurrency: number, timeoutMs: number): Promise<void> {
  const t0 = process.hrtime.bigint()
  const failures: string[] = []
  const failedIds: string[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < agents.length) {
      const a = agents[next++]!
      const why = await connectOne(port, tenant, a, timeoutMs)
      if (why !== null) {
        failedIds.push(a.clientId)
        if (failures.length < 5) failures.push(`${a.clientId}: ${why}`)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, agents.length) }, worker))
  send({ type: 'connected', ok: agents.length - failedIds.length, failed: failedIds.length, failures, failedIds, ms: Number(process.hrtime.bigint() - t0) / 1e6 })
}

async function disconnectAll (): Promise<void> {
  const DISCONNECT = Buffer.from([0xe0, 0x00])
  await Promise.all(conns.map(c => new Promise<void>(resolve => {
    const s = c.socket
    c.subscribed = false
    if (s.destroyed) return resolve()
    const t = setTimeout(() => { s.destroy(); resolve() }, 5000)
    s.once('close', () => { clearTimeout(t); resolve() })
    s.end(DISCONNECT)
  })))
  conns.length = 0
}

process.on('message', (raw: unknown) => {
  const m = raw as FleetLoaderRequest
  if (m.type === 'connect') void connectAll(m.port, m.tenant, m.agents, m.concurrency, m.timeoutMs)
  else if (m.type === 'stats') send({ type: 'stats', answered, errors, open: conns.filter(c => !c.socket.destroyed).length, pinged })
  else if (m.type === 'disconnect') void disconnectAll().then(() => send({ type: 'disconnected' }))
})
// Keep Alive, spread over time: every 100 ms the next slice of the connections, so that each is looked
// at every KEEPALIVE_S / 4 and pings if silent for KEEPALIVE_S / 2: the last packet before a PINGREQ is
// 30-45 s old, inside the 60 s the agent promised
let pingCursor = 0
setInterval(() => {
  nowMs = Date.now()
  const slice = Math.ceil(conns.length / (KEEPALIVE_S / 4 * 10))
  for (let i = 0; i < slice && conns.length > 0; i++) {
    const c = conns[pingCursor++ % conns.length]!
    if (c.subscribed && !c.socket.destroyed && nowMs - c.lastSentMs >= SILENT_MS) {
      sendPacket(c, PINGREQ)
      pinged++
    }
  }
}, 100).unref()
// never outlive the bench
process.on('disconnect', () => process.exit(0))
send({ type: 'ready' })
