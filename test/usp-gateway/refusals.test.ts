// Each USP Record refusal through a real gateway (TR-369 "Trusted Broker", R-SEC.4c; R-E2E.1;
// R-MQTT.23/.24; R-MQTT.13): the protocol answer (MQTT 5 PUBACK 0x87 with the connection kept;
// MQTT 3.1.1 disconnect [MQTT-3.3.5-2]; CONNACK 0x87), the security event with tenant, principal,
// topic and reason, the refused entry in the USP audit trail, and that the record never reached the
// subscriber (checked with a sentinel sent after it on the same path).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, removeDir, waitForEvent, adminRequest, type TestGateway } from '../helpers/gateway.ts'
import {
  UspPeer, enrol, inboxOf, withReplyToSuffix, bootNotifyMsg, getMsg, msgIdOf, pause, USP_CONTENT_TYPE,
  type MqttV, type PublishResult
} from '../helpers/usp-peers.ts'

const TENANT = 'rf'
const AGENT = 'os::00256D-0000001111'
const CTRL = 'self::rf-controller'
const AGENT_INBOX = inboxOf(TENANT, 'agent', AGENT)
const CTRL_INBOX = inboxOf(TENANT, 'controller', CTRL)

let t: TestGateway
let agentSecret: string
let ctrlSecret: string
let ctrl: UspPeer
const open: UspPeer[] = []

before(async () => {
  t = await startGateway()
  agentSecret = await enrol(t, TENANT, AGENT, 'agent')
  ctrlSecret = await enrol(t, TENANT, CTRL, 'controller')
  await enrol(t, 'beta', 'self::beta-controller', 'controller')
  ctrl = await connectPeer(CTRL, 'controller', ctrlSecret, 5)
  await ctrl.subscribeInbox()
})
after(async () => {
  for (const p of open) await p.close().catch(() => {})
  await t.close()
  await removeDir(t.dataDir)
})

async function connectPeer (endpointId: string, role: 'agent' | 'controller', secret: string, v: MqttV): Promise<UspPeer> {
  const p = await UspPeer.connect(t, { tenant: TENANT, endpointId, role, secret, v })
  open.push(p)
  return p
}

async function connectAgent (v: MqttV): Promise<UspPeer> {
  const a = await connectPeer(AGENT, 'agent', agentSecret, v)
  await a.subscribeInbox()
  return a
}

/** A valid Boot! from the Agent; once the Controller has it, anything sent before it was either delivered or never will be. */
async function sentinelFromAgent (agent: UspPeer): Promise<void> {
  const a = agent.closed ? await connectAgent(agent.v) : agent
  const id = a.nextMsgId('sentinel')
  const r = await a.sendRecord(CTRL_INBOX, a.record(CTRL, bootNotifyMsg(id)))
  assert.equal(r.closed, false, 'the sentinel is accepted')
  await ctrl.waitForMsg(id)
}

async function auditEntry (topic: string, code: string): Promise<Record<string, unknown>> {
  const res = await t.api('GET', `/v1/tenants/${TENANT}/usp-audit?limit=1000`)
  assert.equal(res.status, 200)
  const entry = (res.body.records as Array<Record<string, unknown>>).find(r => r.topic === topic && r.code === code)
  assert.ok(entry, `audit entry for ${code} on ${topic}`)
  return entry
}

const victimTokens = new Map<string, string>()
async function victimToken (tenant: string): Promise<string> {
  const known = victimTokens.get(tenant)
  if (known !== undefined) return known
  const res = await t.api('POST', '/v1/tokens', { name: `${tenant} security`, role: 'security', tenants: [tenant] })
  assert.equal(res.status, 201, JSON.stringify(res.body))
  victimTokens.set(tenant, res.body.token)
  return res.body.token
}

interface Send { topic: string, payload: Buffer, responseTopic?: string }
interface RefusalCase {
  name: string
  code: string
  reason: RegExp
  versions: MqttV[]
  /** The tenant the attempt targets (issue 14: the event names it, and that tenant's scoped token sees it). */
  targetTenant?: string
  /** What the publisher sends. Default reply-to: its own inbox, in the form its version uses. */
  build: (agent: UspPeer) => Send
}

