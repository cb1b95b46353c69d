// A persistent (clean=false) QoS 1 session on one node with the embedded persistence, when the
// policy refuses one delivery: aedes 2.0.0-beta.1 "cleared" the refused message from the session's
// queue without a message id, and aedes-persistence 10 then removed a different, not yet delivered
// message; the next delivery failed ("no such packet") and the subscriber was disconnected.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import { startGateway, provision, connect, closeClient, removeDir, sleep, waitFor, waitForEvent, type TestGateway, untilConnected } from '../helpers/gateway.ts'
import { buildTempBundle } from '../policies/helpers.ts'
import { POLICY_DIR } from '../../policies/index.ts'

const AG = 'os::00256D-0Q01'
const CT = 'self::ctrl-q'
let t: TestGateway
const creds: Record<string, { username: string, secret: string }> = {}
const clients: MqttClient[] = []

before(async () => {
  t = await startGateway({ limits: { publishRatePerSecond: 0 } })
  creds.ag = await provision(t, 'acme', AG, 'agent')
  creds.ct = await provision(t, 'acme', CT, 'controller')
})
after(async () => {
  for (const c of clients) await closeClient(c)
  await t.close(); await removeDir(t.dataDir)
})

function persistentController (clientId: string, protocolVersion: 4 | 5): MqttClient {
  const m = mqtt.connect({ host: '127.0.0.1', port: t.mqttPort, protocolVersion, clientId, clean: false, reconnectPeriod: 0, connectTimeout: 3000, username: creds.ct!.username, password: creds.ct!.secret, ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}) })
  clients.push(m)
  m.on('error', () => {})
  return m
}

test('a delivery the policy refuses does not cut a persistent subscriber or lose its other queued messages', async () => {
  // controllers may read all telemetry except topics under ".../blocked"
  const authz = readFileSync(join(POLICY_DIR, 'authz.rego'), 'utf8')
  const from = '\tlevels[1] == "bulkdata"\n\tcount(levels) >= 3\n}'
  assert.ok(authz.includes(from))
  const bundle = buildTempBundle({ files: { 'authz.rego': authz.replace(from, '\tlevels[1] == "bulkdata"\n\tcount(levels) >= 3\n\tnot contains(input.topic, "/blocked")\n}') } })
  const up = await fetch(`${t.adminUrl}/v1/policies`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: bundle.bytes as unknown as BodyInit })
  assert.equal(up.status, 201, await up.text())
  const canary = await t.api('POST', `/v1/policies/${bundle.revision}/canary`, { tenants: ['acme'] })
  assert.equal(canary.status, 200, JSON.stringify(canary.body))
  try {
    const sub = persistentController('q-refused', 5)
    await untilConnected(sub)
    await sub.subscribeAsync('acme/bulkdata/#', { qos: 1 })
    const got: string[] = []
    sub.on('message', (_topic, payload) => got.push(payload.toString()))
    let closed = false
    sub.on('close', () => { closed = true })

    const pub = await connect(t, { v: 5, username: creds.ag!.username, password: creds.ag!.secret, clientId: 'q-mixed' })
    clients.push(pub)
    // allowed and refused messages interleaved, all in flight at once (one TCP write per turn)
    const want: string[] = []
    const sends: Array<Promise<unknown>> = []
    for (let i = 0; i < 20; i++) {
      want.push(`ok${i}`)
      sends.push(pub.publishAsync(`acme/bulkdata/${AG}/wifi`, `ok${i}`, { qos: 1 }))
      sends.push(pub.publishAsync(`acme/bulkdata/${AG}/blocked`, `no${i}`, { qos: 1 }))
    }
    await Promise.all(sends)
    await waitFor(() => got.length >= 20 || closed, 3000, 'the allowed messages')
    await sleep(100)
    assert.equal(closed, false, 'the subscriber was disconnected')
    assert.deepEqual([...new Set(got)].sort(), want.sort(), 'every allowed message, no refused one')
    await waitForEvent(t, { code: 'acl.denied', action: 'deliver', topic: `acme/bulkdata/${AG}/blocked`, principal: CT })

    // and nothing allowed is left behind: a reconnect finds an empty queue of allowed messages
    await closeClient(sub)
    const again = persistentController('q-refused', 5)
    const later: string[] = []
    again.on('message', (_topic, payload) => later.push(payload.toString()))
    await untilConnected(again)
    await sleep(300)
    assert.deepEqual(later.filter(p => p.startsWith('ok') && !got.includes(p)), [])
    assert.deepEqual(later.filter(p => p.startsWith('no')), [], 'a refused message is never delivered later')
  } finally {
    assert.equal((await t.api('POST', '/v1/policies/rollback', { reason: 'test done' })).status, 200)
  }
})
