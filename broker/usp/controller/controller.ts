// A USP Controller endpoint over MQTT (TR-369 MQTT binding), used by certification runs: it logs in
// to the gateway's own MQTT listener like any tenant client (same invariants, same policy), sends
// requests with unique msg_ids and timeouts, matches responses and USP Error messages to them,
// answers Notify requests that ask for it, and reports every Record sent or received (raw and
// decoded) so a run can file them as evidence.
import { EventEmitter } from 'node:events'
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt'
import { encodeMsg, encodeRecord, fullyDecodeMsg, fullyDecodeRecord, type RequestInput } from '../schema.ts'
import { uspErrorName } from './error-codes.ts'

/** TR-369 R-MQTT.27: the Content Type of every USP Record PUBLISH (MQTT 5). */
export const USP_CONTENT_TYPE = 'usp.msg'
const REPLY_TO = '/reply-to='

export interface ControllerOptions {
  host: string
  port: number
  tenant: string
  /** This controller's Endpoint ID (its principal in the tenant). */
  endpointId: string
  secret: string
  /** 5 = MQTT 5 (Response Topic property), 4 = MQTT 3.1.1 (`/reply-to=` topic suffix). */
  mqttVersion: 4 | 5
  /** Default time to wait for a response (ms). */
  requestTimeoutMs?: number
  /** Prefix of the msg_ids this controller generates (unique per run). */
  msgIdPrefix?: string
  /** MQTT client id (default `uspgate-certify-<msgIdPrefix>`); two connections of one controller need two. */
  clientId?: string
  /** Extra agent presence topics to follow (`<tenant>/usp/status/<eid>`). */
  presenceOf?: string[]
}

/** One USP Record on the wire, as sent or received by the controller. */
export interface RecordTrace {
  direction: 'sent' | 'received'
  at: string
  topic: string
  /** MQTT 5 Response Topic, or the decoded 3.1.1 suffix. */
  replyTo?: string
  raw: Buffer
  /** protobufjs' decode of the Record (and of its Msg under `msg`), or the reason it failed. */
  decoded: Record<string, unknown> | { undecodable: string }
}

export interface UspReply {
  msgId: string
  fromId: string
  /** The decoded Msg (header + body). */
  msg: Record<string, unknown>
  /** `response` body, e.g. `{getResp: {...}}`. */
  response: Record<string, unknown>
  elapsedMs: number
}

/** The agent answered with a USP Error message (R-MSG.9: same msg_id as the request). */
export class UspErrorReply extends Error {
  constructor (readonly msgId: string, readonly errCode: number, readonly errMsg: string, readonly paramErrs: Array<{ paramPath: string, errCode: number, errMsg: string }>) {
    super(`USP Error ${uspErrorName(errCode)}${errMsg ? `: ${errMsg}` : ''}`)
  }
}

/** No answer within the timeout. */
export class UspTimeout extends Error {
  constructor (readonly msgId: string, readonly what: string, readonly timeoutMs: number) {
    super(`no answer to ${what} (msg_id ${msgId}) within ${timeoutMs} ms`)
  }
}

interface Pending {
  resolve: (r: UspReply) => void
  reject: (e: Error) => void
  timer: NodeJS.Timeout
  agentId: string
  sentAt: number
}

export interface NotifyEvent {
  fromId: string
  msgId: string
  notify: Record<string, unknown>
  at: string
}

export interface ConnectRecordEvent {
  fromId: string
  version: string
  subscribedTopic: string
  at: string
}

export class UspController extends EventEmitter {
  readonly inbox: string
  readonly traces: RecordTrace[] = []
  readonly notifications: NotifyEvent[] = []
  readonly connectRecords: ConnectRecordEvent[] = []
  readonly presence: Array<{ endpointId: string, value: string, at: number }> = []
  private readonly pending = new Map<string, Pending>()
  private seq = 0
  private closed = false

  private constructor (private readonly client: MqttClient, private readonly opts: ControllerOptions) {
    super()
    this.inbox = `${opts.tenant}/usp/controller/${opts.endpointId}`
    client.on('message', (topic, payload, packet) => { this.onMessage(topic, payload, packet) })
    client.on('close', () => {
      for (const [id, p] of this.pending) { clearTimeout(p.timer); p.reject(new Error(`controller connection closed before the answer to ${id}`)) }
      this.pending.clear()
    })
  }

