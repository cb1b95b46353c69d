// Hole 2 of issue 14: a persistent session subscribes [own inbox, '#', 'globex/#'] in one packet.
// The SUBACK refuses the last two, and they must not be stored either: nothing of another tenant is
// queued for the session while it is offline, and in cluster mode Redis holds only the granted
// filter. The cross-tenant attempt is also the victim's event: a token scoped to globex sees it.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { startGateway, provision, connect, closeClient, removeDir, waitFor, waitForEvent, sleep, adminRequest, type TestGateway } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

const cleanup: Array<() => Promise<void>> = []
after(async () => { for (const f of cleanup.reverse()) await f().catch(() => {}) })

const AGENT = 'os::00256D-MX0001'
const INBOX = `mx/usp/agent/${AGENT}`

interface PersistencePeek {
  subscriptionsByClient(c: { id: string }): Promise<Array<{ topic: string }>>
  outgoingStream(c: { id: string }): AsyncIterable<unknown>
}
const persistenceOf = (t: TestGateway): PersistencePeek => (t.gw.broker as unknown as { persistence: PersistencePeek }).persistence

async function attack (t: TestGateway, v: 4 | 5, wire: string): Promise<{ granted: number[], internalId: string }> {
  const ag = await provision(t, 'mx', AGENT, 'agent').catch(async () => ({ username: `mx:${AGENT}`, secret: secretOf.get(t)! }))
  secretOf.set(t, ag.secret)
  const client = await connect(t, { v, clientId: wire, clean: false, username: ag.username, password: ag.secret, ...(v === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}) })
  // mqtt.js rejects an MQTT 5 SUBACK with a refusal in it; the SUBACK is on the error
  const granted = await client.subscribeAsync({ [INBOX]: { qos: 1 }, '#': { qos: 1 }, 'globex/#': { qos: 1 } }).then(
    gs => gs.map(g => g.qos),
    (err: { packet?: { granted: number[] } }) => { if (err.packet === undefined) throw err; return err.packet.granted })
  await closeClient(client) // offline: the session stays
  return { granted, internalId: `mx:${AGENT}|${wire}` }
}
const secretOf = new Map<TestGateway, string>()

async function globexPublishes (t: TestGateway, n: number): Promise<void> {
  const g = await provision(t, 'globex', 'os::00256D-GX0001', 'agent')
  const pub = await connect(t, { username: g.username, password: g.secret })
  for (let i = 0; i < n; i++) await pub.publishAsync('globex/bulkdata/os::00256D-GX0001/t', Buffer.alloc(1024, 1), { qos: 1 })
  await closeClient(pub)
}

test('single node (memory persistence), MQTT 5 and 3.1.1: refused filters of a mixed SUBSCRIBE are never stored or queued for', async () => {
  const t = await startGateway()
  cleanup.push(async () => { await t.close(); await removeDir(t.dataDir) })
  assert.equal((await t.api('POST', '/v1/tenants', { id: 'globex' })).status, 201)
  for (const v of [5, 4] as const) {
    const { granted, internalId } = await attack(t, v, `mx-${v}`)
    const refused = v === 5 ? 0x87 : 0x80
    assert.deepEqual(granted, [1, refused, refused], `MQTT ${v}: SUBACK grants only the inbox`)
    assert.deepEqual((await persistenceOf(t).subscriptionsByClient({ id: internalId })).map(s => s.topic), [INBOX], `MQTT ${v}: only the granted filter is stored`)
  }
  await globexPublishes(t, 20)
  await sleep(300)
  for (const v of [5, 4] as const) {
    let queued = 0
    for await (const _ of persistenceOf(t).outgoingStream({ id: `mx:${AGENT}|mx-${v}` })) queued++
    assert.equal(queued, 0, `MQTT ${v}: another tenant's messages were queued for the session`)
  }
  // the refusal is an event of the attacker's tenant and of the victim's
  const ev = await waitForEvent(t, { code: 'acl.cross_tenant', topic: 'globex/#' })
  assert.equal(ev.tenant, 'mx')
  assert.equal(ev.targetTenant, 'globex')
  const token = await t.api('POST', '/v1/tokens', { name: 'globex security', role: 'security', tenants: ['globex'] })
  assert.equal(token.status, 201, JSON.stringify(token.body))
  const seen = await adminRequest(t.adminUrl, 'GET', '/v1/security-events?code=acl.cross_tenant', { token: token.body.token })
  assert.equal(seen.status, 200)
  assert.ok(seen.body.events.some((e: { targetTenant?: string, tenant: string }) => e.targetTenant === 'globex' && e.tenant === 'mx'), 'the victim tenant\'s token does not see the attempt on it')
})

test('cluster (Redis persistence): only the granted filter is written to Redis', async () => {
  const redis = await startRedis()
  cleanup.push(() => redis.stop())
  const t = await startGateway({ redis: { url: redis.url, prefix: 'mx:' }, nodeId: 'mx-a' })
  cleanup.push(async () => { await t.close(); await removeDir(t.dataDir) })
  assert.equal((await t.api('POST', '/v1/tenants', { id: 'globex' })).status, 201)
  const db = new Redis(redis.url)
  cleanup.push(async () => { db.disconnect() })
  for (const v of [5, 4] as const) {
    const { granted, internalId } = await attack(t, v, `mxr-${v}`)
    assert.deepEqual(granted, [1, v === 5 ? 0x87 : 0x80, v === 5 ? 0x87 : 0x80])
    const key = `mx:aedes:client:${encodeURIComponent(internalId)}`
    const stored = await waitFor(async () => { const h = await db.hkeys(key); return h.length > 0 ? h : undefined }, 3000, 'stored subscriptions')
    assert.deepEqual(stored, [INBOX], `MQTT ${v}: Redis holds a refused filter`)
  }
  await globexPublishes(t, 10)
  await sleep(300)
  for (const v of [5, 4] as const) {
    assert.equal(await db.llen(`mx:aedes:outgoing:${encodeURIComponent(`mx:${AGENT}|mxr-${v}`)}`), 0, 'another tenant\'s messages queued in Redis')
  }
})
