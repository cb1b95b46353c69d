// The USP audit trail's in-memory copy per tenant (embedded mode), which GET /v1/tenants/<t>/usp-audit
// lists: the newest 1,000 records, newest first, at most USP_AUDIT_BYTES_PER_TENANT of JSON lines per
// tenant, every record read back exactly as written (multi-byte UTF-8 included).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { UspAuditTrail, uspRecordObserver, USP_AUDIT_PER_TENANT, USP_AUDIT_BYTES_PER_TENANT, type UspAuditEntry, type Endpoints, type UspInspection } from '../../broker/usp/index.ts'

function entry (tenant: string, i: number, topic = `${tenant}/usp/controller/self::c`): UspAuditEntry {
  return { time: new Date(1_700_000_000_000 + i).toISOString(), tenant, fromId: `os::0A-${i}`, toId: 'self::c', topic, recordType: 'no_session_context', result: 'delivered', msgId: `m${i}` }
}

test('the newest 1,000 records per tenant, newest first, tenants apart; the file keeps every record', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'uspgate-audit-'))
  try {
    const trail = new UspAuditTrail(dir)
    await trail.open()
    for (let i = 0; i < 2500; i++) trail.record(entry('acme', i))
    for (let i = 0; i < 3; i++) trail.record(entry('globex', i))
    const acme = await trail.list('acme', 5000)
    assert.equal(acme.length, USP_AUDIT_PER_TENANT)
    assert.deepEqual(acme[0], entry('acme', 2499))
    assert.deepEqual(acme[USP_AUDIT_PER_TENANT - 1], entry('acme', 2500 - USP_AUDIT_PER_TENANT))
    assert.deepEqual((await trail.list('acme', 2)).map(e => e.msgId), ['m2499', 'm2498'])
    assert.deepEqual((await trail.list('globex', 100)).map(e => e.msgId), ['m2', 'm1', 'm0'])
    assert.deepEqual(await trail.list('initech', 100), [])
    await trail.close()
    const lines = readFileSync(trail.path, 'utf8').trim().split('\n')
    assert.equal(lines.length, 2503)
    assert.deepEqual(JSON.parse(lines[1234]!), entry('acme', 1234))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('long records: the newest that fit in the tenant\'s bytes, each intact (multi-byte UTF-8 topics, lines wrapping the buffer)', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'uspgate-audit-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const trail = new UspAuditTrail(dir) // not opened: the in-memory copy only
  // ~8 KiB per line: far fewer than 1,000 fit; the ring wraps many times over 500 records
  const topic = (i: number): string => `acme/usp/controller/${'ü€'.repeat(1300 + (i % 7) * 50)}`
  for (let i = 0; i < 500; i++) trail.record(entry('acme', i, topic(i)))
  const kept = await trail.list('acme', 1000)
  const bytes = [0, 1, 2, 3, 4, 5, 6].map(i => Buffer.byteLength(JSON.stringify(entry('acme', 499, topic(i)))))
  // lines never wrap, so up to one line's bytes at the end may stay unused
  assert.ok(kept.length >= Math.floor((USP_AUDIT_BYTES_PER_TENANT - Math.max(...bytes)) / Math.max(...bytes)), `${kept.length} records kept`)
  assert.ok(kept.length <= Math.ceil(USP_AUDIT_BYTES_PER_TENANT / Math.min(...bytes)), `${kept.length} records kept`)
  kept.forEach((e, j) => assert.deepEqual(e, entry('acme', 499 - j, topic(499 - j))))
  // short records again: the long ones age out, the count goes back up to 1,000
  for (let i = 500; i < 2000; i++) trail.record(entry('acme', i))
  const after = await trail.list('acme', 1000)
  assert.equal(after.length, 1000)
  assert.deepEqual(after[999], entry('acme', 1000))
})

test('the file and the API keep attacker-supplied text exactly: each line is JSON.stringify\'s text of the entry, in order', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'uspgate-audit-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const trail = new UspAuditTrail(dir)
  await trail.open()
  const odd = ['"quoted"', 'back\\slash', 'tab\tnew\nline\u0000nul\u001f', 'ü€ multi-byte', '😀 pair', 'lone \ud800 high', 'lone \udfff low', '</script>', 'u2028\u2028']
  const entries: UspAuditEntry[] = []
  odd.forEach((s, i) => {
    entries.push({ time: new Date(1_700_000_000_000 + i).toISOString(), tenant: 'acme', fromId: `os::${s}`, toId: s, topic: `acme/usp/agent/${s}`, recordType: 'no_session_context', result: 'refused', code: 'usp.from_id_spoofed', msgId: s, msgType: 'GET', kind: 'request' })
    entries.push({ ...entry('acme', i), fromId: s }) // no code, msgType, kind
  })
  // a line far longer than the file's batch (a topic of 30,000 characters, ~90 kB) between short ones
  entries.push(entry('acme', 100, `acme/usp/controller/${'€'.repeat(30_000)}`))
  entries.push(entry('acme', 101))
  for (const e of entries) trail.record(e)
  const listed = await trail.list('acme', 1000)
  await trail.close()
  const lines = readFileSync(trail.path, 'utf8').split('\n')
  assert.equal(lines.pop(), '')
  assert.deepEqual(lines, entries.map(e => JSON.stringify(e)))
  assert.deepEqual(listed, [...entries].reverse().map(e => JSON.parse(JSON.stringify(e))))
})

test('every record is stamped with the time it was observed, to the millisecond', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'uspgate-audit-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const trail = new UspAuditTrail(dir)
  const observe = uspRecordObserver({ records: () => ({ inc () {} }), audit: trail, endpoints: { sawConnectRecord () {} } as unknown as Endpoints })
  const inspection: UspInspection = { verdict: 'pass', envelope: { version: '1.3', toId: 'self::c', fromId: 'os::a', payloadSecurity: 'PLAINTEXT', recordType: 'no_session_context' } }
  const base = Date.parse('2026-12-31T23:59:58.000Z')
  const offsets = [0, 0, 7, 7, 42, 99, 100, 999, 1000, 1001, 1999, 2000, 2005, 3_600_123]
  t.mock.timers.enable({ apis: ['Date'], now: base })
  for (const ms of offsets) {
    t.mock.timers.setTime(base + ms)
    observe({ tenant: 'acme', principal: 'os::a' }, 'acme/usp/controller/self::c', inspection)
  }
  t.mock.timers.reset()
  const times = (await trail.list('acme', 100)).map(e => e.time).reverse()
  assert.deepEqual(times, offsets.map(ms => new Date(base + ms).toISOString()))
})
