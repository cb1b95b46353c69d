// The embedded store's files: a change is one fsync'd line appended to state.log (state.json is
// not rewritten), the log is folded into state.json at a threshold and at start, a restart loses
// nothing, a torn last line is ignored, and a bulk batch is all or nothing.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileStateStore, StoreError } from '../../broker/store/index.ts'

const now = (): string => new Date().toISOString()
const cred = (principal: string, tenant = 'acme'): { tenant: string, principal: string, role: 'agent', secretHash: string, createdAt: string } =>
  ({ tenant, principal, role: 'agent', secretHash: `sha256:${principal}`, createdAt: now() })

async function withDir (fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'uspgate-changelog-'))
  try { await fn(dir) } finally { await rm(dir, { recursive: true, force: true }) }
}

async function open (dir: string, compactAfter?: number): Promise<FileStateStore> {
  const s = new FileStateStore(dir, compactAfter)
  await s.load()
  return s
}

const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(l => l !== '')

test('a change appends one line to state.log and leaves state.json alone; a restart folds the log into state.json and loses nothing', async () => {
  await withDir(async dir => {
    const s = await open(dir)
    await s.addTenant({ id: 'acme', name: 'ACME', createdAt: now() })
    const snapshotBefore = await readFile(join(dir, 'state.json'), 'utf8').catch(() => null)
    await s.putCredential(cred('a1'))
    await Promise.all(Array.from({ length: 50 }, (_, i) => s.putCredential(cred(`p${i}`))))
    await s.revokeCredential('acme', 'p7', now())
    await s.updateTenant('acme', { name: 'ACME Corp' })
    await s.putAdminToken({ id: 'tok', name: 'ops', role: 'noc', tokenHash: 'sha256:tok', createdAt: now() })
    assert.equal(await readFile(join(dir, 'state.json'), 'utf8').catch(() => null), snapshotBefore, 'state.json is not rewritten per change')
    assert.equal((await lines(join(dir, 'state.log'))).length, 1 + 1 + 50 + 1 + 1 + 1)
    assert.equal((await stat(join(dir, 'state.log'))).mode & 0o077, 0, 'state.log is private')

    const r = await open(dir)
    assert.equal(r.getTenant('acme')?.name, 'ACME Corp')
    assert.equal(r.listCredentials('acme').length, 51)
    assert.ok(r.getCredential('acme', 'p7')?.revokedAt !== undefined)
    assert.equal(r.getCredential('acme', 'p8')?.revokedAt, undefined)
    assert.equal(r.findAdminTokenByHash('sha256:tok')?.role, 'noc')
    // folded at start: an empty log and a snapshot holding everything
    assert.deepEqual(await lines(join(dir, 'state.log')), [])
    const doc = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as { credentials: unknown[] }
    assert.equal(doc.credentials.length, 51)
    assert.equal((await stat(join(dir, 'state.json'))).mode & 0o077, 0)
  })
})

test('a torn last line (crash in the middle of an append) is ignored and cut off; later changes survive the next restart', async () => {
  await withDir(async dir => {
    const s = await open(dir)
    await s.addTenant({ id: 'acme', name: 'ACME', createdAt: now() })
    await s.putCredential(cred('kept'))
    await appendFile(join(dir, 'state.log'), '{"t":"credential","r":{"tenant":"acme","princ')
    const r = await open(dir)
    assert.ok(r.getCredential('acme', 'kept'))
    assert.equal(r.listCredentials('acme').length, 1)
    await r.putCredential(cred('after'))
    // torn bytes as NULs (a file extended by a crash before its data was written)
    await appendFile(join(dir, 'state.log'), Buffer.alloc(64))
    const again = await open(dir)
    assert.deepEqual(again.listCredentials('acme').map(c => c.principal), ['after', 'kept'])
  })
})

test('an unreadable line followed by more changes is corruption: a clear error, nothing loaded, files untouched', async () => {
  await withDir(async dir => {
    const s = await open(dir, 10_000)
    await s.addTenant({ id: 'acme', name: 'ACME', createdAt: now() })
    await appendFile(join(dir, 'state.log'), 'not json\n')
    await s.putCredential(cred('x'))
    const before = await readFile(join(dir, 'state.log'), 'utf8')
    const r = new FileStateStore(dir)
    await assert.rejects(r.load(), (err: unknown) => err instanceof StoreError && err.code === 'corrupt' && /state\.log/.test(err.message))
    assert.equal(await readFile(join(dir, 'state.log'), 'utf8'), before)
  })
})

test('the log is folded into state.json once it holds more changes than the threshold', async () => {
  await withDir(async dir => {
    const s = await open(dir, 20)
    await s.addTenant({ id: 'acme', name: 'ACME', createdAt: now() })
    for (let i = 0; i < 45; i++) await s.putCredential(cred(`c${i}`))
    await s.flush()
    const logged = (await lines(join(dir, 'state.log'))).length
    assert.ok(logged < 30, `log compacted (holds ${logged} of 46 changes)`)
    const doc = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as { credentials: unknown[] }
    assert.ok(doc.credentials.length >= 45 - logged)
    const r = await open(dir)
    assert.equal(r.listCredentials('acme').length, 45)
  })
})

test('putCredentials: one append for the batch, all or nothing', async () => {
  await withDir(async dir => {
    const s = await open(dir)
    await s.addTenant({ id: 'acme', name: 'ACME', createdAt: now() })
    await s.putCredential(cred('taken'))
    const before = (await lines(join(dir, 'state.log'))).length
    await assert.rejects(s.putCredentials([cred('n1'), cred('taken')]), (err: unknown) => err instanceof StoreError && err.code === 'conflict')
    await assert.rejects(s.putCredentials([cred('n1'), cred('n1')]), (err: unknown) => err instanceof StoreError && err.code === 'conflict')
    assert.equal(s.getCredential('acme', 'n1'), undefined, 'a refused batch changes nothing')
    assert.equal((await lines(join(dir, 'state.log'))).length, before)
    await s.putCredentials(Array.from({ length: 500 }, (_, i) => cred(`bulk${i}`)))
    assert.equal((await lines(join(dir, 'state.log'))).length, before + 500)
    const r = await open(dir)
    assert.equal(r.listCredentials('acme').length, 501)
  })
})

test('an existing state.json (written before the change log) loads as before', async () => {
  await withDir(async dir => {
    await writeFile(join(dir, 'state.json'), JSON.stringify({ version: 1, tenants: [{ id: 'old', name: 'Old', createdAt: now() }], credentials: [cred('legacy', 'old')], adminTokens: [] }), { mode: 0o600 })
    const s = await open(dir)
    assert.ok(s.getCredential('old', 'legacy'))
    await s.putCredential(cred('new', 'old'))
    const r = await open(dir)
    assert.deepEqual(r.listCredentials('old').map(c => c.principal), ['legacy', 'new'])
  })
})
