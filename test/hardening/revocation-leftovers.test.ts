// Hole 1 of issue 14 (credential, certificate and CA revocation): a device connects with a delayed will and a persistent session, drops its
// socket, and its credential is revoked before the will fires. Nothing it left behind may act or
// stay: the will is never published, the delayed-will timer, the stored will, the session's
// subscriptions and its queue are gone (single node: memory; cluster: Redis keys), and messages
// published afterwards to its topics are not queued for it.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import mqtt, { type MqttClient } from 'mqtt'
import { Redis } from 'ioredis'
import { startGateway, provision, connect, closeClient, removeDir, waitFor, waitForEvent, sleep, type TestGateway } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'
import { issueCert, ensureTenant, rootCaPem, connectTls } from '../helpers/mtls.ts'

const cleanup: Array<() => Promise<void>> = []
after(async () => { for (const f of cleanup.reverse()) await f().catch(() => {}) })

const TENANT = 'rvk'
const AGENT = 'os::00256D-RV0001'
const WILL_TOPIC = `${TENANT}/bulkdata/${AGENT}/will`
const INBOX = `${TENANT}/usp/agent/${AGENT}`
const WIRE_ID = 'rv-agent-1'
const INTERNAL_ID = `${TENANT}:${AGENT}|${WIRE_ID}`
const WILL_DELAY_S = 2

interface BrokerPeek {
  delayedWills: Map<string, unknown>
  persistence: { subscriptionsByClient(c: { id: string }): Promise<unknown[]>, outgoingStream(c: { id: string }): AsyncIterable<unknown> }
}

async function queued (t: TestGateway): Promise<number> {
  let n = 0
  for await (const _ of (t.gw.broker as unknown as BrokerPeek).persistence.outgoingStream({ id: INTERNAL_ID })) n++
  return n
}

/** Agent with a delayed will and a persistent session subscribed to its inbox; its socket is then dropped. */
async function agentDropsWithDelayedWill (t: TestGateway, secret: string): Promise<void> {
  const agent = mqtt.connect({
    host: '127.0.0.1', port: t.mqttPort, protocolVersion: 5, reconnectPeriod: 0, clientId: WIRE_ID, clean: false,
    username: `${TENANT}:${AGENT}`, password: secret,
    properties: { sessionExpiryInterval: 30 },
    will: { topic: WILL_TOPIC, payload: Buffer.from('agent gone'), qos: 1, retain: false, properties: { willDelayInterval: WILL_DELAY_S } }
  })
  await new Promise<void>((resolve, reject) => { agent.once('connect', () => resolve()); agent.once('error', reject) })
  await agent.subscribeAsync(INBOX, { qos: 1 })
  ;(agent as MqttClient & { stream: { destroy(): void } }).stream.destroy() // no DISCONNECT: the will is armed
  await waitFor(() => t.gw.sessions.list(TENANT).every(s => s.principal !== AGENT), 5000, 'agent session gone')
}

async function controller (t: TestGateway): Promise<{ client: MqttClient, wills: string[] }> {
  const c = await provision(t, TENANT, 'self::rv-ctrl', 'controller')
  // plain payloads to the inbox (USP inspection is not what this test is about)
  assert.equal((await t.api('PATCH', `/v1/tenants/${TENANT}`, { usp: { inspection: 'off' } })).status, 200)
  const client = await connect(t, { username: c.username, password: c.secret })
  await client.subscribeAsync(`${TENANT}/bulkdata/#`, { qos: 1 })
  const wills: string[] = []
  client.on('message', (topic, payload) => { if (topic === WILL_TOPIC) wills.push(payload.toString()) })
  cleanup.push(async () => await closeClient(client))
  return { client, wills }
}

