// In-memory mirror of the cluster route table: topic filter → remote nodes, matched with qlobber
// (the trie aedes' mqemitter uses, with the same MQTT options), so routing decisions never ask Redis.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
interface QlobberDedupInstance {
  add(topic: string, value: string): void
  remove(topic: string, value: string): void
  match(topic: string): Set<string>
  clear(): void
}
const { QlobberDedup } = require('qlobber') as { QlobberDedup: new (opts: Record<string, unknown>) => QlobberDedupInstance }

/** Same matching rules as aedes' emitter ([MQTT-4.7.1-3]: `a/#` matches `a`), so a route never under-matches. */
export const QLOBBER_MQTT_OPTIONS = { separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true }

export interface RemoteNode {
  /** process that owns the route set; a new instance means a restarted node */
  instance: string
  /** last change applied */
  seq: number
  filters: Set<string>
  /** when this node first learnt of the route set (start-up grace before a missing heartbeat counts) */
  knownSince: number
}

export class RouteTable {
  private readonly trie = new QlobberDedup(QLOBBER_MQTT_OPTIONS)
  readonly nodes = new Map<string, RemoteNode>()
  private routeCount = 0

  /** Node ids with at least one filter matching `topic`. */
  match (topic: string): Set<string> { return this.trie.match(topic) }

  get size (): number { return this.routeCount }

  /** Replaces everything known about `node`. */
  replace (node: string, instance: string, seq: number, filters: Iterable<string>, now = Date.now()): void {
    const prev = this.nodes.get(node)
    this.drop(node)
    const entry: RemoteNode = { instance, seq, filters: new Set(), knownSince: prev?.knownSince ?? now }
    this.nodes.set(node, entry)
    for (const f of filters) this.add(entry, node, f)
  }

  apply (node: string, seq: number, added: string[] = [], removed: string[] = []): void {
    const entry = this.nodes.get(node)
    if (entry === undefined) return
    for (const f of removed) {
      if (entry.filters.delete(f)) { this.trie.remove(f, node); this.routeCount-- }
    }
    for (const f of added) this.add(entry, node, f)
    entry.seq = seq
  }

  drop (node: string): void {
    const entry = this.nodes.get(node)
    if (entry === undefined) return
    for (const f of entry.filters) this.trie.remove(f, node)
    this.routeCount -= entry.filters.size
    this.nodes.delete(node)
  }

  private add (entry: RemoteNode, node: string, filter: string): void {
    if (entry.filters.has(filter)) return
    try {
      this.trie.add(filter, node)
    } catch { return } // qlobber refuses > 100 levels; aedes never subscribes such a filter, so it is not a route
    entry.filters.add(filter)
    this.routeCount++
  }
}
