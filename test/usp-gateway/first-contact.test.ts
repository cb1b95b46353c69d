// First contact and request/response through a real gateway (TR-369 MQTT binding, usp-tr369-facts.md
// §3-4): CONNACK steering, MQTTConnectRecord, Boot! Notify, and Get/GetResp with reply-to, over
// MQTT 5, MQTT 3.1.1 and mixed.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, removeDir, type TestGateway } from '../helpers/gateway.ts'
import {
  UspPeer, enrol, inboxOf, withReplyToSuffix, bootNotifyMsg, getMsg, msgIdOf, msgTypeOf, mqttConnectOf, USP_CONTENT_TYPE,
  type MqttV, type ReceivedMessage
} from '../helpers/usp-peers.ts'

const TENANT = 'fc'
let t: TestGateway
const secrets = new Map<string, string>()
const peers: UspPeer[] = []

async function peer (endpointId: string, role: 'agent' | 'controller', v: MqttV, extra: { clientId?: string } = {}): Promise<UspPeer> {
  let secret = secrets.get(endpointId)
  if (secret === undefined) {
    secret = await enrol(t, TENANT, endpointId, role)
    secrets.set(endpointId, secret)
  }
  const p = await UspPeer.connect(t, { tenant: TENANT, endpointId, role, secret, v, ...extra })
  peers.push(p)
  return p
}

before(async () => { t = await startGateway() })
after(async () => {
  for (const p of peers) await p.close().catch(() => {})
  await t.close()
  await removeDir(t.dataDir)
})

function recordOf (m: ReceivedMessage): Record<string, any> {
  assert.ok(m.envelope.ok, `payload is a valid Record: ${JSON.stringify(m.envelope)}`)
  assert.ok(m.record, 'protobufjs decodes the Record')
  return m.record as Record<string, any>
}

