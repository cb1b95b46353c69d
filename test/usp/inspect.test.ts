import { test } from 'node:test'
import assert from 'node:assert/strict'
import { inspectUspPublish, encodeRecord, withReplyTo, type UspPublishContext } from '../../broker/usp/index.ts'
import { AGENT, CONTROLLER, TENANT, AGENT_INBOX, CONTROLLER_INBOX, controllerGetRecord, getRespMsg } from './fixtures.ts'

const controller = { tenant: TENANT, endpointId: CONTROLLER, role: 'controller' }
const agent = { tenant: TENANT, endpointId: AGENT, role: 'agent' }

/** A Controller's well-formed MQTT 5 Get to the Agent's inbox; override what a test needs. */
function ctx (overrides: Partial<UspPublishContext> = {}): UspPublishContext {
  return {
    publisher: controller,
    topic: AGENT_INBOX,
    payload: controllerGetRecord(),
    responseTopic: CONTROLLER_INBOX,
    protocolVersion: 5,
    mode: 'enforce',
    audit: 'envelope',
    ...overrides
  }
}

test('a well-formed Get passes; the envelope is read, the Msg is not', () => {
  const result = inspectUspPublish(ctx())
  assert.equal(result.verdict, 'pass')
  assert.equal(result.code, undefined)
  assert.equal(result.replyTo, CONTROLLER_INBOX)
  assert.deepEqual(result.envelope, { version: '1.0', toId: AGENT, fromId: CONTROLLER, payloadSecurity: 'PLAINTEXT', recordType: 'no_session_context' })
  assert.equal(result.message, undefined) // TR-369 R-SEC.4c
})

test('audit "message" adds the Msg header', () => {
  const result = inspectUspPublish(ctx({ audit: 'message' }))
  assert.equal(result.verdict, 'pass')
  assert.deepEqual(result.message, { msgId: 'get-1', msgType: 'GET', kind: 'request', bodyType: 'get' })
  // The Agent's GetResp back to the Controller, MQTT 3.1.1 with the reply-to suffix.
  const resp = encodeRecord({ toId: CONTROLLER, fromId: AGENT, noSessionContext: { payload: getRespMsg() } })
  const back = inspectUspPublish(ctx({
    publisher: agent, topic: withReplyTo(CONTROLLER_INBOX, AGENT_INBOX), payload: resp,
    responseTopic: undefined, protocolVersion: 4, audit: 'message'
  }))
  assert.equal(back.verdict, 'pass', back.reason)
  assert.equal(back.replyTo, AGENT_INBOX)
  assert.deepEqual(back.message, { msgId: 'get-1', msgType: 'GET_RESP', kind: 'response', bodyType: 'get_resp' })
  // A garbage Msg inside a good envelope is malformed once the Msg is read (fail closed)...
  const garbage = encodeRecord({ toId: AGENT, fromId: CONTROLLER, noSessionContext: { payload: Buffer.from([0x0a, 0x09]) } })
  const bad = inspectUspPublish(ctx({ payload: garbage, audit: 'message' }))
  assert.equal(bad.verdict, 'refuse')
  assert.equal(bad.code, 'usp.malformed_record')
  assert.match(bad.reason ?? '', /^Msg: /)
  // ...but not looked at in envelope mode.
  assert.equal(inspectUspPublish(ctx({ payload: garbage })).verdict, 'pass')
  // Records without a Msg are fine in message mode.
  const connect = encodeRecord({ toId: CONTROLLER, fromId: AGENT, mqttConnect: { version: 'V5', subscribedTopic: AGENT_INBOX } })
  const presence = inspectUspPublish(ctx({ publisher: agent, topic: CONTROLLER_INBOX, payload: connect, responseTopic: AGENT_INBOX, audit: 'message' }))
  assert.equal(presence.verdict, 'pass')
  assert.equal(presence.message, undefined)
  assert.deepEqual(presence.envelope?.mqttConnect, { version: 'V5', subscribedTopic: AGENT_INBOX })
})

test('usp.malformed_record', () => {
  for (const payload of [Buffer.alloc(0), Buffer.from('{"not":"usp"}'), controllerGetRecord().subarray(0, 10)]) {
    const result = inspectUspPublish(ctx({ payload }))
    assert.equal(result.verdict, 'refuse')
    assert.equal(result.code, 'usp.malformed_record')
    assert.ok(result.reason)
    assert.equal(result.envelope, undefined)
  }
  const tooBig = inspectUspPublish(ctx({ maxRecordBytes: 16 }))
  assert.equal(tooBig.code, 'usp.malformed_record')
  assert.match(tooBig.reason ?? '', /exceeds 16/)
})

test('usp.from_id_spoofed: from_id must be the authenticated endpoint (TR-369 R-SEC.4c)', () => {
  const result = inspectUspPublish(ctx({ payload: controllerGetRecord({ fromId: 'self::other-controller' }) }))
  assert.equal(result.verdict, 'refuse')
  assert.equal(result.code, 'usp.from_id_spoofed')
  assert.match(result.reason ?? '', /self::other-controller/)
  // An Agent posing as itself to its own inbox (TP-469 2.1) is spoofing the Controller.
  const own = inspectUspPublish(ctx({ publisher: agent, payload: controllerGetRecord() }))
  assert.equal(own.code, 'usp.from_id_spoofed')
})

