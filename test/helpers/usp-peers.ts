// USP peers for integration tests: a USP Agent and a USP Controller written with mqtt.js and the
// schema-backed encoders of broker/usp, speaking the TR-369 MQTT binding through a real gateway.
//
// The MQTT binding is implemented here on purpose, independently of broker/usp/topics.ts, from the
// spec text (usp-tr369-facts.md §3): so a gateway bug in parsing reply-to topics cannot hide behind
// the same bug in the test peers.
//   - MQTT 5: CONNECT user property `usp-endpoint-id` (R-MQTT.13), Request Response Information = 1
//     (R-MQTT.12); subscribe to every CONNACK `subscribe-topic` and the Response Information
//     (R-MQTT.15); every PUBLISH carries Response Topic (R-MQTT.23) and Content Type `usp.msg`
//     (R-MQTT.27).
//   - MQTT 3.1.1: subscribe `<inbox>/#`; the reply-to travels as the topic suffix
//     `/reply-to=<topic with every "/" as %2F>` (R-MQTT.24); a receiver takes what follows the LAST
//     `/reply-to=` and turns `%2F` back into `/` (R-MQTT.25).
import mqtt, { type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt'
import {
  encodeMsg, encodeRecord, fullyDecodeMsg, fullyDecodeRecord, peekRecord,
  type MsgInput, type PeekResult, type RecordInput
} from '../../broker/usp/index.ts'
import { provision, type TestGateway } from './gateway.ts'

export type Role = 'agent' | 'controller'
export type MqttV = 4 | 5

/** TR-369 R-MQTT.27: what a USP endpoint puts in Content Type. */
export const USP_CONTENT_TYPE = 'usp.msg'

const REPLY_TO = '/reply-to='

/** `<tenant>/usp/<role>/<endpoint id>` (DESIGN.md topic layout). */
export function inboxOf (tenant: string, role: Role, endpointId: string): string {
  return `${tenant}/usp/${role}/${endpointId}`
}

/** `<topic>/reply-to=<replyTo with every "/" as %2F>` (TR-369 R-MQTT.24). */
export function withReplyToSuffix (topic: string, replyTo: string): string {
  return topic + REPLY_TO + replyTo.split('/').join('%2F')
}

/** Splits an MQTT 3.1.1 topic into destination and reply-to (TR-369 R-MQTT.25). */
export function splitReplyTo (topic: string): { destination: string, replyTo?: string } {
  const at = topic.lastIndexOf(REPLY_TO)
  if (at < 0) return { destination: topic }
  return { destination: topic.slice(0, at), replyTo: topic.slice(at + REPLY_TO.length).replace(/%2F/gi, '/') }
}

export interface ReceivedMessage {
  topic: string
  payload: Buffer
  qos: number
  retain: boolean
  responseTopic?: string
  contentType?: string
  /** The topic without a 3.1.1 reply-to suffix. */
  destination: string
  /** Where an answer goes: the MQTT 5 Response Topic, else the 3.1.1 suffix. */
  replyTo?: string
  /** The gateway's own envelope peek of the payload. */
  envelope: PeekResult
  /** protobufjs' full decode of the Record, when it accepts the bytes. */
  record?: Record<string, unknown>
  /** protobufjs' full decode of a no_session_context Msg, when there is one and it decodes. */
  msg?: Record<string, unknown>
  /** Arrival time (ms since the epoch). */
  at: number
}

export interface PublishResult {
  /** PUBACK reason code (MQTT 5) or 0; undefined for QoS 0 or when the connection closed first. */
  reasonCode?: number
  error?: Error & { code?: number }
  /** The connection closed before the publish completed (the MQTT 3.1.1 answer to a denied PUBLISH). */
  closed: boolean
}

export interface PeerOptions {
  tenant: string
  endpointId: string
  role: Role
  secret: string
  /** Username; defaults to `<tenant>:<endpointId>`. */
  username?: string
  v?: MqttV
  /** Wire client id; '' lets an MQTT 5 client be assigned one (R-MQTT.8). Default: a readable unique id. */
  clientId?: string
  /** MQTT 5 CONNECT user property usp-endpoint-id; defaults to the endpoint id, null leaves it out. */
  uspEndpointIdProperty?: string | string[] | null
  /** MQTT 5 Request Response Information; default true. */
  requestResponseInformation?: boolean
  extra?: IClientOptions
}

let clientSeq = 0

/** Creates the tenant if needed and issues a credential; returns the secret. */
export async function enrol (t: TestGateway, tenant: string, endpointId: string, role: Role): Promise<string> {
  return (await provision(t, tenant, endpointId, role)).secret
}

/** A USP endpoint on one MQTT connection. */
export class UspPeer {
  readonly messages: ReceivedMessage[] = []
  readonly inbox: string
  readonly tenant: string
  readonly endpointId: string
  readonly role: Role
  readonly v: MqttV
  readonly clientId: string
  closed = false
  private msgSeq = 0
  private responder: ((m: ReceivedMessage) => void) | undefined

  private constructor (readonly client: MqttClient, readonly connack: IConnackPacket, opts: PeerOptions, clientId: string) {
    this.tenant = opts.tenant
    this.endpointId = opts.endpointId
    this.role = opts.role
    this.v = opts.v ?? 5
    this.clientId = clientId
    this.inbox = inboxOf(opts.tenant, opts.role, opts.endpointId)
    client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet))
    client.on('close', () => { this.closed = true })
  }

  /** CONNECT; resolves on CONNACK 0, rejects with `err.code` = the CONNACK reason/return code. */
  static async connect (t: TestGateway, opts: PeerOptions): Promise<UspPeer> {
    const v = opts.v ?? 5
    const clientId = opts.clientId ?? `${opts.role}-${v}-${++clientSeq}-${opts.endpointId.replace(/[^A-Za-z0-9]/g, '').slice(-12)}`
    const props: NonNullable<IClientOptions['properties']> = {}
    if (v === 5) {
      if (opts.requestResponseInformation !== false) props.requestResponseInformation = true
      const eid = opts.uspEndpointIdProperty === undefined ? opts.endpointId : opts.uspEndpointIdProperty
      if (eid !== null) props.userProperties = { 'usp-endpoint-id': eid }
    }
    return await new Promise((resolve, reject) => {
      const client = mqtt.connect({
        host: '127.0.0.1',
        port: t.mqttPort,
        protocolVersion: v,
        reconnectPeriod: 0,
        connectTimeout: 5000,
        clean: true,
        clientId,
        username: opts.username ?? `${opts.tenant}:${opts.endpointId}`,
        password: opts.secret,
        ...(v === 5 ? { properties: props } : {}),
        ...opts.extra
      })
      const fail = (err: Error): void => { client.end(true); reject(err) }
      const onClose = (): void => fail(Object.assign(new Error('closed before CONNACK'), { code: 'closed' }))
      client.once('connect', connack => {
        client.off('error', fail)
        client.off('close', onClose)
        resolve(new UspPeer(client, connack, { ...opts, v }, clientId))
      })
      client.once('error', fail)
      client.once('close', onClose)
    })
  }

  /** CONNACK user property `subscribe-topic` (MQTT 5), as a list. */
  get subscribeTopics (): string[] {
    const p = this.connack.properties?.userProperties?.['subscribe-topic']
    return p === undefined ? [] : Array.isArray(p) ? p : [p]
  }

  /** CONNACK Response Information (MQTT 5). */
  get responseInformation (): string | undefined {
    return this.connack.properties?.responseInformation
  }

  /** Where this endpoint asks to be answered: Response Information if the server gave one, else its inbox. */
  get replyTo (): string {
    return this.responseInformation ?? this.inbox
  }

  /**
   * Subscribes as a TR-369 endpoint does (R-MQTT.15-17): MQTT 5 Agents the CONNACK subscribe-topics
   * and Response Information; everyone else (3.1.1 endpoints, Controllers, which may be answered by
   * 3.1.1 Agents with a suffix) `<inbox>/#`. Returns the granted QoS per filter.
   */
  async subscribeInbox (qos: 0 | 1 = 1): Promise<Array<{ topic: string, qos: number }>> {
    let filters: string[]
    if (this.v === 5 && this.role === 'agent') {
      filters = [...new Set([...this.subscribeTopics, ...(this.responseInformation ? [this.responseInformation] : [])])]
      if (filters.length === 0) filters = [this.inbox]
    } else {
      filters = [`${this.inbox}/#`]
    }
    const granted = []
    for (const f of filters) granted.push({ topic: f, qos: await this.subscribe(f, qos) })
    return granted
  }

  /** One SUBSCRIBE; resolves with the granted QoS or the SUBACK failure code. */
  subscribe (filter: string, qos: 0 | 1 = 1): Promise<number> {
    return new Promise((resolve, reject) => this.client.subscribe(filter, { qos }, (err, granted) => {
      const suback = (err as (Error & { packet?: { granted: number[] } }) | null)?.packet
      if (suback) resolve(suback.granted[0]!)
      else if (err) reject(err)
      else resolve(granted![0]!.qos)
    }))
  }

  /** PUBLISH raw bytes; resolves with the PUBACK reason, or `closed` when the server hung up. */
  publish (topic: string, payload: Buffer | string, opts: { qos?: 0 | 1, retain?: boolean, responseTopic?: string, contentType?: string } = {}): Promise<PublishResult> {
    const qos = opts.qos ?? 1
    const properties: NonNullable<IPublishPacket['properties']> = {}
    if (opts.responseTopic !== undefined) properties.responseTopic = opts.responseTopic
    if (opts.contentType !== undefined) properties.contentType = opts.contentType
    return new Promise(resolve => {
      if (this.closed) return resolve({ closed: true })
      let settled = false
      const onClose = (): void => finish({ closed: true })
      const finish = (r: PublishResult): void => {
        if (settled) return
        settled = true
        this.client.off('close', onClose)
        resolve(r)
      }
      this.client.once('close', onClose)
      this.client.publish(topic, payload, {
        qos,
        retain: opts.retain ?? false,
        ...(this.v === 5 && Object.keys(properties).length > 0 ? { properties } : {})
      }, (err, packet) => {
        if (err) return finish({ error: err as Error & { code?: number }, reasonCode: (err as { code?: number }).code, closed: this.closed })
        const rc = (packet as { reasonCode?: number } | undefined)?.reasonCode
        finish(qos === 0 ? { closed: false } : { reasonCode: rc ?? 0, closed: false })
      })
    })
  }

  /**
   * Sends a USP Record to a destination inbox the way this endpoint's MQTT version requires:
   * MQTT 5 with Response Topic and Content Type `usp.msg`; MQTT 3.1.1 with the reply-to suffix.
   * `suffix: true` makes an MQTT 5 sender also append the suffix (for a 3.1.1 receiver).
   */
  sendRecord (destination: string, record: Buffer, opts: {
    qos?: 0 | 1, replyTo?: string | null, contentType?: string | null, suffix?: boolean, retain?: boolean
  } = {}): Promise<PublishResult> {
    const replyTo = opts.replyTo === undefined ? this.replyTo : opts.replyTo
    let topic = destination
    if (replyTo !== null && (this.v === 4 || opts.suffix === true)) topic = withReplyToSuffix(destination, replyTo)
    const pub: { qos?: 0 | 1, retain?: boolean, responseTopic?: string, contentType?: string } = { qos: opts.qos ?? 1 }
    if (opts.retain !== undefined) pub.retain = opts.retain
    if (this.v === 5) {
      if (replyTo !== null) pub.responseTopic = replyTo
      const ct = opts.contentType === undefined ? USP_CONTENT_TYPE : opts.contentType
      if (ct !== null) pub.contentType = ct
    }
    return this.publish(topic, record, pub)
  }

  /** A no_session_context Record from this endpoint carrying `msg`. */
  record (toId: string, msg: MsgInput, overrides: Partial<RecordInput> = {}): Buffer {
    return encodeRecord({ version: '1.3', toId, fromId: this.endpointId, noSessionContext: { payload: encodeMsg(msg) }, ...overrides })
  }

  /** An MQTTConnectRecord announcing where this endpoint listens (TR-369 R-MTP.6). */
  connectRecord (toId: string, overrides: Partial<RecordInput> = {}): Buffer {
    return encodeRecord({
      version: '1.3',
      toId,
      fromId: this.endpointId,
      mqttConnect: { version: this.v === 5 ? 'V5' : 'V3_1_1', subscribedTopic: this.replyTo },
      ...overrides
    })
  }

  nextMsgId (prefix: string): string {
    return `${prefix}-${this.endpointId}-${++this.msgSeq}`
  }

  /** Received messages whose payload peeks as a Record (in arrival order). */
  get records (): ReceivedMessage[] {
    return this.messages.filter(m => m.envelope.ok)
  }

  /** Waits until a received message matches; returns it. */
  async waitFor (pred: (m: ReceivedMessage) => boolean, timeoutMs = 3000, what = 'a message'): Promise<ReceivedMessage> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const m = this.messages.find(pred)
      if (m) return m
      if (Date.now() > deadline) {
        throw new Error(`${this.role} ${this.endpointId}: timed out waiting for ${what}; got ${JSON.stringify(this.messages.map(x => x.topic))}`)
      }
      await new Promise(r => setTimeout(r, 10))
    }
  }

  /** Waits for a Record carrying a Msg with this msg_id. */
  async waitForMsg (msgId: string, timeoutMs = 3000): Promise<ReceivedMessage> {
    return await this.waitFor(m => msgIdOf(m) === msgId, timeoutMs, `msg_id ${msgId}`)
  }

  /**
   * Agent behaviour: answers every Get addressed to it with a GetResp carrying the same msg_id
   * (R-MSG.9), published to the reply-to the Get arrived with (R-MQTT.26 / TP-469 11.14) and
   * carrying its own reply-to. `values` maps requested paths to result params.
   */
  answerGets (values: (path: string) => Record<string, string> = () => ({ Manufacturer: 'ACME' })): void {
    this.responder = m => {
      const req = (m.msg?.body as { request?: { get?: { paramPaths?: string[] } } } | undefined)?.request?.get
      const env = m.envelope
      if (req === undefined || !env.ok || env.toId !== this.endpointId || m.replyTo === undefined) return
      const msgId = msgIdOf(m)!
      const paths = req.paramPaths ?? []
      const answer = this.record(env.fromId, {
        msgId,
        body: {
          response: {
            getResp: {
              reqPathResults: paths.map(p => ({ requestedPath: p, resolvedPathResults: [{ resolvedPath: p.replace(/[^.]*$/, ''), resultParams: values(p) }] }))
            }
          }
        }
      })
      void this.sendRecord(m.replyTo, answer)
    }
  }

  /** DISCONNECT and close; never hangs on a connection the server already closed. */
  async close (): Promise<void> {
    if (this.closed) {
      this.client.end(true)
      return
    }
    await new Promise<void>(resolve => {
      const timer = setTimeout(() => { this.client.end(true); resolve() }, 1000)
      this.client.end(false, {}, () => { clearTimeout(timer); resolve() })
    })
  }

  /** Drops the TCP connection without DISCONNECT. */
  kill (): void {
    (this.client as unknown as { stream: { destroy(): void } }).stream.destroy()
  }

  private onMessage (topic: string, payload: Buffer, packet: IPublishPacket): void {
    const { destination, replyTo: suffixReplyTo } = splitReplyTo(topic)
    const responseTopic = packet.properties?.responseTopic
    const contentType = packet.properties?.contentType
    const m: ReceivedMessage = {
      topic,
      payload: Buffer.from(payload),
      qos: packet.qos,
      retain: packet.retain,
      destination,
      envelope: peekRecord(payload),
      at: Date.now()
    }
    if (responseTopic !== undefined) m.responseTopic = responseTopic
    if (contentType !== undefined) m.contentType = contentType
    const replyTo = responseTopic ?? suffixReplyTo
    if (replyTo !== undefined) m.replyTo = replyTo
    try {
      const rec = fullyDecodeRecord(payload)
      m.record = rec
      const inner = (rec.noSessionContext as { payload?: Uint8Array } | undefined)?.payload
      if (inner !== undefined) {
        try { m.msg = fullyDecodeMsg(inner) } catch { /* not a Msg */ }
      }
    } catch { /* not a Record (status "1"/"0", Bulk Data JSON, ...) */ }
    this.messages.push(m)
    this.responder?.(m)
  }
}

