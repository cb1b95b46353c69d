// Metrics that fit the ecosystem and the probe listener: standard unprefixed process_/nodejs_ metrics,
// uspgate_build_info, series present at zero from start, a stable node label, uspgate_decision_seconds
// observed, session / subscription / retained / queued gauges following what clients do, tenant labels
// only for real tenants, `promtool check metrics` clean, and /healthz, /readyz, /metrics served on
// USPGATE_PROBE_PORT without the admin token.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, provision, connect, closeClient, waitFor, refusedWith, type TestGateway } from '../helpers/gateway.ts'
import { samples, value, promtool } from '../helpers/prometheus.ts'

let t: TestGateway
after(async () => { await t?.close() })

async function scrape (): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${t.gw.probePort}/metrics`)
  assert.equal(res.status, 200)
  return await res.text()
}

test('a fresh gateway exports the standard Node metrics unprefixed, its build and zero-valued series, under a stable node label', async () => {
  t = await startGateway({ probe: true, nodeId: 'edge-1' })
  const all = samples(await scrape())
  assert.ok(value(all, 'process_cpu_seconds_total') !== undefined)
  assert.ok(value(all, 'nodejs_eventloop_lag_seconds') !== undefined)
  assert.ok(value(all, 'process_open_fds') !== undefined)
  assert.equal(all.filter(s => s.name.startsWith('uspgate_process_') || s.name.startsWith('uspgate_nodejs_')).length, 0)
  assert.equal(value(all, 'uspgate_build_info', { version: '0.1.0', nodejs_version: process.version }), 1)
  for (const [name, labels] of [
    ['uspgate_connections', { listener: 'mqtt', protocol: '5' }],
    ['uspgate_connections', { listener: 'mqtts', protocol: '4' }],
    ['uspgate_connect_total', { result: 'refused', reason: 'auth.bad_credentials' }],
    ['uspgate_messages_dropped_total', { reason: 'acl.cross_tenant' }],
    ['uspgate_messages_dropped_total', { reason: 'limits.slow_consumer' }],
    ['uspgate_security_events_total', { code: 'acl.cross_tenant', tenant: '' }],
    ['uspgate_messages_received_total', { qos: '1' }],
    ['uspgate_decision_seconds_count', { action: 'publish' }],
    ['uspgate_sessions', { state: 'connected' }],
    ['uspgate_subscriptions', {}],
    ['uspgate_retained_messages', {}],
    ['uspgate_queued_messages', {}]
  ] as const) {
    assert.equal(value(all, name, labels), 0, `${name}${JSON.stringify(labels)} should exist at 0`)
  }
  // every series carries the configured node id (not <host>-<pid>)
  assert.deepEqual([...new Set(all.map(s => s.labels.node))], ['edge-1'])
})

test('the probe listener answers without a token and serves nothing else', async () => {
  const base = `http://127.0.0.1:${t.gw.probePort}`
  assert.deepEqual(await (await fetch(base + '/readyz')).json(), { status: 'ready', node: 'edge-1' })
  assert.deepEqual(await (await fetch(base + '/healthz')).json(), { status: 'ok' })
  assert.equal((await fetch(base + '/v1/tenants')).status, 404)
  assert.equal((await fetch(base + '/v1/tenants', { headers: { authorization: `Bearer ${t.token}` } })).status, 404)
  assert.equal((await fetch(base + '/metrics', { method: 'POST', body: 'x' })).status, 405)
  assert.notEqual(t.gw.probePort, Number(new URL(t.adminUrl).port))
})

test('gauges follow clients: sessions, subscriptions, retained and queued messages; decisions are timed', async () => {
  const agent = await provision(t, 'acme', 'os::00256D-0001')
  const controller = await provision(t, 'acme', 'ctl-1', 'controller')
  // a controller with a persistent session watching the agents' presence (retained, QoS 1, published by the gateway)
  const opts = { username: controller.username, password: controller.secret, clientId: 'durable', clean: false, properties: { sessionExpiryInterval: 600 } }
  let durable = await connect(t, opts)
  await durable.subscribeAsync(['acme/usp/status/+', 'acme/usp/controller/ctl-1'], { qos: 1 })
  const a = await connect(t, { username: agent.username, password: agent.secret })
  let all = samples(await scrape())
  assert.equal(value(all, 'uspgate_sessions', { state: 'connected' }), 2)
  assert.equal(value(all, 'uspgate_subscriptions'), 2)
  await waitFor(async () => value(samples(await scrape()), 'uspgate_retained_messages') === 1, 10_000, 'the agent\'s retained presence')
  assert.ok(value(all, 'uspgate_decision_seconds_count', { action: 'subscribe' })! >= 1)
  assert.ok(value(all, 'uspgate_decision_seconds_sum', { action: 'subscribe' })! > 0)

  // the controller goes away; the agent's presence change (QoS 1) waits for it in the store
  await closeClient(durable)
  await waitFor(async () => value(samples(await scrape()), 'uspgate_sessions', { state: 'connected' }) === 1, 10_000, 'one connected session')
  await closeClient(a)
  all = await waitFor(async () => { const s = samples(await scrape()); return value(s, 'uspgate_queued_messages')! >= 1 ? s : undefined }, 10_000, 'a queued message')
  assert.equal(value(all, 'uspgate_sessions', { state: 'stored' }), 1)
  // back online: the queued message is delivered, acknowledged, and leaves the store
  durable = await connect(t, { ...opts, clean: false })
  await waitFor(async () => value(samples(await scrape()), 'uspgate_queued_messages') === 0, 10_000, 'queue emptied')
  await closeClient(durable)
})

test('security events carry the tenant label only for tenants that exist', async () => {
  await provision(t, 'acme', 'os::00256D-0009')
  assert.equal(await refusedWith(t, { username: 'acme:os::00256D-0009', password: 'wrong' }), 0x86)
  assert.equal(await refusedWith(t, { username: 'no-such-tenant-xyz:dev', password: 'wrong' }), 0x86)
  const all = samples(await scrape())
  assert.equal(value(all, 'uspgate_security_events_total', { code: 'auth.bad_credentials', tenant: 'acme' }), 1)
  assert.ok(!all.some(s => s.labels.tenant === 'no-such-tenant-xyz'))
  assert.equal(value(all, 'uspgate_security_events_total', { code: 'auth.unknown_tenant', tenant: '' }), 1)
})

test('promtool check metrics passes on a live scrape', async () => {
  const r = await promtool(['check', 'metrics'], await scrape())
  assert.equal(r.code, 0, r.out)
})