  /** Connects and subscribes to its inbox (`<inbox>/#` also covers 3.1.1 reply-to suffixes) and presence topics. */
  static async connect (opts: ControllerOptions): Promise<UspController> {
    const props: IClientOptions['properties'] = opts.mqttVersion === 5 ? { userProperties: { 'usp-endpoint-id': opts.endpointId } } : undefined
    const client = await new Promise<MqttClient>((resolve, reject) => {
      const c = mqtt.connect({
        host: opts.host,
        port: opts.port,
        protocolVersion: opts.mqttVersion,
        clientId: opts.clientId ?? `uspgate-certify-${opts.msgIdPrefix ?? Date.now().toString(36)}`,
        username: `${opts.tenant}:${opts.endpointId}`,
        password: opts.secret,
        clean: true,
        keepalive: 30,
        reconnectPeriod: 0,
        connectTimeout: 10_000,
        ...(props ? { properties: props } : {})
      })
      const fail = (err: Error): void => { c.end(true); reject(new Error(`controller login refused: ${err.message}`)) }
      c.once('connect', () => { c.off('error', fail); c.off('close', onClose); resolve(c) })
      const onClose = (): void => fail(new Error('connection closed before CONNACK'))
      c.once('error', fail)
      c.once('close', onClose)
    })
    const ctl = new UspController(client, opts)
    const filters = [`${ctl.inbox}/#`, ...(opts.presenceOf ?? []).map(eid => `${opts.tenant}/usp/status/${eid}`)]
    for (const f of filters) {
      await new Promise<void>((resolve, reject) => client.subscribe(f, { qos: 1 }, (err, granted) => {
        const code = granted?.[0]?.qos
        if (err) reject(err)
        else if (code === undefined || code >= 0x80) reject(new Error(`controller subscription to ${f} refused (SUBACK ${String(code)})`))
        else resolve()
      }))
    }
    return ctl
  }

  get connected (): boolean { return !this.closed && this.client.connected }

  nextMsgId (what: string): string {
    return `${this.opts.msgIdPrefix ?? 'uspgate'}-${what}-${++this.seq}`
  }