test('MQTT 5 Agent first contact: CONNACK steering, subscribe, MQTTConnectRecord and Boot! reach the Controller', async () => {
  const ctrlId = 'self::fc-ctrl-5'
  const agentId = 'os::00256D-0000000501'
  const agentInbox = inboxOf(TENANT, 'agent', agentId)
  const ctrlInbox = inboxOf(TENANT, 'controller', ctrlId)

  const ctrl = await peer(ctrlId, 'controller', 5)
  assert.deepEqual(await ctrl.subscribeInbox(), [{ topic: `${ctrlInbox}/#`, qos: 1 }])

  // R-MQTT.8: an MQTT 5 endpoint without a configured ClientID sends an empty one.
  const agent = await peer(agentId, 'agent', 5, { clientId: '' })
  assert.equal(agent.connack.reasonCode ?? agent.connack.returnCode ?? 0, 0)
  // R-MQTT.15/.44: CONNACK user property subscribe-topic = the Agent's inbox.
  assert.deepEqual(agent.subscribeTopics, [agentInbox])
  // R-MQTT.12/.21: Response Information (asked for with Request Response Information = 1) = the inbox.
  assert.equal(agent.responseInformation, agentInbox)
  // R-MQTT.9: the server assigned a client id.
  assert.match(String(agent.connack.properties?.assignedClientIdentifier), /^uspgate-/)

  assert.deepEqual(await agent.subscribeInbox(), [{ topic: agentInbox, qos: 1 }])

  // R-MTP.6: the Connect Record first, then the Boot! event.
  const connectRec = agent.connectRecord(ctrlId)
  assert.deepEqual(await agent.sendRecord(ctrlInbox, connectRec), { reasonCode: 0, closed: false })
  const bootId = agent.nextMsgId('boot')
  assert.deepEqual(await agent.sendRecord(ctrlInbox, agent.record(ctrlId, bootNotifyMsg(bootId))), { reasonCode: 0, closed: false })

  const gotConnect = await ctrl.waitFor(m => m.record?.recordType === 'mqttConnect', 3000, 'the MQTTConnectRecord')
  const gotBoot = await ctrl.waitForMsg(bootId)
  assert.ok(ctrl.messages.indexOf(gotConnect) < ctrl.messages.indexOf(gotBoot), 'Connect Record arrives before Boot!')

  for (const m of [gotConnect, gotBoot]) {
    assert.equal(m.topic, ctrlInbox)
    assert.equal(m.responseTopic, agentInbox, 'R-MQTT.23: Response Topic = the Agent\'s inbox')
    assert.equal(m.contentType, USP_CONTENT_TYPE, 'R-MQTT.27: Content Type usp.msg')
    assert.equal(m.qos, 1)
    assert.equal(m.retain, false)
  }
  assert.deepEqual(gotConnect.payload, connectRec, 'the Record is delivered byte for byte')
  const rec = recordOf(gotConnect)
  assert.equal(rec.fromId, agentId)
  assert.equal(rec.toId, ctrlId)
  assert.deepEqual(mqttConnectOf(gotConnect), { version: 'V5', subscribedTopic: agentInbox })

  const boot = recordOf(gotBoot)
  assert.equal(boot.fromId, agentId)
  assert.equal(msgTypeOf(gotBoot), 'NOTIFY')
  const notify = (gotBoot.msg as any).body.request.notify
  assert.equal(notify.event.objPath, 'Device.')
  assert.equal(notify.event.eventName, 'Boot!')
  assert.equal(notify.event.params.Cause, 'LocalReboot')
  assert.equal(notify.sendResp, true)

  // send_resp = true: the Controller answers NotifyResp (same msg_id) to the reply-to it received.
  const resp = ctrl.record(agentId, { msgId: bootId, body: { response: { notifyResp: { subscriptionId: notify.subscriptionId } } } })
  assert.deepEqual(await ctrl.sendRecord(gotBoot.replyTo!, resp), { reasonCode: 0, closed: false })
  const gotResp = await agent.waitForMsg(bootId)
  assert.equal(msgTypeOf(gotResp), 'NOTIFY_RESP')
  assert.equal(gotResp.topic, agentInbox)
  assert.equal(gotResp.responseTopic, ctrlInbox)
  assert.equal(recordOf(gotResp).fromId, ctrlId)
})

test('MQTT 5 Agent that does not ask for Response Information still gets subscribe-topic, and no Response Information', async () => {
  const agentId = 'os::00256D-0000000502'
  let secret = secrets.get(agentId)
  if (secret === undefined) { secret = await enrol(t, TENANT, agentId, 'agent'); secrets.set(agentId, secret) }
  const agent = await UspPeer.connect(t, { tenant: TENANT, endpointId: agentId, role: 'agent', secret, v: 5, requestResponseInformation: false, uspEndpointIdProperty: null })
  peers.push(agent)
  assert.deepEqual(agent.subscribeTopics, [inboxOf(TENANT, 'agent', agentId)], 'R-MQTT.44: the server steers every MQTT 5 Agent')
  assert.equal(agent.responseInformation, undefined, 'Response Information only on request [MQTT-3.1.2.11.7]')
  assert.deepEqual(await agent.subscribeInbox(), [{ topic: inboxOf(TENANT, 'agent', agentId), qos: 1 }])
})

test('MQTT 5 Controller asking for Response Information gets its own inbox, and no subscribe-topic', async () => {
  const ctrl = await peer('self::fc-ctrl-ri', 'controller', 5)
  assert.equal(ctrl.responseInformation, inboxOf(TENANT, 'controller', 'self::fc-ctrl-ri'))
  assert.deepEqual(ctrl.subscribeTopics, [])
})

