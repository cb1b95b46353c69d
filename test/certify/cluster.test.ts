// Cluster mode: a certification run started through node B's API against an agent connected to node
// A (two real gateway nodes on a real redis-server, the real obuspa agent) is forwarded to node A,
// which holds the device's session, and passes the same checks as on one node; its progress, the
// run list and a cancel answer through node B.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startGateway, removeDir, waitFor, type TestGateway } from '../helpers/gateway.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { startObuspa, requireObuspa, type Obuspa } from '../helpers/obuspa.ts'
import { DEFAULT_CONTROLLER_ID, verifyEvidence } from '../../broker/certify/index.ts'

const prefix = 'uspgate-certify-cluster:'
const MASTER_KEY = 'certify-cluster-master-key-0123456789'
let redis: TestRedis
let A: TestGateway
let B: TestGateway
const agents: Obuspa[] = []

before(async () => {
  requireObuspa()
  redis = await startRedis()
  // the shared CA (evidence is signed by the gateway root) needs the same master key on every node
  A = await startGateway({ redis: { url: redis.url, prefix }, nodeId: 'node-a', pkiMasterKey: MASTER_KEY })
  B = await startGateway({ redis: { url: redis.url, prefix }, nodeId: 'node-b', pkiMasterKey: MASTER_KEY })
})

after(async () => {
  for (const a of agents) await a.stop()
  for (const t of [A, B]) { await t.close(); await removeDir(t.dataDir) }
  await redis.stop()
})

async function agentOnA (tenant: string, eid: string): Promise<Obuspa> {
  // provisioned through node B: node A learns the credential from the control channel
  assert.equal((await B.api('POST', '/v1/tenants', { id: tenant })).status, 201)
  const cred = await B.api('POST', `/v1/tenants/${tenant}/credentials`, { principal: eid, role: 'agent' })
  assert.equal(cred.status, 201, cred.text)
  await waitFor(() => A.gw.store.getCredential(tenant, eid) !== undefined, 20_000, 'credential on node A')
  const ob = await startObuspa({
    port: A.mqttPort,
    endpointId: eid,
    username: `${tenant}:${eid}`,
    password: cred.body.secret,
    mqttVersion: '5.0',
    agentTopic: `${tenant}/usp/agent/${eid}`,
    controllerId: DEFAULT_CONTROLLER_ID,
    controllerTopic: `${tenant}/usp/controller/${DEFAULT_CONTROLLER_ID}`
  })
  agents.push(ob)
  await waitFor(() => A.gw.sessions.ofIdentity(`${tenant}:${eid}`).length > 0, 30_000, 'obuspa online on node A')
  // node B knows where the device is from the cluster-wide endpoint registry
  await waitFor(async () => (await B.api('GET', `/v1/tenants/${tenant}/endpoints/${encodeURIComponent(eid)}`)).body?.node === 'node-a', 30_000, 'registry: online on node-a')
  return ob
}

test('a run started on node B against an agent on node A runs on node A and passes the same checks as on one node', { timeout: 300_000 }, async () => {
  const tenant = 'labclu'
  const eid = 'os::00D09E-CLUSTER1'
  const ob = await agentOnA(tenant, eid)
  const policyBefore = A.gw.policyVersions.view().active

  const r = await B.api('POST', `/v1/tenants/${tenant}/certifications`, { endpointId: eid, level: 'integration-ready', workflows: ['set-preview'] })
  assert.equal(r.status, 202, r.text)
  assert.equal(r.body.node, 'node-a')
  const id = r.body.id as string
  // one run per device at a time, whichever node is asked
  assert.equal((await B.api('POST', `/v1/tenants/${tenant}/certifications`, { endpointId: eid })).status, 409)
  assert.equal((await A.api('POST', `/v1/tenants/${tenant}/certifications`, { endpointId: eid })).status, 409)
  // progress through node B (asked of node A)
  let view: any
  await waitFor(async () => {
    const g = await B.api('GET', `/v1/tenants/${tenant}/certifications/${id}`)
    assert.equal(g.status, 200, g.text)
    view = g.body
    return view.state !== 'running'
  }, 240_000, 'run ended (polled through node B)')
  assert.equal(view.state, 'passed', JSON.stringify(view.checks, null, 1) + (await ob.log()).slice(-2000))
  assert.equal(view.levelReached, 'integration-ready')
  assert.equal(view.node, 'node-a')
  const byId = Object.fromEntries(view.checks.map((c: { id: string, result: string }) => [c.id, c.result]))
  // the same checks as the one-node tests (healthy.test.ts), incl. the ones that need the session's node
  for (const id2 of ['interop.first_contact', 'interop.online', 'security.tenant_username', 'interop.supported_dm', 'interop.inventory', 'security.topics_in_tenant', 'security.cross_tenant_refused', 'security.bad_credentials_logged', 'interop.reconnect', 'interop.offline_detection', 'security.bare_username_refused', 'security.no_secrets_logged', 'advanced.set_preview']) {
    assert.equal(byId[id2], 'pass', `${id2}: ${JSON.stringify(view.checks.find((c: { id: string }) => c.id === id2))}`)
  }
  // listed by node B, ran on node A: the run and its evidence are node A's
  const listed = (await B.api('GET', `/v1/tenants/${tenant}/certifications`)).body.runs
  assert.deepEqual(listed.map((x: { id: string }) => x.id), [id])
  assert.equal(A.gw.certify.get(tenant, id).state, 'passed')
  assert.ok(view.evidencePath?.startsWith(A.dataDir), JSON.stringify(view.progress.slice(-4)) + view.error)
  assert.deepEqual((await verifyEvidence(view.evidencePath, (await A.api('GET', '/v1/ca')).text)).problems, [])
  const manifest = JSON.parse(await readFile(join(view.evidencePath, 'manifest.json'), 'utf8'))
  assert.equal(manifest.gateway.node, 'node-a')
  // the matrix row is cluster-wide
  await waitFor(async () => (await B.api('GET', '/v1/certifications/matrix')).body.rows.some((x: { endpointId: string, status: string }) => x.endpointId === eid && x.status !== 'red'), 20_000, 'matrix row on node B')
  // nothing left changed: credential active on both nodes, policy assignment unchanged, agent online
  assert.equal(A.gw.store.getCredential(tenant, eid)?.revokedAt, undefined)
  assert.equal(B.gw.store.getCredential(tenant, eid)?.revokedAt, undefined)
  assert.deepEqual(A.gw.policyVersions.view().active, policyBefore)
  assert.deepEqual(B.gw.policyVersions.view().active, policyBefore)
  await waitFor(() => A.gw.sessions.ofIdentity(`${tenant}:${eid}`).length > 0, 30_000, 'agent online on node A after the run')

  // a cancel through node B reaches the run on node A
  const r2 = await B.api('POST', `/v1/tenants/${tenant}/certifications`, { endpointId: eid })
  assert.equal(r2.status, 202, r2.text)
  const c = await B.api('DELETE', `/v1/tenants/${tenant}/certifications/${r2.body.id}`)
  assert.equal(c.status, 200, c.text)
  const ended = (await A.gw.certify.settled(r2.body.id))!
  assert.equal(ended.state, 'cancelled')
  assert.equal(A.gw.store.getCredential(tenant, eid)?.revokedAt, undefined)
})
