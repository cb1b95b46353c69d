// One contract, two implementations: the same cases run against FileStateStore (embedded default)
// and RedisStateStore (cluster mode, a real redis-server). Redis adds: a second node's copy follows
// a change after the control-channel refresh, and a full reload replaces the copy.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { FileStateStore, StoreError } from '../../broker/store/index.ts'
import { RedisStateStore } from '../../broker/cluster/index.ts'
import type { StateStore } from '../../broker/store/state-store.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'

let redis: TestRedis
const conns: Redis[] = []
let n = 0
before(async () => { redis = await startRedis() })
after(async () => { for (const c of conns) c.disconnect(); await redis.stop() })

interface Impl { name: string, make: () => Promise<{ store: StateStore, reopen: () => Promise<StateStore>, cleanup: () => Promise<void> }> }

const impls: Impl[] = [
  {
    name: 'FileStateStore',
    make: async () => {
      const dir = await mkdtemp(join(tmpdir(), 'uspgate-store-'))
      const store = new FileStateStore(dir)
      await store.load()
      return { store, reopen: async () => { const s = new FileStateStore(dir); await s.load(); return s }, cleanup: async () => { await rm(dir, { recursive: true, force: true }) } }
    }
  },
  {
    name: 'RedisStateStore',
    make: async () => {
      const prefix = `t${n++}:`
      const c = new Redis(redis.port, '127.0.0.1'); conns.push(c)
      const store = new RedisStateStore(c, prefix)
      await store.load()
      return { store, reopen: async () => { const s = new RedisStateStore(c, prefix); await s.load(); return s }, cleanup: async () => {} }
    }
  }
]

const now = (): string => new Date().toISOString()
const cred = (tenant: string, principal: string, hash = 'sha256:aa'): { tenant: string, principal: string, role: 'agent', secretHash: string, createdAt: string } =>
  ({ tenant, principal, role: 'agent', secretHash: hash, createdAt: now() })

for (const impl of impls) {
  describe(impl.name, () => {
    test('tenants: add, conflict, update, list sorted, survive a reopen', async () => {
      const { store, reopen, cleanup } = await impl.make()
      await store.addTenant({ id: 'zeta', name: 'Z', createdAt: now() })
      await store.addTenant({ id: 'acme', name: 'A', createdAt: now() })
      await assert.rejects(store.addTenant({ id: 'acme', name: 'again', createdAt: now() }), (e: unknown) => e instanceof StoreError && e.code === 'conflict')
      const u = await store.updateTenant('acme', { usp: { inspection: 'observe', audit: 'message' } })
      assert.equal(u.name, 'A')
      assert.deepEqual(u.usp, { inspection: 'observe', audit: 'message' })
      await assert.rejects(store.updateTenant('nope', { name: 'x' }), (e: unknown) => e instanceof StoreError && e.code === 'not_found')
      assert.deepEqual(store.listTenants().map(t => t.id), ['acme', 'zeta'])
      const again = await reopen()
      assert.deepEqual(again.getTenant('acme'), store.getTenant('acme'))
      assert.equal(again.getTenant('__proto__'), undefined)
      await cleanup()
    })

    test('credentials: one active per identity, revocation idempotent, re-issue after revoke', async () => {
      const { store, reopen, cleanup } = await impl.make()
      await store.addTenant({ id: 'acme', name: 'A', createdAt: now() })
      await store.putCredential(cred('acme', 'os::1'))
      await assert.rejects(store.putCredential(cred('acme', 'os::1', 'sha256:bb')), (e: unknown) => e instanceof StoreError && e.code === 'conflict')
      const r1 = await store.revokeCredential('acme', 'os::1', '2030-01-01T00:00:00.000Z')
      assert.equal(r1.revokedAt, '2030-01-01T00:00:00.000Z')
      const r2 = await store.revokeCredential('acme', 'os::1', '2031-01-01T00:00:00.000Z')
      assert.equal(r2.revokedAt, '2030-01-01T00:00:00.000Z', 'an earlier revocation is returned as is')
      assert.equal(store.getCredential('acme', 'os::1')?.revokedAt, '2030-01-01T00:00:00.000Z')
      await assert.rejects(store.revokeCredential('acme', 'os::2', now()), (e: unknown) => e instanceof StoreError && e.code === 'not_found')
      await store.putCredential(cred('acme', 'os::1', 'sha256:cc'))
      assert.equal(store.getCredential('acme', 'os::1')?.secretHash, 'sha256:cc')
      assert.equal(store.getCredential('acme', 'os::1')?.revokedAt, undefined)
      await store.putCredential(cred('acme', 'os::0'))
      assert.deepEqual(store.listCredentials('acme').map(c => c.principal), ['os::0', 'os::1'])
      assert.deepEqual(store.listCredentials('other'), [])
      const again = await reopen()
      assert.equal(again.getCredential('acme', 'os::1')?.secretHash, 'sha256:cc')
      await cleanup()
    })

    test('admin tokens: put, replace, find by hash', async () => {
      const { store, reopen, cleanup } = await impl.make()
      await store.putAdminToken({ id: 'bootstrap', name: 'b', role: 'admin', tokenHash: 'sha256:1', createdAt: now() })
      await store.putAdminToken({ id: 'bootstrap', name: 'b', role: 'admin', tokenHash: 'sha256:2', createdAt: now() })
      assert.equal(store.findAdminTokenByHash('sha256:1'), undefined)
      assert.equal(store.findAdminTokenByHash('sha256:2')?.id, 'bootstrap')
      assert.equal(store.listAdminTokens().length, 1)
      await store.flush()
      assert.equal((await reopen()).findAdminTokenByHash('sha256:2')?.id, 'bootstrap')
      await cleanup()
    })
  })
}

