// The uspgate Grafana dashboards as code, with Grafana's foundation SDK (@grafana/grafana-foundation-sdk):
// its builders and types are generated from Grafana's dashboard schema, so `tsc` rejects a field or a value
// the schema does not have. `npm run dashboards` writes dashboards/grafana/*.json (the files Grafana
// provisions); test/dashboards checks the committed JSON is what this file builds, and that every query
// names metrics and labels the gateway exports.
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import * as common from '@grafana/grafana-foundation-sdk/common'
import { DashboardBuilder, DatasourceVariableBuilder, QueryVariableBuilder, RowBuilder, ThresholdsConfigBuilder, ThresholdsMode, VariableRefresh, VariableSort, type Dashboard } from '@grafana/grafana-foundation-sdk/dashboard'
import { DataqueryBuilder, PromQueryFormat } from '@grafana/grafana-foundation-sdk/prometheus'
import { PanelBuilder as TimeseriesPanel } from '@grafana/grafana-foundation-sdk/timeseries'
import { PanelBuilder as StatPanel } from '@grafana/grafana-foundation-sdk/stat'
import { PanelBuilder as TablePanel } from '@grafana/grafana-foundation-sdk/table'
import { PanelBuilder as BarGaugePanel } from '@grafana/grafana-foundation-sdk/bargauge'

/** Every query goes to the data source the user picks ($datasource): no data source uid is baked in. */
const DS: common.DataSourceRef = { type: 'prometheus', uid: '${datasource}' }
const NODE = 'node=~"$node"'
const RATE = '[$__rate_interval]'

function query (expr: string, legend?: string): DataqueryBuilder {
  const q = new DataqueryBuilder().datasource(DS).expr(expr)
  return legend !== undefined ? q.legendFormat(legend) : q
}

function timeseries (title: string, unit: string, description: string, ...queries: DataqueryBuilder[]): TimeseriesPanel {
  const p = new TimeseriesPanel().title(title).description(description).datasource(DS).unit(unit).height(8).span(12)
  for (const q of queries) p.withTarget(q)
  return p
}

function thresholds (...steps: Array<[number | null, string]>): ThresholdsConfigBuilder {
  return new ThresholdsConfigBuilder().mode(ThresholdsMode.Absolute).steps(steps.map(([value, color]) => ({ value, color })))
}

function variables (d: DashboardBuilder, withTenant: boolean): DashboardBuilder {
  d.withVariable(new DatasourceVariableBuilder('datasource').label('Data source').type('prometheus'))
  d.withVariable(new QueryVariableBuilder('node').label('Node').datasource(DS)
    .query('label_values(uspgate_build_info, node)').definition('label_values(uspgate_build_info, node)')
    .refresh(VariableRefresh.OnTimeRangeChanged).sort(VariableSort.AlphabeticalAsc).multi(true).includeAll(true).allValue('.*'))
  if (withTenant) {
    d.withVariable(new QueryVariableBuilder('tenant').label('Tenant').datasource(DS)
      .query('label_values(uspgate_security_events_total, tenant)').definition('label_values(uspgate_security_events_total, tenant)')
      .refresh(VariableRefresh.OnTimeRangeChanged).sort(VariableSort.AlphabeticalAsc).multi(true).includeAll(true).allValue('.*'))
  }
  return d
}

function base (uid: string, title: string, description: string): DashboardBuilder {
  return new DashboardBuilder(title).uid(uid).description(description).tags(['uspgate', 'mqtt', 'tr-369'])
    .refresh('30s').time({ from: 'now-6h', to: 'now' }).timezone('browser').editable()
}

