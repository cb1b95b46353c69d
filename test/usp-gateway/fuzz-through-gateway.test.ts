// Fuzzing USP Record inspection through a running gateway: an authenticated MQTT 5 Agent publishes
// random buffers, every truncation of a valid Record, every single-bit flip of it and random byte
// mutations to a Controller's inbox, at QoS 0 and (a sample) at QoS 1.
//
// Oracle, per input: the gateway delivers it iff the bytes are a well-formed Record whose from_id is
// the Agent and whose to_id is the Controller (the inbox endpoint). So:
//   - the Controller receives exactly the passing inputs, in order, and nothing else; every one of
//     them peeks as a valid Record with from_id = the Agent, and protobufjs decodes it;
//   - at QoS 1 the PUBACK says 0x00 for a passing input and 0x87 for every other;
//   - the gateway never crashes: the connection stays, a valid Record still flows afterwards, a new
//     connection is accepted, the admin API answers; refusals are reported (flood-controlled, so the
//     test asserts that events exist, not one per input) and no protocol.error is raised.
// Seeded (USP_FUZZ_SEED=<n> reproduces a run); sized to stay within a few seconds on 2 cores.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, removeDir, type TestGateway } from '../helpers/gateway.ts'
import { encodeMsg, encodeRecord, fullyDecodeRecord, peekRecord, type RecordInput } from '../../broker/usp/index.ts'
import { UspPeer, enrol, inboxOf, bootNotifyMsg, getMsg, USP_CONTENT_TYPE } from '../helpers/usp-peers.ts'

const SEED = Number(process.env.USP_FUZZ_SEED ?? 0x1369f00d)
const TENANT = 'fz'
const AGENT = 'os::00256D-00000fuzz01'
const CTRL = 'self::fuzz-controller'
const AGENT_INBOX = inboxOf(TENANT, 'agent', AGENT)
const CTRL_INBOX = inboxOf(TENANT, 'controller', CTRL)

/** mulberry32 */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
const rnd = prng(SEED)
const int = (n: number): number => Math.floor(rnd() * n)
function bytes (n: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = int(256)
  return b
}

let t: TestGateway
let agent: UspPeer
let ctrl: UspPeer
let agentSecret: string

before(async () => {
  t = await startGateway({ limits: { publishRatePerSecond: 0 } })
  agentSecret = await enrol(t, TENANT, AGENT, 'agent')
  const ctrlSecret = await enrol(t, TENANT, CTRL, 'controller')
  ctrl = await UspPeer.connect(t, { tenant: TENANT, endpointId: CTRL, role: 'controller', secret: ctrlSecret, v: 5, clientId: 'fuzz-controller' })
  await ctrl.subscribeInbox()
  agent = await UspPeer.connect(t, { tenant: TENANT, endpointId: AGENT, role: 'agent', secret: agentSecret, v: 5, clientId: 'fuzz-agent' })
  await agent.subscribeInbox()
})
after(async () => {
  await agent.close().catch(() => {})
  await ctrl.close().catch(() => {})
  await t.close()
  await removeDir(t.dataDir)
})

/** What the gateway must do with these bytes on the Controller's inbox. */
function shouldPass (payload: Buffer): boolean {
  const env = peekRecord(payload)
  return env.ok && env.fromId === AGENT && env.toId === CTRL
}

/** Valid Records from the Agent to the Controller, one per record type, the seeds of the mutations. */
function validRecords (): Buffer[] {
  const base = { version: '1.3', toId: CTRL, fromId: AGENT }
  const inputs: RecordInput[] = [
    { ...base, noSessionContext: { payload: encodeMsg(bootNotifyMsg('boot-fuzz-1', { Cause: 'RemoteReboot' })) } },
    { ...base, noSessionContext: { payload: encodeMsg({ msgId: 'resp-1', body: { response: { getResp: { reqPathResults: [{ requestedPath: 'Device.DeviceInfo.', resolvedPathResults: [{ resolvedPath: 'Device.DeviceInfo.', resultParams: { SerialNumber: '0123456789', SoftwareVersion: '1.2.3' } }] }] } } } }) } },
    { ...base, mqttConnect: { version: 'V5', subscribedTopic: AGENT_INBOX } },
    { ...base, disconnect: { reason: 'Configuration Change', reasonCode: 0 } },
    { ...base, payloadSecurity: 'TLS12', sessionContext: { sessionId: 7, sequenceId: 1, expectedId: 1, payloadSarState: 'NONE', payload: [Buffer.from('opaque')] } },
    { ...base, version: '1.0', websocketConnect: {} },
    { ...base, stompConnect: { subscribedDestination: '/queue/x' } },
    { ...base, udsConnect: {} }
  ]
  return inputs.map(encodeRecord)
}

