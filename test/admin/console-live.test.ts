// The live parts of the web console's API over a real gateway and real MQTT clients: the security-event
// tail as Server-Sent Events (read with a real HTTP client: filters, tenant scope, Last-Event-ID resume,
// heartbeats, the per-token cap), the presence timeline of an endpoint, and successful connects per tenant.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { request, type IncomingMessage } from 'node:http'
import type { MqttClient } from 'mqtt'
import { startGateway, provision, connect, closeClient, removeDir, waitFor, adminRequest, type TestGateway } from '../helpers/gateway.ts'

let t: TestGateway
const clients: MqttClient[] = []
const tok: Record<string, string> = {}
const creds: Record<string, { username: string, secret: string }> = {}
const AG = 'os::00256D-0001'

async function token (name: string, role: string, tenants?: string[]): Promise<string> {
  const r = await t.api('POST', '/v1/tokens', { name, role, ...(tenants ? { tenants } : {}) })
  assert.equal(r.status, 201, r.text)
  return r.body.token as string
}
const get = async (path: string, as = tok.admin!) => await adminRequest(t.adminUrl, 'GET', path, { token: as })

interface SseEvent { id?: string, data: string }
interface Sse {
  status: number
  headers: IncomingMessage['headers']
  events: SseEvent[]
  comments: string[]
  /** Resolves when the server ends the stream. */
  ended: Promise<void>
  close: () => void
}

/** Opens an event stream with node:http (the token in the Authorization header) and parses it as it arrives. */
function openStream (path: string, as: string, headers: Record<string, string> = {}): Promise<Sse> {
  return new Promise((resolve, reject) => {
    const req = request(t.adminUrl + path, { headers: { authorization: `Bearer ${as}`, accept: 'text/event-stream', ...headers } }, res => {
      const s: Sse = { status: res.statusCode ?? 0, headers: res.headers, events: [], comments: [], ended: new Promise(r => { res.on('end', r); res.on('close', r) }), close: () => req.destroy() }
      let buf = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buf += chunk
        let i: number
        while ((i = buf.indexOf('\n\n')) !== -1) {
          const block = buf.slice(0, i)
          buf = buf.slice(i + 2)
          const ev: SseEvent = { data: '' }
          let isEvent = false
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) s.comments.push(line.slice(1).trim())
            else if (line.startsWith('id: ')) { ev.id = line.slice(4); isEvent = true }
            else if (line.startsWith('data: ')) { ev.data += line.slice(6); isEvent = true }
          }
          if (isEvent) s.events.push(ev)
        }
      })
      res.on('error', () => {})
      resolve(s)
    })
    req.on('error', reject)
    req.end()
  })
}

async function failConnect (tenant: string, principal: string): Promise<void> {
  await connect(t, { username: `${tenant}:${principal}`, password: 'wrong-secret', reconnectPeriod: 0 } as Parameters<typeof connect>[1])
    .then(c => { clients.push(c); assert.fail('a bad password was accepted') }, () => {})
}

before(async () => {
  t = await startGateway({ limits: { publishRatePerSecond: 0 } })
  tok.admin = t.token
  for (const tenant of ['red', 'blue']) creds[tenant] = await provision(t, tenant, AG)
  tok.red = await token('red-soc', 'viewer', ['red'])
  tok.blue = await token('blue-soc', 'viewer', ['blue'])
})
let closed = false
after(async () => {
  for (const c of clients) await closeClient(c)
  if (!closed) await t.close()
  await removeDir(t.dataDir)
})

