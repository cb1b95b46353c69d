// uspgate_decision_seconds is a HotHistogram (broker/core/metrics.ts): counted in plain numbers on the
// policy's hot path, rendered by prom-client's registry. Its exposition must be exactly what a
// prom-client Histogram with the same observations renders, so dashboards and histogram_quantile()
// read it the same way.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Histogram, Registry } from 'prom-client'
import { HotHistogram } from '../../broker/core/index.ts'

const BUCKETS = [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.01]

test('renders the same text as a prom-client Histogram given the same observations (buckets, +Inf, sum, count, default labels)', async () => {
  const ours = new Registry()
  const theirs = new Registry()
  for (const r of [ours, theirs]) r.setDefaultLabels({ node: 'edge-1' })
  const hot = new HotHistogram('x_decision_seconds', 'Time to decide', 'action', BUCKETS, [ours])
  const ref = new Histogram({ name: 'x_decision_seconds', help: 'Time to decide', labelNames: ['action'], buckets: BUCKETS, registers: [theirs] })
  for (const a of ['connect', 'publish', 'subscribe', 'deliver']) { hot.zero(a); ref.zero({ action: a }) }
  // on a bound, between bounds, above the last bound (+Inf only), zero
  const seen: Array<[string, number]> = [['connect', 0.00001], ['connect', 0.0000123], ['subscribe', 0.02], ['subscribe', 0], ['publish', 0.0049], ['connect', 0.003]]
  for (let i = 0; i < 500; i++) seen.push([i % 2 === 0 ? 'connect' : 'subscribe', (i % 37) * 0.000013])
  for (const [a, v] of seen) { hot.observe(a, v); ref.labels(a).observe(v) }
  assert.equal(await ours.metrics(), await theirs.metrics())
  assert.match(await ours.metrics(), /x_decision_seconds_bucket\{le="\+Inf",node="edge-1",action="subscribe"\} 252\n/)
  ours.resetMetrics(); theirs.resetMetrics()
  for (const a of ['connect', 'publish', 'subscribe', 'deliver']) ref.zero({ action: a })
  assert.equal(await ours.metrics(), await theirs.metrics())
})
