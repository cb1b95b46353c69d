// Several fleet runs judged together. One saturated run on a shared 2-core machine carries a few per cent
// of noise of its own and moves with the machine (bench/FLEET.md), so a verdict read from one run can
// flip on the next; this pools the runs `npm run bench -- --fleet` kept in bench/results/fleet-runs/ and
// gives, per target of the issue, how many runs met it, the mean figure, the 95 % interval of that mean
// and whether the mean meets the target. The figures are recomputed from each run's results with the
// bench's own checks, so every run is judged by the same rules.
//   npx tsx bench/fleet-summary.ts [FILE.json | DIR ...] [--commit=PREFIX] [--include-modified]
// Runs are pooled only with runs of the same shape (K, targets, windows, window length, paced rate);
// runs made on a modified tree (throw-away experiments) are left out unless --include-modified.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { fleetCheck, fleetChecks, fleetReferences, formatFigure, FLEET_RUNS_DIR, type FleetCheck, type FleetResult, type FleetShape } from './fleet-node.ts'

interface KeptRun { file: string, finishedAt: string, gitCommit: string, gitDirty: boolean, node: string, shape: FleetShape, results: FleetResult[] }

/** Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom; 1.96 beyond. */
const T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]

interface Pooled { mean: number, low: number, high: number, min: number, max: number, n: number }

function pool (xs: number[]): Pooled {
  const n = xs.length
  const mean = xs.reduce((s, x) => s + x, 0) / n
  const sd = n > 1 ? Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1)) : 0
  const half = n > 1 ? (T95[n - 2] ?? 1.96) * sd / Math.sqrt(n) : 0
  return { mean, low: mean - half, high: mean + half, min: Math.min(...xs), max: Math.max(...xs), n }
}

function runFiles (args: string[]): string[] {
  const paths = args.length > 0 ? args : [FLEET_RUNS_DIR]
  for (const p of paths) if (!existsSync(p)) throw new Error(`${p}: no such file or directory (npm run bench -- --fleet keeps each run in ${FLEET_RUNS_DIR})`)
  return paths.flatMap(p => statSync(p).isDirectory()
    ? readdirSync(p).filter(f => f.endsWith('.json')).sort().map(f => join(p, f))
    : [p])
}

function readRun (file: string): KeptRun {
  let j: Partial<KeptRun>
  try { j = JSON.parse(readFileSync(file, 'utf8')) as Partial<KeptRun> } catch (err) { throw new Error(`${file}: not readable as JSON (${err instanceof Error ? err.message : String(err)})`) }
  if (!Array.isArray(j.results) || j.shape === undefined) throw new Error(`${file}: not a fleet run kept by npm run bench -- --fleet (no results or shape)`)
  return { file, finishedAt: j.finishedAt ?? '?', gitCommit: j.gitCommit ?? 'unknown', gitDirty: j.gitDirty === true, node: j.node ?? '?', shape: j.shape, results: j.results }
}

function shapeText (s: FleetShape): string {
  return `K ${s.fleetSizes.join(', ')}; ${s.targets.join(', ')}; ${s.windows} windows of ${s.windowSeconds} s; paced ${s.pacedRate > 0 ? `${s.pacedRate}/s` : 'none'}; ${s.connectRounds} connect rounds`
}

function count<T> (xs: T[]): string {
  const m = new Map<T, number>()
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1)
  return [...m].map(([k, n]) => `${String(k)} ×${n}`).join(', ')
}

function summarizeRuns (runs: KeptRun[]): string {
  const out: string[] = []
  const shapes = new Map<string, KeptRun[]>()
  for (const r of runs) pushTo(shapes, shapeText(r.shape), r)
  for (const [shape, rs] of shapes) {
    out.push(`${rs.length} run${rs.length === 1 ? '' : 's'}: ${shape}`)
    out.push(`  ${rs[0]!.finishedAt} to ${rs[rs.length - 1]!.finishedAt}; commits ${count(rs.map(r => r.gitCommit.slice(0, 7)))}; Node ${count(rs.map(r => r.node))}`)
    const checks = new Map<string, FleetCheck[]>()
    const refs = new Map<string, number[]>()
    for (const r of rs) {
      for (const c of fleetChecks(r.results)) pushTo(checks, c.name, c)
      for (const x of fleetReferences(r.results)) if (x.figure !== undefined) pushTo(refs, x.name, x.figure)
    }
    const fmt = (p: Pooled, unit: '×' | '%'): string => p.n > 1
      ? `mean ${formatFigure(p.mean, unit)} (95 % interval of the mean ${formatFigure(p.low, unit)}–${formatFigure(p.high, unit)}; runs ${formatFigure(p.min, unit)}–${formatFigure(p.max, unit)})`
      : `${formatFigure(p.mean, unit)} (one run)`
    out.push('  targets:')
    for (const [name, cs] of checks) {
      const c = cs[0]!
      const p = pool(cs.map(x => x.figure))
      // the mean judged by the same rule as each run's figure
      const ofMean = fleetCheck(name, p.mean, c.unit, c.limit, c.atMost)
      out.push(`    ${name}: met in ${cs.filter(x => x.verdict === 'PASS').length} of ${p.n}; ${fmt(p, c.unit)} (target ${c.target}) ${ofMean.verdict} on the mean`)
    }
    if (refs.size > 0) {
      out.push('  references, not targets:')
      for (const [name, xs] of refs) out.push(`    ${name}: ${fmt(pool(xs), '×')}`)
    }
  }
  return out.join('\n')
}

function pushTo<K, V> (m: Map<K, V[]>, key: K, value: V): void {
  const list = m.get(key)
  if (list === undefined) m.set(key, [value])
  else list.push(value)
}

async function main (argv: string[]): Promise<void> {
  let commit: string | undefined
  let includeModified = false
  const paths: string[] = []
  for (const a of argv) {
    if (a.startsWith('--commit=')) commit = a.slice(9)
    else if (a === '--include-modified') includeModified = true
    else if (a.startsWith('--')) throw new Error(`unknown argument ${a} (use FILE.json or DIR, --commit=PREFIX, --include-modified)`)
    else paths.push(a)
  }
  const all = runFiles(paths).map(readRun)
  const modified = all.filter(r => r.gitDirty)
  const runs = all.filter(r => (includeModified || !r.gitDirty) && (commit === undefined || r.gitCommit.startsWith(commit)))
  if (modified.length > 0 && !includeModified) console.log(`left out ${modified.length} run${modified.length === 1 ? '' : 's'} made on a modified tree (--include-modified to pool them)`)
  if (runs.length === 0) throw new Error(`no fleet runs to summarize in ${paths.length > 0 ? paths.join(', ') : FLEET_RUNS_DIR}${commit !== undefined ? ` for commit ${commit}` : ''} (npm run bench -- --fleet keeps each run there)`)
  console.log(summarizeRuns(runs))
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err))
    process.exitCode = 1
  })
}