test('MQTT 3.1.1 Agent first contact: subscribes <inbox>/#, sends its Connect Record and Boot! with the reply-to suffix', async () => {
  const ctrlId = 'self::fc-ctrl-4'
  const agentId = 'os::00256D-0000000401'
  const agentInbox = inboxOf(TENANT, 'agent', agentId)
  const ctrlInbox = inboxOf(TENANT, 'controller', ctrlId)

  const ctrl = await peer(ctrlId, 'controller', 5)
  await ctrl.subscribeInbox()
  // R-MQTT.8: a 3.1.1 Agent uses its Endpoint ID as ClientId.
  const agent = await peer(agentId, 'agent', 4, { clientId: agentId })
  assert.equal(agent.connack.returnCode, 0)
  assert.equal(agent.connack.properties, undefined, 'MQTT 3.1.1 CONNACK carries no properties')
  assert.deepEqual(await agent.subscribeInbox(), [{ topic: `${agentInbox}/#`, qos: 1 }])

  const connectRec = agent.connectRecord(ctrlId)
  // MQTT 3.1.1 has no reason codes: a granted QoS 1 PUBLISH gets a plain PUBACK.
  assert.equal((await agent.sendRecord(ctrlInbox, connectRec)).closed, false)
  const bootId = agent.nextMsgId('boot')
  assert.equal((await agent.sendRecord(ctrlInbox, agent.record(ctrlId, bootNotifyMsg(bootId)))).closed, false)

  const gotConnect = await ctrl.waitFor(m => m.record?.recordType === 'mqttConnect', 3000, 'the MQTTConnectRecord')
  const gotBoot = await ctrl.waitForMsg(bootId)
  const suffixed = withReplyToSuffix(ctrlInbox, agentInbox)
  assert.equal(suffixed, `${ctrlInbox}/reply-to=fc%2Fusp%2Fagent%2F${agentId}`)
  for (const m of [gotConnect, gotBoot]) {
    assert.equal(m.topic, suffixed, 'R-MQTT.24: destination + /reply-to=<inbox with / as %2F>')
    assert.equal(m.replyTo, agentInbox)
    assert.equal(m.responseTopic, undefined)
    assert.equal(m.contentType, undefined)
  }
  assert.deepEqual(gotConnect.payload, connectRec)
  assert.deepEqual(mqttConnectOf(gotConnect), { version: 'V3_1_1', subscribedTopic: agentInbox })
  assert.equal((gotBoot.msg as any).body.request.notify.event.eventName, 'Boot!')

  // The Controller learned from the Connect Record that the Agent speaks 3.1.1: it answers with the
  // suffix (and, being MQTT 5, the Response Topic too); the Agent's <inbox>/# catches it.
  const resp = ctrl.record(agentId, { msgId: bootId, body: { response: { notifyResp: { subscriptionId: 'boot-subscription' } } } })
  assert.deepEqual(await ctrl.sendRecord(gotBoot.replyTo!, resp, { suffix: true }), { reasonCode: 0, closed: false })
  const gotResp = await agent.waitForMsg(bootId)
  assert.equal(gotResp.topic, withReplyToSuffix(agentInbox, ctrlInbox))
  assert.equal(gotResp.replyTo, ctrlInbox)
  assert.equal(msgTypeOf(gotResp), 'NOTIFY_RESP')
})

const roundTrips: Array<{ ctrlV: MqttV, agentV: MqttV }> = [
  { ctrlV: 5, agentV: 5 },
  { ctrlV: 4, agentV: 4 },
  { ctrlV: 5, agentV: 4 }
]
const label = (v: MqttV): string => v === 5 ? 'MQTT 5' : 'MQTT 3.1.1'

