// When the policy decisions of CONNECT and SUBSCRIBE run: at the end of the event-loop turn, all of
// that turn's together (one setImmediate for every client), not each in the middle of its packet.
//
// Why: a decision that misses the cache is a wasm evaluation, and between other work its code and
// memory are out of the CPU caches. Measured on the default bundle (bench/README.md, "Fourth
// pass"): one evaluation after unrelated work ~32-41 µs, ten in a row ~13-16 µs each. A fleet
// connecting is two misses per agent (its CONNECT, its inbox SUBSCRIBE); run in turn batches they cost
// the gateway's connect ~25-35 µs per agent less in the bench --fleet profile.
//
// Subscription decisions also keep their fairness bound: at most `subscriptionsPerTurn` per turn (all
// clients together; 0 = no bound), the rest wait for the next turn in arrival order, so a SUBSCRIBE of
// thousands of filters costs other tenants a few milliseconds per turn, not the whole packet at once.
// Decisions queued while a batch runs (a client's next packet) wait for the next turn.

/** First in, first out, without shifting: a list and the index of its first entry still waiting. */
class Queue {
  private items: Array<() => void> = []
  private head = 0

  get waiting (): number { return this.items.length - this.head }

  push (decide: () => void): void { this.items.push(decide) }

  /** Runs up to `max` of the entries queued now (a throw leaves the rest queued). */
  run (max: number): void {
    const end = Math.min(this.items.length, this.head + max)
    while (this.head < end) this.items[this.head++]!()
  }

  /** Drops what has run (after run, also after a throw). */
  compact (): void {
    if (this.head === 0) return
    if (this.head === this.items.length) this.items = []
    else this.items = this.items.slice(this.head)
    this.head = 0
  }
}

export class DecisionTurn {
  private readonly connects = new Queue()
  private readonly subscriptions = new Queue()
  private scheduled = false

  constructor (private readonly subscriptionsPerTurn: number) {}

  /** A CONNECT's steps (identity, then policy): run at the end of this turn. */
  connect (decide: () => void): void {
    this.connects.push(decide)
    this.schedule()
  }

  /** One filter's subscribe steps: at the end of this turn, or a later one past the per-turn bound. */
  subscription (decide: () => void): void {
    this.subscriptions.push(decide)
    this.schedule()
  }

  private schedule (): void {
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(this.runTurn)
  }

  private readonly runTurn = (): void => {
    this.scheduled = false
    try {
      this.connects.run(this.connects.waiting)
      this.subscriptions.run(this.subscriptionsPerTurn > 0 ? this.subscriptionsPerTurn : this.subscriptions.waiting)
    } finally {
      // a throwing step (a bug) must not strand the other clients' decisions
      this.connects.compact()
      this.subscriptions.compact()
      if (this.connects.waiting > 0 || this.subscriptions.waiting > 0) this.schedule()
    }
  }
}
