// Prometheus metrics (prefix uspgate_, plus the standard unprefixed process_* / nodejs_* metrics so stock
// Node dashboards work). One registry per gateway instance so several gateways can run in one process
// (tests, benchmarks); every series carries `node` (the stable node id). Labels are bounded: never a
// client id or topic; `tenant` only for tenants that exist in the store (an unknown tenant named in a
// CONNECT is attacker-chosen, so it counts as tenant="").
// Series whose label values are known up front are created at zero, so rate()/increase() and alerts see
// the first event instead of a series appearing from nothing.
import { readFileSync } from 'node:fs'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { EVENT_CODES } from './event-codes.ts'

/** Listener names of the gateway's MQTT sockets (TCP, TLS, WebSocket, secure WebSocket), and the MQTT protocol levels (3 = 3.1, 4 = 3.1.1, 5). */
const LISTENERS = ['mqtt', 'mqtts', 'ws', 'wss'] as const
const PROTOCOLS = ['3', '4', '5'] as const
/** Reasons a message is dropped (uspgate_messages_dropped_total): the codes mqtt hooks count. */
export const DROP_REASONS = ['acl.cross_tenant', 'acl.denied', 'acl.reserved_topic', 'acl.invalid_topic', 'limits.rate_limited', 'limits.slow_consumer', 'session.before_connack'] as const
/** Actions the policy engine decides. */
const ACTIONS = ['connect', 'publish', 'subscribe', 'deliver'] as const

/**
 * prom-client's labels() validates and copies its values into a new child on every call; a path taken
 * per connection or per message keeps one child per label set instead. The map is bounded: a label
 * that grows over time (a policy revision) starts it afresh past `max` entries.
 */
export function labelled<C> (metric: { labels(...values: string[]): C }, max = 10_000): (...values: string[]) => C {
  const children = new Map<string, C>()
  return (...values) => {
    const k = values.join('\u0000')
    let child = children.get(k)
    if (child === undefined) {
      if (children.size >= max) children.clear()
      child = metric.labels(...values)
      children.set(k, child)
    }
    return child
  }
}

/** One line of a histogram's exposition, in prom-client's metric shape. */
interface HistogramValue { labels: Record<string, string | number>, sharedLabels: Record<string, string>, value: number, metricName: string }

/**
 * A histogram with one label, observed on a hot path (a policy evaluation on every connect and
 * subscribe): observe() adds to plain numbers, and the registry reads them when /metrics is rendered
 * (prom-client's Registry takes any metric object with get(); the exposition is prom-client's own,
 * test/core/hot-histogram.test.ts holds it equal to a prom-client Histogram's). prom-client's
 * Histogram#observe hashes the labels and turns the bucket bound into a property key on every call:
 * ~9 µs per observation inside the fleet bench's gateway at 10,000 agents, two per connect.
 */