for (const { ctrlV, agentV } of roundTrips) {
  test(`Get / GetResp round trip with reply-to: ${label(ctrlV)} Controller, ${label(agentV)} Agent`, async () => {
    const ctrlId = `self::rt-ctrl-${ctrlV}${agentV}`
    const agentId = `os::00256D-00000${ctrlV}${agentV}999`
    const agentInbox = inboxOf(TENANT, 'agent', agentId)
    const ctrlInbox = inboxOf(TENANT, 'controller', ctrlId)

    const ctrl = await peer(ctrlId, 'controller', ctrlV)
    await ctrl.subscribeInbox()
    const agent = await peer(agentId, 'agent', agentV)
    await agent.subscribeInbox()
    agent.answerGets(path => ({ [path.slice(path.lastIndexOf('.') + 1)]: `value:${path}` }))

    // The Agent announces itself; the Controller picks the reply-to style from the Connect Record.
    await agent.sendRecord(ctrlInbox, agent.connectRecord(ctrlId))
    const hello = await ctrl.waitFor(m => m.record?.recordType === 'mqttConnect' && m.record.fromId === agentId, 3000, 'Connect Record')
    const announced = mqttConnectOf(hello)!
    const agentSpeaks311 = announced.version === 'V3_1_1'
    assert.equal(agentSpeaks311, agentV === 4)
    const agentTopic = announced.subscribedTopic
    assert.equal(agentTopic, agentInbox)

    const msgId = ctrl.nextMsgId('get')
    const sent = await ctrl.sendRecord(agentTopic, ctrl.record(agentId, getMsg(msgId)), { suffix: agentSpeaks311 })
    assert.equal(sent.closed, false)
    if (ctrlV === 5) assert.equal(sent.reasonCode, 0)

    // The Agent got the Get with the Controller's reply-to in the form its MQTT version carries.
    const got = await agent.waitForMsg(msgId)
    assert.equal(msgTypeOf(got), 'GET')
    assert.equal(got.replyTo, ctrlInbox)
    assert.equal(got.destination, agentInbox)
    if (agentV === 4) {
      assert.equal(got.topic, withReplyToSuffix(agentInbox, ctrlInbox))
    } else {
      assert.equal(got.topic, agentInbox)
      assert.equal(got.responseTopic, ctrlInbox)
      assert.equal(got.contentType, USP_CONTENT_TYPE)
    }

    // The GetResp (same msg_id, R-MSG.9) came back to the reply-to, carrying the Agent's own reply-to.
    const answer = await ctrl.waitFor(m => msgIdOf(m) === msgId && msgTypeOf(m) === 'GET_RESP', 3000, 'GetResp')
    const rec = recordOf(answer)
    assert.equal(rec.fromId, agentId)
    assert.equal(rec.toId, ctrlId)
    assert.equal(answer.destination, ctrlInbox)
    assert.equal(answer.replyTo, agentInbox)
    if (agentV === 4) assert.equal(answer.topic, withReplyToSuffix(ctrlInbox, agentInbox))
    else assert.equal(answer.topic, ctrlInbox)
    const results = (answer.msg as any).body.response.getResp.reqPathResults
    assert.deepEqual(results.map((r: any) => r.requestedPath), ['Device.DeviceInfo.Manufacturer', 'Device.DeviceInfo.SerialNumber'])
    assert.deepEqual(results[1].resolvedPathResults[0].resultParams, { SerialNumber: 'value:Device.DeviceInfo.SerialNumber' })
  })
}

test('TP-469 11.13: a Get at QoS 0 to an Agent subscribed at QoS 0 is answered too', async () => {
  const ctrlId = 'self::rt-ctrl-qos0'
  const agentId = 'os::00256D-0000000000'
  const ctrl = await peer(ctrlId, 'controller', 5)
  await ctrl.subscribeInbox(0)
  const agent = await peer(agentId, 'agent', 5)
  assert.deepEqual(await agent.subscribeInbox(0), [{ topic: inboxOf(TENANT, 'agent', agentId), qos: 0 }])
  agent.answerGets()
  const msgId = ctrl.nextMsgId('get0')
  assert.deepEqual(await ctrl.sendRecord(inboxOf(TENANT, 'agent', agentId), ctrl.record(agentId, getMsg(msgId)), { qos: 0 }), { closed: false })
  const answer = await ctrl.waitFor(m => msgIdOf(m) === msgId && msgTypeOf(m) === 'GET_RESP', 3000, 'GetResp')
  assert.equal(recordOf(answer).fromId, agentId)
  assert.equal(answer.qos, 0, 'delivered at the subscription QoS')
})
