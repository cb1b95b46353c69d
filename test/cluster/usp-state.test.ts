// Cluster-wide USP state, with real nodes on one real redis-server and real MQTT/USP endpoints:
// the endpoint registry and the USP audit trail written by one node are served by every node (and
// never across tenants); an endpoint moving to another node takes its record along with its first
// contact, and a session takeover across nodes leaves it online; the endpoints of a node that died
// (SIGKILL, no shutdown) are reported offline once its heartbeat is gone; while Redis is down both
// listings answer 503 and registry changes wait for it.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { Redis } from 'ioredis'
import { startGateway, removeDir, closeClient, type TestGateway } from '../helpers/gateway.ts'
import { startCliNode } from '../helpers/cli-node.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { UspPeer, enrol, inboxOf, bootNotifyMsg, getMsg, msgIdOf, msgTypeOf, pause, type MqttV, type Role } from '../helpers/usp-peers.ts'

const prefix = 'uspgate-usp-state:'
const AG = 'os::00256D-0005'
const CT = 'self::usp-ctrl'

let redis: TestRedis
let A: TestGateway
let B: TestGateway
const open: UspPeer[] = []
const secrets = new Map<string, string>()

before(async () => {
  redis = await startRedis()
  A = await startGateway({ redis: { url: redis.url, prefix }, nodeId: 'node-a' })
  B = await startGateway({ redis: { url: redis.url, prefix }, nodeId: 'node-b' })
})

after(async () => {
  for (const p of open) await p.close().catch(() => {})
  for (const t of [A, B]) { await t.close(); await removeDir(t.dataDir) }
  await redis.stop()
})

/** A USP endpoint of `tenant` connected to node `t` (credentials issued through node A). */
async function peer (t: TestGateway, tenant: string, endpointId: string, role: Role, v: MqttV = 5, clientId?: string): Promise<UspPeer> {
  const k = `${tenant}:${endpointId}`
  let secret = secrets.get(k)
  if (secret === undefined) {
    secret = await enrol(A, tenant, endpointId, role)
    secrets.set(k, secret)
    // issued through node A: node B learns it from the control channel a moment later
    await poll(t, `/v1/tenants/${tenant}/credentials`, b => b.credentials.some((c: any) => c.principal === endpointId), 'the credential on the node')
  }
  const p = await UspPeer.connect(t, { tenant, endpointId, role, secret, v, ...(clientId !== undefined ? { clientId } : {}) })
  open.push(p)
  return p
}

/** Polls an admin GET on node `t` until `pred` holds for its body; returns the body. */
async function poll (t: TestGateway, path: string, pred: (body: any) => boolean, what: string, timeoutMs = 5000): Promise<any> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const r = await t.api('GET', path)
    if (r.status === 200 && pred(r.body)) return r.body
    if (Date.now() > deadline) throw new Error(`${what}: never matched on ${path}: ${r.status} ${JSON.stringify(r.body)}`)
    await pause(25)
  }
}

const endpointPath = (tenant: string, eid: string): string => `/v1/tenants/${tenant}/endpoints/${encodeURIComponent(eid)}`

async function waitForEndpoint (t: TestGateway, tenant: string, eid: string, pred: (e: any) => boolean, what: string, timeoutMs?: number): Promise<any> {
  return await poll(t, endpointPath(tenant, eid), pred, what, timeoutMs)
}

/** GET on node `t`, asserting 200; returns the body. */
async function getOk (t: TestGateway, path: string): Promise<any> {
  const r = await t.api('GET', path)
  assert.equal(r.status, 200, `${path}: ${JSON.stringify(r.body)}`)
  return r.body
}

