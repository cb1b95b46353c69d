// Policy build tool (run with tsx):
//   tsx policies/build.ts          compile policies/*.rego + data.json with the pinned opa into
//                                  policies/bundle/bundle.tar.gz, then load it and run golden.json
//   tsx policies/build.ts --check  exit 1 if the committed bundle is stale (CI)
//   tsx policies/build.ts --test   opa fmt / check --strict / test on policies/ (Rego unit tests)
// --src DIR and --bundle FILE point --check at other sources / another bundle (used by the tests).
import { readFileSync, renameSync, rmSync } from 'node:fs'
import { relative } from 'node:path'
import { parseArgs } from 'node:util'
import { DEFAULT_BUNDLE_PATH, loadBundle, loadGolden } from './bundle.ts'
import { POLICY_DIR, buildBundle, checkBundle } from './build-bundle.ts'
import { OPA_VERSION, findOpa, runOpa } from './opa-cli.ts'

const shown = (p: string): string => relative(process.cwd(), p) || p

async function build (): Promise<void> {
  // Build beside the committed file and validate before replacing it, so a bundle that fails its
  // golden decisions never lands in the tree.
  const candidate = `${DEFAULT_BUNDLE_PATH}.candidate`
  try {
    const { revision } = buildBundle({ outFile: candidate })
    const golden = await loadGolden()
    await loadBundle(readFileSync(candidate), { golden })
    renameSync(candidate, DEFAULT_BUNDLE_PATH)
    console.log(`built ${shown(DEFAULT_BUNDLE_PATH)}: revision ${revision} (opa ${OPA_VERSION}), ${golden.length} golden decisions pass`)
  } finally {
    rmSync(candidate, { force: true })
  }
}

async function check (sourceDir: string, bundleFile: string): Promise<boolean> {
  const result = checkBundle({ sourceDir, bundleFile })
  if (!result.ok) {
    console.error(`${shown(bundleFile)} is stale:\n${result.problems.map(p => `  - ${p}`).join('\n')}`)
    console.error('rebuild it with `npm run policy:build` and commit policies/bundle/bundle.tar.gz')
    return false
  }
  const golden = await loadGolden()
  await loadBundle(readFileSync(bundleFile), { golden })
  console.log(`${shown(bundleFile)} is up to date: revision ${result.expectedRevision}, ${golden.length} golden decisions pass`)
  return true
}

function test (): boolean {
  console.log(`using ${findOpa()} (${OPA_VERSION})`)
  // --ignore bundle: opa loads *.tar.gz found in a directory as bundles, and the committed bundle
  // carries copies of the same Rego (its package annotation would be "redeclared").
  const steps: Array<[string, string[]]> = [
    ['opa fmt (run `opa fmt -w policies/` to fix)', ['fmt', '--list', '--fail', POLICY_DIR]],
    ['opa check --strict', ['check', '--strict', '--ignore', 'bundle', POLICY_DIR]],
    ['opa test', ['test', '--ignore', 'bundle', POLICY_DIR]]
  ]
  for (const [label, args] of steps) {
    const r = runOpa(args)
    process.stdout.write(r.stdout)
    process.stderr.write(r.stderr)
    if (r.status !== 0) {
      console.error(`${label} failed`)
      return false
    }
  }
  return true
}

async function main (args: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({
      args,
      options: { check: { type: 'boolean' }, test: { type: 'boolean' }, src: { type: 'string' }, bundle: { type: 'string' } }
    }).values
  } catch (err) {
    console.error(`${(err as Error).message}\nusage: tsx policies/build.ts [--check [--src DIR] [--bundle FILE] | --test]`)
    return 2
  }
  if (values.check === true) return (await check(values.src ?? POLICY_DIR, values.bundle ?? DEFAULT_BUNDLE_PATH)) ? 0 : 1
  if (values.test === true) return test() ? 0 : 1
  await build()
  return 0
}

main(process.argv.slice(2)).then(
  code => { process.exitCode = code },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err)
    process.exitCode = 1
  }
)