/** A publish to the Controller's inbox with the given reply-to, shaped for the Agent's MQTT version. */
function toController (agent: UspPeer, payload: Buffer, replyTo = AGENT_INBOX): Send {
  return agent.v === 4
    ? { topic: withReplyToSuffix(CTRL_INBOX, replyTo), payload }
    : { topic: CTRL_INBOX, payload, responseTopic: replyTo }
}

let seq = 0
const uniqueBoot = (agent: UspPeer, overrides = {}): Buffer =>
  agent.record(CTRL, bootNotifyMsg(`refused-${++seq}`), overrides)

const cases: RefusalCase[] = [
  {
    name: 'a payload that is not a USP Record',
    code: 'usp.malformed_record',
    reason: /./,
    versions: [5, 4],
    build: a => toController(a, Buffer.from('{"CPU": 12, "note": "bulk data sent to the wrong topic"}'))
  },
  {
    name: 'a truncated Record',
    code: 'usp.malformed_record',
    reason: /runs past the end|truncated/,
    versions: [5, 4],
    build: a => { const r = uniqueBoot(a); return toController(a, r.subarray(0, r.length - 5)) }
  },
  {
    name: 'a Record without from_id',
    code: 'usp.malformed_record',
    reason: /from_id is missing/,
    versions: [5],
    build: a => toController(a, uniqueBoot(a, { fromId: '' }))
  },
  {
    name: 'a Record whose from_id is another endpoint',
    code: 'usp.from_id_spoofed',
    reason: /from_id "os::00256D-IMPOSTOR" is not the publisher's endpoint id "os::00256D-0000001111"/,
    versions: [5, 4],
    build: a => toController(a, uniqueBoot(a, { fromId: 'os::00256D-IMPOSTOR' }))
  },
  {
    name: 'a Record whose to_id is another endpoint than the inbox',
    code: 'usp.misrouted',
    reason: /to_id "self::rf-someone-else" does not match inbox endpoint "self::rf-controller"/,
    versions: [5, 4],
    build: a => toController(a, uniqueBoot(a, { toId: 'self::rf-someone-else' }))
  },
  {
    name: 'a reply-to into another tenant (MQTT 5 Response Topic)',
    code: 'usp.reply_to_cross_tenant',
    reason: /reply-to "beta\/usp\/controller\/self::beta-controller" is outside tenant "rf"/,
    versions: [5],
    targetTenant: 'beta',
    build: a => toController(a, uniqueBoot(a), 'beta/usp/controller/self::beta-controller')
  },
  {
    name: 'a reply-to into another tenant (3.1.1 /reply-to= suffix)',
    code: 'usp.reply_to_cross_tenant',
    reason: /reply-to "beta\/usp\/controller\/self::beta-controller" is outside tenant "rf"/,
    versions: [4, 5],
    targetTenant: 'beta',
    // An MQTT 5 publisher may also carry the suffix (a bridge would hand it on to a 3.1.1 receiver).
    build: a => ({ topic: withReplyToSuffix(CTRL_INBOX, 'beta/usp/controller/self::beta-controller'), payload: uniqueBoot(a), ...(a.v === 5 ? { responseTopic: AGENT_INBOX } : {}) })
  },
  {
    // rf-other is no tenant: there is no victim to name
    name: 'a reply-to into a tenant whose name merely starts with this one',
    code: 'usp.reply_to_cross_tenant',
    reason: /outside tenant "rf"/,
    versions: [4],
    build: a => toController(a, uniqueBoot(a), 'rf-other/usp/agent/x')
  },
  {
    name: 'a reply-to on a $ topic',
    code: 'usp.reply_to_cross_tenant',
    reason: /reserved \$ topic/,
    versions: [5],
    build: a => toController(a, uniqueBoot(a), '$SYS/broker/x')
  }
]

