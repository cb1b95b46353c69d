// Where the memory per agent goes, object by object: the difference between two V8 heap snapshots of
// one broker (before the fleet connected and after, both written after a full GC by
// `npm run bench -- --fleet --heap-snapshots`), grouped by what each object is and what holds it
// (`type:name <-edge- holder`), divided by the number of agents. The sampling heap profile
// (--heap-prof) says which function allocated what stayed; this says which object keeps it.
//
//   npx tsx bench/heap-snapshot-diff.ts <before.heapsnapshot> <after.heapsnapshot> <agents> [rows]
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

interface Snapshot {
  snapshot: { meta: { node_fields: string[], node_types: [string[]], edge_fields: string[], edge_types: [string[]] } }
  nodes: number[]
  edges: number[]
  strings: string[]
}

export interface HeapGroup {
  /** `type:name <-edge- holderType:holderName`; strings are one group per holder */
  what: string
  bytesPerAgent: number
  objectsPerAgent: number
}

/** Self size and count of every group in one snapshot. */
function groups (file: string): Map<string, { count: number, bytes: number }> {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot
  const { node_fields: nf, node_types: [nodeTypes], edge_fields: ef, edge_types: [edgeTypes] } = s.snapshot.meta
  const N = nf.length
  const E = ef.length
  const [iType, iName, iSize, iEdges] = ['type', 'name', 'self_size', 'edge_count'].map(f => nf.indexOf(f)) as [number, number, number, number]
  const [eType, eName, eTo] = ['type', 'name_or_index', 'to_node'].map(f => ef.indexOf(f)) as [number, number, number]
  const { nodes, edges, strings } = s
  const count = nodes.length / N
  // the first strong reference to each object names its holder (enough to tell the per-connection objects apart)
  const holder = new Int32Array(count).fill(-1)
  const via: string[] = new Array(count)
  let e = 0
  for (let n = 0; n < count; n++) {
    const ec = nodes[n * N + iEdges]!
    for (let k = 0; k < ec; k++, e += E) {
      const t = edgeTypes[edges[e + eType]!]!
      if (t === 'weak' || t === 'shortcut') continue
      const to = edges[e + eTo]! / N
      if (holder[to] !== -1) continue
      holder[to] = n
      via[to] = t === 'element' || t === 'hidden' ? '[]' : String(t === 'property' || t === 'internal' || t === 'context' ? strings[edges[e + eName]!] : edges[e + eName])
    }
  }
  const label = (n: number): string => {
    const type = nodeTypes[nodes[n * N + iType]!]!
    const name = type.includes('string') ? '(string)' : strings[nodes[n * N + iName]!]!.slice(0, 48)
    return `${type}:${name}`
  }
  const out = new Map<string, { count: number, bytes: number }>()
  for (let n = 0; n < count; n++) {
    const h = holder[n]!
    const key = `${label(n)} <-${via[n] ?? ''}- ${h >= 0 ? label(h) : '(root)'}`
    const g = out.get(key) ?? { count: 0, bytes: 0 }
    g.count++
    g.bytes += nodes[n * N + iSize]!
    out.set(key, g)
  }
  return out
}

/** What the heap gained between the two snapshots, per agent, largest first (and the total). */
export function heapSnapshotDiff (before: string, after: string, agents: number): { totalBytesPerAgent: number, groups: HeapGroup[] } {
  const a = groups(before)
  const b = groups(after)
  const rows: HeapGroup[] = []
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(key) ?? { count: 0, bytes: 0 }
    const y = b.get(key) ?? { count: 0, bytes: 0 }
    if (x.bytes === y.bytes && x.count === y.count) continue
    rows.push({ what: key, bytesPerAgent: (y.bytes - x.bytes) / agents, objectsPerAgent: (y.count - x.count) / agents })
  }
  rows.sort((p, q) => q.bytesPerAgent - p.bytesPerAgent)
  return { totalBytesPerAgent: rows.reduce((s, r) => s + r.bytesPerAgent, 0), groups: rows }
}

export function formatHeapDiff (d: { totalBytesPerAgent: number, groups: HeapGroup[] }, top: number): string[] {
  return [
    `${(d.totalBytesPerAgent / 1024).toFixed(2)} kB per agent in all; the largest groups (bytes and objects per agent, what <-held by- whom):`,
    ...d.groups.slice(0, top).map(g => `${g.bytesPerAgent.toFixed(0).padStart(7)} B ${g.objectsPerAgent.toFixed(2).padStart(6)}  ${g.what}`)
  ]
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [before, after, agents, top] = process.argv.slice(2)
  if (before === undefined || after === undefined || !(Number(agents) > 0)) {
    console.error('usage: npx tsx bench/heap-snapshot-diff.ts <before.heapsnapshot> <after.heapsnapshot> <agents> [rows]')
    process.exit(2)
  }
  for (const line of formatHeapDiff(heapSnapshotDiff(before, after, Number(agents)), Number(top ?? 40))) console.log(line)
}
