// Only the filters authorizeSubscribe granted are stored in a persistent session (aedes 2.0.0-beta.1).
//
// lib/handlers/subscribe.js storeSubscriptions() calls `persistence.addSubscriptions(client,
// packet.subscriptions)` — the whole SUBSCRIBE packet — once for every granted filter. In a mixed
// SUBSCRIBE [own inbox, '#', 'globex/#'] the SUBACK refuses the last two, yet all three are written
// to the session: the memory persistence then queues every tenant's messages for it (caught at
// delivery, but memory grows without bound) and aedes-persistence-redis writes '#' to Redis.
// Upstream: moscajs/aedes#828 ("persistence addSubscription stores the entire sub packet") and
// moscajs/aedes#415 ("Check the returned subscription in authorizeSubscribe").
//
// The fix: the subscribe pipeline marks each subscription it grants; the persistence keeps only
// marked ones (a `$share/...` filter aedes refuses with 0x9E is never marked either).

const GRANTED = Symbol.for('uspgate.subscriptionGranted')

type Sub = { topic: string } & { [GRANTED]?: true }
type SubscriptionStore = { addSubscriptions(client: unknown, subs: Sub[]): Promise<unknown> }

/** Called by the subscribe pipeline for a filter it lets through. */
export function markGranted (sub: object): void {
  (sub as Sub)[GRANTED] = true
}

export function storeGrantedSubscriptionsOnly<T> (persistence: T): T {
  const p = persistence as T & SubscriptionStore
  const add = p.addSubscriptions.bind(p)
  p.addSubscriptions = async (client: unknown, subs: Sub[]) => {
    const granted = subs.filter(s => s[GRANTED] === true)
    if (granted.length === 0) return undefined
    return await add(client, granted)
  }
  return p
}