test('single node: a credential revoked after the socket dropped discards the delayed will, the session and its queue', async () => {
  const t = await startGateway()
  cleanup.push(async () => { await t.close(); await removeDir(t.dataDir) })
  const ag = await provision(t, TENANT, AGENT, 'agent')
  const { client: ctrl, wills } = await controller(t)

  await agentDropsWithDelayedWill(t, ag.secret)
  const broker = t.gw.broker as unknown as BrokerPeek
  assert.ok(broker.delayedWills.has(INTERNAL_ID), 'the control: the will is pending before the revocation')
  assert.equal((await broker.persistence.subscriptionsByClient({ id: INTERNAL_ID })).length, 1, 'the control: the session is kept')

  assert.equal((await t.api('DELETE', `/v1/tenants/${TENANT}/credentials/${encodeURIComponent(AGENT)}`)).status, 200)
  await waitForEvent(t, { code: 'credential.revoked', principal: AGENT })
  // traffic for the revoked device after the revocation must not be queued for it
  await ctrl.publishAsync(INBOX, Buffer.from('for a revoked device'), { qos: 1 })

  await sleep(WILL_DELAY_S * 1000 + 1500)
  assert.deepEqual(wills, [], 'the will of a revoked identity was published')
  assert.equal(broker.delayedWills.has(INTERNAL_ID), false, 'delayed-will timer kept')
  assert.deepEqual(await broker.persistence.subscriptionsByClient({ id: INTERNAL_ID }), [], 'session subscriptions kept')
  assert.equal(await queued(t), 0, 'messages queued for the revoked session')
})

test('cluster: revoked on another node, the delayed will is not published and no session, will or queue key stays in Redis', async () => {
  const redis = await startRedis()
  cleanup.push(() => redis.stop())
  const prefix = 'rvk:'
  const A = await startGateway({ redis: { url: redis.url, prefix }, nodeId: 'rv-a' })
  cleanup.push(async () => { await A.close(); await removeDir(A.dataDir) })
  const B = await startGateway({ redis: { url: redis.url, prefix }, nodeId: 'rv-b' })
  cleanup.push(async () => { await B.close(); await removeDir(B.dataDir) })
  const ag = await provision(A, TENANT, AGENT, 'agent')
  await waitFor(() => B.gw.store.getCredential(TENANT, AGENT), 3000, 'credential on node B')
  const { client: ctrl, wills } = await controller(B)
  const db = new Redis(redis.url)
  cleanup.push(async () => { db.disconnect() })
  const keysOf = async (): Promise<string[]> => (await db.keys(`${prefix}aedes:*`)).filter(k => k.includes(encodeURIComponent(INTERNAL_ID)))

  await agentDropsWithDelayedWill(A, ag.secret)
  await waitFor(async () => (await keysOf()).some(k => k.startsWith(`${prefix}aedes:client:`)), 3000, 'session in Redis')
  assert.ok((await keysOf()).some(k => k.startsWith(`${prefix}aedes:will:`)), 'the control: the will is stored in Redis')

  assert.equal((await B.api('DELETE', `/v1/tenants/${TENANT}/credentials/${encodeURIComponent(AGENT)}`)).status, 200)
  await ctrl.publishAsync(INBOX, Buffer.from('for a revoked device'), { qos: 1 })
  await sleep(WILL_DELAY_S * 1000 + 1500)
  assert.deepEqual(wills, [], 'the will of a revoked identity was published')
  assert.deepEqual(await keysOf(), [], 'Redis keys of the revoked session kept')
  assert.equal(await db.sismember(`${prefix}aedes:clients`, INTERNAL_ID), 0, 'still listed as a persistent client')
  assert.equal((A.gw.broker as unknown as BrokerPeek).delayedWills.has(INTERNAL_ID), false, 'delayed-will timer kept on node A')
})

