// dashboards/: the committed Grafana JSON is what dashboards/build.ts builds with Grafana's foundation SDK
// (whose generated types are Grafana's dashboard schema: `tsc` checks the builder calls against it), every
// panel reads the data source variable, the Prometheus rules pass `promtool check rules` and their unit
// tests, every alert has a runbook entry, and every PromQL expression (panels, variables, rules) names
// metrics and labels that a running gateway really exports (a cluster-mode gateway with MQTTS, scraped).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { parser } from '@prometheus-io/lezer-promql'
import { DASHBOARDS, render } from '../../dashboards/build.ts'
import { startGateway, provision, connect, closeClient, type TestGateway } from '../helpers/gateway.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { samples, promtool } from '../helpers/prometheus.ts'

const DIR = join(import.meta.dirname, '..', '..', 'dashboards')
const PROM = join(DIR, 'prometheus')
/** Labels Prometheus adds to every scraped series (target labels), and the histogram bucket label. */
const TARGET_LABELS = new Set(['job', 'instance', 'le'])

interface Panel { type: string, title?: string, datasource?: { uid?: string }, targets?: Array<{ expr?: string, datasource?: { uid?: string } }> }
interface DashboardJson { uid: string, title: string, panels: Panel[], templating: { list: Array<{ type: string, name: string, query?: unknown, datasource?: { uid?: string } }> } }

function dashboards (): Array<{ file: string, json: DashboardJson }> {
  return readdirSync(join(DIR, 'grafana')).filter(f => f.endsWith('.json')).sort().map(file => ({ file, json: JSON.parse(readFileSync(join(DIR, 'grafana', file), 'utf8')) as DashboardJson }))
}

/** Every `expr:` of the rule files, with the recording rules' names. */
function rules (): Array<{ file: string, name: string, expr: string, record?: string }> {
  const out: Array<{ file: string, name: string, expr: string, record?: string }> = []
  for (const file of ['recording.yml', 'alerts.yml']) {
    let name = ''
    let record: string | undefined
    for (const line of readFileSync(join(PROM, file), 'utf8').split('\n')) {
      const r = /^\s+- (record|alert): (\S+)/.exec(line)
      if (r) { name = r[2]!; record = r[1] === 'record' ? r[2] : undefined }
      const e = /^\s+expr: (.+)$/.exec(line)
      if (e) out.push({ file, name, expr: e[1]!, ...(record ? { record } : {}) })
    }
  }
  return out
}

interface Selectors { metrics: Array<{ name: string, labels: string[] }>, grouping: string[], errors: string[] }

/** Metric names, matcher labels and by/without/on/ignoring labels of one PromQL expression (lezer-promql). */
function analyse (expr: string): Selectors {
  // Grafana's variables: ranges become durations, $vars in label values are plain strings already
  const src = expr.replace(/\$__rate_interval|\$__range|\$__interval/g, '5m')
  const out: Selectors = { metrics: [], grouping: [], errors: [] }
  const c = parser.parse(src).cursor()
  do {
    if (c.type.isError) out.errors.push(`syntax error at ${c.from}: ${src.slice(Math.max(0, c.from - 20), c.from + 20)}`)
    if (c.name === 'VectorSelector') {
      const node = c.node
      const id = node.getChild('Identifier')
      const labels: string[] = []
      const matchers = node.getChild('LabelMatchers')
      if (matchers) {
        const m = matchers.cursor()
        do { if (m.name === 'LabelName') labels.push(src.slice(m.from, m.to)) } while (m.next() && m.from < matchers.to)
      }
      if (id) out.metrics.push({ name: src.slice(id.from, id.to), labels })
    }
    if (c.name === 'GroupingLabels') {
      const g = c.node.cursor()
      const end = c.to
      do { if (g.name === 'LabelName') out.grouping.push(src.slice(g.from, g.to)) } while (g.next() && g.from < end)
    }
  } while (c.next())
  return out
}

test('the committed dashboards are what dashboards/build.ts builds (npm run dashboards)', () => {
  const committed = readdirSync(join(DIR, 'grafana')).filter(f => f.endsWith('.json')).sort()
  assert.deepEqual(committed, Object.keys(DASHBOARDS).sort())
  for (const [file, build] of Object.entries(DASHBOARDS)) {
    assert.equal(readFileSync(join(DIR, 'grafana', file), 'utf8'), render(build), `dashboards/grafana/${file} is stale: run npm run dashboards`)
  }
})

test('every dashboard has a unique uid, a Prometheus data source variable, and every panel and query uses it', () => {
  const uids = new Set<string>()
  for (const { file, json } of dashboards()) {
    assert.ok(!uids.has(json.uid), `${file}: duplicate uid ${json.uid}`)
    uids.add(json.uid)
    const ds = json.templating.list.find(v => v.type === 'datasource')
    assert.equal(ds?.name, 'datasource', `${file}: no datasource variable`)
    assert.equal(ds?.query, 'prometheus')
    for (const v of json.templating.list.filter(v => v.type === 'query')) assert.equal(v.datasource?.uid, '${datasource}', `${file}: variable ${v.name}`)
    const panels = json.panels.filter(p => p.type !== 'row')
    assert.ok(panels.length >= 5, `${file}: ${panels.length} panels`)
    for (const p of panels) {
      assert.equal(p.datasource?.uid, '${datasource}', `${file}: panel ${p.title}`)
      assert.ok((p.targets ?? []).length > 0, `${file}: panel ${p.title} has no query`)
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, '${datasource}', `${file}: a query of ${p.title}`)
    }
  }
})

