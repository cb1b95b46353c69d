// Counts of the embedded (in-memory) session store for the uspgate_retained_messages and
// uspgate_queued_messages gauges. Retained topics are counted by the retained index
// (patches/retained-index.ts). aedes-persistence keeps its queues private, so queued QoS 1/2 messages are
// counted beside them by wrapping the calls that change them: +1 per subscriber on enqueue and -1 when an
// acknowledgement clears one.
type Fn = (...args: any[]) => any

export interface StoreCounts { retained: () => number, queued: () => number }

export function countMemoryStore<T extends { countRetained(): number }> (persistence: T): StoreCounts {
  const p = persistence as unknown as Record<string, Fn>
  let queued = 0
  const enqueue = p.outgoingEnqueue!.bind(p)
  p.outgoingEnqueue = (sub: unknown, packet: unknown, ...rest: unknown[]) => { queued++; return enqueue(sub, packet, ...rest) }
  const enqueueCombi = p.outgoingEnqueueCombi!.bind(p)
  p.outgoingEnqueueCombi = (subs: unknown[], packet: unknown, ...rest: unknown[]) => { queued += subs.length; return enqueueCombi(subs, packet, ...rest) }
  const clear = p.outgoingClearMessageId!.bind(p)
  p.outgoingClearMessageId = (client: unknown, packet: unknown, cb?: Fn) => {
    // the memory store yields the cleared packet, or undefined when nothing was queued under that id
    const counted = (cleared: unknown): unknown => { if (cleared !== undefined && cleared !== null) queued--; return cleared }
    if (typeof cb === 'function') return clear(client, packet, (err: unknown, cleared: unknown) => cb(err, err ? cleared : counted(cleared)))
    const r = clear(client, packet)
    return r instanceof Promise ? r.then(counted) : r
  }
  return { retained: () => persistence.countRetained(), queued: () => Math.max(0, queued) }
}