for (const c of cases) {
  for (const v of c.versions) {
    const answer = v === 5 ? 'PUBACK 0x87, connection kept' : 'disconnect'
    test(`MQTT ${v === 5 ? '5' : '3.1.1'} Agent, ${c.name}: ${c.code}, ${answer}, never delivered`, async () => {
      const agent = await connectAgent(v)
      const send = c.build(agent)
      const before = ctrl.messages.length
      const result: PublishResult = await agent.publish(send.topic, send.payload, {
        qos: 1,
        ...(send.responseTopic !== undefined ? { responseTopic: send.responseTopic, contentType: USP_CONTENT_TYPE } : {})
      })
      if (v === 5) {
        assert.equal(result.reasonCode, 0x87, 'MQTT 5: PUBACK Not authorized')
        assert.equal(result.closed, false)
        assert.equal(agent.closed, false, 'the MQTT 5 connection stays')
      } else {
        assert.equal(result.closed, true, 'MQTT 3.1.1 has no negative PUBACK: the connection is closed')
      }

      const ev = await waitForEvent(t, { code: c.code, clientId: agent.clientId })
      assert.equal(ev.tenant, TENANT)
      assert.equal(ev.principal, AGENT)
      assert.equal(ev.action, 'publish')
      assert.equal(ev.topic, send.topic)
      assert.match(ev.reason ?? '', c.reason)
      assert.equal(ev.clientId, agent.clientId)
      assert.ok(typeof ev.policyRevision === 'string' && ev.policyRevision.length > 0, 'the event names the policy revision')
      assert.equal(ev.targetTenant, c.targetTenant, 'the event names the tenant the reply-to points into')
      if (c.targetTenant !== undefined) {
        // the victim tenant's security team sees the attempt on it with its tenant-scoped token
        const seen = await adminRequest(t.adminUrl, 'GET', `/v1/security-events?code=${c.code}&tenant=${c.targetTenant}`, { token: await victimToken(c.targetTenant) })
        assert.equal(seen.status, 200, JSON.stringify(seen.body))
        assert.ok(seen.body.events.some((e: { clientId?: string, tenant?: string, targetTenant?: string }) =>
          e.clientId === agent.clientId && e.tenant === TENANT && e.targetTenant === c.targetTenant), 'the victim tenant\'s scoped token does not see the attempt on it')
      }

      const audit = await auditEntry(send.topic, c.code)
      assert.equal(audit.result, 'refused')
      assert.equal(audit.tenant, TENANT)

      await sentinelFromAgent(agent)
      const after = ctrl.messages.slice(before)
      assert.equal(after.filter(m => m.payload.equals(send.payload)).length, 0, 'the refused record never reached the Controller')
      assert.equal(after.filter(m => m.topic === send.topic && !m.payload.equals(send.payload) && m.topic !== CTRL_INBOX).length, 0)
    })
  }
}

test('MQTT 5 Agent at QoS 0: a spoofed from_id is dropped silently (no PUBACK to carry a code), the event is logged', async () => {
  const agent = await connectAgent(5)
  const payload = uniqueBoot(agent, { fromId: 'os::00256D-IMPOSTOR' })
  const before = ctrl.messages.length
  assert.deepEqual(await agent.sendRecord(CTRL_INBOX, payload, { qos: 0 }), { closed: false })
  const ev = await waitForEvent(t, { code: 'usp.from_id_spoofed', clientId: agent.clientId })
  assert.equal(ev.topic, CTRL_INBOX)
  await sentinelFromAgent(agent)
  assert.equal(ctrl.messages.slice(before).filter(m => m.payload.equals(payload)).length, 0)
  assert.equal(agent.closed, false)
})

