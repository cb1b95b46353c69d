// Two NOC engineers change policies on two nodes at the same moment. Every change answered with
// success must be the one the cluster keeps (an upload stays listed, a rollback stays rolled back);
// a change that lost the race is answered 409 and changed nothing; both nodes end on the same state.
// Before the policy index was written with a compare-and-set, the last writer silently won.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startGateway, removeDir, waitFor, type TestGateway } from '../helpers/gateway.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { buildTempBundle } from '../policies/helpers.ts'
import { POLICY_DIR } from '../../policies/index.ts'

const AUTHZ = readFileSync(join(POLICY_DIR, 'authz.rego'), 'utf8')
let redis: TestRedis
let A: TestGateway
let B: TestGateway

before(async () => {
  redis = await startRedis()
  const prefix = 'uspgate-policy-race:'
  A = await startGateway({ redis: { url: redis.url, prefix }, nodeId: 'node-a' })
  B = await startGateway({ redis: { url: redis.url, prefix }, nodeId: 'node-b' })
})
after(async () => {
  for (const t of [A, B]) { await t?.close(); if (t) await removeDir(t.dataDir) }
  await redis?.stop()
})

/** A valid bundle with its own revision (the revision is a hash of the sources). */
function variant (n: number): { bytes: Buffer, revision: string } {
  return buildTempBundle({ files: { 'authz.rego': `${AUTHZ}\n# variant ${n}\n` } })
}

async function upload (t: TestGateway, bytes: Buffer): Promise<number> {
  const r = await fetch(`${t.adminUrl}/v1/policies`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: bytes as unknown as BodyInit })
  await r.text()
  return r.status
}

interface View { versions: Array<{ revision: string }>, active: { stable: string, previous: string[], canary?: { revision: string } } }

async function views (): Promise<[View, View]> {
  // both nodes converge (control message, or resync) on one state
  const both = async (): Promise<[View, View]> => {
    const [a, b] = await Promise.all([A.api('GET', '/v1/policies'), B.api('GET', '/v1/policies')])
    return [a.body as View, b.body as View]
  }
  return await waitFor(async () => { const v = await both(); return JSON.stringify(v[0]) === JSON.stringify(v[1]) && v }, 3000, 'both nodes on the same policy state')
}

test('concurrent uploads on two nodes: every upload is kept, both nodes agree', async () => {
  // uploads only add a version, so a node that loses the write to another retries on top of it
  const bundles = [1, 2, 3, 4, 5, 6].map(variant)
  const statuses = await Promise.all(bundles.map((b, i) => upload(i % 2 === 0 ? A : B, b.bytes)))
  assert.deepEqual(statuses, [201, 201, 201, 201, 201, 201])
  const [view] = await views()
  for (const b of bundles) assert.ok(view.versions.some(v => v.revision === b.revision), `${b.revision} answered 201 but is not listed`)
  assert.equal(new Set(view.versions.map(v => v.revision)).size, view.versions.length, 'no revision listed twice')
})

test('a rollback on node A racing an upload on node B is never silently undone', async () => {
  const x = variant(10)
  assert.equal(await upload(A, x.bytes), 201)
  const before = (await A.api('GET', '/v1/policies')).body as View
  const promoted = await A.api('POST', `/v1/policies/${x.revision}/promote`, {})
  assert.equal(promoted.status, 200, JSON.stringify(promoted.body))
  await views()
  const y = variant(11)
  const [rb, up] = await Promise.all([
    A.api('POST', '/v1/policies/rollback', { reason: 'race test' }),
    upload(B, y.bytes)
  ])
  assert.ok([200, 409].includes(rb.status), `rollback ${rb.status}`)
  assert.ok([201, 409].includes(up), `upload ${up}`)
  const [view] = await views()
  if (rb.status === 200) assert.equal(view.active.stable, before.active.stable, 'the acknowledged rollback holds')
  else assert.equal(view.active.stable, x.revision, 'a refused rollback changed nothing')
  assert.equal(view.versions.some(v => v.revision === y.revision), up === 201)
  // and the engines of both nodes decide with the stable revision the index names
  await waitFor(() => A.gw.policy.revision === view.active.stable && B.gw.policy.revision === view.active.stable, 2000, 'both engines on the stored stable')
})
