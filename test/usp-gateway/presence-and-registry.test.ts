// Presence (retained "1"/"0" on <tenant>/usp/status/<agent-endpoint-id>, published by the gateway
// only) and the endpoint registry (GET /v1/tenants/:tenant/endpoints[/:id]) through a real gateway.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, removeDir, waitFor, type TestGateway } from '../helpers/gateway.ts'
import { UspPeer, enrol, inboxOf, pause, type MqttV, type ReceivedMessage, type Role } from '../helpers/usp-peers.ts'

const TENANT = 'pres'
const CTRL = 'self::pres-controller'
let t: TestGateway
const open: UspPeer[] = []
const secrets = new Map<string, string>()

before(async () => { t = await startGateway() })
after(async () => {
  for (const p of open) await p.close().catch(() => {})
  await t.close()
  await removeDir(t.dataDir)
})

async function peer (endpointId: string, role: Role, v: MqttV, clientId?: string): Promise<UspPeer> {
  let secret = secrets.get(endpointId)
  if (secret === undefined) { secret = await enrol(t, TENANT, endpointId, role); secrets.set(endpointId, secret) }
  const p = await UspPeer.connect(t, { tenant: TENANT, endpointId, role, secret, v, ...(clientId !== undefined ? { clientId } : {}) })
  open.push(p)
  return p
}

/** A Controller watching every Agent's presence. */
async function watcher (): Promise<UspPeer> {
  const w = await peer(CTRL, 'controller', 5)
  assert.equal(await w.subscribe(`${TENANT}/usp/status/+`), 1, 'controller_status: a Controller may watch presence')
  return w
}

const statusTopic = (eid: string): string => `${TENANT}/usp/status/${eid}`
const presenceOf = (w: UspPeer, eid: string): ReceivedMessage[] => w.messages.filter(m => m.topic === statusTopic(eid))

async function endpoint (eid: string): Promise<{ status: number, body: any, headers: Headers }> {
  return await t.api('GET', `/v1/tenants/${TENANT}/endpoints/${encodeURIComponent(eid)}`)
}

for (const v of [5, 4] as const) {
  test(`MQTT ${v === 5 ? '5' : '3.1.1'} Agent: retained presence "1" then "0", registry online/offline, first contact kept across reconnects`, async () => {
    const eid = `os::00256D-00000pres${v}`
    assert.equal((await endpoint(eid)).status, 404, 'unknown before first contact')

    const agent = await peer(eid, 'agent', v)
    await agent.subscribeInbox()
    // A Controller that subscribes after the Agent connected gets the retained "1".
    const w1 = await watcher()
    const first = await w1.waitFor(m => m.topic === statusTopic(eid), 3000, 'retained presence')
    assert.equal(first.payload.toString(), '1')
    assert.equal(first.retain, true, 'presence is retained')

    const online = await endpoint(eid)
    assert.equal(online.status, 200)
    assert.equal(online.body.tenant, TENANT)
    assert.equal(online.body.endpointId, eid)
    assert.equal(online.body.role, 'agent')
    assert.equal(online.body.online, true)
    assert.equal(online.body.mqttVersion, v === 5 ? '5.0' : '3.1.1')
    assert.equal(online.body.node, 'test-node')
    assert.ok(!Number.isNaN(Date.parse(online.body.firstContact)))
    assert.ok(online.body.lastSeen >= online.body.firstContact)

    // The MQTTConnectRecord tells the registry where the Agent listens.
    const ctrlInbox = inboxOf(TENANT, 'controller', CTRL)
    assert.equal((await agent.sendRecord(ctrlInbox, agent.connectRecord(CTRL))).closed, false)
    const withTopic = await waitForEndpoint(eid, e => e.subscribedTopic !== undefined)
    assert.equal(withTopic.subscribedTopic, inboxOf(TENANT, 'agent', eid))

    await pause(15) // ISO timestamps have millisecond resolution
    if (v === 5) await agent.close() // DISCONNECT
    else agent.kill() // the TCP connection just drops
    const gone = await w1.waitFor(m => m.topic === statusTopic(eid) && m.payload.toString() === '0', 3000, 'presence "0"')
    assert.equal(gone.retain, false, 'a live delivery of a retained message has RETAIN 0 [MQTT-3.3.1-9]')
    const offline = await waitForEndpoint(eid, e => e.online === false)
    assert.equal(offline.firstContact, online.body.firstContact)
    assert.ok(offline.lastSeen > online.body.lastSeen, 'lastSeen advances on disconnect')

    // A Controller arriving now learns the Agent is offline from the retained "0".
    const w2 = await watcher()
    const late = await w2.waitFor(m => m.topic === statusTopic(eid), 3000, 'retained "0"')
    assert.equal(late.payload.toString(), '0')
    assert.equal(late.retain, true)

    await pause(15)
    const again = await peer(eid, 'agent', v)
    await w1.waitFor(m => m.topic === statusTopic(eid) && m.payload.toString() === '1' && m !== first, 3000, 'presence "1" again')
    const back = await waitForEndpoint(eid, e => e.online === true)
    assert.equal(back.firstContact, online.body.firstContact, 'firstContact never changes')
    assert.ok(back.lastSeen > offline.lastSeen, 'lastSeen advances on reconnect')
    assert.equal(back.mqttVersion, v === 5 ? '5.0' : '3.1.1')
    await again.close()
    await w1.waitFor(() => presenceOf(w1, eid).at(-1)?.payload.toString() === '0', 3000, 'offline again')
  })
}

