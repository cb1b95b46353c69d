// Cluster mode shares the PKI through Redis: two real gateway nodes (MQTTS on) on one real
// redis-server. A certificate issued through node A logs in over mTLS on node B; revoking it
// through A cuts its live session on B within 1 s and B refuses it at the next handshake; a
// vendor CA imported on A is trusted on B; a node without USPGATE_PKI_MASTER_KEY refuses to start,
// a node with another key refuses the shared CA; two nodes starting at once create one root CA.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { MqttClient } from 'mqtt'
import { ConfigError } from '../../broker/index.ts'
import type { ClusterPki } from '../../broker/cluster/index.ts'
import { startGateway, waitFor, waitForEvent, closeClient, removeDir, type TestGateway } from '../helpers/gateway.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { issueCert, ensureTenant, rootCaPem, connectTls, refusedTls, closedAt } from '../helpers/mtls.ts'
import { tempDir, removeTempDirs, opensslCa, opensslIssue } from '../certs/helpers.ts'

const MASTER_KEY = 'cluster-pki-master-key-0123456789'
const prefix = 'uspgate-pki-test:'
let redis: TestRedis
let A: TestGateway
let B: TestGateway
const clients: MqttClient[] = []
const extraDirs: string[] = []

/** A cluster node with MQTTS; on a failed start the gateway is closed and the error rethrown. */
async function node (nodeId: string, masterKey: string | null = MASTER_KEY): Promise<TestGateway> {
  const dataDir = await mkdtemp(join(tmpdir(), 'uspgate-pki-'))
  extraDirs.push(dataDir)
  return await startGateway({
    dataDir,
    nodeId,
    limits: { publishRatePerSecond: 0 },
    mtls: { clientCert: 'required' },
    redis: { url: redis.url, prefix },
    ...(masterKey !== null ? { pkiMasterKey: masterKey } : {})
  })
}

/** Waits until both nodes hold the newest shared PKI (a change reaches the other node through the control channel). */
async function synced (): Promise<void> {
  const version = async (): Promise<number> => Number(await A.gw.cluster!.cmd.get(`${prefix}pki:version`))
  const local = (t: TestGateway): number => (t.gw.certificates.pkiSync as ClusterPki).version
  await waitFor(async () => { const v = await version(); return local(A) === v && local(B) === v }, 1000, 'both nodes on the newest shared PKI')
}

async function tls (t: TestGateway, identity: { certPem: string, keyPem: string } | { cert: string, key: string }, clientId: string): Promise<MqttClient> {
  const c = await connectTls(t, { root: await rootCaPem(t), identity, v: 5, clientId })
  clients.push(c)
  return c
}

before(async () => {
  redis = await startRedis()
  // started together on an empty Redis: the lock lets exactly one of them create the root CA
  ;[A, B] = await Promise.all([node('pki-a'), node('pki-b')])
  await ensureTenant(A, 'acme')
  await ensureTenant(A, 'vendor')
})

after(async () => {
  for (const c of clients) await closeClient(c)
  for (const t of [A, B]) await t?.close()
  for (const d of extraDirs) await removeDir(d)
  removeTempDirs()
  await redis.stop()
})

test('two nodes started at once on an empty Redis share one root CA; the master key is not in Redis', async () => {
  const rootA = await rootCaPem(A)
  assert.equal(await rootCaPem(B), rootA)
  assert.equal(await readFile(join(B.dataDir, 'pki', 'root-ca.crt.pem'), 'utf8'), rootA)
  const r = new Redis(redis.url)
  try {
    const files = await r.hgetall(`${prefix}pki`)
    assert.ok(files['root-ca.crt.pem'] !== undefined && files['root-ca.key.pem'] !== undefined && files['state.json'] !== undefined)
    assert.match(files['root-ca.key.pem']!, /BEGIN ENCRYPTED PRIVATE KEY/)
    assert.equal(files['server.key.pem'], undefined) // per node (own SANs)
    assert.ok(Number(await r.get(`${prefix}pki:version`)) >= 1)
    assert.equal(await r.get(`${prefix}pki:lock`), null)
    for (const key of await r.keys('*')) {
      const type = await r.type(key)
      const text = type === 'hash' ? JSON.stringify(await r.hgetall(key)) : type === 'string' ? await r.get(key) ?? '' : ''
      assert.equal(text.includes(MASTER_KEY), false, `master key found in ${key}`)
    }
  } finally { r.disconnect() }
})

