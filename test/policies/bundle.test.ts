// Loading and refusing bundles. Broken bundles are built with the real opa in a temp dir; each is
// refused with PolicyBundleError and a clear message while the active policy keeps deciding.
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadPolicy } from '@open-policy-agent/opa-wasm'
import {
  DEFAULT_BUNDLE_PATH, ENTRYPOINT, MAX_WASM_MEMORY_PAGES, PolicyBundleError, PolicyEngine, loadBundle, loadDefaultBundle, loadGolden, readTarGz, runOpa,
  type GoldenCase, type PolicyBundleErrorCode
} from '../../policies/index.ts'
import { AGENT_ID, buildTempBundle, controller, req, tempDir } from './helpers.ts'

const engine = new PolicyEngine()
let golden: GoldenCase[]
const probe = req('publish', controller, `acme/usp/agent/${AGENT_ID}`)

before(async () => {
  golden = await loadGolden()
  engine.activate(await loadDefaultBundle())
})

test('the committed bundle loads and passes the golden decisions', async () => {
  assert.ok(golden.length >= 30)
  const policy = await loadBundle(readFileSync(DEFAULT_BUNDLE_PATH), { golden })
  assert.match(policy.revision, /^r-[0-9a-f]{12}$/)
  assert.equal(policy.manifest.revision, policy.revision)
  assert.deepEqual(policy.manifest.wasm, [{ entrypoint: ENTRYPOINT, module: '/policy.wasm' }])
  assert.deepEqual(policy.data, JSON.parse(readFileSync(new URL('../../policies/data.json', import.meta.url), 'utf8')))
  for (const c of golden) {
    const d = engine.decide(c.input)
    assert.equal(d.allow, c.expect.allow, c.name)
    if (c.expect.reason !== undefined) assert.equal(d.reason, c.expect.reason, c.name)
  }
})

/** Loading must fail with this code and message, and the engine must keep its revision. */
async function assertRefused (bytes: Uint8Array, code: PolicyBundleErrorCode, message: RegExp, withGolden = false): Promise<void> {
  const before = engine.revision
  await assert.rejects(loadBundle(bytes, withGolden ? { golden } : {}), (err: unknown) => {
    assert.ok(err instanceof PolicyBundleError, `expected PolicyBundleError, got ${String(err)}`)
    assert.equal(err.code, code)
    assert.match(err.message, message)
    return true
  })
  assert.equal(engine.revision, before)
  const d = engine.decide(probe)
  assert.deepEqual([d.allow, d.reason, d.revision], [true, 'controller_to_agent_inbox', before])
}

test('random bytes are refused as bad_archive', async () => {
  await assertRefused(randomBytes(4096), 'bad_archive', /not a readable tar\.gz archive/)
})

/** Unpacks an opa-built bundle, lets `change` edit the files, and packs it again with tar. */
function repack (bytes: Buffer, change: (dir: string) => void): Buffer {
  const dir = tempDir()
  writeFileSync(join(dir, 'in.tar.gz'), bytes)
  const content = join(dir, 'content')
  spawnSync('mkdir', [content])
  let r = spawnSync('tar', ['-xzf', join(dir, 'in.tar.gz'), '-C', content])
  assert.equal(r.status, 0, r.stderr?.toString())
  change(content)
  r = spawnSync('tar', ['-czf', join(dir, 'out.tar.gz'), '-C', content, '.'])
  assert.equal(r.status, 0, r.stderr?.toString())
  return readFileSync(join(dir, 'out.tar.gz'))
}

test('a bundle whose policy.wasm is not wasm is refused as bad_wasm', async () => {
  const { bytes } = buildTempBundle()
  // sanity: the repacked (GNU tar) bundle loads when nothing is changed
  await loadBundle(repack(bytes, () => {}), { golden })
  const broken = repack(bytes, dir => { writeFileSync(join(dir, 'policy.wasm'), randomBytes(2048)) })
  await assertRefused(broken, 'bad_wasm', /policy\.wasm is not a loadable OPA wasm module/)
  const truncated = repack(bytes, dir => {
    const wasm = readFileSync(join(dir, 'policy.wasm'))
    writeFileSync(join(dir, 'policy.wasm'), wasm.subarray(0, wasm.length >> 1))
  })
  await assertRefused(truncated, 'bad_wasm', /not a loadable OPA wasm module/)
})

test('a bundle built for another entry point is refused as missing_entrypoint', async () => {
  // (opa build also exports every rule that depends on the -e rule, so another rule of
  // uspgate.authz would still bring `decision` along; this bundle is another policy altogether.)
  const { bytes } = buildTempBundle({
    only: true,
    entrypoint: 'uspgate/acl/allow',
    files: { 'acl.rego': 'package uspgate.acl\n\nimport rego.v1\n\ndefault allow := false\n' }
  })
  await assertRefused(bytes, 'missing_entrypoint', /lacks entry point uspgate\/authz\/decision \(found: uspgate\/acl\/allow\)/)
})