test('an Agent connected to node B is listed by node A: online on node-b with its MQTT version, offline with a later lastSeen, moved to node-a with its first contact', async () => {
  const agent = await peer(B, 'ta', AG, 'agent', 4)
  const online = await waitForEndpoint(A, 'ta', AG, e => e.online === true, 'online on node A')
  assert.equal(online.tenant, 'ta')
  assert.equal(online.endpointId, AG)
  assert.equal(online.role, 'agent')
  assert.equal(online.node, 'node-b')
  assert.equal(online.mqttVersion, '3.1.1')
  assert.ok(!Number.isNaN(Date.parse(online.firstContact)))
  // the response schema is unchanged: nothing of the Redis bookkeeping (instance, session start) shows
  assert.deepEqual(Object.keys(online).sort(), ['endpointId', 'firstContact', 'lastSeen', 'mqttVersion', 'node', 'online', 'role', 'tenant'])
  const listed = (await getOk(A, '/v1/tenants/ta/endpoints')).endpoints
  assert.deepEqual(listed.find((e: any) => e.endpointId === AG), online, 'the list agrees with the single-endpoint route')

  // the MQTTConnectRecord is seen on node B (where the Agent publishes) and reported by node A
  const ctrl = await peer(A, 'ta', CT, 'controller')
  await ctrl.subscribeInbox()
  assert.equal((await agent.sendRecord(inboxOf('ta', 'controller', CT), agent.connectRecord(CT))).closed, false)
  const withTopic = await waitForEndpoint(A, 'ta', AG, e => e.subscribedTopic !== undefined, 'subscribed topic')
  assert.equal(withTopic.subscribedTopic, inboxOf('ta', 'agent', AG))

  await pause(15) // ISO timestamps have millisecond resolution
  await agent.close()
  const offline = await waitForEndpoint(A, 'ta', AG, e => e.online === false, 'offline on node A')
  assert.equal(offline.node, 'node-b')
  assert.equal(offline.firstContact, online.firstContact)
  assert.ok(offline.lastSeen > withTopic.lastSeen, 'lastSeen advances on disconnect')

  // reconnecting to node A moves the record there (asked on node B this time)
  await pause(15)
  const again = await peer(A, 'ta', AG, 'agent', 5)
  const moved = await waitForEndpoint(B, 'ta', AG, e => e.online === true, 'online again, on node A')
  assert.equal(moved.node, 'node-a')
  assert.equal(moved.mqttVersion, '5.0')
  assert.equal(moved.firstContact, online.firstContact, 'firstContact never changes')
  assert.equal(moved.subscribedTopic, inboxOf('ta', 'agent', AG), 'kept until a new MQTTConnectRecord, as on one node')
  assert.ok(moved.lastSeen > offline.lastSeen)
  await again.close()
  await ctrl.close()
  await waitForEndpoint(B, 'ta', AG, e => e.online === false && e.node === 'node-a', 'offline on node A')
})

test('a session taken over by another node: the old node\'s disconnect does not mark the endpoint offline', async () => {
  const eid = 'os::00256D-0006'
  const first = await peer(A, 'ta', eid, 'agent', 5, 'takeover-1')
  await waitForEndpoint(B, 'ta', eid, e => e.online === true && e.node === 'node-a', 'online on node A')
  // [MQTT-3.1.4-2] the same identity and client id on node B takes the session over; node A closes its copy
  const second = await peer(B, 'ta', eid, 'agent', 5, 'takeover-1')
  const deadline = Date.now() + 5000
  while (!first.closed) {
    assert.ok(Date.now() < deadline, 'node A closed the taken-over connection')
    await pause(20)
  }
  // longer than the write-behind window, so node A's disconnect has reached Redis
  await pause(1500)
  for (const t of [A, B]) {
    const e = await getOk(t, endpointPath('ta', eid))
    assert.equal(e.online, true, 'online: its live session is on node B')
    assert.equal(e.node, 'node-b')
  }
  await second.close()
  await waitForEndpoint(A, 'ta', eid, e => e.online === false && e.node === 'node-b', 'offline after the last session')
})

