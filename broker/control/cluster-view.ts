// What the control plane knows of the cluster: the view GET /v1/cluster answers with, and the
// little it needs of the cluster runtime (implemented by broker/cluster; absent when embedded).

export interface NodeHeartbeat {
  node: string
  instance: string
  startedAt: string
  heartbeat: string
  revisions: { stable: string, canary?: string, shadow?: string }
  sessions: number
}

export interface ClusterNodeView extends NodeHeartbeat {
  ageMs: number
  self: boolean
  /** Stable revision differs from the one stored in Redis (or from the majority when none is stored). */
  diverged: boolean
}

export interface ClusterView {
  mode: 'cluster' | 'embedded'
  node: string
  redis?: { url: string, prefix: string, up: boolean, trusted: boolean }
  storeRevision?: string
  majorityRevision?: string
  nodes: ClusterNodeView[]
}

/** The cluster runtime as the control plane sees it. */
export interface ClusterAccess {
  /** Redis connections up. */
  readonly up: boolean
  /** Up and resynchronised since the last outage: shared state may be written. */
  readonly trusted: boolean
  view(): Promise<ClusterView>
}
