// Reads a Prometheus text exposition (a /metrics scrape) into samples, and runs promtool (Debian
// package `prometheus`). The sample lines are simple enough (`name{label="value",...} number`) to read
// with one regular expression; promtool itself checks the exposition's format in the tests.
import { execFile } from 'node:child_process'

export interface Sample { name: string, labels: Record<string, string>, value: number }

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

/** Every sample of the exposition (histograms as their _bucket / _sum / _count samples). */
export function samples (text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = LINE.exec(line)
    if (m === null) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => c === 'n' ? '\n' : c)
    out.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return out
}

/** The value of the one sample with this name whose labels include `labels`, or undefined. */
export function value (all: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return all.find(s => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
}

/** Runs promtool; rejects with a message saying how to install it when it is missing. */
export function promtool (args: string[], stdin?: string): Promise<{ code: number, out: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return reject(new Error('promtool is not installed: run `bash .ci/install-deps.sh` (Debian package prometheus)'))
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr })
    })
    if (stdin !== undefined) child.stdin!.end(stdin)
  })
}