export function trafficAndSecurity (): Dashboard {
  const d = variables(base('uspgate-traffic-security', 'uspgate / Traffic & security',
    'Connections, connect results, auth failures, denials (cross-tenant first), policy revisions, USP records and message flow, per node and tenant.'), true)
  d.withRow(new RowBuilder('Connections'))
  d.withPanel(timeseries('Connected clients', 'short', 'MQTT connections by node, listener (mqtt / mqtts) and protocol level (3 = 3.1, 4 = 3.1.1, 5).',
    query(`sum by (node, listener, protocol) (uspgate_connections{${NODE}})`, '{{node}} {{listener}} v{{protocol}}')))
  d.withPanel(timeseries('CONNECT results by reason', 'cps', 'Accepted and refused CONNECTs per second; refusals carry the security event code.',
    query(`sum by (result, reason) (rate(uspgate_connect_total{${NODE}}${RATE}))`, '{{result}} {{reason}}')))
  d.withPanel(timeseries('Auth failures and throttling', 'cps', 'Refused logins by code; auth.throttled is the back-off of repeated failures for one username and address.',
    query(`sum by (node, reason) (rate(uspgate_connect_total{${NODE}, result="refused", reason=~"auth\\\\..*"}${RATE}))`, '{{node}} {{reason}}')))
  d.withPanel(new StatPanel().title('Cross-tenant attempts').description('acl.cross_tenant events in the time range, all nodes (tenant = the tenant that tried). Anything above 0 deserves a look.')
    .datasource(DS).height(8).span(12).unit('short').thresholds(thresholds([null, 'green'], [1, 'red']))
    .withTarget(query(`sum by (tenant) (increase(uspgate_security_events_total{${NODE}, tenant=~"$tenant", code="acl.cross_tenant"}[$__range]))`, '{{tenant}}')))

  d.withRow(new RowBuilder('Denials and security events'))
  d.withPanel(timeseries('Denials by code and tenant', 'eps', 'Security events of the acl.*, session.*, usp.* and limits.* families per second. acl.cross_tenant is drawn in red.',
    query(`sum by (code, tenant) (rate(uspgate_security_events_total{${NODE}, tenant=~"$tenant", code=~"(acl|session|usp|limits)\\\\..*"}${RATE}))`, '{{code}} {{tenant}}'))
    .overrideByRegexp('acl\\.cross_tenant.*', [{ id: 'color', value: { mode: 'fixed', fixedColor: 'red' } }, { id: 'custom.lineWidth', value: 3 }]))
  d.withPanel(timeseries('Authorization decisions', 'ops', 'Policy decisions per second by action and result (cached and uncached).',
    query(`sum by (action, result) (rate(uspgate_decisions_total{${NODE}}${RATE}))`, '{{action}} {{result}}')))
  d.withPanel(timeseries('Uncached decision latency (p99)', 's', 'One policy (OPA wasm) evaluation on a decision-cache miss.',
    query(`histogram_quantile(0.99, sum by (le, action) (rate(uspgate_decision_seconds_bucket{${NODE}}${RATE})))`, '{{action}}')))

  d.withRow(new RowBuilder('Policy'))
  d.withPanel(new TablePanel().title('Active policy revision per node').description('stable / canary / shadow revision on every node; every node should show the same stable revision.')
    .datasource(DS).height(8).span(12)
    .withTarget(query(`max by (node, slot, revision) (uspgate_policy_active_info{${NODE}})`).format(PromQueryFormat.Table).instant()))
  d.withPanel(new StatPanel().title('Canary auto-rollbacks').description('Canary revisions switched off by the rollback guard in the time range.')
    .datasource(DS).height(8).span(12).thresholds(thresholds([null, 'green'], [1, 'orange']))
    .withTarget(query(`sum(increase(uspgate_policy_auto_rollbacks_total{${NODE}}[$__range]))`)))

  d.withRow(new RowBuilder('USP and messages'))
  d.withPanel(timeseries('USP records by type and result', 'ops', 'USP Records on inbox topics by record and message type; result="refused" are envelope or schema refusals.',
    query(`sum by (record_type, msg_type, result) (rate(uspgate_usp_records_total{${NODE}}${RATE}))`, '{{record_type}} {{msg_type}} {{result}}')))
  d.withPanel(timeseries('Messages in / out', 'ops', 'PUBLISH packets accepted from clients and delivered to subscribers.',
    query(`sum by (node) (rate(uspgate_messages_received_total{${NODE}}${RATE}))`, '{{node}} in'),
    query(`sum by (node) (rate(uspgate_messages_sent_total{${NODE}}${RATE}))`, '{{node}} out')))
  d.withPanel(timeseries('Messages dropped by reason', 'ops', 'Messages not accepted or not delivered, by reason (limits.slow_consumer: a subscriber that does not read).',
    query(`sum by (reason) (rate(uspgate_messages_dropped_total{${NODE}}${RATE}))`, '{{reason}}')))
  d.withPanel(timeseries('Slow consumers', 'ops', 'Live deliveries dropped because a subscriber stopped reading, per node.',
    query(`sum by (node) (rate(uspgate_messages_dropped_total{${NODE}, reason="limits.slow_consumer"}${RATE}))`, '{{node}}')))
  d.withPanel(timeseries('Sessions, subscriptions, retained and queued', 'short', 'Connected and stored sessions, subscriptions of connected clients, retained messages and QoS 1/2 messages waiting in the store.',
    query(`sum by (node, state) (uspgate_sessions{${NODE}})`, '{{node}} sessions {{state}}'),
    query(`sum by (node) (uspgate_subscriptions{${NODE}})`, '{{node}} subscriptions'),
    query(`max(uspgate_retained_messages{${NODE}})`, 'retained'),
    query(`max(uspgate_queued_messages{${NODE}})`, 'queued')))
  return d.build()
}

