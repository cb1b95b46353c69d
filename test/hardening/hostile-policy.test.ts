// Hole 3 of issue 14: a NOC token uploads a 32-byte wasm module whose start function loops forever.
// The bundle is validated in a worker with a deadline and a heap limit: the upload is refused (400,
// policy.rejected), nothing changes (versions, stable revision), and while it is being validated
// /healthz answers and MQTT traffic of every tenant flows.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startGateway, provision, connect, closeClient, removeDir, waitForEvent, type TestGateway } from '../helpers/gateway.ts'

let t: TestGateway
after(async () => { await t.close(); await removeDir(t.dataDir) })

/** (module (func $f (loop (br 0))) (start $f)) */
const LOOPING_START = Buffer.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
  0x03, 0x02, 0x01, 0x00, // function 0 of type 0
  0x08, 0x01, 0x00, // start: function 0
  0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b // code: loop br 0 end end
])

function bundleOf (wasm: Buffer, revision: string): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'uspgate-hostile-'))
  const content = join(dir, 'c')
  mkdirSync(content)
  writeFileSync(join(content, '.manifest'), JSON.stringify({ revision, roots: [''], wasm: [{ entrypoint: 'uspgate/authz/decision', module: '/policy.wasm' }] }))
  writeFileSync(join(content, 'data.json'), '{}')
  writeFileSync(join(content, 'policy.wasm'), wasm)
  const r = spawnSync('tar', ['-czf', join(dir, 'b.tar.gz'), '-C', content, '.'])
  assert.equal(r.status, 0, r.stderr.toString())
  return readFileSync(join(dir, 'b.tar.gz'))
}

test('a bundle whose wasm start function never returns is refused; /healthz and MQTT stay responsive meanwhile; nothing changes', async () => {
  t = await startGateway()
  const before = await t.api('GET', '/v1/policies')
  const dev = await provision(t, 'hp', 'self::hp-ctrl', 'controller')
  const client = await connect(t, { username: dev.username, password: dev.secret })
  await client.subscribeAsync('hp/bulkdata/#', { qos: 1 })
  const ag = await provision(t, 'hp', 'os::00256D-HP0001', 'agent')
  const agent = await connect(t, { username: ag.username, password: ag.secret })

  const upload = t.api('POST', '/v1/policies', new Uint8Array(bundleOf(LOOPING_START, 'hostile-loop-1')))
  let settled = false
  void upload.finally(() => { settled = true })
  // while the bundle is being validated: probes answer and messages flow
  let probes = 0
  let slowest = 0
  while (!settled) {
    const started = Date.now()
    const h = await fetch(`${t.adminUrl}/healthz`, { signal: AbortSignal.timeout(3000) })
    assert.equal(h.status, 200)
    const got = new Promise<void>(resolve => client.once('message', () => resolve()))
    await agent.publishAsync('hp/bulkdata/os::00256D-HP0001/ping', 'p', { qos: 1 })
    await got
    slowest = Math.max(slowest, Date.now() - started)
    probes++
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  assert.ok(probes >= 3, `only ${probes} probes during the validation`)
  assert.ok(slowest < 3000, `a probe took ${slowest} ms`)

  const r = await upload
  assert.equal(r.status, 400, JSON.stringify(r.body))
  assert.match(r.body.detail, /bad_wasm: validation did not finish/)
  await waitForEvent(t, { code: 'policy.rejected', action: 'policy.upload' })
  const afterwards = await t.api('GET', '/v1/policies')
  assert.deepEqual(afterwards.body, before.body, 'a refused bundle changed the stored versions or the assignment')
  await closeClient(client)
  await closeClient(agent)
})