test('usp.misrouted: to_id must be the inbox endpoint, no extra levels', () => {
  const wrongTo = inspectUspPublish(ctx({ payload: controllerGetRecord({ toId: 'os::someone-else' }) }))
  assert.equal(wrongTo.verdict, 'refuse')
  assert.equal(wrongTo.code, 'usp.misrouted')
  const extra = inspectUspPublish(ctx({ topic: `${AGENT_INBOX}/sneaky` }))
  assert.equal(extra.code, 'usp.misrouted')
  // Two reply-to markers: the earlier one is an extra level.
  const twice = inspectUspPublish(ctx({ topic: `${AGENT_INBOX}/reply-to=x/reply-to=acme%2Fy`, protocolVersion: 4, responseTopic: undefined }))
  assert.equal(twice.code, 'usp.misrouted')
})

test('usp.reply_to_cross_tenant: MQTT 5 Response Topic and 3.1.1 suffix', () => {
  const cases: Array<Partial<UspPublishContext>> = [
    { responseTopic: `other/usp/controller/${CONTROLLER}` },
    { responseTopic: '$SYS/broker' },
    { responseTopic: 'acme' }, // not under "acme/"
    { responseTopic: 'acmecorp/usp/controller/x' },
    { responseTopic: '' },
    { protocolVersion: 4, responseTopic: undefined, topic: withReplyTo(AGENT_INBOX, `other/usp/controller/${CONTROLLER}`) },
    { protocolVersion: 4, responseTopic: undefined, topic: `${AGENT_INBOX}/reply-to=other%2fusp` },
    { protocolVersion: 4, responseTopic: undefined, topic: `${AGENT_INBOX}/reply-to=` },
    // A v5 client with a good Response Topic but a bad suffix (a bridge may forward the suffix).
    { topic: withReplyTo(AGENT_INBOX, '$share/x') }
  ]
  for (const c of cases) {
    const result = inspectUspPublish(ctx(c))
    assert.equal(result.verdict, 'refuse', JSON.stringify(c))
    assert.equal(result.code, 'usp.reply_to_cross_tenant', JSON.stringify(c))
  }
  const ok311 = inspectUspPublish(ctx({ protocolVersion: 4, responseTopic: undefined, topic: withReplyTo(AGENT_INBOX, CONTROLLER_INBOX) }))
  assert.equal(ok311.verdict, 'pass')
  assert.equal(ok311.replyTo, CONTROLLER_INBOX)
})

test('version and missing reply-to / Content Type are never reasons to refuse', () => {
  for (const version of ['', '1.0', '1.3', '1.4', '2.0', '99.99-beta']) {
    assert.equal(inspectUspPublish(ctx({ payload: controllerGetRecord({ version }) })).verdict, 'pass', version)
  }
  const noReplyTo = inspectUspPublish(ctx({ responseTopic: undefined }))
  assert.equal(noReplyTo.verdict, 'pass')
  assert.equal(noReplyTo.replyTo, undefined)
})

test('observe mode: the finding is attached but the PUBLISH passes', () => {
  const result = inspectUspPublish(ctx({ mode: 'observe', payload: controllerGetRecord({ fromId: 'self::spoof' }) }))
  assert.equal(result.verdict, 'pass')
  assert.equal(result.code, 'usp.from_id_spoofed')
  assert.ok(result.reason)
  const malformed = inspectUspPublish(ctx({ mode: 'observe', payload: Buffer.from([0xff]) }))
  assert.deepEqual([malformed.verdict, malformed.code], ['pass', 'usp.malformed_record'])
  assert.deepEqual(inspectUspPublish(ctx({ mode: 'observe' })).code, undefined)
})

test('off mode: nothing is parsed', () => {
  assert.deepEqual(inspectUspPublish(ctx({ mode: 'off', payload: Buffer.from([0xff]) })), { verdict: 'not_usp' })
})

test('non-inbox topics are not_usp: Bulk Data JSON, status, other', () => {
  const bulk = Buffer.from(JSON.stringify({ Report: [{ CollectionTime: 1, 'Device.DeviceInfo.UpTime': 42 }] }))
  for (const topic of [`${TENANT}/bulkdata/${AGENT}/json`, `${TENANT}/usp/status/${AGENT}`, `${TENANT}/telemetry`, '']) {
    assert.deepEqual(inspectUspPublish(ctx({ publisher: agent, topic, payload: bulk })), { verdict: 'not_usp' }, topic)
  }
})

test('order of findings: malformed, then spoofed, then misrouted, then reply-to', () => {
  const all = inspectUspPublish(ctx({
    payload: controllerGetRecord({ fromId: 'x::spoof', toId: 'x::elsewhere' }),
    responseTopic: 'other/x'
  }))
  assert.equal(all.code, 'usp.from_id_spoofed')
  const twoLeft = inspectUspPublish(ctx({ payload: controllerGetRecord({ toId: 'x::elsewhere' }), responseTopic: 'other/x' }))
  assert.equal(twoLeft.code, 'usp.misrouted')
})