test('the security-event stream: live events in order, filters and tenant scope, heartbeats, ends after maxSeconds or limit', async () => {
  const path = '/v1/security-events/stream?code=auth.bad_credentials&heartbeatSeconds=1&maxSeconds=60'
  const all = await openStream(path, tok.admin!)
  const red = await openStream(path, tok.red!)
  const blue = await openStream(path, tok.blue!)
  try {
    assert.equal(all.status, 200)
    assert.match(String(all.headers['content-type']), /^text\/event-stream/)
    assert.equal(all.headers['cache-control'], 'no-store')
    for (let i = 0; i < 3; i++) await failConnect('red', `os::00256D-90${i}`)
    const events = await waitFor(() => all.events.length >= 3 && all.events, 15_000, 'three events on the admin stream')
    const parsed = events.map(e => JSON.parse(e.data) as { id: string, code: string, tenant: string, principal: string })
    assert.deepEqual(parsed.map(e => [e.code, e.tenant, e.principal]),
      [0, 1, 2].map(i => ['auth.bad_credentials', 'red', `os::00256D-90${i}`]), 'in order, filtered')
    assert.deepEqual(events.map(e => e.id), parsed.map(e => e.id), 'the SSE id is the event id')
    await waitFor(() => red.events.length >= 3, 15_000, 'red\'s scoped token sees its tenant\'s events')
    await waitFor(() => all.comments.includes('heartbeat'), 15_000, 'a heartbeat comment')
    // blue's scoped token saw none of red's events
    assert.equal(blue.events.length, 0)
    // a scoped token may not ask for another tenant
    const other = await openStream('/v1/security-events/stream?tenant=red&maxSeconds=0', tok.blue!)
    assert.equal(other.status, 403)
    other.close()
  } finally { all.close(); red.close(); blue.close() }
  // maxSeconds and limit end the stream
  const short = await openStream('/v1/security-events/stream?maxSeconds=1', tok.admin!)
  await short.ended
  const limited = await openStream('/v1/security-events/stream?code=auth.bad_credentials&limit=1', tok.admin!)
  await failConnect('red', 'os::00256D-910')
  await limited.ended
  assert.equal(limited.events.length, 1)
  // bad parameters are refused before a stream opens
  for (const bad of ['maxSeconds=-1', 'maxSeconds=99999', 'code=ACL', 'heartbeatSeconds=0', 'since=2020-01-01T00:00:00Z']) {
    const r = await get(`/v1/security-events/stream?${bad}`)
    assert.equal(r.status, 400, bad)
  }
})

test('Last-Event-ID resumes after that event without duplicates, then goes on live', async () => {
  const first = await openStream('/v1/security-events/stream?code=auth.bad_credentials&tenant=blue&maxSeconds=60', tok.blue!)
  await failConnect('blue', 'os::00256D-A00')
  const seen = await waitFor(() => first.events.length >= 1 && first.events, 15_000, 'first event')
  first.close()
  await first.ended
  // missed while disconnected
  await failConnect('blue', 'os::00256D-A01')
  await failConnect('blue', 'os::00256D-A02')
  const resumed = await openStream('/v1/security-events/stream?code=auth.bad_credentials&tenant=blue&maxSeconds=60', tok.blue!, { 'last-event-id': seen[0]!.id! })
  try {
    await waitFor(() => resumed.events.length >= 2, 15_000, 'the backlog')
    await failConnect('blue', 'os::00256D-A03')
    await waitFor(() => resumed.events.length >= 3, 15_000, 'the live event after the backlog')
    await new Promise(resolve => setTimeout(resolve, 300))
    const principals = resumed.events.map(e => (JSON.parse(e.data) as { principal: string }).principal)
    assert.deepEqual(principals, ['os::00256D-A01', 'os::00256D-A02', 'os::00256D-A03'])
    assert.equal(new Set(resumed.events.map(e => e.id)).size, 3)
  } finally { resumed.close() }
  const bad = await get('/v1/security-events/stream?maxSeconds=0', tok.blue)
  assert.equal(bad.status, 200)
  const r = await adminRequest(t.adminUrl, 'GET', '/v1/security-events/stream?maxSeconds=0', { token: tok.blue!, headers: { 'last-event-id': 'not an id' } })
  assert.equal(r.status, 400)
})

test('at most 4 open streams per token: the fifth is 429, and a closed stream frees its place', async () => {
  const open = await Promise.all([0, 1, 2, 3].map(async () => await openStream('/v1/security-events/stream?maxSeconds=60', tok.red!)))
  try {
    assert.ok(open.every(s => s.status === 200))
    const fifth = await get('/v1/security-events/stream?maxSeconds=0', tok.red)
    assert.equal(fifth.status, 429)
    assert.ok(fifth.headers.get('retry-after'))
    // the refusal is a security event like every other 429 of the admin API
    const refused = (await t.api('GET', '/v1/security-events?code=admin.rate_limited')).body.events as Array<{ reason?: string, target?: string }>
    assert.ok(refused.some(e => e.reason === 'at most 4 open event streams per token' && e.target === '/v1/security-events/stream'), JSON.stringify(refused))
    // another token is not affected
    assert.equal((await get('/v1/security-events/stream?maxSeconds=0', tok.blue)).status, 200)
    open[0]!.close()
    await waitFor(async () => (await get('/v1/security-events/stream?maxSeconds=0', tok.red)).status === 200, 10_000, 'a place freed by the closed stream')
  } finally { for (const s of open) s.close() }
})

