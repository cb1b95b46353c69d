// Admin API rate limits (per token, per address, failed authentications),
// request ids, and no CORS.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { removeDir } from '../helpers/gateway.ts'
import { startAdminGateway, createToken, ADMIN_TOKEN, UNLIMITED } from './helpers.ts'

test('per-token rate limit: burst, then 429 problem with retry-after; other tokens unaffected; an event', async () => {
  const g = await startAdminGateway({ ...UNLIMITED, tokenRate: 2 }) // burst 8
  try {
    const other = await createToken(g, 'other', 'viewer')
    const statuses: number[] = []
    let limited
    for (let i = 0; i < 12; i++) {
      const r = await g.call('GET', '/v1/tenants')
      statuses.push(r.status)
      if (r.status === 429) limited = r
    }
    assert.ok(statuses.slice(0, 6).every(s => s === 200), statuses.join(','))
    assert.ok(limited, `no 429 in ${statuses.join(',')}`)
    assert.match(limited.headers.get('content-type')!, /^application\/problem\+json/)
    assert.match(limited.headers.get('retry-after')!, /^[1-9][0-9]*$/)
    assert.equal(limited.body.status, 429)
    assert.equal((await g.call('GET', '/v1/tenants', { token: other.token })).status, 200)
    const ev = g.gw.events.query({ code: 'admin.rate_limited' })
    assert.ok(ev.some(e => e.actor === 'bootstrap' && e.status === 429 && e.action === 'tenant.list'))
    // refilled after a pause
    await new Promise(r => setTimeout(r, 1100))
    assert.equal((await g.call('GET', '/v1/tenants')).status, 200)
  } finally { await g.close(); await removeDir(g.dataDir) }
})

test('per-address rate limit covers every route, authenticated or not', async () => {
  const g = await startAdminGateway({ ...UNLIMITED, addressRate: 3 }) // burst 12
  try {
    const statuses: number[] = []
    for (let i = 0; i < 16; i++) statuses.push((await g.call('GET', i % 2 === 0 ? '/healthz' : '/v1/tenants', { token: i % 4 === 1 ? null : ADMIN_TOKEN })).status)
    assert.ok(statuses.includes(429), statuses.join(','))
    const r = await g.call('GET', '/openapi.json', { token: null })
    assert.equal(r.status, 429)
    assert.ok(r.headers.get('retry-after'))
  } finally { await g.close(); await removeDir(g.dataDir) }
})

test('failed authentications lock the address: then even a valid token gets 429 (no oracle), with an event', async () => {
  const g = await startAdminGateway({ ...UNLIMITED, authFailuresPerMinute: 3 })
  try {
    for (let i = 0; i < 3; i++) {
      const r = await g.call('GET', '/v1/tenants', { token: `wrong-token-guess-${i}-0123456789` })
      assert.equal(r.status, 401)
      assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="uspgate"')
    }
    const locked = await g.call('GET', '/v1/tenants')
    assert.equal(locked.status, 429)
    assert.match(locked.body.detail, /too many failed authentications/)
    const wait = Number(locked.headers.get('retry-after'))
    assert.ok(wait > 50 && wait <= 60, String(wait))
    assert.equal((await g.call('GET', '/v1/tenants', { token: 'wrong-token-guess-x-0123456789' })).status, 429)
    assert.equal((await g.call('GET', '/healthz', { token: null })).status, 200) // probes are not behind the lock
    const ev = g.gw.events.query({ code: 'admin.' })
    assert.ok(ev.filter(e => e.code === 'admin.auth_failed').length >= 3)
    assert.ok(ev.some(e => e.code === 'admin.rate_limited' && /locked for 60 s/.test(e.reason ?? '')))
  } finally { await g.close(); await removeDir(g.dataDir) }
})

test('request ids: a sane x-request-id is echoed and audited, anything else is replaced; no CORS headers anywhere', async () => {
  const g = await startAdminGateway()
  try {
    const mine = await g.call('POST', '/v1/tenants', { body: { id: 'acme' }, headers: { 'x-request-id': 'change-4711.a' } })
    assert.equal(mine.status, 201)
    assert.equal(mine.headers.get('x-request-id'), 'change-4711.a')
    const ev = (await g.call('GET', '/v1/security-events?code=admin.action&actor=bootstrap&action=tenant.create')).body.events
    assert.equal(ev[0].requestId, 'change-4711.a')
    for (const bad of ['', 'x'.repeat(129), 'has space', 'semi;colon', '<script>']) {
      const r = await g.call('GET', '/healthz', { token: null, headers: { 'x-request-id': bad } })
      const id = r.headers.get('x-request-id')!
      assert.notEqual(id, bad)
      assert.match(id, /^[0-9a-f-]{36}$/)
    }
    // CORS is off: no Access-Control-* header on a preflight, a cross-origin GET, an error or a probe
    const origin = { origin: 'https://evil.example' }
    const replies = [
      await fetch(g.adminUrl + '/v1/tenants', { method: 'OPTIONS', headers: { ...origin, 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'authorization' } }),
      await fetch(g.adminUrl + '/v1/tenants', { headers: { ...origin, authorization: `Bearer ${ADMIN_TOKEN}` } }),
      await fetch(g.adminUrl + '/v1/tenants', { headers: origin }),
      await fetch(g.adminUrl + '/healthz', { headers: origin }),
      await fetch(g.adminUrl + '/openapi.json', { headers: origin })
    ]
    for (const r of replies) {
      await r.arrayBuffer()
      const cors = [...r.headers.keys()].filter(k => k.startsWith('access-control-'))
      assert.deepEqual(cors, [], `${r.url} ${r.status}`)
    }
    assert.equal(replies[0]!.status, 404) // no preflight handler at all
    assert.equal(replies[1]!.headers.get('cache-control'), 'no-store')
  } finally { await g.close(); await removeDir(g.dataDir) }
})
