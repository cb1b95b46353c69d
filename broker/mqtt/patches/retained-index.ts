// Retained messages indexed by topic level, for aedes-persistence 10's memory persistence.
//
// Upstream (asyncPersistence.js, retainedMessagesByPattern) answers every SUBSCRIBE by testing
// EVERY retained message against the new filter with a fresh qlobber. The gateway keeps one
// retained presence message per agent (`<tenant>/usp/status/<id>`), so each agent's SUBSCRIBE to
// its own inbox cost O(fleet): connecting 10,000 agents spent 31 % of the broker's CPU in
// Qlobber._split_words and 14 % in Qlobber._test (bench --fleet profile). No upstream issue covers
// the memory persistence; the same O(retained) lookup is reported for the Redis persistence in
// moscajs/aedes-persistence-redis#10 (slow connects) and #33.
//
// Here the retained messages live in a tree of topic levels, and a lookup walks only the levels the
// filter names: an exact filter costs O(levels), `<inbox>/#` O(levels + what it matches).
// Matching follows MQTT: `+` is exactly one level (possibly empty), `#` is the parent level and
// everything below it [MQTT-4.7.1-2], and a filter starting with a wildcard does not match topics
// starting with `$` [MQTT-4.7.2-1].
import { Readable } from 'node:stream'

interface RetainedPacket { topic: string, payload: Buffer, [k: string]: unknown }

// children is created with the first child: most levels are leaves (one presence topic per agent), and
// an empty Map per leaf was ~180 bytes per agent for nothing (heap measured: 235 → 50 B per leaf level)
interface Level<P> { children: Map<string, Level<P>> | undefined, packet: P | undefined }

const newLevel = <P>(): Level<P> => ({ children: undefined, packet: undefined })

export class RetainedIndex<P extends { topic: string } = RetainedPacket> {
  private readonly root: Level<P> = newLevel()
  private count = 0

  get size (): number { return this.count }

  set (packet: P): void {
    let node = this.root
    for (const word of packet.topic.split('/')) {
      const children = node.children ??= new Map()
      let next = children.get(word)
      if (next === undefined) { next = newLevel(); children.set(word, next) }
      node = next
    }
    if (node.packet === undefined) this.count++
    node.packet = packet
  }

  delete (topic: string): void {
    const path: Array<[Level<P>, string]> = []
    let node = this.root
    for (const word of topic.split('/')) {
      const next = node.children?.get(word)
      if (next === undefined) return
      path.push([node, word])
      node = next
    }
    if (node.packet === undefined) return
    node.packet = undefined
    this.count--
    // prune levels left empty, so topics that come and go do not grow the tree
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, word] = path[i]!
      const child = parent.children!.get(word)!
      if (child.packet !== undefined || (child.children !== undefined && child.children.size > 0)) break
      parent.children!.delete(word)
    }
  }

  /** Retained messages whose topic matches the filter. */
  * match (filter: string): Generator<P> {
    yield * this.walk(this.root, filter.split('/'), 0)
  }

  private * walk (node: Level<P>, words: string[], i: number): Generator<P> {
    if (i === words.length) {
      if (node.packet !== undefined) yield node.packet
      return
    }
    const w = words[i]!
    if (w === '#') {
      // [MQTT-4.7.1-2] the parent level too
      if (node.packet !== undefined) yield node.packet
      yield * this.everything(node, i === 0)
    } else if (w === '+') {
      if (node.children === undefined) return
      for (const [word, child] of node.children) {
        if (i === 0 && word.startsWith('$')) continue // [MQTT-4.7.2-1]
        yield * this.walk(child, words, i + 1)
      }
    } else {
      const child = node.children?.get(w)
      if (child !== undefined) yield * this.walk(child, words, i + 1)
    }
  }

  private * everything (node: Level<P>, atRoot: boolean): Generator<P> {
    if (node.children === undefined) return
    for (const [word, child] of node.children) {
      if (atRoot && word.startsWith('$')) continue // [MQTT-4.7.2-1]
      if (child.packet !== undefined) yield child.packet
      yield * this.everything(child, false)
    }
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type CallbackPersistence = Record<string, any>

/**
 * Makes an aedes-persistence 10 memory persistence keep its retained messages in a RetainedIndex
 * (same contract: a copy of the packet is kept, an empty payload deletes the topic). `countRetained()`
 * is the number of retained topics (the uspgate_retained_messages gauge).
 */
export function indexRetained<T extends CallbackPersistence> (persistence: T): T & { countRetained(): number } {
  const index = new RetainedIndex<RetainedPacket>()
  const store = (pkt: RetainedPacket): void => {
    if (pkt.payload.length === 0) index.delete(pkt.topic)
    else index.set({ ...pkt })
  }
  const p = persistence as CallbackPersistence
  p.storeRetained = (packet: RetainedPacket, cb?: (err: Error | null) => void) => {
    store(packet)
    if (cb) { process.nextTick(cb, null); return undefined }
    return Promise.resolve()
  }
  p.createRetainedStream = (pattern: string) => Readable.from(index.match(pattern))
  p.createRetainedStreamCombi = (patterns: string[]) => Readable.from((function * () {
    for (const p of patterns) yield * index.match(p)
  })())
  p.countRetained = () => index.size
  return persistence as T & { countRetained(): number }
}
