import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  peekRecord, decodeMsgHeader, encodeRecord, encodeMsg, fullyDecodeRecord, fullyDecodeMsg,
  DEFAULT_MAX_RECORD_BYTES, type RecordEnvelope, type PeekResult
} from '../../broker/usp/index.ts'
import { AGENT, CONTROLLER, SEED, prng, getMsg, getRespMsg, randomRecordInput } from './fixtures.ts'
import { lenField, varintField, fixed32Field, fixed64Field, tag, varint, recordWith } from './wire-builder.ts'

function ok (result: PeekResult): RecordEnvelope {
  assert.equal(result.ok, true, result.ok ? '' : result.reason)
  return result as RecordEnvelope
}

function failsWith (result: { ok: boolean; reason?: string }, pattern: RegExp): void {
  assert.equal(result.ok, false, 'expected a failure')
  assert.match(result.reason ?? '', pattern)
}

const camelToSnake = (s: string): string => s.replace(/[A-Z]/g, c => `_${c.toLowerCase()}`)

test('round trip: every record type encodes, peeks and fully decodes alike', () => {
  const base = { version: '1.3', toId: CONTROLLER, fromId: AGENT }
  const cases = [
    { ...base, noSessionContext: { payload: getMsg() } },
    { ...base, sessionContext: { sessionId: 7, sequenceId: 1, expectedId: 1, payload: [Buffer.from('x')] } },
    { ...base, websocketConnect: {} },
    { ...base, mqttConnect: { version: 'V5' as const, subscribedTopic: `acme/usp/agent/${AGENT}` } },
    { ...base, stompConnect: { subscribedDestination: '/usp/agent' } },
    { ...base, disconnect: { reason: 'Configuration Change', reasonCode: 7105 } },
    { ...base, udsConnect: {} }
  ]
  for (const input of cases) {
    const bytes = encodeRecord(input)
    const env = ok(peekRecord(bytes))
    const full = fullyDecodeRecord(bytes)
    assert.equal(env.recordType, camelToSnake(String(full.recordType)))
    assert.equal(env.version, '1.3')
    assert.equal(env.toId, CONTROLLER)
    assert.equal(env.fromId, AGENT)
    assert.equal(env.payloadSecurity, 'PLAINTEXT')
  }
})

test('expected ids only save a decode: the envelope holds the Record\'s own ids, whatever the caller expected', () => {
  // [actual id in the Record, id the caller expected]: equal, one character off, a prefix, longer,
  // multi-byte on either side (é is 2 UTF-8 bytes; "Ã©" is what those bytes would read as Latin-1)
  const pairs: Array<[string, string]> = [
    [AGENT, AGENT], [AGENT, AGENT.replace(/9$/, '8')], [AGENT, AGENT.slice(0, -1)], [AGENT, `${AGENT}0`],
    ['os::caf\u00e9', 'os::caf\u00e9'], ['os::caf\u00e9', 'os::caf\u00c3\u00a9'], ['os::caf\u00c3\u00a9', 'os::caf\u00e9'], [AGENT, '']
  ]
  for (const [actual, expected] of pairs) {
    const bytes = encodeRecord({ version: '1.3', toId: actual, fromId: actual, noSessionContext: { payload: getMsg() } })
    const plain = ok(peekRecord(bytes))
    const env = ok(peekRecord(bytes, { expectedToId: expected, expectedFromId: expected }))
    assert.deepEqual(env, plain, `${actual} read with ${expected} expected`)
    assert.equal(env.fromId, actual)
    assert.equal(env.toId, actual)
  }
  // the version of the previous Record is not carried over to the next one
  assert.equal(ok(peekRecord(encodeRecord({ version: '1.4', toId: CONTROLLER, fromId: AGENT, noSessionContext: { payload: getMsg() } }))).version, '1.4')
  assert.equal(ok(peekRecord(encodeRecord({ version: '1.3', toId: CONTROLLER, fromId: AGENT, noSessionContext: { payload: getMsg() } }))).version, '1.3')
})