test('presence timeline across nodes: online and offline on node B, then online on node A, newest first from either node, in a capped hash-tagged Redis list', async () => {
  const eid = 'os::00256D-00P1'
  const p1 = await peer(B, 'ta', eid, 'agent', 4)
  await waitForEndpoint(A, 'ta', eid, e => e.online === true, 'online')
  await p1.close()
  await waitForEndpoint(A, 'ta', eid, e => e.online === false, 'offline')
  await pause(15)
  const p2 = await peer(A, 'ta', eid, 'agent', 5)
  for (const t of [A, B]) {
    const body = await poll(t, `${endpointPath('ta', eid)}/presence`, b => b.transitions.length >= 3, 'three transitions')
    assert.deepEqual(body.transitions.map((x: any) => [x.state, x.node, x.mqttVersion]),
      [['online', 'node-a', '5.0'], ['offline', 'node-b', '3.1.1'], ['online', 'node-b', '3.1.1']])
    assert.ok(typeof body.transitions[1].reason === 'string')
  }
  const raw = new Redis(redis.url)
  try {
    const key = `${prefix}presence:{ta}:${eid}`
    assert.equal(await raw.llen(key), 3)
    const ttl = await raw.ttl(key)
    assert.ok(ttl > 0, 'the timeline expires when nobody changes it')
  } finally { raw.disconnect() }
  await p2.close()
  await poll(B, `${endpointPath('ta', eid)}/presence`, b => b.transitions.length === 4 && b.transitions[0].state === 'offline', 'the fourth transition')
  assert.equal((await B.api('GET', `${endpointPath('tb', eid)}/presence`)).status, 404, 'another tenant: never connected there')
})

test('successful connects per tenant, cluster-wide: connects on either node are counted by both, in an expiring hash per hour', async () => {
  const okOf = async (t: TestGateway): Promise<number> =>
    (await getOk(t, '/v1/security-stats?window=24h&tenant=tc')).tenants.find((s: any) => s.tenant === 'tc')?.connectsOk ?? 0
  const before = await okOf(A)
  const started = Date.now()
  const eid = 'os::00256D-00C1'
  for (const t of [A, B, B]) {
    const p = await peer(t, 'tc', eid, 'agent', 5)
    await p.close()
  }
  for (const t of [A, B]) {
    const body = await poll(t, '/v1/security-stats?window=7d&tenant=tc', b => b.tenants.find((s: any) => s.tenant === 'tc')?.connectsOk === before + 3, 'three connects on both nodes')
    assert.equal(body.tenants.length, 1)
    assert.equal(await okOf(t), before + 3)
  }
  const raw = new Redis(redis.url)
  try {
    // the connects may straddle an hour boundary: read the hour they started in and the hour now
    const keyOf = (ms: number): string => `${prefix}connects:{${new Date(ms - (ms % 3600_000)).toISOString()}}`
    let counted = 0
    for (const key of new Set([keyOf(started), keyOf(Date.now())])) {
      const n = Number(await raw.hget(key, 'tc'))
      if (n === 0) continue
      counted += n
      assert.ok(await raw.pttl(key) > 7 * 24 * 3600_000, 'kept as long as the 7 d window reaches it, then expires')
    }
    assert.ok(counted >= 3, `${counted} connects of tenant tc in the hourly hashes`)
  } finally { raw.disconnect() }
})

