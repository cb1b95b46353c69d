// Small numeric helpers shared by the load generators.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** Growable Float64 sample buffer (latencies in µs) with a hard cap so memory stays bounded. */
export class Samples {
  private buf: Float64Array
  private n = 0
  /** samples offered after the cap was reached (not stored) */
  dropped = 0

  constructor (initial = 1 << 16, private readonly cap = 8_000_000) {
    this.buf = new Float64Array(initial)
  }

  add (v: number): void {
    if (this.n === this.buf.length) {
      if (this.n >= this.cap) { this.dropped++; return }
      const next = new Float64Array(Math.min(this.cap, this.buf.length * 2))
      next.set(this.buf)
      this.buf = next
    }
    this.buf[this.n++] = v
  }

  get count (): number { return this.n }

  reset (): void { this.n = 0; this.dropped = 0 }

  /** p in [0, 100]; nearest-rank on a sorted copy. NaN when empty. */
  percentiles (ps: number[]): number[] {
    if (this.n === 0) return ps.map(() => Number.NaN)
    const sorted = this.buf.slice(0, this.n).sort()
    return ps.map(p => sorted[Math.min(this.n - 1, Math.max(0, Math.ceil(p / 100 * this.n) - 1))]!)
  }
}

export function nowUs (): number {
  return Number(process.hrtime.bigint()) / 1000
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** Polls fn until it returns true or the deadline passes; returns whether it did. */
export async function until (fn: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await fn()) return true
    if (Date.now() > deadline) return false
    await sleep(everyMs)
  }
}

/** The machine's CPU time from /proc/stat, all cores (µs): busy (steal included), steal, and the total with idle; undefined off Linux. */
export function machineCpuUs (): { busy: number, steal: number, total: number } | undefined {
  try {
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1, 9).map(Number)
    const us = (ticks: number): number => ticks * 1e6 / 100 // USER_HZ = 100
    return { busy: us(f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!), steal: us(f[7]!), total: us(f.reduce((a, b) => a + b, 0)) }
  } catch {
    return undefined
  }
}

/** Busy CPU time of the whole machine (ms, summed over cores); undefined off Linux. */
export function machineBusyMs (): number | undefined {
  const m = machineCpuUs()
  return m === undefined ? undefined : m.busy / 1000
}

/**
 * CPU accounting of one measurement window: the broker, this process (the load generator) and
 * everything else on the machine (other processes: a busy machine makes the numbers unreliable).
 */
export class CpuWindow {
  private readonly t0 = process.hrtime.bigint()
  private readonly self0 = process.cpuUsage()
  private readonly machine0 = machineBusyMs()

  constructor (private readonly broker0: { cpuUserUs: number, cpuSystemUs: number }) {}

  /** percentages of one core */
  end (broker1: { cpuUserUs: number, cpuSystemUs: number }): { ms: number, brokerPct: number, loadgenPct: number, otherPct: number | undefined } {
    const ms = Number(process.hrtime.bigint() - this.t0) / 1e6
    const self = process.cpuUsage(this.self0)
    const brokerPct = ((broker1.cpuUserUs + broker1.cpuSystemUs) - (this.broker0.cpuUserUs + this.broker0.cpuSystemUs)) / 1000 / ms * 100
    const loadgenPct = (self.user + self.system) / 1000 / ms * 100
    const m1 = machineBusyMs()
    const otherPct = this.machine0 !== undefined && m1 !== undefined ? Math.max(0, (m1 - this.machine0) / ms * 100 - brokerPct - loadgenPct) : undefined
    return { ms, brokerPct, loadgenPct, otherPct }
  }
}

export interface QuietResult { waitedMs: number, quiet: boolean, otherPct: number | undefined }

/**
 * Waits (at most maxMs) until the rest of the machine is quiet: busy CPU outside this process
 * below thresholdPct of one core over a sampleMs interval. The brokers are idle between
 * scenarios, so what is left is other work (a test suite, a build) that would skew a window.
 */
export async function waitForQuiet (maxMs: number, thresholdPct = 15, sampleMs = 500): Promise<QuietResult> {
  const start = Date.now()
  let otherPct: number | undefined
  for (;;) {
    const m0 = machineBusyMs()
    if (m0 === undefined) return { waitedMs: 0, quiet: true, otherPct: undefined }
    const c0 = process.cpuUsage()
    const t0 = Date.now()
    await sleep(sampleMs)
    const self = process.cpuUsage(c0)
    otherPct = Math.max(0, (machineBusyMs()! - m0 - (self.user + self.system) / 1000) / (Date.now() - t0) * 100)
    if (otherPct < thresholdPct) return { waitedMs: Date.now() - start, quiet: true, otherPct }
    if (Date.now() - start >= maxMs) return { waitedMs: Date.now() - start, quiet: false, otherPct }
  }
}

/** `git <args>` in a checkout (this one by default): its trimmed output, or null when git fails there. */
export function git (args: string[], cwd = fileURLToPath(new URL('..', import.meta.url))): string | null {
  try { return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() } catch { return null }
}