for (const v of [5, 4] as const) {
  test(`MQTT ${v === 5 ? '5' : '3.1.1'} Controller: a Get claiming to come from the Agent itself (TP-469 2.1) is refused and never reaches the Agent`, async () => {
    // (a 3.1.1 Controller's Records arrive on <inbox>/reply-to=..., which a 3.1.1 Agent's <inbox>/# catches)
    const agent = await connectAgent(v)
    const spoofer = await connectPeer(CTRL, 'controller', ctrlSecret, v)
    const msgId = spoofer.nextMsgId('spoofed-get')
    const payload = spoofer.record(AGENT, getMsg(msgId), { fromId: AGENT })
    const result = await spoofer.sendRecord(AGENT_INBOX, payload)
    if (v === 5) assert.equal(result.reasonCode, 0x87)
    else assert.equal(result.closed, true)
    const ev = await waitForEvent(t, { code: 'usp.from_id_spoofed', clientId: spoofer.clientId })
    assert.equal(ev.tenant, TENANT)
    assert.equal(ev.principal, CTRL)
    assert.equal(ev.topic, v === 4 ? withReplyToSuffix(AGENT_INBOX, CTRL_INBOX) : AGENT_INBOX)
    // a genuine Get from the same Controller identity still gets through, after the refused one
    const honest = v === 5 ? spoofer : await connectPeer(CTRL, 'controller', ctrlSecret, v)
    const okId = honest.nextMsgId('get')
    const ok = await honest.sendRecord(AGENT_INBOX, honest.record(AGENT, getMsg(okId)))
    assert.equal(ok.closed, false)
    await agent.waitForMsg(okId)
    assert.equal(agent.messages.filter(m => msgIdOf(m) === msgId).length, 0, 'the Agent never saw the spoofed Get')
  })
}

test('one MQTT 5 Agent connection, topics alternating: every PUBLISH is checked and inspected again, whatever passed before on the same topic', async () => {
  // The session keeps the last topic name that passed the topic checks and its USP reading
  // (broker/mqtt/publish.ts): a passed topic must not let a bad Record, another topic, or a stale
  // reading through.
  const agent = await connectAgent(5)
  const before = ctrl.messages.length
  const send = (topic: string, payload: Buffer, responseTopic = AGENT_INBOX): Promise<PublishResult> =>
    agent.publish(topic, payload, { qos: 1, responseTopic, contentType: USP_CONTENT_TYPE })

  const firstId = agent.nextMsgId('memo-first')
  assert.equal((await send(CTRL_INBOX, agent.record(CTRL, bootNotifyMsg(firstId)))).reasonCode ?? 0, 0)
  await ctrl.waitForMsg(firstId)

  const spoofed = uniqueBoot(agent, { fromId: 'os::00256D-IMPOSTOR' })
  assert.equal((await send(CTRL_INBOX, spoofed)).reasonCode, 0x87, 'same inbox, spoofed from_id')
  await waitForEvent(t, { code: 'usp.from_id_spoofed', clientId: agent.clientId })
  const crossReply = uniqueBoot(agent)
  assert.equal((await send(CTRL_INBOX, crossReply, 'beta/usp/controller/self::beta-controller')).reasonCode, 0x87, 'same inbox, reply-to into another tenant')
  await waitForEvent(t, { code: 'usp.reply_to_cross_tenant', clientId: agent.clientId })
  const crossTopic = uniqueBoot(agent)
  assert.equal((await send('beta/usp/controller/self::beta-controller', crossTopic)).reasonCode, 0x87, 'another tenant\'s inbox')
  await waitForEvent(t, { code: 'acl.cross_tenant', clientId: agent.clientId })
  // another topic that passes the topic checks, its reply-to suffix into another tenant
  const suffixTopic = withReplyToSuffix(CTRL_INBOX, 'beta/usp/controller/self::beta-controller')
  const deeper = uniqueBoot(agent)
  assert.equal((await send(suffixTopic, deeper)).reasonCode, 0x87, 'a 3.1.1 reply-to suffix into another tenant')
  await waitForEvent(t, { code: 'usp.reply_to_cross_tenant', clientId: agent.clientId, topic: suffixTopic })

  // back to the inbox after another topic passed the checks: read afresh (not with that suffix), delivered
  const lastId = agent.nextMsgId('memo-last')
  assert.equal((await send(CTRL_INBOX, agent.record(CTRL, bootNotifyMsg(lastId)))).reasonCode ?? 0, 0)
  await ctrl.waitForMsg(lastId)
  const after = ctrl.messages.slice(before)
  for (const refused of [spoofed, crossReply, crossTopic, deeper]) {
    assert.equal(after.filter(m => m.payload.equals(refused)).length, 0, 'a refused record never reached the Controller')
  }
  assert.equal(agent.closed, false)
})