test('a bundle whose golden decisions fail is refused as golden_failed, naming the cases', async () => {
  // the edited policy lets agents subscribe to every agent inbox
  const { bytes, revision } = buildTempBundle({
    edit: { file: 'authz.rego', from: 'input.topic in {own_inbox, concat("", [own_inbox, "/#"])}', to: 'startswith(input.topic, concat("/", [tenant, "usp", "agent"]))' }
  })
  await assertRefused(bytes, 'golden_failed',
    new RegExp(`policy bundle ${revision} fails 2 of ${golden.length} golden decisions:\\n  - "agent subscribes other inbox": expected deny/not_own_inbox, got allow/agent_own_inbox`),
    true)
})

test('a bundle without a revision or with bad data.json is refused', async () => {
  const { bytes } = buildTempBundle()
  await assertRefused(repack(bytes, dir => { writeFileSync(join(dir, '.manifest'), '{"roots":[""]}') }), 'bad_manifest', /no revision/)
  await assertRefused(repack(bytes, dir => { writeFileSync(join(dir, 'data.json'), '[1,2]') }), 'bad_data', /must be a JSON object/)
  await assertRefused(repack(bytes, dir => { writeFileSync(join(dir, 'data.json'), '{nope') }), 'bad_data', /not JSON/)
})

test('a bundle whose decision is not {allow, reason} is refused as bad_output', async () => {
  const { bytes } = buildTempBundle({ only: true, files: { 'p.rego': 'package uspgate.authz\n\nimport rego.v1\n\ndecision := true\n' } })
  await assertRefused(bytes, 'bad_output', /did not return \{allow: boolean, reason: string\}/)
})

test('opa build without --revision gives a bundle the loader refuses', async () => {
  const dir = tempDir()
  const out = join(dir, 'b.tar.gz')
  const src = new URL('../../policies/', import.meta.url).pathname
  const r = runOpa(['build', '-t', 'wasm', '-e', ENTRYPOINT, '-o', out, 'authz.rego', 'mqtt.rego', 'data.json'], { cwd: src })
  assert.equal(r.status, 0, r.stderr)
  await assertRefused(readFileSync(out), 'bad_manifest', /no revision/)
})

test('an evaluation answers exactly what opa-wasm\'s own evaluate answers, for odd text and a topic that grows the wasm memory', async () => {
  // The bundle writes the input straight into the module's memory (policies/wasm-eval.ts); opa-wasm's
  // LoadedPolicy#evaluate on a second instance of the same module and data is the reference.
  const bytes = readFileSync(DEFAULT_BUNDLE_PATH)
  const policy = await loadBundle(bytes, { golden })
  const files = readTarGz(bytes)
  const reference = await loadPolicy(files.get('policy.wasm')!, { initial: 5, maximum: MAX_WASM_MEMORY_PAGES })
  reference.setData(JSON.parse(files.get('data.json')!.toString('utf8')))
  const odd = ['os::üñí©ødé-☃', 'os::"quoted"\\back', 'os::tab\tnl\nnul\u0000', 'os::\ud83d\ude00pair', 'os::lone\ud800high', 'os::lone\udc00low', 'os::\u2028sep']
  const inputs = [
    ...golden.map(c => c.input),
    ...odd.flatMap(p => [
      { action: 'connect', client: { ...controller, principal: p } },
      req('subscribe', { ...controller, principal: p }, `acme/usp/controller/${p}`),
      req('publish', controller, `acme/usp/agent/${p}`)
    ]),
    // ~1.5 MB of input: the module's memory (5 pages at load) must grow, and the next input still decides
    req('publish', controller, `acme/usp/agent/${'x'.repeat(1_500_000)}`),
    req('publish', controller, `acme/usp/agent/${AGENT_ID}`),
    req('subscribe', controller, `acme/bulkdata/${'☃'.repeat(400_000)}/#`),
    probe
  ] as Parameters<typeof policy.evaluate>[0][]
  // OPA's wasm JSON reader refuses some escapes JSON.stringify writes (e.g. a lone surrogate): both must throw then
  const outcome = (f: () => { allow: boolean, reason: string }): string => {
    try { const r = f(); return `${r.allow} ${r.reason}` } catch (err) { return `error ${String(err instanceof Error ? err.message : err)}` }
  }
  const outcomes = inputs.map(input => {
    const want = outcome(() => (reference.evaluate(input, ENTRYPOINT) as Array<{ result: { allow: boolean, reason: string } }>)[0]!.result)
    const got = outcome(() => policy.evaluate(input))
    assert.equal(got, want, JSON.stringify(input).slice(0, 120))
    return got
  })
  // the cases above are not all one answer
  const distinct = new Set(outcomes)
  assert.ok(distinct.size >= 6, [...distinct].join(', '))
  // the two lone surrogates, in three inputs each, and nothing else
  assert.equal(outcomes.filter(o => o.startsWith('error')).length, 6, outcomes.join('\n'))
})
