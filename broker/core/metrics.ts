// Prometheus metrics (prefix uspgate_). One registry per gateway instance so
// several gateways can run in one process (tests, benchmarks). Labels are
// bounded: never a client id, topic or tenant (cardinality); per-tenant views
// come from the admin API.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export class Metrics {
  readonly registry = new Registry()
  readonly connections: Gauge
  readonly connectResults: Counter
  readonly decisions: Counter
  readonly decisionSeconds: Histogram
  readonly messagesIn: Counter
  readonly messagesOut: Counter
  readonly bytesIn: Counter
  readonly bytesOut: Counter
  readonly drops: Counter
  readonly securityEvents: Counter
  readonly policyInfo: Gauge
  readonly uspRecords: Counter

  /**
   * Per-message counts on the hot path are plain numbers, folded into the
   * Prometheus counters when /metrics is scraped: prom-client hashes label
   * values on every inc(), which costs more than the rest of a delivery.
   */
  readonly hot = { messagesIn: [0, 0, 0], messagesOut: [0, 0, 0], bytesIn: 0, bytesOut: 0 }

  private foldHotCounters (): void {
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
    collectDefaultMetrics({ register: this.registry, prefix: 'uspgate_' })
    this.connections = new Gauge({ name: 'uspgate_connections', help: 'Connected MQTT clients', labelNames: ['listener', 'protocol'], registers })
    this.connectResults = new Counter({ name: 'uspgate_connect_total', help: 'CONNECT outcomes', labelNames: ['result', 'reason'], registers })
    this.decisions = new Counter({ name: 'uspgate_decisions_total', help: 'Authorization decisions', labelNames: ['action', 'result', 'reason', 'revision'], registers })
    this.decisionSeconds = new Histogram({
      name: 'uspgate_decision_seconds',
      help: 'Time to decide one uncached authorization',
      labelNames: ['action'],
      buckets: [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.01],
      registers
    })
    this.messagesIn = new Counter({ name: 'uspgate_messages_received_total', help: 'PUBLISH packets accepted from clients', labelNames: ['qos'], registers })
    this.messagesOut = new Counter({ name: 'uspgate_messages_sent_total', help: 'PUBLISH packets delivered to subscribers', labelNames: ['qos'], registers })
    this.bytesIn = new Counter({ name: 'uspgate_bytes_received_total', help: 'Payload bytes accepted from clients', registers })
    this.bytesOut = new Counter({ name: 'uspgate_bytes_sent_total', help: 'Payload bytes delivered to subscribers', registers })
    this.drops = new Counter({ name: 'uspgate_messages_dropped_total', help: 'Messages not accepted or not delivered', labelNames: ['reason'], registers })
    this.securityEvents = new Counter({ name: 'uspgate_security_events_total', help: 'Security events by code', labelNames: ['code'], registers })
    this.uspRecords = new Counter({ name: 'uspgate_usp_records_total', help: 'USP Records on inbox topics', labelNames: ['record_type', 'msg_type', 'result'], registers })
    this.policyInfo = new Gauge({ name: 'uspgate_policy_active_info', help: 'Active policy revision per slot (value 1)', labelNames: ['revision', 'slot'], registers })
  }

  async render (): Promise<string> {
    this.foldHotCounters()
    return await this.registry.metrics()
  }
}