test('MQTT 5 CONNECT whose usp-endpoint-id is not the authenticated endpoint: CONNACK 0x87, usp.endpoint_id_mismatch, no session, no presence', async () => {
  const eid = 'os::00256D-0000002222'
  const secret = await enrol(t, TENANT, eid, 'agent')
  const statusSeen: string[] = []
  const watcher = await connectPeer('self::rf-status-watcher', 'controller', await enrol(t, TENANT, 'self::rf-status-watcher', 'controller'), 5)
  assert.equal(await watcher.subscribe(`${TENANT}/usp/status/+`), 1)
  watcher.client.on('message', topic => statusSeen.push(topic))

  for (const [clientId, claimed] of [['mismatch-one', 'os::00256D-IMPOSTOR'], ['mismatch-two', [eid, 'os::00256D-IMPOSTOR']]] as const) {
    const err = await UspPeer.connect(t, { tenant: TENANT, endpointId: eid, role: 'agent', secret, v: 5, clientId, uspEndpointIdProperty: claimed as string | string[] })
      .then(p => { open.push(p); return undefined }, (e: Error & { code?: number }) => e)
    assert.ok(err, `CONNECT with usp-endpoint-id ${JSON.stringify(claimed)} must be refused`)
    assert.equal(err.code, 0x87, 'CONNACK Not authorized')
    const ev = await waitForEvent(t, { code: 'usp.endpoint_id_mismatch', clientId })
    assert.equal(ev.tenant, TENANT)
    assert.equal(ev.principal, eid)
    assert.equal(ev.action, 'connect')
    assert.match(ev.reason ?? '', /IMPOSTOR/)
  }
  const sessions = await t.api('GET', `/v1/sessions?tenant=${TENANT}`)
  assert.equal(sessions.body.sessions.filter((s: { principal: string }) => s.principal === eid).length, 0)
  assert.equal((await t.api('GET', `/v1/tenants/${TENANT}/endpoints/${encodeURIComponent(eid)}`)).status, 404)
  await pause(100)
  assert.deepEqual(statusSeen.filter(tp => tp.endsWith(eid)), [], 'no presence for a refused endpoint')

  // the same credential with the right (or no) usp-endpoint-id connects
  const ok = await connectPeer(eid, 'agent', secret, 5)
  assert.equal(ok.closed, false)
})

test('a reply-to aimed at another Agent\'s inbox of the same tenant cannot reflect answers to it: the answer is refused as misrouted', async () => {
  const victimId = 'os::00256D-0000009999'
  const victimSecret = await enrol(t, TENANT, victimId, 'agent')
  const victim = await connectPeer(victimId, 'agent', victimSecret, 5)
  await victim.subscribeInbox()
  const agent = await connectAgent(5)
  // A Notify with send_resp = true whose reply-to is the victim's inbox (inside the tenant, so allowed)...
  const id = agent.nextMsgId('reflect')
  assert.equal((await agent.sendRecord(CTRL_INBOX, agent.record(CTRL, bootNotifyMsg(id)), { replyTo: inboxOf(TENANT, 'agent', victimId) })).reasonCode, 0)
  const got = await ctrl.waitForMsg(id)
  assert.equal(got.replyTo, inboxOf(TENANT, 'agent', victimId))
  // ...makes the Controller answer there, but the answer is addressed (to_id) to the Agent that asked.
  const answer = ctrl.record(AGENT, { msgId: id, body: { response: { notifyResp: { subscriptionId: 'boot-subscription' } } } })
  assert.equal((await ctrl.sendRecord(got.replyTo!, answer)).reasonCode, 0x87)
  const ev = await waitForEvent(t, { code: 'usp.misrouted', clientId: ctrl.clientId })
  assert.equal(ev.principal, CTRL)
  assert.equal(ev.topic, inboxOf(TENANT, 'agent', victimId))
  await pause(100)
  assert.equal(victim.messages.length, 0, 'the victim Agent received nothing')
})