test('USP Records sent through either node are in both nodes\' usp-audit listing, newest first, with the limit; each node keeps its own file', async () => {
  assert.equal((await A.api('PATCH', '/v1/tenants/ta', { usp: { audit: 'message' } })).status, 200)
  await poll(B, '/v1/tenants', b => b.tenants.find((t: any) => t.id === 'ta')?.usp?.audit === 'message', 'audit level on node B')
  const ctrl = await peer(A, 'ta', CT, 'controller')
  await ctrl.subscribeInbox()
  const agent = await peer(B, 'ta', AG, 'agent')
  await agent.subscribeInbox()
  agent.answerGets()
  const ctrlInbox = inboxOf('ta', 'controller', CT)

  const boots: string[] = []
  for (let i = 0; i < 3; i++) {
    const id = agent.nextMsgId('boot')
    assert.equal((await agent.sendRecord(ctrlInbox, agent.record(CT, bootNotifyMsg(id)))).reasonCode, 0)
    await ctrl.waitForMsg(id)
    boots.push(id)
  }
  // a Get from the Controller on node A, answered by the Agent on node B
  const get = ctrl.nextMsgId('get')
  assert.equal((await ctrl.sendRecord(agent.replyTo, ctrl.record(AG, getMsg(get)))).reasonCode, 0)
  await ctrl.waitFor(m => msgIdOf(m) === get && msgTypeOf(m) === 'GET_RESP', 3000, 'GetResp')
  // refused on node B: from_id spoofed
  const spoofed = agent.record(CT, bootNotifyMsg(agent.nextMsgId('spoof')), { fromId: 'os::00256D-IMPOSTOR' })
  assert.equal((await agent.sendRecord(ctrlInbox, spoofed)).reasonCode, 0x87)

  const { records } = await poll(A, '/v1/tenants/ta/usp-audit?limit=1000', b => b.records.some((e: any) => e.code === 'usp.from_id_spoofed'), 'the refused Record on node A')
  assert.deepEqual(records.filter((e: any) => boots.includes(e.msgId)).map((e: any) => e.msgId), [...boots].reverse(), 'newest first')
  for (const e of records.filter((x: any) => boots.includes(x.msgId))) {
    assert.deepEqual(e, { time: e.time, tenant: 'ta', fromId: AG, toId: CT, topic: ctrlInbox, recordType: 'no_session_context', result: 'delivered', msgId: e.msgId, msgType: 'NOTIFY', kind: 'request' })
  }
  const getEntry = records.find((e: any) => e.msgId === get && e.msgType === 'GET')
  assert.equal(getEntry?.fromId, CT, 'recorded by node A')
  assert.equal(getEntry?.toId, AG)
  const respEntry = records.find((e: any) => e.msgId === get && e.msgType === 'GET_RESP')
  assert.equal(respEntry?.fromId, AG, 'recorded by node B')
  assert.equal(respEntry?.kind, 'response')
  assert.equal(records[0].code, 'usp.from_id_spoofed', 'the newest entry is on top')
  assert.equal(records[0].result, 'refused')
  assert.equal(records[0].fromId, 'os::00256D-IMPOSTOR')

  assert.deepEqual((await getOk(B, '/v1/tenants/ta/usp-audit?limit=1000')).records, records, 'both nodes list the same trail')
  assert.deepEqual((await getOk(A, '/v1/tenants/ta/usp-audit?limit=2')).records, records.slice(0, 2))
  assert.deepEqual((await getOk(A, '/v1/tenants/ta/usp-audit')).records, records.slice(0, 100), 'default limit 100')

  // the NDJSON file stays the node's own evidence: B's holds the Boot!s it carried, A's the Get it carried
  const fileA = await fileContaining(A, get)
  const fileB = await fileContaining(B, boots[2]!)
  assert.ok(!fileA.includes(boots[0]!))
  assert.ok(!fileB.includes(`"msgType":"GET"`))
  await agent.close()
  await ctrl.close()
})