export class HotHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly series = new Map<string, { counts: Float64Array, sum: number, count: number }>()

  constructor (readonly name: string, readonly help: string, private readonly labelName: string, private readonly buckets: readonly number[], registers: Registry[]) {
    for (const r of registers) r.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0])
  }

  /** The series of one label value, created at zero the first time. */
  zero (labelValue: string): { counts: Float64Array, sum: number, count: number } {
    let s = this.series.get(labelValue)
    if (s === undefined) { s = { counts: new Float64Array(this.buckets.length), sum: 0, count: 0 }; this.series.set(labelValue, s) }
    return s
  }

  observe (labelValue: string, value: number): void {
    const s = this.zero(labelValue)
    const b = this.buckets
    for (let i = 0; i < b.length; i++) {
      if (value <= b[i]!) { s.counts[i]!++; break }
    }
    s.sum += value
    s.count++
  }

  /** prom-client's metric shape: per value its own labels (`le`) and the series' shared ones, in its order. */
  get (): { name: string, help: string, type: 'histogram', aggregator: 'sum', values: HistogramValue[] } {
    const values: HistogramValue[] = []
    const bucket = `${this.name}_bucket`
    for (const [labelValue, s] of this.series) {
      const sharedLabels = { [this.labelName]: labelValue }
      let cumulative = 0
      this.buckets.forEach((le, i) => {
        cumulative += s.counts[i]!
        values.push({ labels: { le }, sharedLabels, value: cumulative, metricName: bucket })
      })
      values.push({ labels: { le: '+Inf' }, sharedLabels, value: s.count, metricName: bucket })
      values.push({ labels: {}, sharedLabels, value: s.sum, metricName: `${this.name}_sum` })
      values.push({ labels: {}, sharedLabels, value: s.count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset (): void {
    for (const s of this.series.values()) { s.counts.fill(0); s.sum = 0; s.count = 0 }
  }
}

/** What the scrape-time gauges read from the running broker (set by the gateway once it is wired). */
export interface BrokerCounts {
  /** MQTT sessions with a live connection on this node. */
  connectedSessions: () => number
  /** Persistent sessions in the session store (embedded: this node; cluster: every node's, in Redis). */
  storedSessions: () => Promise<number>
  /** Subscriptions held by the clients connected to this node. */
  subscriptions: () => number
  /** Retained messages in the store (cluster: the shared Redis store). */
  retainedMessages: () => Promise<number>
  /** QoS 1/2 messages held in the store for subscribers until they acknowledge them. */
  queuedMessages: () => Promise<number>
}

function packageVersion (): string {
  // broker/metrics.ts and dist/broker/metrics.js both sit one folder below a package.json with the version
  for (const rel of ['../package.json', '../../package.json']) {
    try { return (JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown' } catch { /* next */ }
  }
  return 'unknown'
}

class HotChild {
  private n = 0
  constructor (private readonly target: { inc(n: number): void }) {}
  inc (): void { this.n++ }
  fold (): void {
    if (this.n === 0) return
    this.target.inc(this.n)
    this.n = 0
  }
}

export class Metrics {
  readonly registry = new Registry()
  readonly connections: Gauge
  readonly connectResults: Counter
  readonly decisions: Counter
  readonly decisionSeconds: HotHistogram
  readonly messagesIn: Counter
  readonly messagesOut: Counter
  readonly bytesIn: Counter
  readonly bytesOut: Counter
  readonly drops: Counter
  /** Times a client over its publish rate had its socket reads paused until its tokens refilled (fairness.ts). */
  readonly publishReadPauses: Counter
  readonly securityEvents: Counter
  readonly policyInfo: Gauge
  readonly uspRecords: Counter
  readonly buildInfo: Gauge
  readonly policyAutoRollbacks: Counter
  readonly controlLagSeconds: Histogram
  /** Set by the gateway; until then the broker gauges read 0. */
  brokerCounts: BrokerCounts | undefined
  readonly eventExportDropped: Counter

  /**
   * Per-message counts on the hot path are plain numbers, folded into the
   * Prometheus counters when /metrics is scraped: prom-client hashes label
   * values on every inc(), which costs more than the rest of a delivery.
   */
  readonly hot = { messagesIn: [0, 0, 0], messagesOut: [0, 0, 0], bytesIn: 0, bytesOut: 0 }

  private readonly hotFolds: Array<() => void> = []

  /**
   * The label children of a counter incremented per message (policy decisions, USP records): inc()
   * adds to a plain number, folded into the counter when /metrics is rendered, like `hot` above.
   * Memoised by label values and bounded like labelled() (at `max` children, folded and forgotten).
   */
  hotCounter (counter: Counter, max = 10_000): (a: string, b?: string, c?: string, d?: string) => { inc(): void } {
    const children = new Map<string, HotChild>()
    const fold = (): void => { for (const c of children.values()) c.fold() }
    this.hotFolds.push(fold)
    // The same label values come back message after message (often the very same strings): the last
    // child is answered without building a key.
    let la: string | undefined
    let lb: string | undefined
    let lc: string | undefined
    let ld: string | undefined
    let last: HotChild | undefined
    return (a, b, c, d) => {
      if (last !== undefined && a === la && b === lb && c === lc && d === ld) return last
      const values = [a, b, c, d].filter((v): v is string => v !== undefined)
      const k = values.join('\u0000')
      let child = children.get(k)
      if (child === undefined) {
        if (children.size >= max) { fold(); children.clear() }
        child = new HotChild(counter.labels(...values))
        children.set(k, child)
      }
      la = a; lb = b; lc = c; ld = d
      last = child
      return child
    }
  }

  private foldHotCounters (): void {
    for (const fold of this.hotFolds) fold()
    const h = this.hot
    for (let q = 0; q < 3; q++) {
      if (h.messagesIn[q]! > 0) { this.messagesIn.labels(String(q)).inc(h.messagesIn[q]!); h.messagesIn[q] = 0 }
      if (h.messagesOut[q]! > 0) { this.messagesOut.labels(String(q)).inc(h.messagesOut[q]!); h.messagesOut[q] = 0 }
    }
    if (h.bytesIn > 0) { this.bytesIn.inc(h.bytesIn); h.bytesIn = 0 }
    if (h.bytesOut > 0) { this.bytesOut.inc(h.bytesOut); h.bytesOut = 0 }
  }

  constructor (nodeId: string) {
    const registers = [this.registry]
    this.registry.setDefaultLabels({ node: nodeId })
    // unprefixed: process_cpu_seconds_total, nodejs_eventloop_lag_seconds, process_open_fds ... as every Node exporter names them
    collectDefaultMetrics({ register: this.registry })
    // prom-client's three gauges named *_total break the exposition conventions (promtool check metrics:
    // 'non-counter metrics should not have "_total" suffix'); nodejs_active_{handles,requests,resources}{type}
    // carry the same numbers by type (sum them for the total)
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name)
    this.buildInfo = new Gauge({ name: 'uspgate_build_info', help: 'Gateway build (value 1): version and Node.js runtime', labelNames: ['version', 'nodejs_version'], registers })
    this.buildInfo.labels(packageVersion(), process.version).set(1)
    this.connections = new Gauge({ name: 'uspgate_connections', help: 'Connected MQTT clients', labelNames: ['listener', 'protocol'], registers })
    for (const l of LISTENERS) for (const p of PROTOCOLS) this.connections.labels(l, p).set(0)
    this.connectResults = new Counter({ name: 'uspgate_connect_total', help: 'CONNECT outcomes', labelNames: ['result', 'reason'], registers })
    this.connectResults.labels('accepted', 'ok').inc(0)
    for (const code of Object.keys(EVENT_CODES)) if (code.startsWith('auth.')) this.connectResults.labels('refused', code).inc(0)
    this.decisions = new Counter({ name: 'uspgate_decisions_total', help: 'Authorization decisions', labelNames: ['action', 'result', 'reason', 'revision'], registers })
    this.decisionSeconds = new HotHistogram('uspgate_decision_seconds',
      'Time to decide one uncached authorization (one policy evaluation; cache hits are not timed)',
      'action', [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.01], registers)
    for (const a of ACTIONS) this.decisionSeconds.zero(a)
    this.messagesIn = new Counter({ name: 'uspgate_messages_received_total', help: 'PUBLISH packets accepted from clients', labelNames: ['qos'], registers })
    this.messagesOut = new Counter({ name: 'uspgate_messages_sent_total', help: 'PUBLISH packets delivered to subscribers', labelNames: ['qos'], registers })
    for (const q of ['0', '1', '2']) { this.messagesIn.labels(q).inc(0); this.messagesOut.labels(q).inc(0) }
    this.bytesIn = new Counter({ name: 'uspgate_bytes_received_total', help: 'Payload bytes accepted from clients', registers })
    this.bytesOut = new Counter({ name: 'uspgate_bytes_sent_total', help: 'Payload bytes delivered to subscribers', registers })
    this.drops = new Counter({ name: 'uspgate_messages_dropped_total', help: 'Messages not accepted or not delivered', labelNames: ['reason'], registers })
    for (const r of DROP_REASONS) this.drops.labels(r).inc(0)
    this.publishReadPauses = new Counter({ name: 'uspgate_publish_read_pauses_total', help: 'Times a client over its publish rate had its socket reads paused until its tokens refilled (backpressure)', registers })
    this.securityEvents = new Counter({ name: 'uspgate_security_events_total', help: 'Security events by code and tenant (tenant="" when none or not a known tenant)', labelNames: ['code', 'tenant'], registers })
    for (const code of Object.keys(EVENT_CODES)) this.securityEvents.labels(code, '').inc(0)
    this.uspRecords = new Counter({ name: 'uspgate_usp_records_total', help: 'USP Records on inbox topics', labelNames: ['record_type', 'msg_type', 'result'], registers })
    this.eventExportDropped = new Counter({ name: 'uspgate_event_export_dropped_total', help: 'Security events an export sink dropped (receiver down and buffer full)', labelNames: ['sink'], registers })
    this.policyInfo = new Gauge({ name: 'uspgate_policy_active_info', help: 'Active policy revision per slot (value 1)', labelNames: ['revision', 'slot'], registers })

    this.policyAutoRollbacks = new Counter({ name: 'uspgate_policy_auto_rollbacks_total', help: 'Canary revisions switched off by the rollback guard (not by an operator)', registers })
    this.controlLagSeconds = new Histogram({
      name: 'uspgate_control_lag_seconds',
      help: 'Cluster mode: time from a control message (revocation, policy change ...) being published by one node to its receipt here',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers
    })
    const metrics = this
    new Gauge({
      name: 'uspgate_sessions',
      help: 'MQTT sessions: state="connected" (live on this node), state="stored" (persistent sessions in the session store)',
      labelNames: ['state'],
      registers,
      async collect () {
        const c = metrics.brokerCounts
        this.labels('connected').set(c?.connectedSessions() ?? 0)
        this.labels('stored').set(c ? await c.storedSessions() : 0)
      }
    })
    new Gauge({ name: 'uspgate_subscriptions', help: 'Subscriptions of the clients connected to this node', registers, collect () { this.set(metrics.brokerCounts?.subscriptions() ?? 0) } })
    new Gauge({ name: 'uspgate_retained_messages', help: 'Retained messages in the store (cluster: shared by every node)', registers, async collect () { this.set(metrics.brokerCounts ? await metrics.brokerCounts.retainedMessages() : 0) } })
    new Gauge({ name: 'uspgate_queued_messages', help: 'QoS 1/2 messages held in the store for subscribers until they acknowledge them (cluster: shared by every node)', registers, async collect () { this.set(metrics.brokerCounts ? await metrics.brokerCounts.queuedMessages() : 0) } })
  }

  async render (): Promise<string> {
    this.foldHotCounters()
    return await this.registry.metrics()
  }
}