test('mqtt_connect and disconnect details are peeked', () => {
  const v311 = ok(peekRecord(encodeRecord({ toId: CONTROLLER, fromId: AGENT, mqttConnect: { version: 0, subscribedTopic: 'acme/usp/agent/x' } })))
  assert.deepEqual(v311.mqttConnect, { version: 'V3_1_1', subscribedTopic: 'acme/usp/agent/x' })
  const v5 = ok(peekRecord(encodeRecord({ toId: CONTROLLER, fromId: AGENT, mqttConnect: { version: 'V5', subscribedTopic: 't' } })))
  assert.deepEqual(v5.mqttConnect, { version: 'V5', subscribedTopic: 't' })
  const bye = ok(peekRecord(encodeRecord({ toId: CONTROLLER, fromId: AGENT, disconnect: { reason: 'Configuration Change', reasonCode: 0 } })))
  assert.deepEqual(bye.disconnect, { reason: 'Configuration Change', reasonCode: 0 })
  const high = ok(peekRecord(encodeRecord({ toId: CONTROLLER, fromId: AGENT, disconnect: { reasonCode: 0xffffffff } })))
  assert.deepEqual(high.disconnect, { reason: '', reasonCode: 0xffffffff })
  // Unknown enum values are legal in proto3 and reported by number.
  const odd = ok(peekRecord(recordWith(varintField(4, 7), lenField(10, varintField(1, 9)))))
  assert.equal(odd.payloadSecurity, 7)
  assert.deepEqual(odd.mqttConnect, { version: 9, subscribedTopic: '' })
})

test('a Get / GetResp pair: header read without parameter values', () => {
  const get = encodeRecord({ toId: AGENT, fromId: CONTROLLER, noSessionContext: { payload: getMsg('req-42') } })
  const resp = encodeRecord({ toId: CONTROLLER, fromId: AGENT, noSessionContext: { payload: getRespMsg('req-42') } })
  assert.deepEqual(decodeMsgHeader(get), { ok: true, msgId: 'req-42', msgType: 'GET', kind: 'request', bodyType: 'get' })
  assert.deepEqual(decodeMsgHeader(resp), { ok: true, msgId: 'req-42', msgType: 'GET_RESP', kind: 'response', bodyType: 'get_resp' })
  // R-MSG.9: the response reuses the request's msg_id; the full decode agrees.
  const fullResp = fullyDecodeMsg(getRespMsg('req-42')) as { header: { msgId: string }; body: { response: { getResp: unknown } } }
  assert.equal(fullResp.header.msgId, 'req-42')
  assert.ok(fullResp.body.response.getResp)
})

test('Notify (Boot!, OnBoardRequest), NotifyResp and Error headers', () => {
  const wrap = (payload: Buffer): Buffer => encodeRecord({ toId: CONTROLLER, fromId: AGENT, noSessionContext: { payload } })
  const boot = encodeMsg({
    msgId: 'boot-1',
    body: {
      request: {
        notify: {
          subscriptionId: 'boot-sub',
          sendResp: true,
          event: {
            objPath: 'Device.',
            eventName: 'Boot!',
            params: { CommandKey: '', Cause: 'LocalReboot', FirmwareUpdated: 'false', ParameterMap: '{}' }
          }
        }
      }
    }
  })
  const onboard = encodeMsg({
    msgId: 'onboard-1',
    body: {
      request: {
        notify: {
          sendResp: true,
          onBoardReq: { oui: '00256D', productClass: 'RG', serialNumber: '0123456789', agentSupportedProtocolVersions: '1.0,1.1,1.2,1.3' }
        }
      }
    }
  })
  const notifyResp = encodeMsg({ msgId: 'boot-1', body: { response: { notifyResp: { subscriptionId: 'boot-sub' } } } })
  const error = encodeMsg({ msgId: 'req-9', body: { error: { errCode: 7004, errMsg: 'invalid args', paramErrs: [{ paramPath: 'Device.X', errCode: 7026 }] } } })

  assert.deepEqual(decodeMsgHeader(wrap(boot)), { ok: true, msgId: 'boot-1', msgType: 'NOTIFY', kind: 'request', bodyType: 'notify' })
  assert.deepEqual(decodeMsgHeader(wrap(onboard)), { ok: true, msgId: 'onboard-1', msgType: 'NOTIFY', kind: 'request', bodyType: 'notify' })
  assert.deepEqual(decodeMsgHeader(wrap(notifyResp)), { ok: true, msgId: 'boot-1', msgType: 'NOTIFY_RESP', kind: 'response', bodyType: 'notify_resp' })
  assert.deepEqual(decodeMsgHeader(wrap(error)), { ok: true, msgId: 'req-9', msgType: 'ERROR', kind: 'error', bodyType: 'error' })

  const fullBoot = fullyDecodeMsg(boot) as { body: { request: { notify: { event: { eventName: string; params: Record<string, string> } } } } }
  assert.equal(fullBoot.body.request.notify.event.eventName, 'Boot!')
  assert.equal(fullBoot.body.request.notify.event.params.Cause, 'LocalReboot')
  const fullOnboard = fullyDecodeMsg(onboard) as { body: { request: { notify: { onBoardReq: { oui: string } } } } }
  assert.equal(fullOnboard.body.request.notify.onBoardReq.oui, '00256D')
})