test('tenant isolation: tenant tb never sees ta\'s endpoints or Records, even for the same Endpoint ID', async () => {
  const ctrl = await peer(A, 'tb', CT, 'controller')
  await ctrl.subscribeInbox()
  const agent = await peer(B, 'tb', AG, 'agent') // the same Endpoint ID as ta's Agent
  const boot = agent.nextMsgId('tb-boot')
  assert.equal((await agent.sendRecord(inboxOf('tb', 'controller', CT), agent.record(CT, bootNotifyMsg(boot)))).reasonCode, 0)
  await ctrl.waitForMsg(boot)

  const tbAudit = (await poll(A, '/v1/tenants/tb/usp-audit?limit=1000', b => b.records.length > 0, 'tb audit')).records
  assert.equal(tbAudit.length, 1, 'only tb\'s one Record')
  assert.equal(tbAudit[0].tenant, 'tb')
  assert.equal(tbAudit[0].topic, inboxOf('tb', 'controller', CT))
  const taAudit = (await getOk(A, '/v1/tenants/ta/usp-audit?limit=1000')).records
  assert.ok(taAudit.length > 0)
  assert.ok(taAudit.every((e: any) => e.tenant === 'ta' && e.topic.startsWith('ta/')))

  const tbAgent = await waitForEndpoint(A, 'tb', AG, e => e.online === true, 'tb\'s Agent online')
  assert.equal(tbAgent.tenant, 'tb')
  const tbList = (await getOk(A, '/v1/tenants/tb/endpoints')).endpoints
  assert.deepEqual(tbList.map((e: any) => `${e.tenant}/${e.endpointId}`).sort(), [`tb/${AG}`, `tb/${CT}`].sort())
  // ta's record of the same Endpoint ID is its own: offline, older first contact
  const taAgent = await getOk(A, endpointPath('ta', AG))
  assert.equal(taAgent.online, false)
  assert.ok(taAgent.firstContact < tbAgent.firstContact)
  const taList = (await getOk(B, '/v1/tenants/ta/endpoints')).endpoints
  assert.ok(taList.every((e: any) => e.tenant === 'ta'))
  assert.equal((await A.api('GET', endpointPath('tb', 'os::00256D-0006'))).status, 404, 'ta\'s other Agent is unknown to tb')
  await agent.close()
  await ctrl.close()
})

test('unreadable values in Redis (corrupt records, foreign stream entries) are skipped, never a 500; the next connect rewrites the record', async () => {
  const eid = 'os::00256D-0009'
  const raw = new Redis(redis.url)
  try {
    await raw.hset(`${prefix}endpoints:ta`, eid, '{not json', 'os::00256D-000A', '"a string"')
    await raw.xadd(`${prefix}usp-audit:ta`, '*', 'e', '{not json')
    await raw.xadd(`${prefix}usp-audit:ta`, '*', 'other', 'field')
  } finally { raw.disconnect() }
  const listed = (await getOk(A, '/v1/tenants/ta/endpoints')).endpoints
  assert.ok(listed.length > 0)
  assert.ok(!listed.some((e: any) => e.endpointId === eid || e.endpointId === 'os::00256D-000A'))
  assert.equal((await A.api('GET', endpointPath('ta', eid))).status, 404)
  assert.deepEqual((await getOk(A, '/v1/tenants/ta/usp-audit?limit=2')).records, [], 'the two newest entries are not audit entries')
  assert.equal((await getOk(A, '/v1/tenants/ta/usp-audit?limit=3')).records.length, 1)

  const agent = await peer(B, 'ta', eid, 'agent')
  const e = await waitForEndpoint(A, 'ta', eid, x => x.online === true, 'the record rewritten')
  assert.equal(e.node, 'node-b')
  assert.equal(e.mqttVersion, '5.0')
  await agent.close()
})