test('a certificate issued through node A connects over mTLS to node B; revoking it through A cuts it on B within 1 s and B refuses it', async (ctx) => {
  const victim = await issueCert(A, 'acme', 'os::00256D-0C01')
  const bystander = await issueCert(A, 'acme', 'os::00256D-0C02')
  await synced()
  const c = await tls(B, victim, 'victim-b')
  const other = await tls(B, bystander, 'bystander-b')
  const s = B.gw.sessions.list('acme').find(x => x.clientId === 'victim-b')
  assert.deepEqual([s?.principal, s?.auth], ['os::00256D-0C01', 'certificate'])
  const closed = closedAt(c)
  const reason = new Promise<number | undefined>(resolve => c.once('disconnect', p => resolve(p.reasonCode)))
  const start = Date.now()
  const r = await A.api('DELETE', `/v1/tenants/acme/certificates/${victim.serial}?reason=keyCompromise`)
  assert.equal(r.status, 200, JSON.stringify(r.body))
  const elapsed = (await closed) - start
  ctx.diagnostic(`mTLS session on node B closed ${elapsed} ms after the revocation request on node A`)
  assert.ok(elapsed < 1000, `disconnected after ${elapsed} ms`)
  assert.equal(await reason, 0x87)
  assert.equal(other.connected, true)
  // refused by B at the next handshake, as B's own event
  assert.notEqual(typeof await refusedTls(B, { root: await rootCaPem(B), identity: victim, v: 5 }), 'number')
  const ev = await waitForEvent(B, { code: 'auth.cert_revoked', node: 'pki-b', tenant: 'acme', principal: victim.principal })
  assert.match(ev.reason ?? '', new RegExp(victim.serial))
  // B's API shows the revocation too
  const listed = (await B.api('GET', '/v1/tenants/acme/certificates')).body.certificates as Array<{ serial: string, revoked: boolean }>
  assert.equal(listed.find(x => x.serial === victim.serial)?.revoked, true)
})

test('a certificate issued through node B is known to node A (both directions), and a revocation on B reaches A', async () => {
  const cert = await issueCert(B, 'acme', 'os::00256D-0C03')
  await synced()
  const c = await tls(A, cert, 'from-b-on-a')
  const closed = closedAt(c)
  assert.equal((await B.api('DELETE', `/v1/tenants/acme/certificates/${cert.serial}`)).status, 200)
  await closed
  await waitForEvent(A, { code: 'cert.revoked', node: 'pki-b', tenant: 'acme' })
})

test('a vendor CA imported on node A is trusted on node B', async () => {
  const dir = tempDir()
  const vendorCa = opensslCa(dir, 'vendor-ca', '/O=Router Vendor/CN=Cluster Vendor CA')
  const device = opensslIssue(dir, 'vendor-dev', {
    caCertFile: vendorCa.certFile, caKeyFile: vendorCa.keyFile, subject: '/O=Router Vendor/CN=oui:00D09E:C1', sanUri: 'urn:bbf:usp:id:oui:00D09E:C1'
  })
  const identity = { cert: await readFile(device.certFile, 'utf8'), key: await readFile(device.keyFile, 'utf8') }
  assert.notEqual(typeof await refusedTls(B, { root: await rootCaPem(B), identity, v: 5 }), 'number')
  const imported = await A.api('POST', '/v1/tenants/vendor/ca/import', { pem: await readFile(vendorCa.certFile, 'utf8') })
  assert.equal(imported.status, 201, JSON.stringify(imported.body))
  // the import reaches B through the control channel (no polling on B's side)
  const fingerprint = imported.body.fingerprint as string
  await waitFor(async () => (await B.gw.certificates.listImportedCas('vendor')).some(c => c.fingerprint === fingerprint), 1000, 'the import on node B')
  await tls(B, identity, 'vendor-dev-b')
  const s = B.gw.sessions.list('vendor').find(x => x.clientId === 'vendor-dev-b')
  assert.deepEqual([s?.tenant, s?.principal, s?.auth], ['vendor', 'oui:00D09E:C1', 'certificate'])
})

test('cluster mode with MQTTS refuses to start without USPGATE_PKI_MASTER_KEY, and with a different key than the shared CA', async () => {
  await assert.rejects(node('pki-c', null), (err: unknown) => {
    assert.ok(err instanceof ConfigError)
    assert.equal(err.setting, 'USPGATE_PKI_MASTER_KEY')
    assert.equal(err.message.includes('\n'), false)
    assert.match(err.message, /^invalid setting USPGATE_PKI_MASTER_KEY: must be set in cluster mode/)
    return true
  })
  await assert.rejects(node('pki-d', 'another-master-key-0123456789'), (err: unknown) => {
    assert.ok(err instanceof ConfigError)
    assert.equal(err.setting, 'USPGATE_PKI_MASTER_KEY')
    assert.match(err.message, /cannot decrypt the root CA private key.*same USPGATE_PKI_MASTER_KEY/)
    return true
  })
  // the shared PKI is untouched by the refused node
  assert.equal(await rootCaPem(A), await rootCaPem(B))
})