test('decodeMsgHeader fails closed', () => {
  const wrap = (payload: Buffer): Buffer => encodeRecord({ toId: AGENT, fromId: CONTROLLER, noSessionContext: { payload } })
  failsWith(decodeMsgHeader(Buffer.from('not a record')), /./)
  failsWith(decodeMsgHeader(encodeRecord({ toId: AGENT, fromId: CONTROLLER, websocketConnect: {} })), /websocket_connect record carries no readable Msg/)
  failsWith(decodeMsgHeader(encodeRecord({ toId: AGENT, fromId: CONTROLLER, payloadSecurity: 'TLS12', noSessionContext: { payload: getMsg() } })), /not plaintext/)
  failsWith(decodeMsgHeader(wrap(Buffer.from([0xff, 0xff]))), /varint/)
  failsWith(decodeMsgHeader(wrap(lenField(2, lenField(1, lenField(1, ''))))), /Msg.header is missing/)
  failsWith(decodeMsgHeader(wrap(lenField(1, lenField(1, 'id')))), /Msg.body is missing/)
  failsWith(decodeMsgHeader(wrap(Buffer.concat([lenField(1, varintField(2, 1)), lenField(2, lenField(1, lenField(1, '')))]))), /msg_id is missing/)
  failsWith(decodeMsgHeader(wrap(encodeMsg({ msgId: 'x', msgType: 'SET', body: { request: { get: { paramPaths: [] } } } }))), /SET does not match a get body/)
  failsWith(decodeMsgHeader(wrap(Buffer.concat([lenField(1, Buffer.concat([lenField(1, 'x'), varintField(2, 99)])), lenField(2, lenField(3, ''))]))), /msg_type 99 is unknown/)
  // Body oneof with two members, Request with none.
  failsWith(decodeMsgHeader(wrap(Buffer.concat([lenField(1, lenField(1, 'x')), lenField(2, Buffer.concat([lenField(1, lenField(1, '')), lenField(3, '')]))]))), /msg_body set twice/)
  failsWith(decodeMsgHeader(wrap(Buffer.concat([lenField(1, Buffer.concat([lenField(1, 'x'), varintField(2, 1)])), lenField(2, lenField(1, ''))]))), /req_type is missing/)
})

test('unknown fields of every wire type are skipped', () => {
  const unknown = Buffer.concat([
    varintField(99, 2n ** 63n), fixed64Field(100), lenField(101, 'junk'), fixed32Field(102, 5),
    varintField(2 ** 29 - 1, 1) // the largest field number
  ])
  const env = ok(peekRecord(Buffer.concat([unknown, recordWith(unknown, lenField(9, unknown)), unknown])))
  assert.equal(env.recordType, 'websocket_connect')
  assert.equal(env.toId, 'os::to')
  assert.doesNotThrow(() => fullyDecodeRecord(Buffer.concat([unknown, recordWith(unknown, lenField(9, unknown))])))
})

