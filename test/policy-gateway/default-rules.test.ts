// Each default rule of policies/authz.rego, allowing and denying, over real
// MQTT 5 and 3.1.1 clients through a running gateway; every deny is an
// acl.denied event carrying the policy's reason and revision.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient } from 'mqtt'
import { startGateway, provision, connect, waitForEvent, closeClient, removeDir, type TestGateway } from '../helpers/gateway.ts'

let t: TestGateway
const A = 'os::00256D-0001' // agent
const A2 = 'os::00256D-0002' // another agent
const C = 'self::ctrl-1' // controller
const C2 = 'self::ctrl-2'
const creds: Record<string, { username: string, secret: string }> = {}
let revision = ''

before(async () => {
  t = await startGateway({ limits: { publishRatePerSecond: 0 } })
  creds[A] = await provision(t, 'acme', A, 'agent')
  creds[C] = await provision(t, 'acme', C, 'controller')
  // isolate the ACL from USP Record inspection (tested elsewhere): plain payloads on inboxes
  assert.equal((await t.api('PATCH', '/v1/tenants/acme', { usp: { inspection: 'off' } })).status, 200)
  revision = t.gw.policy.revision
  assert.match(revision, /^r-[0-9a-f]{12}$/)
})
after(async () => { await t.close(); await removeDir(t.dataDir) })

function subscribeCode (c: MqttClient, filter: string, qos: 0 | 1 | 2 = 1): Promise<number> {
  return new Promise((resolve, reject) => c.subscribe(filter, { qos }, (err, granted) => {
    const suback = (err as (Error & { packet?: { granted: number[] } }) | null)?.packet
    if (suback) resolve(suback.granted[0]!)
    else if (err) reject(err)
    else resolve(granted![0]!.qos)
  }))
}

type Case = { who: string, action: 'publish' | 'subscribe', topic: string, allow: boolean, reason?: string, qos?: 0 | 1 | 2, retain?: boolean }
const cases: Case[] = [
  // agent
  { who: A, action: 'subscribe', topic: `acme/usp/agent/${A}`, allow: true },
  { who: A, action: 'subscribe', topic: `acme/usp/agent/${A}/#`, allow: true },
  { who: A, action: 'subscribe', topic: `acme/usp/agent/${A2}`, allow: false, reason: 'not_own_inbox' },
  { who: A, action: 'subscribe', topic: 'acme/usp/agent/+', allow: false, reason: 'not_own_inbox' },
  { who: A, action: 'subscribe', topic: `acme/usp/controller/${C}`, allow: false, reason: 'agent_cannot_subscribe_here' },
  { who: A, action: 'subscribe', topic: 'acme/bulkdata/#', allow: false, reason: 'agent_cannot_subscribe_here' },
  { who: A, action: 'publish', topic: `acme/usp/controller/${C}`, allow: true },
  { who: A, action: 'publish', topic: `acme/usp/controller/${C}/reply-to=acme%2Fusp%2Fagent%2F${A}`, allow: true },
  { who: A, action: 'publish', topic: `acme/bulkdata/${A}/report`, allow: true },
  { who: A, action: 'publish', topic: `acme/bulkdata/${A2}/report`, allow: false, reason: 'not_own_bulkdata' },
  { who: A, action: 'publish', topic: `acme/usp/agent/${A2}`, allow: false, reason: 'agent_cannot_publish_here' },
  { who: A, action: 'publish', topic: `acme/usp/status/${A}`, allow: false, reason: 'status_is_gateway_only' },
  { who: A, action: 'publish', topic: `acme/usp/controller/${C}`, allow: false, reason: 'retain_on_usp_inbox', retain: true },
  { who: A, action: 'publish', topic: `acme/usp/controller/${C}`, allow: false, reason: 'qos2_on_usp_topic', qos: 2 },
  { who: A, action: 'publish', topic: 'acme/other/thing', allow: false, reason: 'agent_cannot_publish_here' },
  // controller
  { who: C, action: 'publish', topic: `acme/usp/agent/${A}`, allow: true },
  { who: C, action: 'publish', topic: `acme/usp/agent/${A}/reply-to=acme%2Fusp%2Fcontroller%2F${C}`, allow: true },
  { who: C, action: 'publish', topic: `acme/usp/controller/${C2}`, allow: false, reason: 'controller_cannot_publish_here' },
  { who: C, action: 'publish', topic: `acme/bulkdata/${A}/x`, allow: false, reason: 'controller_cannot_publish_here' },
  { who: C, action: 'subscribe', topic: `acme/usp/controller/${C}`, allow: true },
  { who: C, action: 'subscribe', topic: `acme/usp/controller/${C}/#`, allow: true },
  { who: C, action: 'subscribe', topic: 'acme/bulkdata/#', allow: true },
  { who: C, action: 'subscribe', topic: 'acme/usp/status/+', allow: true },
  { who: C, action: 'subscribe', topic: `acme/usp/controller/${C2}`, allow: false, reason: 'not_own_inbox' },
  { who: C, action: 'subscribe', topic: `acme/usp/agent/${A}`, allow: false, reason: 'controller_cannot_subscribe_here' },
  { who: C, action: 'subscribe', topic: `acme/usp/controller/${C}`, allow: false, reason: 'qos2_on_usp_topic', qos: 2 }
]

