// Token buckets for the admin API (per token, per address) and the lock an
// address earns by failing authentication too often. In memory, per node:
// they bound load and brute force on this listener, not a cluster-wide quota.

import { TokenBucket } from '../../broker/control/index.ts'

const SWEEP_EVERY_MS = 60_000
/** Above this many tracked keys the oldest are dropped (a spoofed-address flood cannot grow memory). */
const MAX_KEYS = 100_000

export class TokenBuckets {
  private readonly buckets = new Map<string, TokenBucket>()
  private lastSweep = Date.now()

  /** `rate` tokens per second, at most `burst` saved up; rate 0 = unlimited. */
  constructor (private readonly rate: number, private readonly burst: number, private readonly now: () => number = Date.now) {}

  /** 0 when the request may go ahead (and is counted), else the seconds to wait. */
  take (key: string): number {
    if (this.rate <= 0) return 0
    const now = this.now()
    this.sweep(now)
    let b = this.buckets.get(key)
    if (b === undefined) {
      b = new TokenBucket(this.rate, this.burst, this.now)
    } else {
      // Keep recently used keys last in the Map (insertion order = eviction order).
      this.buckets.delete(key)
    }
    this.buckets.set(key, b)
    return b.take() ? 0 : b.waitSeconds
  }

  private sweep (now: number): void {
    if (this.buckets.size > MAX_KEYS) {
      for (const k of this.buckets.keys()) {
        this.buckets.delete(k)
        if (this.buckets.size <= MAX_KEYS * 0.9) break
      }
    }
    if (now - this.lastSweep < SWEEP_EVERY_MS) return
    this.lastSweep = now
    const full = this.burst / this.rate * 1000
    for (const [k, b] of this.buckets) if (now - b.lastUsed > full) this.buckets.delete(k)
  }
}

/** Failed authentications per address in a one-minute window; over the limit the address is locked. */
export class AuthFailureLock {
  private readonly entries = new Map<string, { windowStart: number, failures: number, lockedUntil: number }>()
  private lastSweep = Date.now()

  constructor (private readonly perMinute: number, private readonly lockSeconds: number, private readonly now: () => number = Date.now) {}

  /** Seconds the address is still locked for (0 = not locked). */
  lockedFor (address: string): number {
    const e = this.entries.get(address)
    if (e === undefined) return 0
    const left = e.lockedUntil - this.now()
    return left > 0 ? Math.ceil(left / 1000) : 0
  }

  /** Counts a failure; returns true when this failure locked the address. */
  fail (address: string): boolean {
    if (this.perMinute <= 0) return false
    const now = this.now()
    this.sweep(now)
    let e = this.entries.get(address)
    if (e === undefined || now - e.windowStart >= 60_000) {
      e = { windowStart: now, failures: 0, lockedUntil: e?.lockedUntil ?? 0 }
      this.entries.delete(address)
      this.entries.set(address, e)
    }
    e.failures++
    if (e.failures >= this.perMinute && e.lockedUntil <= now) {
      e.lockedUntil = now + this.lockSeconds * 1000
      e.failures = 0
      e.windowStart = now
      return true
    }
    return false
  }

  private sweep (now: number): void {
    if (this.entries.size > MAX_KEYS) {
      for (const k of this.entries.keys()) {
        this.entries.delete(k)
        if (this.entries.size <= MAX_KEYS * 0.9) break
      }
    }
    if (now - this.lastSweep < SWEEP_EVERY_MS) return
    this.lastSweep = now
    for (const [k, e] of this.entries) if (now - e.windowStart > 60_000 && e.lockedUntil <= now) this.entries.delete(k)
  }
}