describe('RedisStateStore across nodes', () => {
  test('a second copy follows changes via refresh (control channel) and full reload; a change is announced', async () => {
    const prefix = `x${n++}:`
    const c = new Redis(redis.port, '127.0.0.1'); conns.push(c)
    const a = new RedisStateStore(c, prefix)
    const b = new RedisStateStore(c, prefix)
    await a.load(); await b.load()
    const changes: unknown[] = []
    a.onChange = ch => { changes.push(ch) }
    await a.addTenant({ id: 'acme', name: 'A', createdAt: now() })
    await a.putCredential(cred('acme', 'os::1'))
    assert.equal(b.getTenant('acme'), undefined, 'not yet told')
    await b.refreshTenant('acme')
    await b.refreshCredential('acme', 'os::1')
    assert.equal(b.getCredential('acme', 'os::1')?.secretHash, 'sha256:aa')
    // the concurrency rule holds cluster-wide: B cannot issue while A's credential is active
    await assert.rejects(b.putCredential(cred('acme', 'os::1', 'sha256:zz')), (e: unknown) => e instanceof StoreError && e.code === 'conflict')
    await a.revokeCredential('acme', 'os::1', now())
    b.markRevoked('acme', 'os::1', now())
    assert.ok(b.getCredential('acme', 'os::1')?.revokedAt)
    await a.updateTenant('acme', { name: 'ACME' })
    await b.load()
    assert.equal(b.getTenant('acme')?.name, 'ACME')
    assert.deepEqual(changes.map(ch => (ch as { kind: string }).kind), ['tenant', 'credential', 'credential', 'tenant'])
    // keys live under the prefix only
    const keys = (await c.keys('*')).filter(k => k.startsWith(prefix)).sort()
    assert.deepEqual(keys, [`${prefix}state:credentials`, `${prefix}state:tenants`])
    // certification device-matrix rows are shared the same way (one row per key)
    await a.putMatrixRow({ key: 'acme|ACME|R1', status: 'green' })
    await b.refreshMatrixRow('acme|ACME|R1')
    assert.deepEqual(b.listMatrixRows(), [{ key: 'acme|ACME|R1', status: 'green' }])
    await a.putMatrixRow({ key: 'acme|ACME|R1', status: 'red' })
    await b.load()
    assert.equal(b.listMatrixRows()[0]?.status, 'red')
    assert.equal(changes.at(-1) && (changes.at(-1) as { kind: string }).kind, 'matrix-row')
  })
})
