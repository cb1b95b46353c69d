// The real OPA CLI: Rego unit tests, the pinned version, and the staleness check of the committed
// bundle (deterministic revision, exit 1 with a clear message when sources change).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { writeFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  DEFAULT_BUNDLE_PATH, OPA_VERSION, POLICY_DIR, checkBundle, computeRevision, findOpa, policySources, runOpa
} from '../../policies/index.ts'
import { copyPolicySources } from './helpers.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

function buildScript (...args: string[]): { status: number | null, out: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(POLICY_DIR, 'build.ts'), ...args], { cwd: ROOT, encoding: 'utf8' })
  return { status: r.status, out: r.stdout + r.stderr }
}

test('the pinned opa is found', () => {
  assert.match(OPA_VERSION, /^v1\.\d+\.\d+$/)
  const r = spawnSync(findOpa(), ['version'], { encoding: 'utf8' })
  assert.match(r.stdout, new RegExp(`^Version: ${OPA_VERSION.slice(1).replaceAll('.', '\\.')}$`, 'm'))
})

test('.ci/install-opa.sh is idempotent and prints where opa is', () => {
  const r = spawnSync('bash', [join(ROOT, '.ci/install-opa.sh')], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stdout.trim().split('\n').at(-1), findOpa())
  assert.match(r.stderr, new RegExp(`opa ${OPA_VERSION} (already )?installed`))
})

test('opa test policies/ passes (Rego unit tests and golden cases)', () => {
  const r = runOpa(['test', '--ignore', 'bundle', POLICY_DIR])
  assert.equal(r.status, 0, r.stdout + r.stderr)
  assert.match(r.stdout, /^PASS: (\d+)\/\1$/m)
})

test('policy:test (opa fmt, check --strict, test) passes', () => {
  const r = buildScript('--test')
  assert.equal(r.status, 0, r.out)
})

test('the revision is deterministic and covers every source', () => {
  const sources = policySources()
  assert.deepEqual(sources.map(s => s.name), ['authz.rego', 'data.json', 'mqtt.rego'])
  assert.equal(computeRevision(sources), computeRevision(policySources()))
  const changed = sources.map(s => s.name === 'data.json' ? { ...s, bytes: Buffer.from('{"tenants": {"x": {}}}') } : s)
  assert.notEqual(computeRevision(changed), computeRevision(sources))
  assert.notEqual(computeRevision(sources, 'other/entry'), computeRevision(sources))
  assert.notEqual(computeRevision(sources, undefined, 'v0.0.1'), computeRevision(sources))
})

test('the committed bundle is up to date (--check exits 0)', () => {
  const result = checkBundle()
  assert.deepEqual(result.problems, [])
  assert.equal(result.committedRevision, result.expectedRevision)
  const r = buildScript('--check')
  assert.equal(r.status, 0, r.out)
  assert.match(r.out, new RegExp(`is up to date: revision ${result.expectedRevision}`))
})

test('--check exits 1 with a clear message when the sources changed', () => {
  const src = copyPolicySources()
  const authz = join(src, 'authz.rego')
  writeFileSync(authz, readFileSync(authz, 'utf8').replace('"status_is_gateway_only"', '"presence_is_gateway_only"'))
  const result = checkBundle({ sourceDir: src })
  assert.equal(result.ok, false)
  assert.ok(result.problems.some(p => /committed revision is r-[0-9a-f]{12}, the sources give r-[0-9a-f]{12}/.test(p)), result.problems.join('\n'))
  assert.ok(result.problems.includes('policy.wasm differs from a fresh build'), result.problems.join('\n'))
  const r = buildScript('--check', '--src', src, '--bundle', DEFAULT_BUNDLE_PATH)
  assert.equal(r.status, 1, r.out)
  assert.match(r.out, /bundle\.tar\.gz is stale:\n {2}- committed revision is r-/)
  assert.match(r.out, /npm run policy:build/)
})

test('--check exits 1 when the bundle contents were tampered with but the revision kept', () => {
  const src = copyPolicySources()
  writeFileSync(join(src, 'data.json'), '{"tenants": {"acme": {"disabled": true}}}')
  // a bundle built from other sources but stamped with the committed revision
  const expected = checkBundle().expectedRevision
  const out = join(src, 'forged.tar.gz')
  const r0 = runOpa(['build', '-t', 'wasm', '-e', 'uspgate/authz/decision', '--revision', expected, '-o', out, 'authz.rego', 'mqtt.rego', 'data.json'], { cwd: src })
  assert.equal(r0.status, 0, r0.stderr)
  const result = checkBundle({ bundleFile: out })
  assert.equal(result.committedRevision, expected)
  assert.deepEqual(result.problems, ['data.json differs from a fresh build'])
})
