// Hole 6 of issue 14 (fairness): caps on filters per SUBSCRIBE and subscriptions per client, tenant
// connection and subscription quotas set through the admin API, the publish rate taken before any work
// on the packet, and a huge SUBSCRIBE decided in slices so the event loop keeps serving others. Each
// refusal is an event (and counted in uspgate_security_events_total / uspgate_drops_total).
import { test, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, provision, connect, closeClient, removeDir, waitFor, waitForEvent, refusedWith, type TestGateway } from '../helpers/gateway.ts'
import { rawConnect, encode } from '../helpers/raw-mqtt.ts'

let t: TestGateway
let ctrl: { username: string, secret: string }
before(async () => {
  t = await startGateway({ limits: { maxFiltersPerSubscribe: 32, maxSubscriptionsPerClient: 5 } })
  ctrl = await provision(t, 'ft', 'self::ft-ctrl', 'controller')
})
after(async () => { await t.close(); await removeDir(t.dataDir) })

/** Policy decisions asked (cache hits and wasm evaluations). */
const decisions = (g: TestGateway): number => { const s = g.gw.policy.stats; return s.hits + s.misses }

const filters = (n: number, from = 0): Record<string, { qos: 0 }> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`ft/bulkdata/dev${from + i}/#`, { qos: 0 as const }]))

/** SUBACK codes even when mqtt.js rejects a SUBACK with refusals in it. */
async function suback (c: Awaited<ReturnType<typeof connect>>, subs: Record<string, { qos: 0 }>): Promise<number[]> {
  return await c.subscribeAsync(subs).then(gs => gs.map(g => g.qos), (err: { packet?: { granted: number[] } }) => { if (err.packet === undefined) throw err; return err.packet.granted })
}

test('a SUBSCRIBE with more filters than allowed closes the connection before any filter is decided', async () => {
  const c = await connect(t, { username: ctrl.username, password: ctrl.secret, clientId: 'ft-many' })
  const reasons: number[] = []
  c.on('disconnect', p => reasons.push(p.reasonCode ?? -1))
  const closed = new Promise<void>(resolve => c.once('close', () => resolve()))
  const decisionsBefore = decisions(t)
  c.subscribe(filters(40), () => {})
  await closed
  assert.ok(reasons.every(r => r === 0x97), `DISCONNECT reason ${reasons.join(',')}`)
  await waitForEvent(t, { code: 'limits.subscribe_filters', clientId: 'ft-many' })
  assert.equal(decisions(t), decisionsBefore, 'filters of the refused SUBSCRIBE were decided')
  await closeClient(c)
})

test('subscriptions per client: new filters above the cap are refused in the SUBACK with an event; re-subscribing held ones is fine', async () => {
  const c = await connect(t, { username: ctrl.username, password: ctrl.secret, clientId: 'ft-cap' })
  assert.deepEqual(await suback(c, filters(4)), [0, 0, 0, 0])
  assert.deepEqual(await suback(c, filters(3, 3)), [0, 0, 0x87], 'one held, one new within the cap, one above it')
  await waitForEvent(t, { code: 'limits.subscriptions', clientId: 'ft-cap', topic: 'ft/bulkdata/dev5/#' })
  assert.equal(Object.keys((t.gw.broker as unknown as { clients: Record<string, { subscriptions: object }> }).clients['ft:self::ft-ctrl|ft-cap']!.subscriptions).length, 5)
  await closeClient(c)
})

