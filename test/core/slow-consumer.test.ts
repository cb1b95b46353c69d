// A subscriber that stops reading (a frozen router, a dead link, or an attacker holding its socket
// open). With aedes' defaults, 100 deliveries waiting on it held up message routing for every
// tenant until drainTimeout (60 s), and the gateway buffered everything published to it.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import mqtt, { type MqttClient } from 'mqtt'
import { startGateway, provision, connect, closeClient, removeDir, sleep, waitFor, waitForEvent, type TestGateway } from '../helpers/gateway.ts'

const LIMIT = 1024 * 1024
const PAYLOAD = 64 * 1024
let t: TestGateway
const clients: MqttClient[] = []
const creds: Record<string, { username: string, secret: string }> = {}

before(async () => {
  t = await startGateway({ limits: { maxClientBufferBytes: LIMIT, publishRatePerSecond: 0 } })
  creds.acmeAgent = await provision(t, 'acme', 'os::00256D-S001', 'agent')
  creds.acmeCtl = await provision(t, 'acme', 'self::frozen', 'controller')
  creds.betaAgent = await provision(t, 'beta', 'os::00256D-B001', 'agent')
  creds.betaCtl = await provision(t, 'beta', 'self::fine', 'controller')
})
after(async () => {
  for (const c of clients) await closeClient(c)
  await t.close(); await removeDir(t.dataDir)
})

async function client (who: string, opts: Record<string, unknown> = {}): Promise<MqttClient> {
  const c = await connect(t, { v: 5, username: creds[who]!.username, password: creds[who]!.secret, ...opts })
  clients.push(c)
  return c
}

/** The gateway-side socket of a connected client, found by its wire client id. */
function serverSocket (wireId: string): { writableLength: number } {
  const clientsById = (t.gw.broker as unknown as { clients: Record<string, { id: string, conn: { writableLength: number } }> }).clients
  const c = Object.values(clientsById).find(x => x.id.endsWith(`|${wireId}`))
  assert.ok(c, `client ${wireId} is connected`)
  return c.conn
}

/** Publishes `count` messages of PAYLOAD bytes; the first bytes carry the index. */
async function flood (pub: MqttClient, topic: string, count: number, qos: 0 | 1): Promise<void> {
  for (let i = 0; i < count; i++) {
    const payload = Buffer.alloc(PAYLOAD, 120)
    payload.write(`#${i}#`)
    if (qos === 1) await pub.publishAsync(topic, payload, { qos })
    else pub.publish(topic, payload, { qos })
    if (i % 20 === 19) await sleep(5)
  }
}

test('a subscriber that stops reading neither delays another tenant\'s messages nor makes the gateway buffer without bound', async () => {
  const frozen = await client('acmeCtl', { clientId: 'frozen-0' })
  await frozen.subscribeAsync('acme/bulkdata/#', { qos: 0 })
  // the router stops reading: its TCP window closes, the gateway's writes to it back up
  frozen.stream.pause()
  const pub = await client('acmeAgent', { clientId: 'pub-0' })
  await flood(pub, 'acme/bulkdata/os::00256D-S001/x', 400, 0) // 25 MiB
  await sleep(300)

  // another tenant's message goes through at once
  const fine = await client('betaCtl', { clientId: 'fine-0' })
  await fine.subscribeAsync('beta/bulkdata/#', { qos: 1 })
  const arrived = new Promise<number>(resolve => fine.once('message', () => resolve(Date.now())))
  const betaPub = await client('betaAgent', { clientId: 'beta-pub-0' })
  const t0 = Date.now()
  await betaPub.publishAsync('beta/bulkdata/os::00256D-B001/y', 'hello', { qos: 1 })
  const at = await Promise.race([arrived, sleep(2000).then(() => -1)])
  assert.ok(at > 0, 'tenant beta\'s message never arrived while acme\'s subscriber was frozen')
  assert.ok(at - t0 < 1000, `tenant beta's message took ${at - t0} ms`)

  // what the gateway holds for the frozen subscriber stays near the limit (plus at most a packet
  // already on its way), not the 25 MiB published to it
  const held = serverSocket('frozen-0').writableLength
  assert.ok(held <= LIMIT + 2 * PAYLOAD, `${held} bytes buffered for the frozen subscriber`)
  const ev = await waitForEvent(t, { code: 'limits.slow_consumer', principal: 'self::frozen', tenant: 'acme' })
  assert.equal(ev.action, 'deliver')
  const metrics = await (await fetch(`${t.adminUrl}/metrics`)).text()
  assert.match(metrics, /uspgate_messages_dropped_total\{reason="limits\.slow_consumer"[^}]*\} [1-9]/)
})

test('a persistent QoS 1 session that stopped reading gets every message after it reconnects', async () => {
  const opts = { clientId: 'frozen-1', clean: false, properties: { sessionExpiryInterval: 600 } }
  const frozen = await client('acmeCtl', opts)
  await frozen.subscribeAsync('acme/bulkdata/+/q1', { qos: 1 })
  frozen.stream.pause()
  const pub = await client('acmeAgent', { clientId: 'pub-1' })
  const N = 120 // 7.5 MiB, well above the 1 MiB limit
  await flood(pub, 'acme/bulkdata/os::00256D-S001/q1', N, 1)
  await waitForEvent(t, { code: 'limits.slow_consumer', principal: 'self::frozen', topic: 'acme/bulkdata/os::00256D-S001/q1' })
  frozen.end(true)

  const got = new Set<number>()
  const again = mqtt.connect({ host: '127.0.0.1', port: t.mqttPort, protocolVersion: 5, reconnectPeriod: 0, username: creds.acmeCtl!.username, password: creds.acmeCtl!.secret, ...opts })
  clients.push(again)
  again.on('message', (_topic, payload) => got.add(Number(/^#(\d+)#/.exec(payload.subarray(0, 16).toString())?.[1])))
  await waitFor(() => got.size >= N, 10_000, `all ${N} messages after the reconnect`)
  assert.deepEqual([...got].sort((a, b) => a - b), Array.from({ length: N }, (_, i) => i))
})
