// Fan-in/fan-out load: P publishers × S subscribers (mqtt.js, MQTT 5), every subscriber subscribed to
// every publisher's topic, 256-byte payloads stamped with process.hrtime at send. Publishers push as
// fast as the client allows with bounded in-flight, at both QoS levels: a publisher may have at most
// `window` messages that some subscriber has not received yet (end-to-end credit; a PUBACK alone
// would not bound the broker's queues, as aedes acknowledges before it delivers). Publishers send
// in batches, yield with setImmediate, and wait for 'drain' when the socket buffer is full.
// Deliveries are counted at the subscribers over a fixed window after a warm-up.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { Writable } from 'node:stream'
import { CpuWindow, Samples, sleep, until } from './stats.ts'
import type { ChildStats } from './brokers.ts'

export interface MqttIdentity {
  clientId: string
  /** USP Endpoint ID; also the publisher's topic level */
  endpointId: string
  username?: string
  password?: string
}

export interface FanoutOptions {
  /** port the publishers connect to */
  port: number
  /** port the subscribers connect to (default: port; differs on a multi-node target) */
  subscriberPort?: number
  qos: 0 | 1
  tenant: string
  publishers: MqttIdentity[]
  subscribers: MqttIdentity[]
  payloadBytes: number
  warmupMs: number
  measureMs: number
  /** in-flight bound per publisher: messages sent and not yet delivered to every subscriber */
  window: number
  /** PUBLISHes per publisher per turn of the event loop */
  batch: number
  brokerStats: () => Promise<ChildStats>
}

export interface FanoutResult {
  qos: 0 | 1
  /** messages delivered to subscribers per second over the window */
  deliveredPerSec: number
  /** PUBLISHes sent (QoS 0) or acknowledged (QoS 1) per second over the window */
  publishedPerSec: number
  latencyP50Us: number
  latencyP99Us: number
  latencyMaxUs: number
  latencySamples: number
  /** broker process CPU over the window, % of one core */
  brokerCpuPct: number
  /** broker CPU time per delivered message, µs (robust to other load on the machine) */
  brokerCpuUsPerMsg: number
  /** load generator (this process) CPU over the window, % of one core */
  loadgenCpuPct: number
  /** every other process on the machine over the window, % of one core (null off Linux) */
  otherCpuPct: number | null
  brokerRssMB: number
  windowMs: number
  publishErrors: number
  /** times a publisher's window was written off after 500 ms without deliveries (lost QoS 0) */
  stalls: number
  /** every (publisher, subscriber) pair delivered at least one message in the window */
  allPairsDelivered: boolean
}

/** Bytes 0-7: send time (hrtime ns), byte 8: publisher index, 9-12: sequence. */
export function topicFor (tenant: string, endpointId: string): string {
  return `${tenant}/bulkdata/${endpointId}/data`
}

export function connectClient (port: number, id: MqttIdentity, extra: IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({
      host: '127.0.0.1',
      port,
      protocolVersion: 5,
      clientId: id.clientId,
      ...(id.username !== undefined ? { username: id.username } : {}),
      ...(id.password !== undefined ? { password: id.password } : {}),
      clean: true,
      keepalive: 60,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      ...extra
    })
    const fail = (err: Error): void => { client.end(true); reject(new Error(`${id.clientId}: ${err.message}`)) }
    client.once('connect', () => {
      client.off('error', fail)
      client.on('error', () => { /* counted by callers */ })
      resolve(client)
    })
    client.once('error', fail)
    client.once('close', () => fail(new Error('connection closed before CONNACK')))
  })
}

/** Connects every identity; on any failure the ones that did connect are still handed to `into`. */
async function connectAll (port: number, ids: MqttIdentity[], into: MqttClient[]): Promise<MqttClient[]> {
  const settled = await Promise.allSettled(ids.map(id => connectClient(port, id)))
  const ok: MqttClient[] = []
  for (const r of settled) if (r.status === 'fulfilled') ok.push(r.value)
  into.push(...ok)
  const failed = settled.find(r => r.status === 'rejected')
  if (failed) throw (failed as PromiseRejectedResult).reason
  return ok
}