/** The msg_id of a received Record's Msg, if it carries one. */
export function msgIdOf (m: ReceivedMessage): string | undefined {
  return (m.msg?.header as { msgId?: string } | undefined)?.msgId
}

/**
 * The MQTTConnectRecord of a received Record, if it is one. protobufjs leaves proto3 defaults out
 * of its decode, so a missing version is V3_1_1 (= 0).
 */
export function mqttConnectOf (m: ReceivedMessage): { version: string, subscribedTopic: string } | undefined {
  const c = m.record?.mqttConnect as { version?: string, subscribedTopic?: string } | undefined
  return c === undefined ? undefined : { version: c.version ?? 'V3_1_1', subscribedTopic: c.subscribedTopic ?? '' }
}

/** The msg_type name of a received Record's Msg, if it carries one. */
export function msgTypeOf (m: ReceivedMessage): string | undefined {
  return (m.msg?.header as { msgType?: string } | undefined)?.msgType
}

/** A Get of some DeviceInfo parameters (what oktopus sends first). */
export function getMsg (msgId: string, paramPaths = ['Device.DeviceInfo.Manufacturer', 'Device.DeviceInfo.SerialNumber']): MsgInput {
  return { msgId, body: { request: { get: { paramPaths, maxDepth: 1 } } } }
}

/** A Boot! event Notify (TR-181 Device.Boot!, usp-tr369-facts.md §4). */
export function bootNotifyMsg (msgId: string, params: Record<string, string> = {}): MsgInput {
  return {
    msgId,
    body: {
      request: {
        notify: {
          subscriptionId: 'boot-subscription',
          sendResp: true,
          event: {
            objPath: 'Device.',
            eventName: 'Boot!',
            params: { CommandKey: '', Cause: 'LocalReboot', FirmwareUpdated: 'false', ParameterMap: '{}', ...params }
          }
        }
      }
    }
  }
}

/** Waits a little and resolves: for "nothing else arrives" checks after a sentinel. */
export const pause = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))
