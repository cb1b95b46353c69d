// The token bucket: `ratePerSecond` tokens per second, at most `burst` saved up. The one
// implementation behind the MQTT publish rate (per client) and the admin API's rate limits.
export class TokenBucket {
  private tokens: number
  private last: number

  constructor (private readonly ratePerSecond: number, private readonly burst: number, private readonly now: () => number = Date.now) {
    this.tokens = burst
    this.last = now()
  }

  /** Takes one token; false (nothing taken) when none is left. */
  take (): boolean {
    const now = this.now()
    if (now !== this.last) {
      this.tokens = Math.min(this.burst, this.tokens + (now - this.last) * this.ratePerSecond / 1000)
      this.last = now
    }
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  /** Whole seconds until the next token (at least 1); call after take() returned false. */
  get waitSeconds (): number {
    return Math.max(1, Math.ceil((1 - this.tokens) / this.ratePerSecond))
  }

  /** Milliseconds until the next token (at least 1); call after take() returned false. */
  get waitMs (): number {
    return Math.max(1, Math.ceil((1 - this.tokens) * 1000 / this.ratePerSecond))
  }

  /** Milliseconds until `n` tokens are saved up (0 when they are already); `n` is capped at the burst. */
  msUntil (n: number): number {
    const want = Math.min(n, this.burst)
    const tokens = Math.min(this.burst, this.tokens + (this.now() - this.last) * this.ratePerSecond / 1000)
    return tokens >= want ? 0 : Math.ceil((want - tokens) * 1000 / this.ratePerSecond)
  }

  /** Time of the last take(). */
  get lastUsed (): number { return this.last }
}
