// Self-time summary of a .cpuprofile (Chrome DevTools / node --cpu-prof format): the top functions
// and the split between uspgate code, aedes, other dependencies, Node internals and the rest.
//   npx tsx bench/profile-summary.ts bench/results/profiles/gateway-fanout-qos0.cpuprofile [top]
// Two profiles per operation (what grows between K = 1,000 and 10,000: self µs per round trip or per
// connect, by function or by file; the operation counts are in fleet.json, profiles.<phase>.operations):
//   npx tsx bench/profile-summary.ts --diff A.cpuprofile OPS_A B.cpuprofile OPS_B [--by-file] [top]
import { readFile } from 'node:fs/promises'
import { pathToFileURL } from 'node:url'

interface CallFrame { functionName: string, url: string, lineNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

export type Area = 'uspgate' | 'aedes' | 'mqtt-packet' | 'other deps' | 'node' | 'gc/native/idle'

export interface HotSpot { fn: string, where: string, area: Area, selfMs: number, pct: number }
export interface ProfileSummary {
  totalMs: number
  busyMs: number
  byArea: Record<Area, number>
  /** by self time */
  top: HotSpot[]
  /** uspgate functions by inclusive time (their callees counted), i.e. what the gateway adds */
  uspgateInclusive: HotSpot[]
}

function areaOf (url: string): Area {
  if (url === '') return 'gc/native/idle'
  if (url.startsWith('node:')) return 'node'
  if (url.includes('/node_modules/aedes/') || url.includes('/node_modules/aedes-')) return 'aedes'
  if (url.includes('/node_modules/mqtt-packet/') || url.includes('/node_modules/bl/')) return 'mqtt-packet'
  if (url.includes('/node_modules/') || url.includes('/bench/')) return 'other deps'
  return 'uspgate'
}

function shortUrl (url: string): string {
  const i = url.lastIndexOf('/node_modules/')
  if (i >= 0) return url.slice(i + '/node_modules/'.length)
  const m = /\/(broker|policies|admin-api|certs|bench)\/.*$/.exec(url)
  return m ? m[0].slice(1) : url.replace(/^file:\/\//, '')
}

/** Where a frame is: file (shortened) and line, '' for native frames. */
function frameWhere (cf: CallFrame): string {
  return cf.url ? `${shortUrl(cf.url)}${cf.lineNumber > 0 ? `:${cf.lineNumber + 1}` : ''}` : ''
}

/**
 * A profile's nodes by id, and the self time (µs) of each node that was sampled. Every sample weighs
 * the same (the profile's sampled time over its sample count), not its own time delta: on a saturated
 * 2-core machine V8's sampling thread is descheduled for milliseconds at a time, and weighting by delta
 * charged each gap to whatever one sample caught (the fleet's 5 s profiles held samples of 85 and 193 ms
 * on the inspector's `dispatch` at profile start, which read as +2.4 µs per round trip of "growth").
 */
async function readProfile (file: string): Promise<{ p: CpuProfile, byId: Map<number, ProfileNode>, selfUs: Map<number, number> }> {
  const p = JSON.parse(await readFile(file, 'utf8')) as CpuProfile
  const byId = new Map<number, ProfileNode>()
  for (const n of p.nodes) byId.set(n.id, n)
  const sampledUs = p.timeDeltas.reduce((s, d) => s + d, 0)
  const perSampleUs = p.samples.length > 0 ? sampledUs / p.samples.length : 0
  const selfUs = new Map<number, number>()
  for (const id of p.samples) selfUs.set(id, (selfUs.get(id) ?? 0) + perSampleUs)
  return { p, byId, selfUs }
}

export async function summarizeProfile (file: string, topN = 15): Promise<ProfileSummary> {
  const { p, byId, selfUs } = await readProfile(file)
  const byFn = new Map<string, HotSpot>()
  const byArea: Record<Area, number> = { uspgate: 0, aedes: 0, 'mqtt-packet': 0, 'other deps': 0, node: 0, 'gc/native/idle': 0 }
  let totalUs = 0
  let idleUs = 0
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)!.callFrame
    totalUs += us
    if (cf.functionName === '(idle)') { idleUs += us; continue }
    const area = areaOf(cf.url)
    byArea[area] += us / 1000
    const fn = cf.functionName || '(anonymous)'
    const where = frameWhere(cf)
    const key = `${fn}@${where}`
    const h = byFn.get(key) ?? { fn, where, area, selfMs: 0, pct: 0 }
    h.selfMs += us / 1000
    byFn.set(key, h)
  }
  const busyMs = (totalUs - idleUs) / 1000
  const top = [...byFn.values()].sort((a, b) => b.selfMs - a.selfMs).slice(0, topN)
  for (const h of top) h.pct = busyMs > 0 ? h.selfMs / busyMs * 100 : 0

  // Inclusive time of uspgate functions: each sample counts once for every distinct uspgate
  // function on its stack.
  const parent = new Map<number, number>()
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const incl = new Map<string, HotSpot>()
  for (const [id, us] of selfUs) {
    const seen = new Set<string>()
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur)!.callFrame
      if (areaOf(cf.url) !== 'uspgate' || cf.url.includes('/bench/')) continue
      const fn = cf.functionName || '(anonymous)'
      const where = frameWhere(cf)
      const key = `${fn}@${where}`
      if (seen.has(key)) continue
      seen.add(key)
      const h = incl.get(key) ?? { fn, where, area: 'uspgate', selfMs: 0, pct: 0 }
      h.selfMs += us / 1000
      incl.set(key, h)
    }
  }
  const uspgateInclusive = [...incl.values()].sort((a, b) => b.selfMs - a.selfMs).slice(0, topN)
  for (const h of uspgateInclusive) h.pct = busyMs > 0 ? h.selfMs / busyMs * 100 : 0
  return { totalMs: totalUs / 1000, busyMs, byArea, top, uspgateInclusive }
}