/** The fuzz corpus: random buffers, truncations, single-bit flips and random mutations. */
function corpus (): { label: string, payload: Buffer }[] {
  const out: { label: string, payload: Buffer }[] = []
  const seeds = validRecords()
  const boot = seeds[0]!
  for (const [i, r] of seeds.entries()) out.push({ label: `valid #${i}`, payload: r })
  for (let i = 0; i < 2500; i++) {
    // a third start like a Record (version tag 0x0a, to_id 0x12, ...) to get past the first byte
    const b = bytes(int(300))
    if (b.length > 0 && i % 3 === 0) b[0] = [0x0a, 0x12, 0x1a, 0x3a, 0x52][int(5)]!
    out.push({ label: `random #${i}`, payload: b })
  }
  for (let i = 0; i < 4; i++) out.push({ label: `large random #${i}`, payload: bytes(32 * 1024 + int(150 * 1024)) })
  for (const [s, r] of seeds.entries()) {
    for (let len = 0; len < r.length; len++) out.push({ label: `truncation of valid #${s} at ${len}`, payload: r.subarray(0, len) })
  }
  for (let bit = 0; bit < boot.length * 8; bit++) {
    const b = Buffer.from(boot)
    b[bit >> 3]! ^= 1 << (bit & 7)
    out.push({ label: `bit flip ${bit}`, payload: b })
  }
  for (let i = 0; i < 1000; i++) {
    const src = seeds[int(seeds.length)]!
    const b = Buffer.from(src)
    const edits = 1 + int(4)
    for (let e = 0; e < edits; e++) b[int(b.length)] = int(256)
    // sometimes also append or splice garbage
    const tail = int(4) === 0 ? bytes(1 + int(16)) : Buffer.alloc(0)
    out.push({ label: `mutation #${i}`, payload: Buffer.concat([b, tail]) })
  }
  return out
}

async function sentinel (label: string): Promise<void> {
  const id = `sentinel-${label}`
  const r = await agent.sendRecord(CTRL_INBOX, agent.record(CTRL, bootNotifyMsg(id)))
  assert.deepEqual(r, { reasonCode: 0, closed: false }, `a valid Record is still accepted (${label})`)
  await ctrl.waitForMsg(id, 10_000)
}

function assertDeliveredAreValid (from: number): void {
  for (const m of ctrl.messages.slice(from)) {
    const env = peekRecord(m.payload)
    assert.ok(env.ok, `the Controller received an invalid Record: ${m.payload.toString('hex')} (seed ${SEED})`)
    assert.equal(env.fromId, AGENT, `the Controller received a Record not from the Agent: ${m.payload.toString('hex')}`)
    assert.equal(env.toId, CTRL)
    assert.doesNotThrow(() => fullyDecodeRecord(m.payload), `protobufjs rejects a delivered Record: ${m.payload.toString('hex')}`)
    assert.equal(m.topic, CTRL_INBOX)
  }
}

test(`thousands of random, truncated and bit-flipped payloads at QoS 0: only valid Records from the Agent are delivered (seed ${SEED})`, async () => {
  const inputs = corpus()
  const expected = inputs.filter(x => shouldPass(x.payload))
  assert.ok(expected.length >= 8, 'the corpus has passing inputs')
  assert.ok(inputs.length - expected.length > 4000, 'and thousands of failing ones')
  const from = ctrl.messages.length
  for (const x of inputs) {
    agent.client.publish(CTRL_INBOX, x.payload, { qos: 0, properties: { responseTopic: AGENT_INBOX, contentType: USP_CONTENT_TYPE } })
  }
  await sentinel('after QoS 0')
  assert.equal(agent.closed, false, 'MQTT 5: refusals never cost the connection')

  const received = ctrl.messages.slice(from, -1) // minus the sentinel
  assertDeliveredAreValid(from)
  // exactly the passing inputs, in the order sent
  const got = received.map(m => m.payload.toString('hex'))
  const want = expected.map(x => x.payload.toString('hex'))
  if (got.join() !== want.join()) {
    const missing = expected.filter(x => !got.includes(x.payload.toString('hex'))).map(x => x.label)
    const extra = received.filter(m => !want.includes(m.payload.toString('hex'))).map(m => m.payload.toString('hex'))
    assert.fail(`delivered set differs (seed ${SEED}): missing ${JSON.stringify(missing.slice(0, 10))}, extra ${JSON.stringify(extra.slice(0, 5))}`)
  }

  const events = t.gw.events.query({ limit: 100_000 }).filter(e => e.clientId === 'fuzz-agent')
  const codes = new Set(events.map(e => e.code))
  assert.ok(codes.has('usp.malformed_record'), 'malformed records were reported')
  for (const code of codes) {
    assert.ok(['usp.malformed_record', 'usp.from_id_spoofed', 'usp.misrouted', 'events.suppressed'].includes(code), `unexpected event ${code}`)
  }
  for (const e of events.filter(e => e.code.startsWith('usp.'))) {
    assert.equal(e.tenant, TENANT)
    assert.equal(e.principal, AGENT)
    assert.equal(e.topic, CTRL_INBOX)
  }
  assert.equal(t.gw.events.query({ limit: 100_000 }).filter(e => e.code === 'protocol.error').length, 0)
})