test('malformed envelopes give structured failures', () => {
  const nsc = lenField(7, lenField(2, getMsg()))
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['empty', Buffer.alloc(0), /empty record/],
    ['truncated varint', Buffer.from([0x0a, 0x80]), /truncated varint/],
    ['varint over 10 bytes', Buffer.concat([Buffer.from([0x20]), Buffer.alloc(10, 0xff), Buffer.from([0x01])]), /longer than 64 bits/],
    ['varint over 64 bits', Buffer.concat([Buffer.from([0x20]), Buffer.alloc(9, 0xff), Buffer.from([0x02])]), /longer than 64 bits/],
    ['length past the end', Buffer.from([0x12, 0x05, 0x61]), /runs past the end/],
    ['huge length', Buffer.concat([Buffer.from([0x12]), varint(2n ** 62n)]), /runs past the end/],
    ['truncated fixed32', recordWith(Buffer.from([0x15, 1, 2])), /truncated 32-bit/],
    ['truncated fixed64', recordWith(Buffer.from([0x09, 1, 2, 3])), /truncated 64-bit/],
    ['wrong wire type for to_id', Buffer.concat([varintField(2, 1), lenField(3, 'a'), nsc]), /to_id has wire type 0/],
    ['wrong wire type for payload_security', recordWith(lenField(4, 'x'), nsc), /payload_security has wire type 2/],
    ['wrong wire type for a record type', recordWith(varintField(9, 0)), /websocket_connect has wire type 0/],
    ['wrong wire type inside disconnect', recordWith(lenField(12, varintField(2, 7))), /reason_code has wire type 0/],
    ['missing to_id', Buffer.concat([lenField(3, 'a'), nsc]), /to_id is missing/],
    ['empty to_id', Buffer.concat([lenField(2, ''), lenField(3, 'a'), nsc]), /to_id is missing/],
    ['missing from_id', Buffer.concat([lenField(2, 'a'), nsc]), /from_id is missing/],
    ['missing record_type', recordWith(), /record_type is missing/],
    ['two record types', recordWith(lenField(9, ''), lenField(13, '')), /record_type set twice/],
    ['duplicate to_id', recordWith(lenField(2, 'other'), nsc), /to_id occurs more than once/],
    ['non-UTF-8 to_id', Buffer.concat([lenField(2, Buffer.from([0x6f, 0xc3, 0x28])), lenField(3, 'a'), nsc]), /to_id is not valid UTF-8/],
    ['non-UTF-8 from_id (lone surrogate)', Buffer.concat([lenField(2, 'a'), lenField(3, Buffer.from([0xed, 0xa0, 0x80])), nsc]), /from_id is not valid UTF-8/],
    ['no_session_context without payload', recordWith(lenField(7, '')), /payload is missing/],
    ['group wire type', recordWith(tag(50, 3), tag(50, 4), nsc), /group/],
    ['invalid wire type 7', recordWith(tag(50, 7), nsc), /invalid wire type 7/],
    ['field number 0', Buffer.concat([varintField(0, 1), recordWith(nsc)]), /field number 0/],
    ['tag over 32 bits', Buffer.concat([varint(2n ** 33n), recordWith(nsc)]), /tag wider than 32 bits/],
    ['over-long id', Buffer.concat([lenField(2, 'x'.repeat(2000)), lenField(3, 'a'), nsc]), /to_id is too long/]
  ]
  for (const [name, bytes, reason] of cases) {
    const result = peekRecord(bytes)
    assert.equal(result.ok, false, `${name}: expected failure`)
    assert.match((result as { reason: string }).reason, reason, name)
  }
  failsWith(peekRecord(Buffer.alloc(DEFAULT_MAX_RECORD_BYTES + 1)), /exceeds/)
  failsWith(peekRecord(encodeRecord({ toId: 'a', fromId: 'b', websocketConnect: {} }), { maxBytes: 8 }), /exceeds 8/)
  failsWith(peekRecord('not bytes' as unknown as Uint8Array), /not a byte buffer/)
})

test('peek agrees with the full protobufjs decode on random valid records', () => {
  const rnd = prng(SEED)
  for (let i = 0; i < 2000; i++) {
    const input = randomRecordInput(rnd)
    const bytes = encodeRecord(input)
    const env = ok(peekRecord(bytes))
    const full = fullyDecodeRecord(bytes) as Record<string, unknown> & {
      mqttConnect?: { version?: string; subscribedTopic?: string }
      disconnect?: { reason?: string; reasonCode?: number }
    }
    const ctx = `seed ${SEED} case ${i}`
    assert.equal(env.version, full.version ?? '', ctx)
    assert.equal(env.toId, full.toId, ctx)
    assert.equal(env.fromId, full.fromId, ctx)
    assert.equal(env.payloadSecurity, full.payloadSecurity ?? 'PLAINTEXT', ctx)
    assert.equal(env.recordType, camelToSnake(String(full.recordType)), ctx)
    if (full.mqttConnect !== undefined) {
      assert.deepEqual(env.mqttConnect, { version: full.mqttConnect.version ?? 'V3_1_1', subscribedTopic: full.mqttConnect.subscribedTopic ?? '' }, ctx)
    }
    if (full.disconnect !== undefined) {
      assert.deepEqual(env.disconnect, { reason: full.disconnect.reason ?? '', reasonCode: full.disconnect.reasonCode ?? 0 }, ctx)
    }
  }
})
