// Per-tenant USP inspection modes and the USP payload audit, set through the admin API
// (PATCH /v1/tenants/:tenant {usp: {inspection, audit}}) and observed through a real gateway:
//   enforce (default) refuses, observe delivers but reports, off delivers without parsing;
//   Bulk Data is never USP; Record version and a missing Content Type are never grounds to refuse;
//   audit 'envelope' (default) records the envelope only, 'message' adds msg_id/msg_type/kind,
//   and parameter paths and values never reach the audit trail (TR-369 R-SEC.4c).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { startGateway, removeDir, waitForEvent, type TestGateway } from '../helpers/gateway.ts'
import { encodeMsg, encodeRecord } from '../../broker/usp/index.ts'
import {
  UspPeer, enrol, inboxOf, bootNotifyMsg, getMsg, msgIdOf, msgTypeOf, pause,
  type MqttV, type Role
} from '../helpers/usp-peers.ts'

let t: TestGateway
const open: UspPeer[] = []

before(async () => { t = await startGateway() })
after(async () => {
  for (const p of open) await p.close().catch(() => {})
  await t.close()
  await removeDir(t.dataDir)
})

interface Pair { agent: UspPeer, ctrl: UspPeer, agentId: string, ctrlId: string, tenant: string }

const secrets = new Map<string, string>()
async function peer (tenant: string, endpointId: string, role: Role, v: MqttV): Promise<UspPeer> {
  const key = `${tenant}:${endpointId}`
  let secret = secrets.get(key)
  if (secret === undefined) { secret = await enrol(t, tenant, endpointId, role); secrets.set(key, secret) }
  const p = await UspPeer.connect(t, { tenant, endpointId, role, secret, v })
  open.push(p)
  return p
}

/** A Controller (subscribed to its inbox and the tenant's Bulk Data) and an Agent (subscribed to its inbox). */
async function pair (tenant: string, agentV: MqttV = 5): Promise<Pair> {
  const agentId = `os::00256D-${tenant}-${agentV}`
  const ctrlId = `self::${tenant}-ctrl`
  const ctrl = await peer(tenant, ctrlId, 'controller', 5)
  await ctrl.subscribeInbox()
  assert.equal(await ctrl.subscribe(`${tenant}/bulkdata/#`), 1)
  const agent = await peer(tenant, agentId, 'agent', agentV)
  await agent.subscribeInbox()
  return { agent, ctrl, agentId, ctrlId, tenant }
}

async function setUsp (tenant: string, usp: Record<string, string>): Promise<Record<string, unknown>> {
  const res = await t.api('PATCH', `/v1/tenants/${tenant}`, { usp })
  assert.equal(res.status, 200, JSON.stringify(res.body))
  return res.body
}

async function audit (tenant: string): Promise<Array<Record<string, unknown>>> {
  const res = await t.api('GET', `/v1/tenants/${tenant}/usp-audit?limit=1000`)
  assert.equal(res.status, 200)
  return res.body.records
}

/** A valid Boot! from the Agent; once the Controller has it, everything the Agent sent earlier has been routed. */
async function sentinel (p: Pair): Promise<void> {
  const id = p.agent.nextMsgId('sentinel')
  assert.equal((await p.agent.sendRecord(inboxOf(p.tenant, 'controller', p.ctrlId), p.agent.record(p.ctrlId, bootNotifyMsg(id)))).closed, false)
  await p.ctrl.waitForMsg(id)
}

function uspEventsOf (clientId: string): string[] {
  return t.gw.events.query({ limit: 1000 }).filter(e => e.clientId === clientId && e.code.startsWith('usp.')).map(e => e.code)
}

test('PATCH usp settings: defaults are enforce/envelope; invalid values are refused with 400 and change nothing', async () => {
  await enrol(t, 'settings', 'self::x', 'controller')
  const list = await t.api('GET', '/v1/tenants')
  const tenant = list.body.tenants.find((x: { id: string }) => x.id === 'settings')
  assert.ok(tenant.usp === undefined || (tenant.usp.inspection === 'enforce' && tenant.usp.audit === 'envelope'))
  assert.deepEqual((await setUsp('settings', { inspection: 'observe' })).usp, { inspection: 'observe', audit: 'envelope' })
  assert.deepEqual((await setUsp('settings', { audit: 'message' })).usp, { inspection: 'observe', audit: 'message' })
  for (const usp of [{ inspection: 'permissive' }, { audit: 'full' }, { inspection: 'off', extra: 1 }]) {
    const res = await t.api('PATCH', '/v1/tenants/settings', { usp })
    assert.equal(res.status, 400, JSON.stringify(usp))
  }
  assert.equal((await t.api('PATCH', '/v1/tenants/nope', { usp: { inspection: 'off' } })).status, 404)
  const after = (await t.api('GET', '/v1/tenants')).body.tenants.find((x: { id: string }) => x.id === 'settings')
  assert.deepEqual(after.usp, { inspection: 'observe', audit: 'message' })
})

