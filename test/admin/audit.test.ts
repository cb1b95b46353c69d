// The admin audit trail: every change and every refused call is a record in
// the security-event sink (the NDJSON audit file), with actor, role, action,
// target, result, status, request id and address; queryable by actor and
// action; never dropped by flood control; kept across restarts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { removeDir } from '../helpers/gateway.ts'
import { startAdminGateway, createToken } from './helpers.ts'

test('audit records: queryable by actor and action, in the NDJSON audit file, not flood-suppressed, kept across restart', async () => {
  let g = await startAdminGateway()
  try {
    const noc = await createToken(g, 'noc on duty', 'noc')
    const sec = await createToken(g, 'soc analyst', 'security')
    const asNoc = { token: noc.token }
    assert.equal((await g.call('POST', '/v1/tenants', { ...asNoc, body: { id: 'acme' } })).status, 201)
    // 40 changes in well under a second: flood control (20/s per code and address) must not drop any
    const ids: string[] = []
    for (let i = 0; i < 40; i++) {
      const r = await g.call('POST', '/v1/tenants/acme/credentials', { ...asNoc, body: { principal: `os::00256D-A${i}`, role: 'agent' } })
      assert.equal(r.status, 201)
      ids.push(r.headers.get('x-request-id')!)
    }
    const conflict = await g.call('POST', '/v1/tenants/acme/credentials', { ...asNoc, body: { principal: 'os::00256D-A0', role: 'agent' } })
    assert.equal(conflict.status, 409)
    const revoke = await g.call('DELETE', '/v1/tenants/acme/credentials/os::00256D-A1', { token: sec.token })
    assert.equal(revoke.status, 200)
    const refused = await g.call('DELETE', '/v1/tenants/acme/credentials/os::00256D-A2', asNoc)
    assert.equal(refused.status, 403)
    const unauthenticated = await g.call('DELETE', '/v1/tenants/acme/credentials/os::00256D-A2', { token: 'not-a-token-0123456789abcdef' })
    assert.equal(unauthenticated.status, 401)

    const q = async (query: string): Promise<any[]> => {
      const r = await g.call('GET', `/v1/security-events?${query}&limit=1000`)
      assert.equal(r.status, 200, r.text)
      return r.body.events
    }
    const issued = await q(`code=admin.action&actor=${noc.id}&action=credential.issue`)
    assert.equal(issued.length, 41)
    assert.deepEqual(new Set(issued.filter(e => e.status === 201).map(e => e.requestId)), new Set(ids))
    const bad = issued.find(e => e.status === 409)
    assert.deepEqual({ result: bad.result, role: bad.role, tenant: bad.tenant, target: bad.target }, { result: 'error', role: 'noc', tenant: 'acme', target: '/v1/tenants/acme/credentials' })
    assert.match(bad.reason, /conflict/)
    const [rev] = await q(`code=admin.action&actor=${sec.id}&action=credential.revoke`)
    assert.deepEqual({ result: rev.result, status: rev.status, role: rev.role, target: rev.target, remoteAddress: rev.remoteAddress, requestId: rev.requestId },
      { result: 'ok', status: 200, role: 'security', target: '/v1/tenants/acme/credentials/os::00256D-A1', remoteAddress: '127.0.0.1', requestId: revoke.headers.get('x-request-id') })
    const [denied] = await q(`actor=${noc.id}&action=credential.revoke`)
    assert.deepEqual({ code: denied.code, result: denied.result, status: denied.status, severity: denied.severity }, { code: 'admin.forbidden', result: 'denied', status: 403, severity: 'warning' })
    // action prefix and actor filters compose; the domain events of the same calls carry the actor too
    const everything = await q(`actor=${noc.id}&action=credential.`)
    assert.ok(everything.some(e => e.code === 'credential.issued'))
    assert.ok(everything.every(e => e.actor === noc.id && String(e.action).startsWith('credential.')))
    const [failed] = await q('code=admin.auth_failed')
    assert.deepEqual({ status: failed.status, result: failed.result, action: failed.action, requestId: failed.requestId },
      { status: 401, result: 'denied', action: 'credential.revoke', requestId: unauthenticated.headers.get('x-request-id') })

    // the durable sink: the same records are lines of the NDJSON audit file
    await new Promise(r => setTimeout(r, 100))
    const file = (await readFile(join(g.dataDir, 'audit', 'security-events.ndjson'), 'utf8')).trim().split('\n').map(l => JSON.parse(l))
    for (const id of [...ids, revoke.headers.get('x-request-id'), refused.headers.get('x-request-id')]) {
      assert.ok(file.some(e => e.requestId === id && (e.code === 'admin.action' || e.code === 'admin.forbidden')), `request ${id} not on file`)
    }

    await g.close()
    g = await startAdminGateway(undefined, { dataDir: g.dataDir })
    assert.equal((await q(`code=admin.action&actor=${noc.id}&action=credential.issue`)).length, 41)
  } finally { await g.close(); await removeDir(g.dataDir) }
})
