// Security events to an HTTP(S) webhook: POSTed in batches as {"events": [...]}, retried with
// exponential back-off while the receiver fails (network error, timeout or a non-2xx answer), in
// order. Events wait in a bounded buffer; beyond it they are dropped and counted (metric, and one
// events.export_dropped event once the receiver takes events again). Nothing below the bound is lost.
import type { SecurityEvent } from './security-events.ts'

/** Where security events go besides the audit file and the log. */
export interface EventSink {
  readonly name: string
  start(): void
  send(ev: SecurityEvent): void
  close(): Promise<void>
}

export interface WebhookSettings {
  url: string
  /** Sent as `Authorization: Bearer <token>`; never logged. */
  token?: string
  /** Events per POST. */
  batch: number
  /** Events held while the receiver is failing; the bound of what can be lost. */
  buffer: number
  /** Back-off after a failure: doubles from min to max (milliseconds). */
  retryMinMs: number
  retryMaxMs: number
  /** A partial batch is sent after this long (milliseconds). */
  flushMs: number
  timeoutMs: number
}

export const DEFAULT_WEBHOOK: Omit<WebhookSettings, 'url'> = { batch: 100, buffer: 10_000, retryMinMs: 1000, retryMaxMs: 60_000, flushMs: 1000, timeoutMs: 10_000 }

export class WebhookSink implements EventSink {
  readonly name = 'webhook'
  private readonly buffer: SecurityEvent[] = []
  private sending = false
  private retryMs: number
  private timer: NodeJS.Timeout | undefined
  /** Dropped since the last successful POST (reported once the receiver recovers). */
  private droppedSinceOk = 0
  private closed = false

  constructor (
    private readonly settings: WebhookSettings,
    private readonly hooks: { onDrop: (n: number) => void, onRecovered: (dropped: number) => void, onError: (err: Error) => void }
  ) {
    this.retryMs = settings.retryMinMs
  }

  start (): void {}

  send (ev: SecurityEvent): void {
    if (this.buffer.length >= this.settings.buffer) {
      this.droppedSinceOk++
      this.hooks.onDrop(1)
      return
    }
    this.buffer.push(ev)
    this.schedule(this.buffer.length >= this.settings.batch ? 0 : this.settings.flushMs)
  }

  /** Events waiting (tests, metrics). */
  get pending (): number { return this.buffer.length }

  private schedule (ms: number): void {
    if (this.sending || this.closed) return
    if (this.timer !== undefined) {
      if (ms > 0) return
      clearTimeout(this.timer)
    }
    this.timer = setTimeout(() => { this.timer = undefined; void this.flush() }, ms)
    this.timer.unref()
  }

  private async flush (): Promise<void> {
    if (this.sending || this.buffer.length === 0) return
    this.sending = true
    const batch = this.buffer.slice(0, this.settings.batch)
    let ok = false
    try {
      ok = await this.post(batch)
    } finally {
      this.sending = false
    }
    if (!ok) {
      // the batch stays at the head of the buffer: retried first, order kept
      const wait = this.retryMs
      this.retryMs = Math.min(this.retryMs * 2, this.settings.retryMaxMs)
      this.schedule(wait)
      return
    }
    this.buffer.splice(0, batch.length)
    this.retryMs = this.settings.retryMinMs
    if (this.droppedSinceOk > 0) {
      const n = this.droppedSinceOk
      this.droppedSinceOk = 0
      this.hooks.onRecovered(n) // emits events.export_dropped, which comes back here as an event
    }
    if (this.buffer.length > 0) this.schedule(this.buffer.length >= this.settings.batch ? 0 : this.settings.flushMs)
  }

  private async post (events: SecurityEvent[]): Promise<boolean> {
    try {
      const res = await fetch(this.settings.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(this.settings.token ? { authorization: `Bearer ${this.settings.token}` } : {}) },
        body: JSON.stringify({ events }),
        signal: AbortSignal.timeout(this.settings.timeoutMs)
      })
      await res.arrayBuffer().catch(() => undefined) // drain, so the connection is reused
      if (res.ok) return true
      this.hooks.onError(new Error(`webhook answered ${res.status}`))
      return false
    } catch (err) {
      this.hooks.onError(err as Error)
      return false
    }
  }

  /** One last attempt to deliver what is buffered (bounded by the timeout), then stop. */
  async close (): Promise<void> {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    while (this.sending) await new Promise(r => setTimeout(r, 10))
    if (this.buffer.length > 0 && !this.closed) {
      this.closed = true
      while (this.buffer.length > 0) {
        const batch = this.buffer.splice(0, this.settings.batch)
        if (!(await this.post(batch))) {
          this.hooks.onDrop(batch.length + this.buffer.splice(0).length)
          break
        }
      }
    }
    this.closed = true
  }
}
