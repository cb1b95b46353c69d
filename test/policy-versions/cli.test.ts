// `uspgate policy ...` against a running gateway: upload a real opa-built bundle, list, canary,
// shadow diff, promote and rollback, as a user runs them.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { writeFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startGateway, provision, removeDir, type TestGateway } from '../helpers/gateway.ts'
import { buildTempBundle, tempDir } from '../policies/helpers.ts'
import { POLICY_DIR } from '../../policies/index.ts'

const run = promisify(execFile)
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'uspgate.js')
let t: TestGateway

before(async () => {
  t = await startGateway()
  await provision(t, 'acme', 'os::00256D-0001', 'agent')
})
after(async () => { await t.close(); await removeDir(t.dataDir) })

async function cli (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const r = await run(process.execPath, [BIN, 'policy', ...args], { env: { ...process.env, USPGATE_ADMIN_URL: t.adminUrl, USPGATE_ADMIN_TOKEN: t.token } })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

test('policy upload, list, canary, shadow, diff, promote and rollback from the CLI', async () => {
  const authz = readFileSync(join(POLICY_DIR, 'authz.rego'), 'utf8').replace(
    '\tat_or_below(input.topic, concat("/", [tenant, "bulkdata", principal]))\n',
    '\tat_or_below(input.topic, concat("/", [tenant, "bulkdata", principal]))\n\tnot contains(input.topic, "/cli-blocked")\n')
  const { bytes, revision } = buildTempBundle({ files: { 'authz.rego': authz } })
  const file = join(tempDir(), 'b.tar.gz')
  writeFileSync(file, bytes)
  const stable = t.gw.policy.revision

  const up = await cli('upload', file, '--notes', 'from the cli')
  assert.equal(up.code, 0, up.stderr)
  assert.match(up.stdout, new RegExp(`uploaded ${revision}`))
  const again = await cli('upload', file)
  assert.equal(again.code, 2)
  assert.match(again.stderr, /409 conflict/)
  const junk = join(tempDir(), 'junk.tar.gz')
  writeFileSync(junk, 'not a bundle')
  const bad = await cli('upload', junk)
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /400 invalid policy bundle: bad_archive/)

  const canary = await cli('canary', revision, '--tenants', 'acme')
  assert.equal(canary.code, 0, canary.stderr)
  assert.match(canary.stdout, new RegExp(`canary: +${revision} for acme`))
  const list = await cli('list')
  assert.match(list.stdout, new RegExp(`${revision} +canary .*from the cli`))
  assert.match(list.stdout, new RegExp(`${stable} +stable`))
  assert.equal(JSON.parse((await cli('list', '--json')).stdout).active.canary.revision, revision)

  const noDiff = await cli('diff', revision)
  assert.equal(noDiff.code, 2)
  assert.match(noDiff.stderr, /409 not the shadow/)
  assert.equal((await cli('rollback', '--reason', 'cli test')).code, 0)
  assert.equal((await cli('shadow', revision)).code, 0)
  const diff = await cli('diff', revision)
  assert.equal(diff.code, 0, diff.stderr)
  assert.match(diff.stdout, new RegExp(`shadow ${revision} vs stable ${stable}: 0 disagreement`))

  const promote = await cli('promote', revision)
  assert.match(promote.stdout, new RegExp(`stable: +${revision} \\(previous: ${stable}\\)`))
  const rb = await cli('rollback')
  assert.match(rb.stdout, new RegExp(`stable: +${stable}\n`))
})