function subscribe (client: MqttClient, filter: string, qos: 0 | 1): Promise<void> {
  return new Promise((resolve, reject) => {
    client.subscribe(filter, { qos }, (err, granted) => {
      if (err) return reject(err)
      const g = granted?.[0]
      // mqtt.js reports an MQTT 5 SUBACK failure reason code (>= 0x80) in place of the granted QoS
      if (g === undefined || g.qos > 2) {
        return reject(new Error(`subscription to ${filter} refused: ${JSON.stringify(granted)}`))
      }
      resolve()
    })
  })
}

function endClient (c: MqttClient): Promise<void> {
  return new Promise(resolve => {
    const t = setTimeout(() => { c.end(true); resolve() }, 2000)
    c.end(false, {}, () => { clearTimeout(t); resolve() })
  })
}

export async function runFanout (o: FanoutOptions): Promise<FanoutResult> {
  const P = o.publishers.length
  const S = o.subscribers.length
  const clients: MqttClient[] = []
  let measuring = false
  let delivered = 0
  /** every delivery, also outside the window: used to wait for the broker to drain */
  let deliveredTotal = 0
  let published = 0
  let publishErrors = 0
  const latency = new Samples(1 << 20)
  const pairSeen = new Uint32Array(P * S)
  /** messages sent per publisher (= next sequence number) */
  const sent = new Float64Array(P)
  /** highest sequence of publisher p seen by subscriber s, at [p * S + s] */
  const lastSeen = new Float64Array(P * S).fill(-1)
  const blocked = new Uint8Array(P)
  let stalls = 0
  let stallTimer: NodeJS.Timeout | undefined
  let checkCredit = (_pi: number): void => {}
  /** messages of publisher pi that at least one subscriber has not received */
  const outstanding = (pi: number): number => {
    let min = Infinity
    for (let si = 0; si < S; si++) { const v = lastSeen[pi * S + si]!; if (v < min) min = v }
    return sent[pi]! - 1 - min
  }

  try {
    // Subscribers first, each on the whole bulkdata tree of the tenant (= every publisher's topic).
    const filter = `${o.tenant}/bulkdata/#`
    const subs = await connectAll(o.subscriberPort ?? o.port, o.subscribers, clients)
    await Promise.all(subs.map(s => subscribe(s, filter, o.qos)))
    subs.forEach((s, si) => {
      s.on('message', (_topic, payload) => {
        deliveredTotal++
        const pi = payload[8]!
        if (pi >= P) return
        const seq = payload.readUInt32BE(9)
        if (seq > lastSeen[pi * S + si]!) lastSeen[pi * S + si] = seq
        if (measuring) {
          latency.add(Number(process.hrtime.bigint() - payload.readBigUInt64BE(0)) / 1000)
          delivered++
          pairSeen[pi * S + si]!++
        }
        checkCredit(pi)
      })
    })

    const pubs = await connectAll(o.port, o.publishers, clients)

    const template = Buffer.alloc(o.payloadBytes, 0x5a)
    let running = true
    const unacked = new Int32Array(P)
    const payloadFor = (pi: number, seq: number): Buffer => {
      const b = Buffer.allocUnsafe(o.payloadBytes)
      template.copy(b)
      b.writeBigUInt64BE(process.hrtime.bigint(), 0)
      b[8] = pi
      b.writeUInt32BE(seq >>> 0, 9)
      return b
    }
    // End-to-end credit: a publisher may have at most `window` messages that some subscriber has
    // not received yet. Sequence-based, so a lost QoS 0 message does not leak credit.
    const pumps: Array<() => void> = []
    checkCredit = (pi: number): void => {
      if (blocked[pi] === 1 && outstanding(pi) <= o.window / 2) {
        blocked[pi] = 0
        setImmediate(pumps[pi]!)
      }
    }
    pubs.forEach((client, pi) => {
      const topic = topicFor(o.tenant, o.publishers[pi]!.endpointId)
      const stream = client.stream as unknown as Writable
      const onAck = (err?: Error): void => {
        unacked[pi]!--
        if (err) publishErrors++ // a refused PUBLISH (PUBACK >= 0x80) or a closing client
        else if (measuring) published++
      }
      const pump = (): void => {
        if (!running) return
        let n = Math.min(o.batch, o.window - outstanding(pi))
        while (n-- > 0) {
          const seq = sent[pi]!
          sent[pi] = seq + 1
          if (o.qos === 1) {
            unacked[pi]!++
            client.publish(topic, payloadFor(pi, seq), { qos: 1 }, onAck)
          } else {
            client.publish(topic, payloadFor(pi, seq), { qos: 0 })
            if (measuring) published++
          }
          if (stream.writableNeedDrain) break
        }
        if (stream.writableNeedDrain) stream.once('drain', () => setImmediate(pump))
        else if (outstanding(pi) >= o.window) blocked[pi] = 1 // resumed by deliveries (checkCredit)
        else setImmediate(pump)
      }
      pumps.push(pump)
      setImmediate(pump)
    })
    // A blocked publisher whose remaining messages were all lost (QoS 0) would wait forever:
    // after 500 ms without progress its window is written off.
    let lastTotal = -1
    stallTimer = setInterval(() => {
      if (deliveredTotal === lastTotal) {
        for (let pi = 0; pi < P; pi++) {
          if (blocked[pi] === 1) {
            stalls++
            for (let si = 0; si < S; si++) lastSeen[pi * S + si] = sent[pi]! - 1
            checkCredit(pi)
          }
        }
      }
      lastTotal = deliveredTotal
    }, 500)

    await sleep(o.warmupMs)
    const cpu = new CpuWindow(await o.brokerStats())
    measuring = true
    delivered = 0
    published = 0
    latency.reset()
    pairSeen.fill(0)
    await sleep(o.measureMs)
    measuring = false
    const s1 = await o.brokerStats()
    const { ms: windowMs, brokerPct, loadgenPct, otherPct } = cpu.end(s1)
    const countDelivered = delivered
    const countPublished = published
    running = false

    // Leave cleanly: QoS 1 windows acknowledged, then the broker's queues drained (deliveries
    // stopped for 300 ms). Subscribers must not leave while the broker still queues messages for
    // them: aedes 2.0.0-beta.1 then releases its mqemitter queue recursively (one stack frame
    // chain per queued message without subscribers) and dies with "Maximum call stack size
    // exceeded".
    await until(() => unacked.every(n => n <= 0), 10_000)
    let last = -1
    await until(() => {
      const settled = deliveredTotal === last
      last = deliveredTotal
      return settled
    }, 20_000, 300)
    const [p50, p99, pmax] = latency.percentiles([50, 99, 100])
    const result: FanoutResult = {
      qos: o.qos,
      deliveredPerSec: countDelivered / (windowMs / 1000),
      publishedPerSec: countPublished / (windowMs / 1000),
      latencyP50Us: p50!,
      latencyP99Us: p99!,
      latencyMaxUs: pmax!,
      latencySamples: latency.count,
      brokerCpuPct: brokerPct,
      brokerCpuUsPerMsg: brokerPct / 100 * windowMs * 1000 / Math.max(1, countDelivered),
      loadgenCpuPct: loadgenPct,
      otherCpuPct: otherPct ?? null,
      brokerRssMB: s1.rssBytes / 1024 / 1024,
      windowMs,
      publishErrors,
      stalls,
      allPairsDelivered: pairSeen.every(n => n > 0)
    }
    if (countDelivered === 0) throw new Error(`fan-out QoS ${o.qos}: no message was delivered in the window (publish errors: ${publishErrors})`)
    return result
  } finally {
    if (stallTimer) clearInterval(stallTimer)
    // publishers first (they were connected after the subscribers), then subscribers
    for (const group of [clients.slice(o.subscribers.length), clients.slice(0, o.subscribers.length)]) {
      await Promise.all(group.map(endClient))
    }
    // the broker has let go of every session before the next scenario starts (a dead broker
    // must not hide the error that got us here)
    await until(async () => (await o.brokerStats()).connectedClients === 0, 10_000, 100).catch(() => false)
  }
}