  /**
   * Sends one request to an agent and waits for its response (same msg_id, R-MSG.9). Rejects with
   * UspErrorReply for a USP Error message, UspTimeout when nothing comes back in time.
   * `agentTopic` defaults to the agent's inbox `<tenant>/usp/agent/<eid>`.
   */
  async request (agentId: string, request: RequestInput, o: { timeoutMs?: number, agentTopic?: string, what?: string } = {}): Promise<UspReply> {
    const kind = Object.keys(request).find(k => request[k] !== undefined) ?? 'request'
    const msgId = this.nextMsgId(kind)
    const timeoutMs = o.timeoutMs ?? this.opts.requestTimeoutMs ?? 10_000
    const payload = encodeRecord({ toId: agentId, fromId: this.opts.endpointId, noSessionContext: { payload: encodeMsg({ msgId, body: { request } }) } })
    const reply = new Promise<UspReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(msgId)
        reject(new UspTimeout(msgId, o.what ?? kind, timeoutMs))
      }, timeoutMs)
      this.pending.set(msgId, { resolve, reject, timer, agentId, sentAt: Date.now() })
    })
    // the connection may close (rejecting `reply`) while the publish is still in flight: handled below
    reply.catch(() => {})
    try {
      await this.send(o.agentTopic ?? `${this.opts.tenant}/usp/agent/${agentId}`, payload)
    } catch (err) {
      const p = this.pending.get(msgId)
      if (p) { clearTimeout(p.timer); this.pending.delete(msgId) }
      throw err
    }
    return await reply
  }

  /** Waits until a Notify / MQTTConnectRecord / presence value matching `pred` has arrived (already or later). */
  async waitFor<T> (pick: () => T | undefined, timeoutMs: number, signal?: AbortSignal): Promise<T | undefined> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const v = pick()
      if (v !== undefined) return v
      if (Date.now() >= deadline || signal?.aborted === true || this.closed) return undefined
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await new Promise<void>(resolve => {
      const timer = setTimeout(() => { this.client.end(true); resolve() }, 2000)
      this.client.end(false, {}, () => { clearTimeout(timer); resolve() })
    })
  }

  /**
   * Publishes a Record the way this controller's MQTT version requires: MQTT 5 with Response Topic
   * (R-MQTT.23) and Content Type usp.msg (R-MQTT.27); MQTT 3.1.1 with the reply-to appended to the
   * topic name as `/reply-to=<inbox with / as %2F>` (R-MQTT.24).
   */
  private async send (destination: string, payload: Buffer): Promise<void> {
    const v5 = this.opts.mqttVersion === 5
    const topic = v5 ? destination : `${destination}${REPLY_TO}${this.inbox.replaceAll('/', '%2F')}`
    this.trace('sent', topic, this.inbox, payload)
    await new Promise<void>((resolve, reject) => {
      if (!this.client.connected) return reject(new Error(`controller is not connected (publish to ${destination})`))
      // MQTT 3.1.1 has no negative PUBACK: a refused PUBLISH closes the connection [MQTT-3.3.5-2]
      const onClose = (): void => reject(new Error(`connection closed while publishing to ${destination} (refused)`))
      this.client.once('close', onClose)
      this.client.publish(topic, payload, {
        qos: 1,
        ...(v5 ? { properties: { responseTopic: this.inbox, contentType: USP_CONTENT_TYPE } } : {})
      }, (err, packet) => {
        this.client.off('close', onClose)
        const rc = (packet as { reasonCode?: number } | undefined)?.reasonCode
        if (err) reject(new Error(`publish to ${destination} refused: ${err.message}`))
        else if (rc !== undefined && rc >= 0x80) reject(new Error(`publish to ${destination} refused (PUBACK 0x${rc.toString(16)})`))
        else resolve()
      })
    })
  }

  private trace (direction: 'sent' | 'received', topic: string, replyTo: string | undefined, raw: Buffer): Record<string, unknown> | undefined {
    let decoded: RecordTrace['decoded']
    let record: Record<string, unknown> | undefined
    try {
      record = fullyDecodeRecord(raw)
      const inner = (record.noSessionContext as { payload?: Uint8Array } | undefined)?.payload
      decoded = { ...record }
      if (inner !== undefined) {
        const msg = fullyDecodeMsg(inner)
        decoded = { ...record, noSessionContext: { msg } }
        record = { ...record, msg }
      }
    } catch (err) {
      decoded = { undecodable: (err as Error).message.slice(0, 200) }
      record = undefined
    }
    const t: RecordTrace = { direction, at: new Date().toISOString(), topic, raw: Buffer.from(raw), decoded }
    if (replyTo !== undefined) t.replyTo = replyTo
    this.traces.push(t)
    this.emit('record', t)
    return record
  }

  private onMessage (topic: string, payload: Buffer, packet: IPublishPacket): void {
    if (topic.startsWith(`${this.opts.tenant}/usp/status/`)) {
      this.presence.push({ endpointId: topic.slice(`${this.opts.tenant}/usp/status/`.length), value: payload.toString(), at: Date.now() })
      this.emit('presence')
      return
    }
    // R-MQTT.25: the reply-to is what follows the LAST "/reply-to=", with %2F turned back into "/"
    const marker = topic.lastIndexOf(REPLY_TO)
    const replyTo = packet.properties?.responseTopic ?? (marker >= 0 ? topic.slice(marker + REPLY_TO.length).replace(/%2F/gi, '/') : undefined)
    const record = this.trace('received', topic, replyTo, payload)
    if (record === undefined) return
    const fromId = String(record.fromId ?? '')
    const at = new Date().toISOString()
    const mc = record.mqttConnect as { version?: string, subscribedTopic?: string } | undefined
    if (mc !== undefined) {
      // protobufjs leaves proto3 defaults out: a missing version is V3_1_1 (= 0)
      this.connectRecords.push({ fromId, version: mc.version ?? 'V3_1_1', subscribedTopic: mc.subscribedTopic ?? '', at })
      this.emit('connect-record')
      return
    }
    const msg = record.msg as { header?: { msgId?: string }, body?: Record<string, Record<string, unknown>> } | undefined
    if (msg === undefined) return
    const msgId = msg.header?.msgId ?? ''
    const body = msg.body ?? {}
    if (body.response !== undefined || body.error !== undefined) {
      const p = this.pending.get(msgId)
      // only the agent the request went to may answer it (the gateway also binds from_id, R-SEC.4c)
      if (p === undefined || p.agentId !== fromId) return
      clearTimeout(p.timer)
      this.pending.delete(msgId)
      if (body.error !== undefined) {
        const e = body.error as { errCode?: number, errMsg?: string, paramErrs?: Array<{ paramPath?: string, errCode?: number, errMsg?: string }> }
        p.reject(new UspErrorReply(msgId, e.errCode ?? 0, e.errMsg ?? '', (e.paramErrs ?? []).map(x => ({ paramPath: x.paramPath ?? '', errCode: x.errCode ?? 0, errMsg: x.errMsg ?? '' }))))
      } else {
        p.resolve({ msgId, fromId, msg: msg as Record<string, unknown>, response: body.response!, elapsedMs: Date.now() - p.sentAt })
      }
      return
    }
    const notify = body.request?.notify as { subscriptionId?: string, sendResp?: boolean } | undefined
    if (notify !== undefined) {
      this.notifications.push({ fromId, msgId, notify: notify as Record<string, unknown>, at })
      this.emit('notify')
      // R-NOT: a Notify with send_resp=true expects a NotifyResp with the same msg_id and subscription_id
      if (notify.sendResp === true && replyTo !== undefined) {
        const answer = encodeRecord({ toId: fromId, fromId: this.opts.endpointId, noSessionContext: { payload: encodeMsg({ msgId, body: { response: { notifyResp: { subscriptionId: notify.subscriptionId ?? '' } } } }) } })
        this.send(replyTo.startsWith(`${this.opts.tenant}/`) ? replyTo : `${this.opts.tenant}/usp/agent/${fromId}`, answer).catch(err => { this.emit('warning', err) })
      }
    }
  }
}
