// Abuse limits that need state: the authentication back-off (the per-client publish rate uses
// core's TokenBucket).

/** Classic token bucket; refill is computed lazily on take(). */
interface FailureState { failures: number, lockedUntil: number, lastFailure: number }

/**
 * Authentication back-off. After `threshold` failures for a key, the key is
 * locked for 1 s, doubling with each further failure up to `maxLockSeconds`.
 * Keys are (username, address) and, with a 10x higher threshold, the address
 * alone. A username alone is never locked: otherwise anyone could keep a
 * healthy router off the network by failing logins with its username. Locks
 * are temporary and a success clears the (username, address) key. State for
 * keys quiet for 15 minutes is dropped so the map stays bounded.
 */
export class AuthThrottle {
  private readonly state = new Map<string, FailureState>()
  private sweeper: NodeJS.Timeout

  constructor (private readonly threshold: number, private readonly maxLockSeconds: number) {
    this.sweeper = setInterval(() => this.sweep(), 60_000)
    this.sweeper.unref()
  }

  /** Seconds the attempt must wait, or 0 when it may proceed. */
  lockedFor (username: string, address: string): number {
    if (this.state.size === 0) return 0 // no failures remembered: no key strings to build per CONNECT
    const now = Date.now()
    let wait = 0
    for (const key of [`u|${username}|${address}`, `a|${address}`]) {
      const s = this.state.get(key)
      if (s && s.lockedUntil > now) wait = Math.max(wait, Math.ceil((s.lockedUntil - now) / 1000))
    }
    return wait
  }

  recordFailure (username: string, address: string): void {
    this.bump(`u|${username}|${address}`, this.threshold)
    this.bump(`a|${address}`, this.threshold * 10)
  }

  recordSuccess (username: string, address: string): void {
    if (this.state.size > 0) this.state.delete(`u|${username}|${address}`)
  }

  private bump (key: string, threshold: number): void {
    const now = Date.now()
    const s = this.state.get(key) ?? { failures: 0, lockedUntil: 0, lastFailure: now }
    // a quiet quarter of an hour forgives old failures
    if (now - s.lastFailure > 15 * 60_000) s.failures = 0
    s.failures++
    s.lastFailure = now
    if (s.failures >= threshold) {
      const seconds = Math.min(this.maxLockSeconds, 2 ** (s.failures - threshold))
      s.lockedUntil = now + seconds * 1000
    }
    this.state.set(key, s)
  }

  private sweep (): void {
    const now = Date.now()
    for (const [k, s] of this.state) if (now - s.lastFailure > 15 * 60_000 && s.lockedUntil < now) this.state.delete(k)
  }

  close (): void { clearInterval(this.sweeper) }
}