test('a revoked token\'s stream ends at the next heartbeat', async () => {
  const created = await t.api('POST', '/v1/tokens', { name: 'short-lived', role: 'viewer' })
  assert.equal(created.status, 201)
  const s = await openStream('/v1/security-events/stream?heartbeatSeconds=1&maxSeconds=600', created.body.token)
  assert.equal(s.status, 200)
  await waitFor(() => s.comments.includes('heartbeat'), 15_000, 'a heartbeat while the token is valid')
  assert.equal((await t.api('DELETE', `/v1/tokens/${created.body.id}`)).status, 200)
  const started = Date.now()
  await s.ended
  assert.ok(Date.now() - started < 10_000, 'ended within a few heartbeats')
})

test('presence timeline: connect, disconnect, reconnect are three transitions in order, with the reason; tenant scope enforced', async () => {
  const path = `/v1/tenants/red/endpoints/${encodeURIComponent(AG)}/presence`
  const c1 = await connect(t, { v: 5, username: creds.red!.username, password: creds.red!.secret, clientId: 'presence-1' })
  await new Promise<void>(resolve => { c1.end(false, {}, () => resolve()) }) // with a DISCONNECT packet
  const c2 = await connect(t, { v: 4, username: creds.red!.username, password: creds.red!.secret, clientId: 'presence-2' })
  clients.push(c2)
  const r = await waitFor(async () => {
    const res = await get(path)
    return res.status === 200 && res.body.transitions.length >= 3 && res
  }, 15_000, 'three transitions')
  const list = r.body.transitions as Array<{ state: string, time: string, node: string, mqttVersion: string, reason?: string }>
  assert.deepEqual(list.map(x => [x.state, x.mqttVersion, x.reason]), [['online', '3.1.1', undefined], ['offline', '5.0', 'disconnect'], ['online', '5.0', undefined]], 'newest first')
  assert.ok(list[0]!.time >= list[1]!.time && list[1]!.time >= list[2]!.time)
  assert.ok(list.every(x => x.node === t.gw.nodeId))
  // red's scoped token reads it; blue's may not; an unknown endpoint is 404
  assert.equal((await get(path, tok.red)).status, 200)
  assert.equal((await get(path, tok.blue)).status, 403)
  assert.equal((await get(`/v1/tenants/red/endpoints/${encodeURIComponent('os::never-seen')}/presence`)).status, 404)
  // a revocation cut is recorded as such
  const revoked = await provision(t, 'red', 'os::00256D-0CUT')
  const c3 = await connect(t, { v: 5, username: revoked.username, password: revoked.secret, clientId: 'presence-cut', reconnectPeriod: 0 })
  clients.push(c3)
  assert.equal((await t.api('DELETE', `/v1/tenants/red/credentials/${encodeURIComponent('os::00256D-0CUT')}`)).status, 200)
  const cut = await waitFor(async () => {
    const res = await get(`/v1/tenants/red/endpoints/${encodeURIComponent('os::00256D-0CUT')}/presence`)
    return res.body.transitions?.[0]?.state === 'offline' && res.body.transitions
  }, 15_000, 'the offline transition of the cut session')
  assert.equal(cut[0].reason, 'revoked')
})

test('successful connects per tenant in /v1/security-stats (24 h and 7 d): refused connects do not count; scoped tokens see their tenant only', async () => {
  const okOf = async (tenant: string, window = '24h', as = tok.admin!): Promise<number | undefined> =>
    (await get(`/v1/security-stats?window=${window}`, as)).body.tenants.find((s: { tenant: string }) => s.tenant === tenant)?.connectsOk
  const before = await okOf('blue') ?? 0
  for (const v of [5, 4] as const) {
    const c = await connect(t, { v, username: creds.blue!.username, password: creds.blue!.secret, clientId: `ok-${v}` })
    await closeClient(c)
  }
  await failConnect('blue', AG)
  assert.equal(await okOf('blue'), before + 2)
  assert.ok((await okOf('blue', '7d'))! >= before + 2)
  const r = await get('/v1/security-stats?window=24h')
  assert.ok(r.body.tenants.every((s: { connectsOk?: unknown }) => Number.isInteger(s.connectsOk)), 'every tenant row has the count')
  // red's scoped token sees red's count and nothing of blue
  const scoped = (await get('/v1/security-stats?window=24h', tok.red)).body.tenants
  assert.deepEqual(scoped.map((s: { tenant: string }) => s.tenant), ['red'])
  assert.ok(scoped[0].connectsOk >= 1)
})

test('closing the gateway ends the open streams (last: it closes the gateway)', async () => {
  for (const c of clients.splice(0)) await closeClient(c)
  const s = await openStream('/v1/security-events/stream?maxSeconds=3600', tok.admin!)
  assert.equal(s.status, 200)
  closed = true
  const started = Date.now()
  await t.close()
  await s.ended
  assert.ok(Date.now() - started < 20_000, 'the close did not wait for the stream')
})
