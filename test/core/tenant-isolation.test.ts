import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient } from 'mqtt'
import { startGateway, provision, connect, refusedWith, waitForEvent, closeClient, removeDir, sleep, waitFor, type TestGateway } from '../helpers/gateway.ts'
import { rawConnect } from '../helpers/raw-mqtt.ts'

// Controllers read their tenant's bulkdata; agents publish their own (the default policy's layout).
let t: TestGateway
let acme: { username: string, secret: string }
let beta: { username: string, secret: string }
let acmeAgent: { username: string, secret: string }
let betaAgent: { username: string, secret: string }

before(async () => {
  t = await startGateway()
  acme = await provision(t, 'acme', 'self::ctrl-a', 'controller')
  beta = await provision(t, 'beta', 'self::ctrl-b', 'controller')
  acmeAgent = await provision(t, 'acme', 'os::00256D-AA', 'agent')
  betaAgent = await provision(t, 'beta', 'x', 'agent')
})
after(async () => { await t.close(); await removeDir(t.dataDir) })

function publishAsync (c: MqttClient, topic: string, payload: string, opts: { qos: 0 | 1 | 2, retain?: boolean }): Promise<Error | undefined> {
  return new Promise(resolve => c.publish(topic, payload, opts, err => resolve(err ?? undefined)))
}
function subscribeAsync (c: MqttClient, filter: string): Promise<number> {
  // mqtt.js reports a refused filter as an error carrying the SUBACK packet
  return new Promise((resolve, reject) => c.subscribe(filter, { qos: 1 }, (err, granted) => {
    const suback = (err as (Error & { packet?: { granted: number[] } }) | null)?.packet
    if (suback) resolve(suback.granted[0]!)
    else if (err) reject(err)
    else resolve(granted![0]!.qos)
  }))
}

test('two tenants\' controllers reading all their bulkdata never see each other\'s messages', async () => {
  const a = await connect(t, { v: 5, username: acme.username, password: acme.secret })
  const b = await connect(t, { v: 4, username: beta.username, password: beta.secret })
  const pa = await connect(t, { v: 4, username: acmeAgent.username, password: acmeAgent.secret })
  const pb = await connect(t, { v: 5, username: betaAgent.username, password: betaAgent.secret })
  const seenA: string[] = []
  const seenB: string[] = []
  a.on('message', topic => seenA.push(topic))
  b.on('message', topic => seenB.push(topic))
  assert.equal(await subscribeAsync(a, 'acme/bulkdata/#'), 1)
  assert.equal(await subscribeAsync(b, 'beta/bulkdata/#'), 1)
  assert.equal(await publishAsync(pa, 'acme/bulkdata/os::00256D-AA/x', 'from-acme', { qos: 1 }), undefined)
  assert.equal(await publishAsync(pb, 'beta/bulkdata/x/y', 'from-beta', { qos: 1 }), undefined)
  await waitFor(() => seenA.length >= 1 && seenB.length >= 1)
  await sleep(100)
  assert.deepEqual(seenA, ['acme/bulkdata/os::00256D-AA/x'])
  assert.deepEqual(seenB, ['beta/bulkdata/x/y'])
  await closeClient(a); await closeClient(b); await closeClient(pa); await closeClient(pb)
})

test('MQTT 5: a publish outside the tenant prefix gets PUBACK 0x87 and acl.cross_tenant; the connection stays', async () => {
  const a = await connect(t, { v: 5, username: acme.username, password: acme.secret, clientId: 'x-pub-5' })
  // the target: beta's agent "x" listening on its inbox
  const spy = await connect(t, { v: 5, username: betaAgent.username, password: betaAgent.secret })
  const got: string[] = []
  spy.on('message', tp => got.push(tp))
  assert.equal(await subscribeAsync(spy, 'beta/usp/agent/x'), 1)
  const err = await publishAsync(a, 'beta/usp/agent/x', 'sneaky', { qos: 1 }) as Error & { code?: number }
  assert.equal(err?.code, 0x87)
  const ev = await waitForEvent(t, { code: 'acl.cross_tenant', clientId: 'x-pub-5' })
  assert.equal(ev.topic, 'beta/usp/agent/x')
  assert.equal(ev.tenant, 'acme')
  assert.equal(ev.action, 'publish')
  assert.equal(a.connected, true)
  await sleep(100)
  assert.deepEqual(got, [])
  await closeClient(a); await closeClient(spy)
})

