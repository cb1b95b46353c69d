// Redis key and channel layout of the cluster route table (hash-tagged per node, Redis-Cluster-ready).
//
// Every key of one node carries the node id as its hash tag (`{<node>}`), so a node's route set, its
// meta record and its message channel live in one hash slot: the conditional delete of a dead node's
// routes is a single-slot script, and on Redis Cluster the per-node channel can be a sharded channel
// (SSUBSCRIBE/SPUBLISH) served by the shard that holds the node's routes.

export interface RouteKeys {
  /** SET of the topic filters node `node` has local subscribers for. */
  routes: (node: string) => string
  /** STRING `<instance> <seq>`: which process owns the route set and the last change it published. */
  meta: (node: string) => string
  /** SET of node ids that have (or had) a route set; discovery at start-up and after a reconnect. */
  registry: string
  /** Channel of route changes (JSON, see RouteChange), subscribed by every node. */
  changes: string
  /** A node's own message channel: exact SUBSCRIBE, one PUBLISH per message per target node. */
  inbox: (node: string) => string
}

export function routeKeys (prefix: string): RouteKeys {
  return {
    routes: node => `${prefix}routes:{${node}}`,
    meta: node => `${prefix}routes:{${node}}:meta`,
    registry: `${prefix}routes:nodes`,
    changes: `${prefix}routes:changes`,
    inbox: node => `${prefix}node:{${node}}`
  }
}

/** One message on the changes channel. `s` is the owner's change counter (per instance, +1 per message). */
export interface RouteChange {
  /** node id */
  n: string
  /** instance (process) id: a restarted node starts a new sequence */
  i: string
  s: number
  /** filters added / removed */
  a?: string[]
  r?: string[]
  /** the whole set was rewritten: reload it from Redis */
  full?: true
  /** the node is gone (closed, or found dead by a peer): drop its routes */
  gone?: true
}