test('tenant quotas set through the admin API: connections and subscriptions per node, refused with events; other tenants unaffected', async () => {
  const a1 = await provision(t, 'fq', 'self::fq-c1', 'controller')
  const a2 = await provision(t, 'fq', 'self::fq-c2', 'controller')
  const a3 = await provision(t, 'fq', 'self::fq-c3', 'controller')
  const other = await provision(t, 'fo', 'self::fo-c1', 'controller')
  const bad = await t.api('PATCH', '/v1/tenants/fq', { quotas: { maxConnections: -1 } })
  assert.equal(bad.status, 400)
  const r = await t.api('PATCH', '/v1/tenants/fq', { quotas: { maxConnections: 2, maxSubscriptions: 3 } })
  assert.equal(r.status, 200, JSON.stringify(r.body))
  assert.deepEqual(r.body.quotas, { maxConnections: 2, maxSubscriptions: 3 })
  const c1 = await connect(t, { username: a1.username, password: a1.secret })
  const c2 = await connect(t, { username: a2.username, password: a2.secret })
  assert.equal(await refusedWith(t, { username: a3.username, password: a3.secret, clientId: 'fq-third' }), 0x97)
  assert.equal(await refusedWith(t, { v: 4, username: a3.username, password: a3.secret, clientId: 'fq-third-311' }), 3)
  await waitForEvent(t, { code: 'limits.tenant_connections', clientId: 'fq-third' })
  const sub = (c: typeof c1, n: string[]): Promise<number[]> => suback(c, Object.fromEntries(n.map(x => [`fq/bulkdata/${x}/#`, { qos: 0 as const }])))
  assert.deepEqual(await sub(c1, ['a', 'b']), [0, 0])
  assert.deepEqual(await sub(c2, ['c', 'd']), [0, 0x87], 'the tenant\'s fourth subscription')
  await waitForEvent(t, { code: 'limits.tenant_subscriptions', topic: 'fq/bulkdata/d/#' })
  // another tenant is not limited by fq's quotas
  const o = await connect(t, { username: other.username, password: other.secret })
  assert.deepEqual(await suback(o, Object.fromEntries(['a', 'b', 'c', 'd'].map(x => [`fo/bulkdata/${x}/#`, { qos: 0 as const }]))), [0, 0, 0, 0])
  // quotas free up as clients go
  await closeClient(c1)
  await waitFor(() => t.gw.sessions.list('fq').length === 1, 3000, 'c1 gone')
  const c3 = await connect(t, { username: a3.username, password: a3.secret })
  assert.deepEqual(await sub(c3, ['e', 'f']), [0, 0])
  for (const c of [c2, c3, o]) await closeClient(c)
})

test('publish rate: over it the packet is refused before any policy decision or inspection', async () => {
  const g = await startGateway({ limits: { publishRatePerSecond: 20, publishBurst: 20 } })
  after(async () => { await g.close(); await removeDir(g.dataDir) })
  const ag = await provision(g, 'fr', 'os::00256D-FR0001', 'agent')
  const peer = await rawConnect(g.mqttPort, ag.username, ag.secret, { protocolVersion: 5, clientId: 'fr-flood' })
  const decisionsBefore = decisions(g)
  const N = 400
  for (let i = 1; i <= N; i++) peer.send({ cmd: 'publish', topic: 'fr/bulkdata/os::00256D-FR0001/t', payload: Buffer.from('x'), qos: 1, messageId: i })
  let acks = 0
  let refused = 0
  while (acks < N) {
    const ack = await peer.next('puback', 30_000)
    acks++
    if (ack.reasonCode >= 0x80) refused++
  }
  await waitForEvent(g, { code: 'limits.rate_limited', clientId: 'fr-flood' })
  assert.ok(refused > 0 && refused < N, `${refused} of ${N} refused`)
  // refused packets cost no policy decision: at most one decision per admitted packet (the memo makes repeats free)
  assert.ok(decisions(g) - decisionsBefore <= N - refused)
  peer.end()
})

test('a SUBSCRIBE of 8,000 filters is decided in slices: the event loop keeps turning while it is authorised', async () => {
  const g = await startGateway({ limits: { maxFiltersPerSubscribe: 0, maxSubscriptionsPerClient: 0 } })
  after(async () => { await g.close(); await removeDir(g.dataDir) })
  const c = await provision(g, 'fb', 'self::fb-ctrl', 'controller')
  const client = await connect(g, { username: c.username, password: c.secret })
  const N = 8_000
  // policy decisions made between two consecutive event-loop turns (a self-rescheduling setImmediate
  // runs once per turn): counts, not clock time, so a loaded machine does not change the verdict
  let last = decisions(g)
  let maxPerTurn = 0
  let sampling = true
  const sample = (): void => {
    const now = decisions(g)
    maxPerTurn = Math.max(maxPerTurn, now - last)
    last = now
    if (sampling) setImmediate(sample)
  }
  setImmediate(sample)
  const granted = await suback(client, Object.fromEntries(Array.from({ length: N }, (_, i) => [i % 2 === 0 ? `fb/bulkdata/d${i}/#` : `other/x${i}`, { qos: 0 as const }])))
  sampling = false
  assert.equal(granted.length, N)
  assert.equal(granted.filter(x => x === 0).length, N / 2)
  // 256 per turn by default (USPGATE subscribeDecisionsPerTurn); at most two slices fall between two samples
  assert.ok(maxPerTurn <= 2 * 256, `${maxPerTurn} decisions in one event-loop turn`)
  await closeClient(client)
})