for (const v of [5, 4] as const) {
  test(`observe mode (MQTT ${v === 5 ? '5' : '3.1.1'} Agent): a spoofed and a malformed record are delivered, each finding is logged`, async () => {
    const tenant = `obs${v}`
    const p = await pair(tenant, v)
    await setUsp(tenant, { inspection: 'observe' })
    const ctrlInbox = inboxOf(tenant, 'controller', p.ctrlId)

    const spoofed = p.agent.record(p.ctrlId, bootNotifyMsg(p.agent.nextMsgId('spoof')), { fromId: 'os::00256D-IMPOSTOR' })
    const r1 = await p.agent.sendRecord(ctrlInbox, spoofed)
    assert.equal(r1.closed, false, 'observe mode never disconnects')
    if (v === 5) assert.equal(r1.reasonCode, 0)
    const malformed = Buffer.from([0x0a, 0x03, 0x31, 0x2e]) // a version field cut short
    assert.equal((await p.agent.sendRecord(ctrlInbox, malformed)).closed, false)

    const got = await p.ctrl.waitFor(m => m.payload.equals(spoofed), 3000, 'the spoofed record')
    assert.equal(got.destination, ctrlInbox)
    await p.ctrl.waitFor(m => m.payload.equals(malformed), 3000, 'the malformed record')

    const ev = await waitForEvent(t, { code: 'usp.from_id_spoofed', clientId: p.agent.clientId })
    assert.equal(ev.tenant, tenant)
    assert.equal(ev.principal, p.agentId)
    assert.equal(ev.action, 'publish')
    assert.match(ev.reason ?? '', /^observe mode, delivered: from_id "os::00256D-IMPOSTOR"/)
    assert.match(ev.topic ?? '', new RegExp(`^${ctrlInbox.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))
    await waitForEvent(t, { code: 'usp.malformed_record', clientId: p.agent.clientId })

    const entries = await audit(tenant)
    const spoofEntry = entries.find(e => e.code === 'usp.from_id_spoofed')
    assert.equal(spoofEntry?.result, 'delivered')
    assert.equal(spoofEntry?.fromId, 'os::00256D-IMPOSTOR')
    assert.equal(entries.find(e => e.code === 'usp.malformed_record')?.result, 'delivered')
  })
}

test('off mode: records are delivered without parsing (no event, no audit entry); back to enforce refuses again, live', async () => {
  const tenant = 'offmode'
  const p = await pair(tenant)
  const ctrlInbox = inboxOf(tenant, 'controller', p.ctrlId)
  await setUsp(tenant, { inspection: 'off' })
  const auditBefore = (await audit(tenant)).length

  const garbage = Buffer.from('definitely not protobuf \u0000\u00ff')
  const spoofed = p.agent.record(p.ctrlId, bootNotifyMsg(p.agent.nextMsgId('spoof')), { fromId: 'os::00256D-IMPOSTOR' })
  const misrouted = p.agent.record('self::nobody', bootNotifyMsg(p.agent.nextMsgId('misrouted')))
  for (const payload of [garbage, spoofed, misrouted]) {
    assert.deepEqual(await p.agent.sendRecord(ctrlInbox, payload), { reasonCode: 0, closed: false })
  }
  const crossReply = p.agent.record(p.ctrlId, bootNotifyMsg(p.agent.nextMsgId('cross')))
  assert.deepEqual(await p.agent.sendRecord(ctrlInbox, crossReply, { replyTo: 'beta/usp/agent/x' }), { reasonCode: 0, closed: false })
  await sentinel(p)
  for (const payload of [garbage, spoofed, misrouted, crossReply]) {
    assert.ok(p.ctrl.messages.some(m => m.payload.equals(payload)), 'delivered as sent')
  }
  await pause(50)
  assert.deepEqual(uspEventsOf(p.agent.clientId), [], 'off mode reports nothing')
  assert.equal((await audit(tenant)).length, auditBefore, 'off mode parses nothing, so audits nothing')

  // switching back applies to the live connection at once
  await setUsp(tenant, { inspection: 'enforce' })
  const again = p.agent.record(p.ctrlId, bootNotifyMsg(p.agent.nextMsgId('spoof')), { fromId: 'os::00256D-IMPOSTOR' })
  assert.equal((await p.agent.sendRecord(ctrlInbox, again)).reasonCode, 0x87)
  await waitForEvent(t, { code: 'usp.from_id_spoofed', clientId: p.agent.clientId })
})

test('Bulk Data JSON/CSV on <tenant>/bulkdata/<eid>/... passes untouched in every mode, MQTT 5 and 3.1.1', async () => {
  const tenant = 'bulk'
  const p5 = await pair(tenant, 5)
  const p4 = await pair(tenant, 4)
  for (const mode of ['enforce', 'observe', 'off'] as const) {
    await setUsp(tenant, { inspection: mode })
    for (const p of [p5, p4]) {
      const topic = `${tenant}/bulkdata/${p.agentId}/report-${mode}`
      const json = Buffer.from(JSON.stringify({ Report: [{ CollectionTime: 1700000000, 'Device.DeviceInfo.UpTime': 4242, mode }] }))
      const csv = Buffer.from(`ReportTimestamp,ParameterName,ParameterValue\n1700000000,Device.DeviceInfo.UpTime,4242\n# ${mode}\n`)
      const r1 = await p.agent.publish(topic, json, { qos: 1, contentType: 'application/json; charset=UTF-8' })
      const r2 = await p.agent.publish(`${topic}/csv`, csv, { qos: 1, contentType: 'text/csv' })
      for (const r of [r1, r2]) {
        assert.equal(r.closed, false, `${mode}: a Bulk Data report is not a USP Record`)
        if (p.agent.v === 5) assert.equal(r.reasonCode, 0)
      }
      const got = await p5.ctrl.waitFor(m => m.topic === topic, 3000, `bulk data ${topic}`)
      assert.deepEqual(got.payload, json, 'byte for byte')
      if (p.agent.v === 5) assert.equal(got.contentType, 'application/json; charset=UTF-8')
      assert.deepEqual((await p5.ctrl.waitFor(m => m.topic === `${topic}/csv`)).payload, csv)
    }
  }
  await pause(50)
  assert.deepEqual(uspEventsOf(p5.agent.clientId), [])
  assert.deepEqual(uspEventsOf(p4.agent.clientId), [])
  assert.equal((await audit(tenant)).filter(e => String(e.topic).includes('/bulkdata/')).length, 0, 'Bulk Data is not audited as USP')
})

test('enforce: Record version "1.0"/"9.9"/"1.4" and a missing or alternative Content Type are never grounds to refuse', async () => {
  const tenant = 'versions'
  const p = await pair(tenant)
  const ctrlInbox = inboxOf(tenant, 'controller', p.ctrlId)
  const agentInbox = inboxOf(tenant, 'agent', p.agentId)
  const sent: Buffer[] = []
  for (const version of ['1.0', '9.9', '1.4']) {
    for (const contentType of [null, 'application/vnd.bbf.usp.msg', 'usp.msg']) {
      const rec = p.agent.record(p.ctrlId, bootNotifyMsg(p.agent.nextMsgId(`v${version}`)), { version })
      sent.push(rec)
      assert.deepEqual(await p.agent.sendRecord(ctrlInbox, rec, { contentType }), { reasonCode: 0, closed: false },
        `version ${version}, content type ${String(contentType)}`)
    }
  }
  // oktopus style: the Controller sends version "1.0" with a Response Topic and no Content Type.
  const getId = p.ctrl.nextMsgId('get')
  const get = p.ctrl.record(p.agentId, getMsg(getId), { version: '1.0' })
  assert.deepEqual(await p.ctrl.sendRecord(agentInbox, get, { contentType: null }), { reasonCode: 0, closed: false })
  await p.agent.waitForMsg(getId)
  for (const rec of sent) await p.ctrl.waitFor(m => m.payload.equals(rec))
  const noCt = p.ctrl.messages.find(m => m.payload.equals(sent[0]!))!
  assert.equal(noCt.contentType, undefined)
  assert.deepEqual(uspEventsOf(p.agent.clientId), [])
})

// ---- USP payload audit ------------------------------------------------------------------------

/** Values that must never leave the Records: parameter paths and values inside the Msg bodies. */
const SECRET_PATH = 'Device.X_ACME_Vault.1.PassphraseZQX'
const SECRET_VALUE = 'value-Qw9!x7Tz-DO-NOT-LOG'
const SECRET_EVENT_ARG = 'BootArg-7f3a9c-DO-NOT-LOG'

/** One exchange: MQTTConnectRecord, Boot! (with a distinctive argument), Get, GetResp, Set. Returns the msg_ids. */
async function exchange (p: Pair): Promise<{ boot: string, get: string, set: string }> {
  const ctrlInbox = inboxOf(p.tenant, 'controller', p.ctrlId)
  const agentInbox = inboxOf(p.tenant, 'agent', p.agentId)
  p.agent.answerGets(() => ({ PassphraseZQX: SECRET_VALUE }))
  assert.equal((await p.agent.sendRecord(ctrlInbox, p.agent.connectRecord(p.ctrlId))).reasonCode, 0)
  const boot = p.agent.nextMsgId('boot')
  assert.equal((await p.agent.sendRecord(ctrlInbox, p.agent.record(p.ctrlId, bootNotifyMsg(boot, { ParameterMap: JSON.stringify({ [SECRET_PATH]: SECRET_EVENT_ARG }) })))).reasonCode, 0)
  const get = p.ctrl.nextMsgId('get')
  assert.equal((await p.ctrl.sendRecord(agentInbox, p.ctrl.record(p.agentId, getMsg(get, [SECRET_PATH])))).reasonCode, 0)
  await p.ctrl.waitFor(m => msgIdOf(m) === get && msgTypeOf(m) === 'GET_RESP', 3000, 'GetResp')
  const set = p.ctrl.nextMsgId('set')
  const setMsg = encodeMsg({
    msgId: set,
    body: { request: { set: { allowPartial: false, updateObjs: [{ objPath: 'Device.X_ACME_Vault.1.', paramSettings: [{ param: 'PassphraseZQX', value: SECRET_VALUE, required: true }] }] } } }
  })
  const setRecord = encodeRecord({ version: '1.3', toId: p.agentId, fromId: p.ctrlId, noSessionContext: { payload: setMsg } })
  assert.equal((await p.ctrl.sendRecord(agentInbox, setRecord)).reasonCode, 0)
  await p.agent.waitForMsg(set)
  await p.ctrl.waitForMsg(boot)
  return { boot, get, set }
}

async function assertNoSecrets (tenant: string, where: string, waitForText: string): Promise<void> {
  const apiText = JSON.stringify((await t.api('GET', `/v1/tenants/${tenant}/usp-audit?limit=1000`)).body)
  const auditFile = join(t.dataDir, 'audit', 'usp-records.ndjson')
  // the trail is appended through a stream: wait until the newest entries are on disk
  let text = ''
  const deadline = Date.now() + 3000
  for (;;) {
    text = await readFile(auditFile, 'utf8').catch(() => '')
    if (text.includes(waitForText) || Date.now() > deadline) break
    await pause(20)
  }
  assert.ok(text.includes(waitForText), `${where}: the audit file has the newest entries`)
  const eventsText = await readFile(join(t.dataDir, 'audit', 'security-events.ndjson'), 'utf8').catch(() => '')
  for (const secret of [SECRET_PATH, 'PassphraseZQX', SECRET_VALUE, SECRET_EVENT_ARG]) {
    assert.ok(!apiText.includes(secret), `${where}: ${secret} in GET /usp-audit`)
    assert.ok(!text.includes(secret), `${where}: ${secret} in ${auditFile}`)
    assert.ok(!eventsText.includes(secret), `${where}: ${secret} in the security-event file`)
    assert.ok(!t.logText().includes(secret), `${where}: ${secret} in the log`)
  }
}

test('audit "envelope" (default): record type, from and to per Record, no Msg fields, no parameter paths or values', async () => {
  const tenant = 'audenv'
  const p = await pair(tenant)
  const ids = await exchange(p)
  const entries = await audit(tenant)
  const nsc = entries.filter(e => e.recordType === 'no_session_context')
  assert.equal(nsc.length, 4, 'one entry per Record: Boot!, Get, GetResp, Set')
  const connect = entries.find(e => e.recordType === 'mqtt_connect')
  assert.ok(connect)
  assert.equal(connect.fromId, p.agentId)
  assert.equal(connect.toId, p.ctrlId)
  assert.equal(connect.topic, inboxOf(tenant, 'controller', p.ctrlId))
  assert.equal(connect.result, 'delivered')
  for (const e of entries) {
    assert.equal(e.tenant, tenant)
    assert.ok(typeof e.time === 'string' && !Number.isNaN(Date.parse(e.time as string)))
    assert.ok([p.agentId, p.ctrlId].includes(e.fromId as string))
    assert.ok([p.agentId, p.ctrlId].includes(e.toId as string))
    for (const field of ['msgId', 'msgType', 'kind']) assert.equal(field in e, false, `envelope audit has no ${field}: ${JSON.stringify(e)}`)
  }
  // newest first: the Set the Controller sent last is on top
  assert.equal(entries[0]!.fromId, p.ctrlId)
  assert.equal(entries[0]!.toId, p.agentId)
  assert.ok(!JSON.stringify(entries).includes(ids.boot), 'no msg_id at envelope level')
  await assertNoSecrets(tenant, 'envelope', `"tenant":"${tenant}","fromId":"${p.ctrlId}"`)
  // the audit file holds who talked to whom: owner-only, like the security-event file
  assert.equal((await stat(join(t.dataDir, 'audit', 'usp-records.ndjson'))).mode & 0o777, 0o600)
  assert.equal((await stat(join(t.dataDir, 'audit'))).mode & 0o777, 0o700)
})

test('audit "message": msg_id, msg_type and kind too, and still never parameter paths or values', async () => {
  const tenant = 'audmsg'
  const p = await pair(tenant)
  await setUsp(tenant, { audit: 'message' })
  const ids = await exchange(p)
  const entries = await audit(tenant)
  const byId = (id: string, type: string): Record<string, unknown> | undefined => entries.find(e => e.msgId === id && e.msgType === type)
  assert.deepEqual(pick(byId(ids.boot, 'NOTIFY')), { fromId: p.agentId, toId: p.ctrlId, kind: 'request', recordType: 'no_session_context', result: 'delivered' })
  assert.deepEqual(pick(byId(ids.get, 'GET')), { fromId: p.ctrlId, toId: p.agentId, kind: 'request', recordType: 'no_session_context', result: 'delivered' })
  assert.deepEqual(pick(byId(ids.get, 'GET_RESP')), { fromId: p.agentId, toId: p.ctrlId, kind: 'response', recordType: 'no_session_context', result: 'delivered' })
  assert.deepEqual(pick(byId(ids.set, 'SET')), { fromId: p.ctrlId, toId: p.agentId, kind: 'request', recordType: 'no_session_context', result: 'delivered' })
  const connect = entries.find(e => e.recordType === 'mqtt_connect')
  assert.ok(connect && !('msgId' in connect), 'a Connect Record carries no Msg')
  await assertNoSecrets(tenant, 'message', ids.set)

  // an Error Msg is audited with kind "error"
  const errId = p.agent.nextMsgId('err')
  const errRecord = p.agent.record(p.ctrlId, { msgId: errId, body: { error: { errCode: 7016, errMsg: 'Object does not exist', paramErrs: [{ paramPath: SECRET_PATH, errCode: 7016 }] } } })
  assert.equal((await p.agent.sendRecord(inboxOf(tenant, 'controller', p.ctrlId), errRecord)).reasonCode, 0)
  await p.ctrl.waitForMsg(errId)
  const errEntry = (await audit(tenant)).find(e => e.msgId === errId)
  assert.equal(errEntry?.msgType, 'ERROR')
  assert.equal(errEntry?.kind, 'error')
  await assertNoSecrets(tenant, 'message (Error)', errId)
})

function pick (e: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (e === undefined) return undefined
  const { fromId, toId, kind, recordType, result } = e
  return { fromId, toId, kind, recordType, result }
}

test('audit "message" reads the Msg header and so fails closed on a Msg it cannot read; "envelope" never looks at it', async () => {
  const tenant = 'audclosed'
  const p = await pair(tenant)
  const ctrlInbox = inboxOf(tenant, 'controller', p.ctrlId)
  // a good envelope around bytes that are no USP Msg (the header field is cut short)
  const record = encodeRecord({ version: '1.3', toId: p.ctrlId, fromId: p.agentId, noSessionContext: { payload: Buffer.from([0x0a, 0x09, 0x0a]) } })
  assert.deepEqual(await p.agent.sendRecord(ctrlInbox, record), { reasonCode: 0, closed: false }, 'envelope: delivered')
  await p.ctrl.waitFor(m => m.payload.equals(record))
  await setUsp(tenant, { audit: 'message' })
  assert.equal((await p.agent.sendRecord(ctrlInbox, record)).reasonCode, 0x87, 'message: refused')
  const ev = await waitForEvent(t, { code: 'usp.malformed_record', clientId: p.agent.clientId })
  assert.match(ev.reason ?? '', /^Msg: /)
})