/** Self time per operation of each function (or file), A and B side by side, biggest growth first. */
export interface ProfileDiffRow { key: string, aUs: number, bUs: number }

export async function diffProfiles (a: { file: string, operations: number }, b: { file: string, operations: number }, byFile = false): Promise<{ rows: ProfileDiffRow[], aUs: number, bUs: number }> {
  const perOp = async (x: { file: string, operations: number }): Promise<Map<string, number>> => {
    const { byId, selfUs } = await readProfile(x.file)
    const m = new Map<string, number>()
    for (const [id, us] of selfUs) {
      const cf = byId.get(id)!.callFrame
      if (cf.functionName === '(idle)') continue
      const key = byFile ? (cf.url ? shortUrl(cf.url) : cf.functionName) : `${cf.functionName || '(anonymous)'}@${frameWhere(cf)}`
      m.set(key, (m.get(key) ?? 0) + us / Math.max(1, x.operations))
    }
    return m
  }
  const [ma, mb] = [await perOp(a), await perOp(b)]
  const rows = [...new Set([...ma.keys(), ...mb.keys()])].map(key => ({ key, aUs: ma.get(key) ?? 0, bUs: mb.get(key) ?? 0 }))
  rows.sort((x, y) => (y.bUs - y.aUs) - (x.bUs - x.aUs))
  const sum = (m: Map<string, number>): number => [...m.values()].reduce((s, v) => s + v, 0)
  return { rows, aUs: sum(ma), bUs: sum(mb) }
}

export function formatSummary (name: string, s: ProfileSummary): string {
  const lines = [`${name}: ${s.busyMs.toFixed(0)} ms busy of ${s.totalMs.toFixed(0)} ms sampled`]
  const areas = (Object.entries(s.byArea) as Array<[Area, number]>).filter(([, ms]) => ms > 0).sort((a, b) => b[1] - a[1])
  lines.push('  self time by area: ' + areas.map(([a, ms]) => `${a} ${(ms / s.busyMs * 100).toFixed(1)}%`).join(', '))
  lines.push('  top self time:')
  for (const h of s.top) lines.push(`  ${h.pct.toFixed(1).padStart(5)}%  ${h.fn.padEnd(36).slice(0, 36)} ${h.where}`)
  if (s.uspgateInclusive.length > 0) {
    lines.push('  uspgate code, inclusive time (callees included):')
    for (const h of s.uspgateInclusive) lines.push(`  ${h.pct.toFixed(1).padStart(5)}%  ${h.fn.padEnd(36).slice(0, 36)} ${h.where}`)
  }
  return lines.join('\n')
}

const USAGE = 'usage: tsx bench/profile-summary.ts <file.cpuprofile> [top] | --diff A.cpuprofile OPS_A B.cpuprofile OPS_B [--by-file] [top]'

/** Exits with the usage and what was wrong: a stray argument (a shell glob that matched two files) must not
 * silently become an empty top list. */
function usageError (why: string): never {
  console.error(`${why}\n${USAGE}`)
  process.exit(2)
}

/** The optional [top] argument: how many functions to list, a positive whole number. */
function topCount (arg: string | undefined, otherwise: number): number {
  if (arg === undefined) return otherwise
  const n = Number(arg)
  if (!Number.isInteger(n) || n <= 0) usageError(`top must be a positive whole number, not "${arg}"`)
  return n
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2)
  const fail = (err: unknown): void => { console.error(err); process.exitCode = 1 }
  if (args[0] === '--diff') {
    const byFile = args.includes('--by-file')
    const positional = args.slice(1).filter(x => x !== '--by-file')
    if (positional.length > 5) usageError(`too many arguments: ${positional.slice(5).join(' ')}`)
    const [fa, na, fb, nb, top] = positional
    if (!fa || !fb || !(Number(na) > 0) || !(Number(nb) > 0)) usageError('--diff needs two profiles, each followed by its operation count (> 0)')
    const n = topCount(top, 30)
    diffProfiles({ file: fa, operations: Number(na) }, { file: fb, operations: Number(nb) }, byFile).then(d => {
      const line = (r: ProfileDiffRow): string => `${r.aUs.toFixed(2).padStart(8)} ${r.bUs.toFixed(2).padStart(8)} ${(r.bUs - r.aUs).toFixed(2).padStart(8)}  ${r.key}`
      console.log(`self µs per operation, A → B (difference): busy ${d.aUs.toFixed(2)} → ${d.bUs.toFixed(2)}`)
      console.log('grew most:')
      for (const r of d.rows.slice(0, n)) console.log(line(r))
      console.log('shrank most:')
      for (const r of d.rows.slice(-Math.min(10, n)).reverse()) console.log(line(r))
    }, fail)
  } else {
    const file = args[0]
    if (!file) usageError('no profile given')
    if (args.length > 2) usageError(`too many arguments: ${args.slice(2).join(' ')}`)
    const n = topCount(args[1], 25)
    summarizeProfile(file, n).then(s => console.log(formatSummary(file, s)), fail)
  }
}