/** Polls GET /endpoints/:id until the record matches. */
async function waitForEndpoint (eid: string, pred: (e: any) => boolean): Promise<any> {
  const deadline = Date.now() + 3000
  for (;;) {
    const r = await endpoint(eid)
    if (r.status === 200 && pred(r.body)) return r.body
    if (Date.now() > deadline) throw new Error(`endpoint ${eid} never matched: ${JSON.stringify(r.body)}`)
    await pause(20)
  }
}

test('GET /endpoints lists Agents and Controllers; Controllers have no presence; unknown endpoint or tenant is 404', async () => {
  const agentId = 'os::00256D-000000list'
  const ctrlId = 'self::pres-list-ctrl'
  const w = await watcher()
  const ctrl = await peer(ctrlId, 'controller', 5)
  const agent = await peer(agentId, 'agent', 4)
  await w.waitFor(m => m.topic === statusTopic(agentId), 3000, 'agent presence')

  const list = await t.api('GET', `/v1/tenants/${TENANT}/endpoints`)
  assert.equal(list.status, 200)
  const byId = new Map<string, any>(list.body.endpoints.map((e: any) => [e.endpointId, e]))
  assert.equal(byId.get(agentId)?.role, 'agent')
  assert.equal(byId.get(agentId)?.online, true)
  assert.equal(byId.get(agentId)?.mqttVersion, '3.1.1')
  assert.equal(byId.get(ctrlId)?.role, 'controller')
  assert.equal(byId.get(ctrlId)?.online, true)
  assert.equal(byId.get(ctrlId)?.mqttVersion, '5.0')
  for (const e of list.body.endpoints) assert.equal(e.tenant, TENANT)

  await ctrl.close()
  await waitForEndpoint(ctrlId, e => e.online === false)
  await pause(100)
  assert.deepEqual(w.messages.filter(m => m.topic === statusTopic(ctrlId)), [], 'presence is for Agents only')

  const unknown = await endpoint('os::00256D-NEVER-SEEN')
  assert.equal(unknown.status, 404)
  assert.match(String(unknown.headers.get('content-type')), /application\/problem\+json/)
  assert.equal((await t.api('GET', '/v1/tenants/no-such-tenant/endpoints')).status, 404)
  assert.equal((await t.api('GET', `/v1/tenants/no-such-tenant/endpoints/${encodeURIComponent(agentId)}`)).status, 404)
  // the registry is per tenant: another tenant does not see this Agent
  await enrol(t, 'pres-other', 'self::other', 'controller')
  assert.equal((await t.api('GET', `/v1/tenants/pres-other/endpoints/${encodeURIComponent(agentId)}`)).status, 404)
  const other = await t.api('GET', '/v1/tenants/pres-other/endpoints')
  assert.deepEqual(other.body.endpoints, [])
  await agent.close()
})

test('two sessions of one Agent: presence stays "1" until the last one leaves; a session takeover leaves it online', async () => {
  const eid = 'os::00256D-0000twosess'
  const w = await watcher()
  const a = await peer(eid, 'agent', 5, 'two-sess-a')
  const b = await peer(eid, 'agent', 5, 'two-sess-b')
  await w.waitFor(m => m.topic === statusTopic(eid), 3000, 'presence')
  await a.close()
  await pause(150)
  assert.deepEqual(presenceOf(w, eid).map(m => m.payload.toString()).filter(x => x === '0'), [], 'still online through session b')
  assert.equal((await endpoint(eid)).body.online, true)

  // [MQTT-3.1.4-2] the same identity reconnecting with the same client id takes its session over
  const b2 = await peer(eid, 'agent', 5, 'two-sess-b')
  await waitFor(() => b.closed, 3000, 'the old connection to be closed')
  await pause(150)
  assert.equal(presenceOf(w, eid).at(-1)?.payload.toString(), '1', 'after a takeover the Agent is online')
  assert.equal((await endpoint(eid)).body.online, true)
  const late = await watcher()
  assert.equal((await late.waitFor(m => m.topic === statusTopic(eid))).payload.toString(), '1', 'retained presence is "1"')

  await b2.close()
  await w.waitFor(() => presenceOf(w, eid).at(-1)?.payload.toString() === '0', 3000, 'offline after the last session')
  assert.equal((await waitForEndpoint(eid, e => e.online === false)).online, false)
})