test('publish flood: over its rate the client is not read from (backpressure) while a neighbour tenant\'s QoS 1 round trips complete', async (ctx) => {
  const RATE = 50
  const g = await startGateway({ limits: { publishRatePerSecond: RATE, publishBurst: RATE } })
  after(async () => { await g.close(); await removeDir(g.dataDir) })
  const flooder = await provision(g, 'fl', 'os::00256D-FL0001', 'agent')
  const calmAgent = await provision(g, 'calm', 'os::00256D-CA0001', 'agent')
  const calmCtrl = await provision(g, 'calm', 'self::calm-ctrl', 'controller')
  const sub = await connect(g, { username: calmCtrl.username, password: calmCtrl.secret })
  await sub.subscribeAsync('calm/bulkdata/#', { qos: 1 })
  const pub = await connect(g, { username: calmAgent.username, password: calmAgent.secret })
  const arrived = new Map<string, () => void>()
  sub.on('message', (_topic, payload) => { arrived.get(payload.toString())?.() })

  const peer = await rawConnect(g.mqttPort, flooder.username, flooder.secret, { protocolVersion: 5, clientId: 'fl-flood' })
  const pausesBefore = (await g.gw.metrics.publishReadPauses.get()).values[0]?.value ?? 0
  const N = 5000
  // 5,000 back-to-back QoS 1 PUBLISHes in one write: the gateway reads them in a few large chunks
  const burst = Buffer.concat(Array.from({ length: N }, (_, i) => encode({ cmd: 'publish', topic: 'fl/bulkdata/os::00256D-FL0001/t', payload: Buffer.alloc(32, 1), qos: 1, messageId: i + 1 }, 5)))
  // the PUBACKs land in peer.received (nobody waits for them)
  const pubacks = (): Array<{ reasonCode: number }> => peer.received.filter(p => p.cmd === 'puback')
  const start = Date.now()
  peer.sendRaw(burst)

  // the neighbour: a QoS 1 round trip every 50 ms while the flood is on; every one completes
  const rtts: number[] = []
  for (let i = 0; i < 30; i++) {
    const token = `rt-${i}`
    const began = Date.now()
    const got = new Promise<void>(resolve => arrived.set(token, resolve))
    await pub.publishAsync('calm/bulkdata/os::00256D-CA0001/rt', token, { qos: 1 })
    await Promise.race([got, new Promise((_, reject) => setTimeout(() => reject(new Error(`round trip ${i} did not complete in 10 s`)), 10_000))])
    rtts.push(Date.now() - began)
    await new Promise(r => setTimeout(r, 50))
  }
  const elapsedS = (Date.now() - start) / 1000
  const processed = pubacks().length
  const refused = pubacks().filter(a => a.reasonCode >= 0x80).length
  ctx.diagnostic(`${processed} of ${N} processed (${refused} refused) in ${elapsedS.toFixed(1)} s; neighbour round trip max ${Math.max(...rtts)} ms`)
  // Throttled: the flooder is read at its rate, not as fast as the gateway can parse and refuse.
  // Each pause (about 100 ms, until a tenth of a second of tokens is back) lets through what refilled
  // plus the one packet that found the bucket empty, and at most 64 packets are parsed per turn.
  // Without the backpressure all 5,000 are parsed and answered (refused) within about a second.
  const bound = RATE + RATE * elapsedS + 20 * elapsedS + 64
  assert.ok(processed <= bound, `${processed} of ${N} PUBLISHes processed in ${elapsedS.toFixed(1)} s (at most ${Math.floor(bound)} at ${RATE}/s)`)
  assert.ok(processed < N, 'the flood is not all processed yet')
  assert.ok(refused > 0, 'packets parsed over the rate are still refused (PUBACK 0x97)')
  await waitForEvent(g, { code: 'limits.rate_limited', clientId: 'fl-flood' })
  const pauses = ((await g.gw.metrics.publishReadPauses.get()).values[0]?.value ?? 0) - pausesBefore
  assert.ok(pauses > 0, 'uspgate_publish_read_pauses_total counts the pauses')
  assert.equal(rtts.length, 30, 'every neighbour round trip completed')
  peer.end()
  await closeClient(pub)
  await closeClient(sub)
})
