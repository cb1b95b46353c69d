// What changed between two policy bundles: a unified diff per Rego source file and the leaves of
// data.json that differ (path, before, after). For reviewing a revision before canary or promote.
import { createTwoFilesPatch } from 'diff'
import { readTarGz } from './tar.ts'

export interface SourceChange {
  path: string
  status: 'added' | 'removed' | 'changed'
  /** Unified diff (3 lines of context). */
  diff: string
}

export interface DataChange {
  /** JSON pointer of the value (RFC 6901), e.g. /tenants/acme/roles/0. */
  path: string
  before?: unknown
  after?: unknown
}

export interface BundleComparison {
  from: string
  to: string
  sources: SourceChange[]
  data: DataChange[]
}

/** Rego sources and the data document of a bundle.tar.gz (no wasm). */
export function bundleContents (bytes: Uint8Array): { sources: Map<string, string>, data: unknown } {
  const files = readTarGz(bytes)
  const sources = new Map<string, string>()
  for (const [path, content] of files) if (path.endsWith('.rego')) sources.set(path, content.toString('utf8'))
  const dataBytes = files.get('data.json')
  return { sources, data: dataBytes ? JSON.parse(dataBytes.toString('utf8')) as unknown : {} }
}

export function compareBundles (from: { revision: string, bytes: Uint8Array }, to: { revision: string, bytes: Uint8Array }): BundleComparison {
  const a = bundleContents(from.bytes)
  const b = bundleContents(to.bytes)
  const sources: SourceChange[] = []
  for (const path of [...new Set([...a.sources.keys(), ...b.sources.keys()])].sort()) {
    const before = a.sources.get(path)
    const after = b.sources.get(path)
    if (before === after) continue
    sources.push({
      path,
      status: before === undefined ? 'added' : after === undefined ? 'removed' : 'changed',
      diff: createTwoFilesPatch(`${from.revision}/${path}`, `${to.revision}/${path}`, before ?? '', after ?? '')
    })
  }
  const data: DataChange[] = []
  diffJson(a.data, b.data, '', data)
  return { from: from.revision, to: to.revision, sources, data }
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/** Leaf differences; objects are compared key by key, arrays and scalars as whole values. */
function diffJson (a: unknown, b: unknown, path: string, out: DataChange[]): void {
  if (isObject(a) && isObject(b)) {
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      const p = `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`
      if (!(k in b)) out.push({ path: p, before: a[k] })
      else if (!(k in a)) out.push({ path: p, after: b[k] })
      else diffJson(a[k], b[k], p, out)
    }
    return
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ path: path || '/', before: a, after: b })
}
