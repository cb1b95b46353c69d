// Compiling the Rego with the real OPA CLI (`opa build -t wasm`) and checking that the committed
// bundle is what the sources compile to (DESIGN.md: "CI rebuilds it and fails if it is stale").
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DEFAULT_BUNDLE_PATH } from './bundle.ts'
import { OPA_VERSION, runOpa } from './opa-cli.ts'
import { readTarGz } from './tar.ts'
import { ENTRYPOINT } from './types.ts'

export const POLICY_DIR = dirname(fileURLToPath(import.meta.url))

export interface PolicySource {
  name: string
  bytes: Buffer
}

/** What goes into a bundle: every *.rego except *_test.rego, plus data.json, sorted by name. */
export function policySources (dir = POLICY_DIR): PolicySource[] {
  const names = readdirSync(dir)
    .filter(n => (n.endsWith('.rego') && !n.endsWith('_test.rego')) || n === 'data.json')
    .sort()
  if (!names.some(n => n.endsWith('.rego'))) throw new Error(`no .rego sources in ${dir}`)
  return names.map(name => ({ name, bytes: readFileSync(join(dir, name)) }))
}

/**
 * "r-" + 12 hex of sha256 over the sources, the OPA version and the entry point: the same sources
 * compiled by the same compiler always give the same revision, and any change gives a new one.
 */
export function computeRevision (sources: PolicySource[], entrypoint = ENTRYPOINT, opaVersion = OPA_VERSION): string {
  const h = createHash('sha256').update(`uspgate-bundle\nopa ${opaVersion}\nentrypoint ${entrypoint}\n`)
  for (const s of sources) h.update(`${s.name}\0${s.bytes.length}\0`).update(s.bytes)
  return 'r-' + h.digest('hex').slice(0, 12)
}

export interface BuildOptions {
  /** Directory holding the .rego files and data.json (default: policies/). */
  sourceDir?: string
  outFile?: string
  entrypoint?: string
  /** Default: computeRevision() of the sources. */
  revision?: string
}

/** Runs `opa build -t wasm`; the output file appears atomically (temp file + rename). */
export function buildBundle (opts: BuildOptions = {}): { revision: string, outFile: string } {
  const sourceDir = opts.sourceDir ?? POLICY_DIR
  const outFile = opts.outFile ?? DEFAULT_BUNDLE_PATH
  const entrypoint = opts.entrypoint ?? ENTRYPOINT
  const sources = policySources(sourceDir)
  const revision = opts.revision ?? computeRevision(sources, entrypoint)
  mkdirSync(dirname(outFile), { recursive: true })
  const tmp = `${outFile}.tmp-${process.pid}`
  // Explicit file names: a directory argument would also load golden.json and the bundle itself.
  const r = runOpa(['build', '-t', 'wasm', '-e', entrypoint, '--revision', revision, '-o', tmp, ...sources.map(s => s.name)], { cwd: sourceDir })
  if (r.status !== 0) {
    rmSync(tmp, { force: true })
    throw new Error(`opa build failed (exit ${r.status ?? r.signal}):\n${r.stderr || r.stdout || r.error?.message}`)
  }
  renameSync(tmp, outFile)
  return { revision, outFile }
}

export interface CheckResult {
  ok: boolean
  expectedRevision: string
  committedRevision: string | undefined
  problems: string[]
}

/**
 * Rebuilds into a temp dir and compares with the committed bundle: the manifest revision and the
 * bytes of every file inside (policy.wasm, data.json, .manifest, sources) — not the tar.gz bytes,
 * whose headers and compression need not be reproducible.
 */
export function checkBundle (opts: { sourceDir?: string, bundleFile?: string } = {}): CheckResult {
  const sourceDir = opts.sourceDir ?? POLICY_DIR
  const bundleFile = opts.bundleFile ?? DEFAULT_BUNDLE_PATH
  const expectedRevision = computeRevision(policySources(sourceDir))
  if (!existsSync(bundleFile)) {
    return { ok: false, expectedRevision, committedRevision: undefined, problems: [`${bundleFile} does not exist`] }
  }
  let committed: Map<string, Buffer>
  try {
    committed = readTarGz(readFileSync(bundleFile))
  } catch (err) {
    return { ok: false, expectedRevision, committedRevision: undefined, problems: [`${bundleFile} is unreadable: ${(err as Error).message}`] }
  }
  const committedRevision = revisionOf(committed)
  const problems: string[] = []
  if (committedRevision !== expectedRevision) {
    problems.push(`committed revision is ${committedRevision ?? 'missing'}, the sources give ${expectedRevision}`)
  }
  const dir = mkdtempSync(join(tmpdir(), 'uspgate-policy-check-'))
  try {
    const fresh = readTarGz(readFileSync(buildBundle({ sourceDir, outFile: join(dir, 'bundle.tar.gz') }).outFile))
    for (const [name, bytes] of fresh) {
      const old = committed.get(name)
      if (old === undefined) problems.push(`${name} is missing from the committed bundle`)
      else if (!old.equals(bytes)) problems.push(`${name} differs from a fresh build`)
    }
    for (const name of committed.keys()) if (!fresh.has(name)) problems.push(`${name} is in the committed bundle but not in a fresh build`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  return { ok: problems.length === 0, expectedRevision, committedRevision, problems }
}

function revisionOf (files: Map<string, Buffer>): string | undefined {
  try {
    const rev = (JSON.parse(files.get('.manifest')?.toString('utf8') ?? '{}') as { revision?: unknown }).revision
    return typeof rev === 'string' ? rev : undefined
  } catch {
    return undefined
  }
}