for (const v of [5, 4] as const) {
  for (const [i, k] of cases.entries()) {
    const label = `${k.who.startsWith('os') ? 'agent' : 'controller'} ${k.action} ${k.topic}${k.retain ? ' (retain)' : ''}${k.qos === 2 ? ' (QoS 2)' : ''}`
    test(`MQTT ${v === 5 ? '5' : '3.1.1'}: ${label} → ${k.allow ? 'allowed' : `denied (${k.reason})`}`, async () => {
      const clientId = `rule-${v}-${i}`
      const c = await connect(t, { v, username: creds[k.who]!.username, password: creds[k.who]!.secret, clientId })
      try {
        if (k.action === 'subscribe') {
          const code = await subscribeCode(c, k.topic, k.qos ?? 1)
          if (k.allow) assert.ok(code <= 2, `refused with ${code}`)
          else assert.equal(code, v === 5 ? 0x87 : 0x80)
        } else {
          const closed = new Promise<boolean>(resolve => c.once('close', () => resolve(true)))
          const result = await Promise.race([
            // an error without a reason code is mqtt.js failing the in-flight publish because the connection closed
            new Promise<number>(resolve => c.publish(k.topic, 'payload', { qos: k.qos ?? 1, retain: k.retain ?? false }, err => resolve(err ? (err as { code?: number }).code ?? -1 : 0))),
            closed.then(() => -1)
          ])
          if (k.allow) assert.equal(result, 0)
          else assert.equal(result, v === 5 ? 0x87 : -1) // 3.1.1: no negative PUBACK, the connection is closed
        }
        if (!k.allow) {
          const ev = await waitForEvent(t, { code: 'acl.denied', clientId, topic: k.topic })
          assert.equal(ev.reason, k.reason)
          assert.equal(ev.policyRevision, revision)
          assert.equal(ev.action, k.action)
        } else {
          assert.equal(t.gw.events.query({ limit: 1000 }).filter(e => e.clientId === clientId).length, 0)
        }
      } finally {
        await closeClient(c)
      }
    })
  }
}

test('a repeated decision is a cache hit, and decisions metrics carry the revision', async () => {
  const before = t.gw.policy.stats
  const c = await connect(t, { v: 5, username: creds[A]!.username, password: creds[A]!.secret })
  for (let i = 0; i < 50; i++) await new Promise<void>(resolve => c.publish(`acme/bulkdata/${A}/r`, 'x', { qos: 1 }, () => resolve()))
  const after = t.gw.policy.stats
  assert.ok(after.hits - before.hits >= 49, `hits ${after.hits - before.hits}`)
  assert.ok(after.evaluations - before.evaluations <= 2, `evaluations ${after.evaluations - before.evaluations}`)
  await closeClient(c)
  const metrics = await (await fetch(t.adminUrl + '/metrics')).text()
  assert.match(metrics, new RegExp(`uspgate_decisions_total\\{action="publish",result="allow",reason="agent_own_bulkdata",revision="${revision}",node="test-node"\\} \\d+`))
  assert.match(metrics, new RegExp(`uspgate_policy_active_info\\{revision="${revision}",slot="stable",node="test-node"\\} 1`))
})

test('revoking a credential drops its cached decisions', async () => {
  const cred = await provision(t, 'acme', 'os::00256D-0009', 'agent')
  const c = await connect(t, { v: 5, username: cred.username, password: cred.secret })
  await new Promise<void>(resolve => c.publish('acme/bulkdata/os::00256D-0009/r', 'x', { qos: 1 }, () => resolve()))
  const input = { action: 'publish' as const, client: { tenant: 'acme', principal: 'os::00256D-0009', role: 'agent', client_id: c.options.clientId!, protocol: 5, auth: 'password', listener: 'mqtt' }, topic: 'acme/bulkdata/os::00256D-0009/r', qos: 1, retain: false }
  assert.ok(t.gw.policy.peek(input), 'decision should be cached while the credential is live')
  await t.api('DELETE', '/v1/tenants/acme/credentials/os::00256D-0009')
  assert.equal(t.gw.policy.peek(input), undefined)
  await closeClient(c)
})
