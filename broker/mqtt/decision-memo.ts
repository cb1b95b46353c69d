// A session's memo of policy decisions for one revision: one Map lookup per repeated (topic, QoS,
// retain), no key building. A revision change (promote, canary, rollback) empties it, so rights that
// shrink take effect on live sessions at once; revocation cuts the session (and its memo) anyway.
import type { Decision } from '../../policies/index.ts'

/**
 * Entries a session keeps before its memo starts over: at least MIN_ENTRIES, and twice the connected
 * sessions, so a controller that addresses every agent of the node in turn keeps one entry per agent
 * (with a fixed 4,096 its memo started over on every pass through 10,000 agents, and every PUBLISH went
 * back to the policy engine). Bounded by the fleet, which the decision cache is sized by too.
 */
export const MIN_ENTRIES = 4096

export class DecisionMemo {
  private revision = ''
  private size = 0
  // one Map per (QoS, retain): index qos * 2 + (retain ? 1 : 0); QoS 0..2 only reach here
  private readonly byKind: Array<Map<string, Decision> | undefined> = [undefined, undefined, undefined, undefined, undefined, undefined]
  // The last answer: an agent publishes to one controller inbox and is delivered its own inbox only.
  private lastTopic = ''
  private lastKind = -1
  private last: Decision | undefined

  get (revision: string, topic: string, qos: number, retain: boolean): Decision | undefined {
    if (revision !== this.revision) return undefined
    const kind = qos * 2 + (retain ? 1 : 0)
    if (kind === this.lastKind && topic === this.lastTopic) return this.last
    const d = this.byKind[kind]?.get(topic)
    if (d !== undefined) { this.lastTopic = topic; this.lastKind = kind; this.last = d }
    return d
  }

  /** Errors are not remembered: the next message asks again. */
  set (topic: string, qos: number, retain: boolean, d: Decision, maxEntries: number): void {
    if (d.reason === 'policy_error') return
    if (d.revision !== this.revision || this.size >= maxEntries) {
      this.byKind.fill(undefined)
      this.revision = d.revision
      this.size = 0
      this.lastKind = -1
      this.last = undefined
    }
    const i = qos * 2 + (retain ? 1 : 0)
    const map = this.byKind[i] ??= new Map()
    if (!map.has(topic)) this.size++
    map.set(topic, d)
  }
}