test(`a sample at QoS 1: PUBACK 0x00 exactly for valid Records from the Agent, 0x87 for everything else (seed ${SEED})`, async () => {
  const all = corpus()
  const sample = [...all.filter(x => shouldPass(x.payload)).slice(0, 20)]
  while (sample.length < 400) sample.push(all[int(all.length)]!)
  const from = ctrl.messages.length
  for (let i = 0; i < sample.length; i += 50) {
    const batch = sample.slice(i, i + 50)
    const results = await Promise.all(batch.map(x => agent.publish(CTRL_INBOX, x.payload, { qos: 1, responseTopic: AGENT_INBOX, contentType: USP_CONTENT_TYPE })))
    results.forEach((r, j) => {
      const x = batch[j]!
      assert.equal(r.closed, false, x.label)
      assert.equal(r.reasonCode, shouldPass(x.payload) ? 0 : 0x87, `${x.label}: ${x.payload.toString('hex').slice(0, 120)}`)
    })
  }
  await sentinel('after QoS 1')
  assertDeliveredAreValid(from)
  assert.equal(ctrl.messages.length - from - 1, sample.filter(x => shouldPass(x.payload)).length)
})

test(`with audit "message" the Msg header reader is fuzzed too: still only valid Records from the Agent get through (seed ${SEED})`, async () => {
  const res = await t.api('PATCH', `/v1/tenants/${TENANT}`, { usp: { audit: 'message' } })
  assert.equal(res.status, 200)
  // bit flips and mutations of the valid Records mostly keep the envelope and damage the Msg
  const inputs = corpus().filter(x => x.label.startsWith('bit flip') || x.label.startsWith('mutation') || x.label.startsWith('valid'))
  const from = ctrl.messages.length
  for (const x of inputs) {
    agent.client.publish(CTRL_INBOX, x.payload, { qos: 0, properties: { responseTopic: AGENT_INBOX, contentType: USP_CONTENT_TYPE } })
  }
  await sentinel('after message-level fuzz')
  assertDeliveredAreValid(from)
  const delivered = ctrl.messages.length - from - 1
  assert.ok(delivered >= 8, 'the valid Records still pass')
  assert.ok(delivered <= inputs.filter(x => shouldPass(x.payload)).length)
  const audit = await t.api('GET', `/v1/tenants/${TENANT}/usp-audit?limit=1000`)
  const withMsg = audit.body.records.filter((r: { msgId?: string }) => r.msgId !== undefined)
  assert.ok(withMsg.length > 0, 'Msg headers were audited')
  await t.api('PATCH', `/v1/tenants/${TENANT}`, { usp: { audit: 'envelope' } })
})

test('afterwards the gateway is healthy: Get/GetResp flows, a new Agent connection is accepted, the admin API answers', async () => {
  agent.answerGets()
  const msgId = ctrl.nextMsgId('get-after-fuzz')
  assert.equal((await ctrl.sendRecord(AGENT_INBOX, ctrl.record(AGENT, getMsg(msgId)))).reasonCode, 0)
  await ctrl.waitFor(m => m.record?.fromId === AGENT && (m.msg?.header as { msgId?: string } | undefined)?.msgId === msgId && (m.msg?.header as { msgType?: string }).msgType === 'GET_RESP', 5000, 'GetResp')
  const second = await UspPeer.connect(t, { tenant: TENANT, endpointId: AGENT, role: 'agent', secret: agentSecret, v: 5, clientId: 'fuzz-agent-2' })
  assert.equal(second.subscribeTopics[0], AGENT_INBOX)
  await second.close()
  const health = await fetch(`${t.adminUrl}/healthz`)
  assert.equal(health.status, 200)
  const audit = await t.api('GET', `/v1/tenants/${TENANT}/usp-audit?limit=1000`)
  assert.equal(audit.status, 200)
  assert.ok(audit.body.records.length > 0)
})