test('presence is published by the gateway only: an Agent cannot forge its own or another Agent\'s status', async () => {
  const eid = 'os::00256D-000000forge'
  const w = await watcher()
  const agent = await peer(eid, 'agent', 5)
  await w.waitFor(m => m.topic === statusTopic(eid), 3000, 'presence')
  const before = w.messages.length
  for (const target of [eid, 'os::00256D-0000victim']) {
    const r = await agent.publish(statusTopic(target), '0', { qos: 1, retain: true })
    assert.equal(r.reasonCode, 0x87, `publish to ${statusTopic(target)} is refused`)
  }
  const ctrl = await peer(CTRL, 'controller', 5)
  assert.equal((await ctrl.publish(statusTopic(eid), '0', { qos: 1, retain: true })).reasonCode, 0x87, 'Controllers cannot either')
  await pause(100)
  assert.deepEqual(w.messages.slice(before).map(m => m.topic), [])
  const late = await watcher()
  assert.equal((await late.waitFor(m => m.topic === statusTopic(eid))).payload.toString(), '1')
  await pause(50)
  assert.deepEqual(late.messages.filter(m => m.topic === statusTopic('os::00256D-0000victim')), [])
  await agent.close()
})

test('the registry survives a restart: endpoints come back offline with their first contact', async () => {
  const eid = 'os::00256D-00000restart'
  const agent = await peer(eid, 'agent', 5)
  await agent.sendRecord(inboxOf(TENANT, 'controller', CTRL), agent.connectRecord(CTRL))
  const before = await waitForEndpoint(eid, e => e.subscribedTopic !== undefined)
  t = await t.restart()
  const after = (await endpoint(eid)).body
  assert.equal(after.online, false, 'nothing is online until it connects again')
  assert.equal(after.firstContact, before.firstContact)
  assert.equal(after.subscribedTopic, inboxOf(TENANT, 'agent', eid))
  await pause(15)
  const again = await peer(eid, 'agent', 5)
  const back = await waitForEndpoint(eid, e => e.online === true)
  assert.equal(back.firstContact, before.firstContact)
  await again.close()
})

// TR-181 Device.MQTT.Client.{i}.ProtocolVersion is one of "3.1", "3.1.1", "5.0" (obuspa supports all
// three); the registry must report the version the endpoint actually speaks.
test('an MQTT 3.1 Agent (protocol level 3) is registered with mqttVersion "3.1", and its Records flow with the reply-to suffix', async () => {
  const eid = 'os::00256D-00000mqtt31'
  let secret = secrets.get(eid)
  if (secret === undefined) { secret = await enrol(t, TENANT, eid, 'agent'); secrets.set(eid, secret) }
  const ctrl = await peer(CTRL, 'controller', 5)
  await ctrl.subscribeInbox()
  // MQTT 3.1 servers may refuse client ids over 23 characters: this one has 12.
  const agent = await UspPeer.connect(t, { tenant: TENANT, endpointId: eid, role: 'agent', secret, v: 4, clientId: 'mqtt31-agent', extra: { protocolId: 'MQIsdp', protocolVersion: 3 } })
    .catch((err: Error & { code?: unknown }) => {
      const events = t.gw.events.query({ limit: 1000 }).filter(e => e.clientId === 'mqtt31-agent').map(e => `${e.code}: ${e.reason}`)
      return assert.fail(`MQTT 3.1 CONNECT with a 12-character client id refused (${err.message}, code ${String(err.code)}; events ${JSON.stringify(events)})`)
    })
  open.push(agent)
  await agent.subscribeInbox()
  const boot = agent.nextMsgId('boot31')
  assert.equal((await agent.sendRecord(inboxOf(TENANT, 'controller', CTRL), agent.record(CTRL, { msgId: boot, body: { request: { notify: { subscriptionId: 's', sendResp: false, event: { objPath: 'Device.', eventName: 'Boot!' } } } } }))).closed, false)
  const got = await ctrl.waitForMsg(boot)
  assert.equal(got.replyTo, inboxOf(TENANT, 'agent', eid))
  const e = await waitForEndpoint(eid, x => x.online === true)
  assert.equal(e.mqttVersion, '3.1', 'an MQTT 3.1 endpoint is not an MQTT 3.1.1 endpoint')
  await agent.close()
})
