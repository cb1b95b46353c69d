// The decision cache: bounded, grouped by identity so a revocation drops exactly that identity's
// entries in O(1), and cheap on a hit (two Map lookups, no allocation).
//
// Bounding is generational rather than strict LRU: entries go into `current`; when it holds
// capacity/2 entries it becomes `previous` and the old `previous` is dropped. A hit in `previous`
// moves the entry back to `current`, so hot entries survive and memory stays under `capacity`.

type Buckets<V> = Map<string, Map<string, V>>

export class DecisionCache<V> {
  private current: Buckets<V> = new Map()
  private previous: Buckets<V> = new Map()
  private currentSize = 0
  private previousSize = 0
  private generationSize: number
  private cap: number

  constructor (capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 2) throw new RangeError(`cache capacity must be an integer >= 2, got ${capacity}`)
    this.cap = capacity
    this.generationSize = Math.floor(capacity / 2)
  }

  get capacity (): number {
    return this.cap
  }

  /** Raises the bound (never lowers it); O(1): the next generation switch happens later. */
  grow (capacity: number): void {
    if (!Number.isInteger(capacity) || capacity <= this.cap) return
    this.cap = capacity
    this.generationSize = Math.floor(capacity / 2)
  }

  get size (): number {
    return this.currentSize + this.previousSize
  }

  get (identity: string, key: string): V | undefined {
    const hit = this.current.get(identity)?.get(key)
    if (hit !== undefined) return hit
    const old = this.previous.get(identity)
    const value = old?.get(key)
    if (value !== undefined) {
      old!.delete(key)
      this.previousSize--
      this.set(identity, key, value)
    }
    return value
  }

  set (identity: string, key: string, value: V): void {
    let bucket = this.current.get(identity)
    if (bucket === undefined) {
      bucket = new Map()
      this.current.set(identity, bucket)
    }
    const size = bucket.size
    bucket.set(key, value)
    if (bucket.size === size) return // replaced an entry
    if (++this.currentSize >= this.generationSize) {
      this.previous = this.current
      this.previousSize = this.currentSize
      this.current = new Map()
      this.currentSize = 0
    }
  }

  /** Drops every entry of one identity (credential or certificate revoked). */
  deleteIdentity (identity: string): number {
    let dropped = 0
    const cur = this.current.get(identity)
    if (cur) { dropped += cur.size; this.currentSize -= cur.size; this.current.delete(identity) }
    const prev = this.previous.get(identity)
    if (prev) { dropped += prev.size; this.previousSize -= prev.size; this.previous.delete(identity) }
    return dropped
  }

  clear (): void {
    this.current = new Map()
    this.previous = new Map()
    this.currentSize = 0
    this.previousSize = 0
  }
}