test('MQTT 3.1.1: a publish outside the tenant prefix closes the connection [MQTT-3.3.5-2] and is an event', async () => {
  const a = await connect(t, { v: 4, username: acme.username, password: acme.secret, clientId: 'x-pub-4' })
  const closed = new Promise<void>(resolve => a.once('close', () => resolve()))
  a.publish('beta/x', 'sneaky', { qos: 1 })
  await closed
  await waitForEvent(t, { code: 'acl.cross_tenant', clientId: 'x-pub-4', topic: 'beta/x' })
  await closeClient(a)
})

const badFilters: Array<[string, string]> = [
  ['#', 'acl.cross_tenant'],
  ['+/usp/agent/x', 'acl.cross_tenant'],
  ['beta/#', 'acl.cross_tenant'],
  ['acmex/#', 'acl.cross_tenant'],
  ['$SYS/#', 'acl.reserved_topic'],
  // a malformed shared subscription (no filter); well-formed ones are tested in test/conformance/shared-subscriptions
  ['$share/g', 'acl.reserved_topic'],
  ['acme/' + 'a/'.repeat(40) + 'x', 'acl.invalid_topic'],
  ['acme/' + 'x'.repeat(1100), 'acl.invalid_topic'],
  ['acme/nul\u0000byte', 'acl.invalid_topic'],
  ['acme/ctrl\u0007char', 'acl.invalid_topic'],
  ['acme/__proto__/x', 'acl.invalid_topic']
]

for (const v of [5, 4] as const) {
  test(`MQTT ${v === 5 ? '5' : '3.1.1'}: filters outside the tenant, $-topics and odd filters are refused in SUBACK with an event`, async () => {
    const clientId = `sub-${v}`
    const a = await connect(t, { v, username: acme.username, password: acme.secret, clientId })
    for (const [filter, code] of badFilters) {
      const granted = await subscribeAsync(a, filter)
      // [MQTT-3.9.3] 0x80 failure (3.1.1); 0x87 not authorized (5) — 0x9E for "$share" on MQTT 5
      const expected = v === 4 ? 0x80 : filter.startsWith('$share/') ? 0x9e : 0x87
      assert.equal(granted, expected, `filter ${JSON.stringify(filter.slice(0, 40))}`)
      await waitForEvent(t, { code, clientId, topic: filter })
    }
    // the client is still connected and its own prefix works
    assert.equal(await subscribeAsync(a, 'acme/bulkdata/#'), 1)
    await closeClient(a)
  })
}

test('a will outside the tenant prefix is refused at CONNECT (0x87) with an event', async () => {
  const code = await refusedWith(t, { v: 5, username: acme.username, password: acme.secret, clientId: 'will-x', will: { topic: 'beta/usp/status/x', payload: Buffer.from('0'), qos: 0, retain: false } })
  assert.equal(code, 0x87)
  const ev = await waitForEvent(t, { code: 'acl.cross_tenant', clientId: 'will-x' })
  assert.equal(ev.action, 'will')
})

test('a will inside the tenant is published when the client dies, never across tenants', async () => {
  const watcherA = await connect(t, { v: 5, username: acme.username, password: acme.secret })
  const watcherB = await connect(t, { v: 5, username: beta.username, password: beta.secret })
  const gotA: string[] = []; const gotB: string[] = []
  watcherA.on('message', (tp, p) => gotA.push(`${tp}=${p.toString()}`))
  watcherB.on('message', tp => gotB.push(tp))
  assert.equal(await subscribeAsync(watcherA, 'acme/bulkdata/#'), 1)
  assert.equal(await subscribeAsync(watcherB, 'beta/bulkdata/#'), 1)
  const raw = await rawConnect(t.mqttPort, acmeAgent.username, acmeAgent.secret)
  raw.end()
  // an mqtt.js client with a will whose socket dies without DISCONNECT
  const w = await connect(t, { v: 4, username: acmeAgent.username, password: acmeAgent.secret, clientId: 'will-ok', will: { topic: 'acme/bulkdata/os::00256D-AA/will', payload: Buffer.from('gone'), qos: 0, retain: false } })
  ;(w as unknown as { stream: { destroy(): void } }).stream.destroy()
  await waitFor(() => gotA.includes('acme/bulkdata/os::00256D-AA/will=gone'))
  assert.deepEqual(gotB, [])
  await closeClient(watcherA); await closeClient(watcherB); await closeClient(w)
})

test('client ids that are too long or carry control characters are refused (0x85 / 2)', async () => {
  assert.equal(await refusedWith(t, { v: 5, username: acme.username, password: acme.secret, clientId: 'c'.repeat(300) }), 0x85)
  assert.equal(await refusedWith(t, { v: 4, username: acme.username, password: acme.secret, clientId: 'bad\u0001id' }), 2)
  await waitForEvent(t, { code: 'session.invalid_client_id', tenant: 'acme' })
})