export function runtimeAndCluster (): Dashboard {
  const d = variables(base('uspgate-runtime-cluster', 'uspgate / Runtime & cluster',
    'Redis link and control-channel lag, certificate expiry horizon, event-loop lag, memory and file descriptors, per node.'), false)
  d.withRow(new RowBuilder('Cluster'))
  d.withPanel(new StatPanel().title('Redis up').description('1 while the node has working Redis connections and a resynchronised state copy (cluster mode).')
    .datasource(DS).height(6).span(12).thresholds(thresholds([null, 'red'], [1, 'green']))
    .withTarget(query(`min by (node) (uspgate_redis_up{${NODE}})`, '{{node}}')))
  d.withPanel(timeseries('Control-channel lag (p99)', 's', 'Time from a control message (revocation, policy change) being published by one node to its receipt by another.',
    query(`histogram_quantile(0.99, sum by (le, node) (rate(uspgate_control_lag_seconds_bucket{${NODE}}${RATE})))`, '{{node}}')))
  d.withPanel(new TablePanel().title('Build per node').datasource(DS).height(6).span(12)
    .withTarget(query(`max by (node, version, nodejs_version) (uspgate_build_info{${NODE}})`).format(PromQueryFormat.Table).instant()))

  d.withRow(new RowBuilder('Certificates'))
  d.withPanel(new BarGaugePanel().title('Certificate expiry horizon (days)').description('Days until the root CA, the MQTTS server certificate and each tenant / imported CA expire.')
    .datasource(DS).height(8).span(24).unit('d').thresholds(thresholds([null, 'red'], [7, 'orange'], [30, 'green']))
    .withTarget(query(`min by (name) ((uspgate_cert_expiry_timestamp_seconds{${NODE}} - time()) / 86400)`, '{{name}}').instant()))

  d.withRow(new RowBuilder('Process'))
  d.withPanel(timeseries('Event-loop lag (p99)', 's', 'A busy event loop delays every client on the node.',
    query(`max by (node) (nodejs_eventloop_lag_p99_seconds{${NODE}})`, '{{node}}')))
  d.withPanel(timeseries('Memory', 'bytes', 'Resident set size and V8 heap in use.',
    query(`sum by (node) (process_resident_memory_bytes{${NODE}})`, '{{node}} rss'),
    query(`sum by (node) (nodejs_heap_size_used_bytes{${NODE}})`, '{{node}} heap used')))
  d.withPanel(timeseries('File descriptors', 'percentunit', 'Open file descriptors (each MQTT connection holds one) as a share of the limit.',
    query(`max by (node) (process_open_fds{${NODE}} / process_max_fds{${NODE}})`, '{{node}}')))
  d.withPanel(timeseries('CPU', 'percentunit', 'CPU seconds per second (1 = one core).',
    query(`sum by (node) (rate(process_cpu_seconds_total{${NODE}}${RATE}))`, '{{node}}')))
  return d.build()
}

export const DASHBOARDS: Record<string, () => Dashboard> = {
  'uspgate-traffic-security.json': trafficAndSecurity,
  'uspgate-runtime-cluster.json': runtimeAndCluster
}

export function render (build: () => Dashboard): string {
  return JSON.stringify(build(), null, 2) + '\n'
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [file, build] of Object.entries(DASHBOARDS)) {
    writeFileSync(new URL(`./grafana/${file}`, import.meta.url), render(build))
    console.log(`dashboards/grafana/${file}`)
  }
}