// The same attack for a device authenticated by its certificate (mTLS): revoking its certificate
// serial, or its tenant's issuing CA, must discard what its ended session left behind exactly like a
// credential revocation (SessionIndex.revokeOffline, reached from MqttsListener.cutSerial / revalidate).
// Without that, the will would still be refused when it fires (the will re-checks the certificate),
// but the delayed-will timer, the session's subscriptions and its queue would stay.
const CERT_TENANT = 'rvc'
for (const how of ['certificate', 'issuing CA'] as const) {
  test(`single node, mTLS: revoking the device's ${how} after the socket dropped discards the delayed will, the session and its queue`, async () => {
    const t = await startGateway({ mtls: true })
    cleanup.push(async () => { await t.close(); await removeDir(t.dataDir) })
    await ensureTenant(t, CERT_TENANT)
    const root = await rootCaPem(t)
    const principal = how === 'certificate' ? 'os::00256D-RC0001' : 'os::00256D-RC0002'
    const wire = `rvc-${how === 'certificate' ? 'cert' : 'ca'}`
    const internalId = `${CERT_TENANT}:${principal}|${wire}`
    const willTopic = `${CERT_TENANT}/bulkdata/${principal}/will`
    const inbox = `${CERT_TENANT}/usp/agent/${principal}`
    const cert = await issueCert(t, CERT_TENANT, principal)
    const bystanderCert = await issueCert(t, CERT_TENANT, 'os::00256D-RC0099')

    // a controller (password) watching for the will, and a certificate bystander of another serial
    const c = await provision(t, CERT_TENANT, 'self::rvc-ctrl', 'controller')
    assert.equal((await t.api('PATCH', `/v1/tenants/${CERT_TENANT}`, { usp: { inspection: 'off' } })).status, 200)
    const ctrl = await connect(t, { username: c.username, password: c.secret })
    cleanup.push(async () => await closeClient(ctrl))
    await ctrl.subscribeAsync(`${CERT_TENANT}/bulkdata/#`, { qos: 1 })
    const wills: string[] = []
    ctrl.on('message', (topic, payload) => { if (topic === willTopic) wills.push(payload.toString()) })

    const agent = await connectTls(t, {
      root, identity: cert, v: 5, clientId: wire, clean: false,
      properties: { sessionExpiryInterval: 30 },
      will: { topic: willTopic, payload: Buffer.from('agent gone'), qos: 1, retain: false, properties: { willDelayInterval: WILL_DELAY_S } }
    })
    await agent.subscribeAsync(inbox, { qos: 1 })
    ;(agent as MqttClient & { stream: { destroy(): void } }).stream.destroy() // no DISCONNECT: the will is armed
    await waitFor(() => t.gw.sessions.list(CERT_TENANT).every(s => s.principal !== principal), 5000, 'agent session gone')

    const broker = t.gw.broker as unknown as BrokerPeek
    const queuedFor = async (): Promise<number> => {
      let n = 0
      for await (const _ of broker.persistence.outgoingStream({ id: internalId })) n++
      return n
    }
    assert.ok(broker.delayedWills.has(internalId), 'the control: the will is pending before the revocation')
    assert.equal((await broker.persistence.subscriptionsByClient({ id: internalId })).length, 1, 'the control: the session is kept')

    if (how === 'certificate') {
      const r = await t.api('DELETE', `/v1/tenants/${CERT_TENANT}/certificates/${cert.serial}?reason=keyCompromise`)
      assert.equal(r.status, 200, JSON.stringify(r.body))
      assert.equal(r.body.disconnected, 0, 'no live session: only offline state to discard')
      await waitForEvent(t, { code: 'cert.revoked', tenant: CERT_TENANT })
    } else {
      const r = await t.api('POST', `/v1/tenants/${CERT_TENANT}/ca/revoke`, { reason: 'cACompromise' })
      assert.equal(r.status, 200, JSON.stringify(r.body))
      await waitForEvent(t, { code: 'ca.revoked', tenant: CERT_TENANT })
    }
    // traffic for the revoked device after the revocation must not be queued for it
    await ctrl.publishAsync(inbox, Buffer.from('for a revoked device'), { qos: 1 })

    await sleep(WILL_DELAY_S * 1000 + 1500)
    assert.deepEqual(wills, [], 'the will of a revoked identity was published')
    assert.equal(broker.delayedWills.has(internalId), false, 'delayed-will timer kept')
    assert.deepEqual(await broker.persistence.subscriptionsByClient({ id: internalId }), [], 'session subscriptions kept')
    assert.equal(await queuedFor(), 0, 'messages queued for the revoked session')
    if (how === 'certificate') {
      // only the revoked serial: another certificate of the tenant still connects
      const other = await connectTls(t, { root, identity: bystanderCert, v: 5, clientId: 'rvc-bystander' })
      await closeClient(other)
    }
  })
}
