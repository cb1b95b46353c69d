// A Will is a PUBLISH the gateway makes on the client's behalf when the connection dies: a USP
// Record in a Will (a DisconnectRecord to a Controller is a natural use) goes through the same
// inspection as any other PUBLISH to a USP inbox, at the time it is published.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, removeDir, waitForEvent, type TestGateway } from '../helpers/gateway.ts'
import { encodeRecord } from '../../broker/usp/index.ts'
import { UspPeer, enrol, inboxOf, bootNotifyMsg, pause, withReplyToSuffix, type MqttV } from '../helpers/usp-peers.ts'

const TENANT = 'wl'
const CTRL = 'self::wl-controller'
const CTRL_INBOX = inboxOf(TENANT, 'controller', CTRL)
let t: TestGateway
let ctrl: UspPeer
const open: UspPeer[] = []
const secrets = new Map<string, string>()

before(async () => {
  t = await startGateway()
  const s = await enrol(t, TENANT, CTRL, 'controller')
  ctrl = await UspPeer.connect(t, { tenant: TENANT, endpointId: CTRL, role: 'controller', secret: s, v: 5 })
  open.push(ctrl)
  await ctrl.subscribeInbox()
})
after(async () => {
  for (const p of open) await p.close().catch(() => {})
  await t.close()
  await removeDir(t.dataDir)
})

interface WillSpec { topic: string, payload: Buffer, responseTopic?: string }

async function agentWithWill (eid: string, v: MqttV, will: WillSpec): Promise<UspPeer> {
  let secret = secrets.get(eid)
  if (secret === undefined) { secret = await enrol(t, TENANT, eid, 'agent'); secrets.set(eid, secret) }
  const p = await UspPeer.connect(t, {
    tenant: TENANT,
    endpointId: eid,
    role: 'agent',
    secret,
    v,
    extra: {
      will: {
        topic: will.topic,
        payload: will.payload,
        qos: 1,
        retain: false,
        ...(v === 5 ? { properties: { contentType: 'usp.msg', ...(will.responseTopic !== undefined ? { responseTopic: will.responseTopic } : {}) } } : {})
      }
    }
  })
  open.push(p)
  return p
}

function disconnectRecord (fromId: string, toId = CTRL): Buffer {
  return encodeRecord({ version: '1.3', toId, fromId, disconnect: { reason: 'connection lost', reasonCode: 7105 } })
}

/** A valid Boot! through a fresh connection of the same Agent: once it arrived, the will had its chance. */
async function sentinel (eid: string): Promise<void> {
  const a = await UspPeer.connect(t, { tenant: TENANT, endpointId: eid, role: 'agent', secret: secrets.get(eid)!, v: 5 })
  open.push(a)
  const id = a.nextMsgId('sentinel')
  assert.equal((await a.sendRecord(CTRL_INBOX, a.record(CTRL, bootNotifyMsg(id)))).reasonCode, 0)
  await ctrl.waitForMsg(id)
  await pause(100)
}

for (const v of [5, 4] as const) {
  const ver = v === 5 ? 'MQTT 5' : 'MQTT 3.1.1'
  const replyTo = (eid: string): Partial<WillSpec> & { topic: string } => v === 5
    ? { topic: CTRL_INBOX, responseTopic: inboxOf(TENANT, 'agent', eid) }
    : { topic: withReplyToSuffix(CTRL_INBOX, inboxOf(TENANT, 'agent', eid)) }

  test(`${ver}: a Will carrying a valid DisconnectRecord reaches the Controller when the Agent drops`, async () => {
    const eid = `os::00256D-0000willok${v}`
    const payload = disconnectRecord(eid)
    const agent = await agentWithWill(eid, v, { ...replyTo(eid), payload })
    agent.kill()
    const got = await ctrl.waitFor(m => m.payload.equals(payload), 3000, 'the will')
    assert.equal(got.destination, CTRL_INBOX)
    assert.equal((got.record as any).disconnect.reasonCode, 7105)
  })

  test(`${ver}: a Will carrying a Record with a spoofed from_id is refused when it fires, with usp.from_id_spoofed`, async () => {
    const eid = `os::00256D-000willspoof${v}`
    const payload = disconnectRecord('os::00256D-IMPOSTOR')
    const agent = await agentWithWill(eid, v, { ...replyTo(eid), payload })
    agent.kill()
    const ev = await waitForEvent(t, { code: 'usp.from_id_spoofed', clientId: agent.clientId })
    assert.equal(ev.tenant, TENANT)
    assert.equal(ev.principal, eid)
    assert.match(ev.reason ?? '', /IMPOSTOR/)
    await sentinel(eid)
    assert.equal(ctrl.messages.filter(m => m.payload.equals(payload)).length, 0, 'the spoofed will never reached the Controller')
  })

  test(`${ver}: a Will whose reply-to points into another tenant is refused, with usp.reply_to_cross_tenant`, async () => {
    const eid = `os::00256D-000willcross${v}`
    const payload = disconnectRecord(eid)
    const will: WillSpec = v === 5
      ? { topic: CTRL_INBOX, responseTopic: 'beta/usp/agent/x', payload }
      : { topic: withReplyToSuffix(CTRL_INBOX, 'beta/usp/agent/x'), payload }
    const agent = await agentWithWill(eid, v, will)
    agent.kill()
    const ev = await waitForEvent(t, { code: 'usp.reply_to_cross_tenant', clientId: agent.clientId })
    assert.equal(ev.principal, eid)
    await sentinel(eid)
    assert.equal(ctrl.messages.filter(m => m.payload.equals(payload)).length, 0, 'the will never reached the Controller')
  })
}

// In a cluster, aedes on a surviving node publishes the Wills of a dead node from the shared
// persistence (aedes.js `_clearWills`): it calls authorizePublish(null, will) (there is no live
// client) and then publish(will). This drives exactly that path on a real gateway with the Will
// exactly as the persistence stores it (the sweep itself runs only every 4 heartbeats = 4 min).
test('a Will published by the cluster sweep (authorizePublish with no live client) is inspected too', async () => {
  const eid = 'os::00256D-000willsweep'
  const payload = disconnectRecord('os::00256D-IMPOSTOR')
  const agent = await agentWithWill(eid, 5, { topic: CTRL_INBOX, responseTopic: inboxOf(TENANT, 'agent', eid), payload })
  const broker = t.gw.broker as unknown as {
    persistence: { getWill(client: { id: string }): Promise<Record<string, unknown> | undefined> }
    authorizePublish(client: null, packet: unknown, cb: (err?: Error | null) => void): void
    publish(packet: unknown, cb: (err?: Error) => void): void
  }
  const will = await broker.persistence.getWill({ id: `${TENANT}:${eid}|${agent.clientId}` })
  assert.ok(will, 'the Will is in the persistence')
  const sweepWill = { ...will, cmd: 'publish' }
  const err = await new Promise<Error | null | undefined>(resolve => broker.authorizePublish(null, sweepWill, resolve))
  if (!err) await new Promise<void>(resolve => broker.publish(sweepWill, () => resolve()))
  await sentinel(eid)
  assert.equal(ctrl.messages.filter(m => m.payload.equals(payload)).length, 0,
    'a swept Will with a spoofed from_id reached the Controller: the no-client branch of authorizePublish skips USP inspection')
  assert.ok(err, 'authorizePublish(null, will) must refuse a Will whose Record has a spoofed from_id')
  await waitForEvent(t, { code: 'usp.from_id_spoofed', principal: eid })
  await agent.close()
})