test('a node that dies (SIGKILL) without a word: once its heartbeat is gone its endpoints are listed offline', async () => {
  const eid = 'os::00256D-0007'
  const secret = await enrol(A, 'ta', eid, 'agent') // node C loads it from Redis at start
  const node = await startCliNode({ redisUrl: redis.url, prefix, nodeId: 'node-c' })
  try {
    const client = mqtt.connect({ host: '127.0.0.1', port: node.port, protocolVersion: 5, reconnectPeriod: 0, username: `ta:${eid}`, password: secret, clientId: 'dies-with-node-c' })
    client.on('error', () => {})
    const online = await waitForEndpoint(A, 'ta', eid, e => e.online === true, 'online on node C')
    assert.equal(online.node, 'node-c')
    await new Promise<void>(resolve => { node.proc.once('exit', () => resolve()); node.proc.kill('SIGKILL') })
    await closeClient(client)
    // node C can no longer write anything: the stored record still says online
    const raw = new Redis(redis.url)
    try {
      assert.equal(JSON.parse((await raw.hget(`${prefix}endpoints:ta`, eid))!).online, true)
      assert.equal((await getOk(A, endpointPath('ta', eid))).online, true, 'online while its heartbeat lives')
      // the heartbeat would expire within HEARTBEAT_TTL_S; deleting it stands for that wait
      assert.equal(await raw.del(`${prefix}nodes:node-c`), 1)
    } finally { raw.disconnect() }
    for (const t of [A, B]) {
      const e = await getOk(t, endpointPath('ta', eid))
      assert.equal(e.online, false, 'its node is gone')
      assert.equal(e.node, 'node-c')
      assert.equal(e.lastSeen, online.lastSeen)
      assert.ok((await getOk(t, '/v1/tenants/ta/endpoints')).endpoints.some((x: any) => x.endpointId === eid && x.online === false))
    }
  } finally {
    if (node.proc.exitCode === null && node.proc.signalCode === null) node.proc.kill('SIGKILL')
    await removeDir(node.dataDir)
  }
})

test('Redis down: both listings answer 503, the MQTT path keeps going, and a disconnect made meanwhile reaches Redis once it is back', async () => {
  const eid = 'os::00256D-0008'
  const ctrl = await peer(A, 'ta', CT, 'controller')
  const agent = await peer(B, 'ta', eid, 'agent')
  const online = await waitForEndpoint(A, 'ta', eid, e => e.online === true, 'online')
  // SHUTDOWN SAVE: Redis comes back with its data after the outage
  const back = redis.restart({ save: true, downMs: 3000 })
  const deadline = Date.now() + 2000
  while (A.gw.cluster!.up || B.gw.cluster!.up) {
    assert.ok(Date.now() < deadline, 'both nodes noticed the outage')
    await pause(10)
  }
  for (const path of ['/v1/tenants/ta/endpoints', endpointPath('ta', eid), '/v1/tenants/ta/usp-audit?limit=10']) {
    for (const t of [A, B]) {
      const r = await t.api('GET', path)
      assert.equal(r.status, 503, `${path} on ${t.gw.nodeId}: ${r.text}`)
      assert.match(String(r.headers.get('content-type')), /application\/problem\+json/)
      assert.equal(r.body.title, 'state store unavailable')
    }
  }
  // a Record during the outage: audited in node B's file only, nothing thrown into the broker
  const lost = agent.nextMsgId('outage')
  assert.equal((await agent.sendRecord(inboxOf('ta', 'controller', CT), agent.record(CT, bootNotifyMsg(lost)), { qos: 0 })).closed, false)
  await fileContaining(B, lost)
  await pause(15)
  await agent.close() // node B cannot write the offline mark now; it keeps it and retries
  await back

  const offline = await waitForEndpoint(A, 'ta', eid, e => e.online === false, 'offline once Redis is back', 10_000)
  assert.ok(offline.lastSeen > online.lastSeen)
  assert.ok(offline.lastSeen < new Date(Date.now() - 1000).toISOString(), 'lastSeen is the time of the disconnect, not of the retry')
  const records = (await getOk(A, '/v1/tenants/ta/usp-audit?limit=1000')).records
  assert.ok(!records.some((e: any) => e.msgId === lost), 'the shared trail is best effort: not written while Redis was down')
  assert.ok(records.length > 0)
  await ctrl.close()
})

/** The node's USP audit file once it contains `text` (it is appended through a stream). */
async function fileContaining (t: TestGateway, text: string): Promise<string> {
  const deadline = Date.now() + 3000
  for (;;) {
    const content = await readFile(join(t.dataDir, 'audit', 'usp-records.ndjson'), 'utf8').catch(() => '')
    if (content.includes(text)) return content
    assert.ok(Date.now() < deadline, `${t.gw.nodeId}'s audit file never contained ${text}`)
    await pause(20)
  }
}