test('promtool check rules and the unit test of every alert pass', async () => {
  const check = await promtool(['check', 'rules', join(PROM, 'recording.yml'), join(PROM, 'alerts.yml')])
  assert.equal(check.code, 0, check.out)
  const unit = await promtool(['test', 'rules', join(PROM, 'alerts.test.yml')])
  assert.equal(unit.code, 0, unit.out)
  const tests = readFileSync(join(PROM, 'alerts.test.yml'), 'utf8')
  for (const r of rules().filter(r => r.file === 'alerts.yml')) {
    assert.match(tests, new RegExp(`alertname: ${r.name}\\n\\s+exp_alerts:\\n\\s+- exp_labels`), `${r.name} has no unit test that makes it fire`)
  }
})

test('every alert has a runbook entry in dashboards/README.md', () => {
  const readme = readFileSync(join(DIR, 'README.md'), 'utf8')
  for (const r of rules().filter(r => r.file === 'alerts.yml')) {
    const section = new RegExp(`^### ${r.name}\\n+\\S.*`, 'm').exec(readme)
    assert.ok(section, `no "### ${r.name}" runbook section`)
    assert.match(readFileSync(join(PROM, 'alerts.yml'), 'utf8'), new RegExp(`runbook: dashboards/README.md#${r.name.toLowerCase()}\\n`))
  }
})

let redis: TestRedis | undefined
let t: TestGateway | undefined
after(async () => { await t?.close(); await redis?.stop() })

test('every PromQL expression in the dashboards and rules names metrics and labels a running gateway exports', async () => {
  redis = await startRedis()
  t = await startGateway({ redis: { url: redis.url, prefix: 'dash:' }, nodeId: 'dash-1', mtls: true, pkiMasterKey: 'dashboards-test-master-key-0123456789', probe: true })
  // some traffic, so that series without fixed label values exist (decisions, USP records)
  const agent = await provision(t, 'acme', 'os::00256D-0001')
  const controller = await provision(t, 'acme', 'ctl-1', 'controller')
  const a = await connect(t, { username: agent.username, password: agent.secret })
  await a.subscribeAsync('acme/usp/agent/os::00256D-0001', { qos: 1 })
  const c = await connect(t, { username: controller.username, password: controller.secret })
  await c.publishAsync('acme/usp/agent/os::00256D-0001', Buffer.from('not a USP record'), { qos: 1 }).catch(() => undefined)
  await closeClient(a)
  await closeClient(c)
  const text = await (await fetch(`http://127.0.0.1:${t.gw.probePort}/metrics`)).text()
  assert.equal((await promtool(['check', 'metrics'], text)).code, 0)

  const exported = new Map<string, Set<string>>()
  for (const s of samples(text)) {
    const labels = exported.get(s.name) ?? new Set<string>()
    for (const l of Object.keys(s.labels)) labels.add(l)
    exported.set(s.name, labels)
  }
  // recording rules are metrics too: their labels are the ones their aggregation keeps
  for (const r of rules().filter(r => r.record !== undefined)) exported.set(r.record!, new Set(analyse(r.expr).grouping))

  const exprs: Array<{ where: string, expr: string }> = []
  for (const { file, json } of dashboards()) {
    for (const p of json.panels) for (const q of p.targets ?? []) if (q.expr) exprs.push({ where: `${file} / ${p.title}`, expr: q.expr })
    for (const v of json.templating.list.filter(v => v.type === 'query')) {
      // label_values(<metric>, <label>) is Grafana's, not PromQL: the metric must carry the label
      const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(String(v.query))
      assert.ok(m, `${file}: variable ${v.name} query ${String(v.query)}`)
      assert.ok(exported.get(m[1]!)?.has(m[2]!), `${file}: variable ${v.name}: ${m[1]} has no label ${m[2]}`)
    }
  }
  for (const r of rules()) exprs.push({ where: `${r.file} / ${r.name}`, expr: r.expr })
  assert.ok(exprs.length >= 30)

  const problems: string[] = []
  for (const { where, expr } of exprs) {
    const a = analyse(expr)
    problems.push(...a.errors.map(e => `${where}: ${e}`))
    const available = new Set(TARGET_LABELS)
    for (const m of a.metrics) {
      const labels = exported.get(m.name)
      if (labels === undefined) { problems.push(`${where}: metric ${m.name} is not exported`); continue }
      for (const l of labels) available.add(l)
      for (const l of m.labels) if (!labels.has(l) && !TARGET_LABELS.has(l)) problems.push(`${where}: ${m.name} has no label ${l}`)
    }
    for (const l of a.grouping) if (!available.has(l)) problems.push(`${where}: grouping label ${l} is on none of its metrics`)
  }
  assert.deepEqual(problems, [])
})
