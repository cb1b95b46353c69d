// Policy versions: uploaded bundles kept in <dataDir>/policies/<revision>.tar.gz, their metadata and
// the active assignment (stable, previous stables, canary, shadow) in <dataDir>/policies/index.json.
// Every change is validated before it takes traffic, applied to the engine in one assignment, then
// written atomically; all changes are serialised. DESIGN.md "Policy engine contract".
import { DEFAULT_POLICY_HISTORY } from '../core/index.ts'
import { createHash } from 'node:crypto'
import { mkdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import {
  PolicyBundleError, loadBundle, loadGolden, runGolden, compareBundles, validateBundleOffThread, DEFAULT_BUNDLE_PATH, readTarGz, writeTarGz,
  type GoldenCase, type LoadedPolicy, type PolicyEngine, type CanaryTrip, type ShadowDiff, type BundleComparison, type PolicyInput
} from '../../policies/index.ts'
import { writeFileAtomic, type PolicySharedStore } from '../store/index.ts'
import { ControlError } from '../core/index.ts'
import type { SecurityEventInput } from '../core/index.ts'
import type { Metrics } from '../core/index.ts'

export const MAX_BUNDLE_BYTES = 10 * 1024 * 1024
const REVISION_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

export interface PolicyVersion {
  revision: string
  sha256: string
  size: number
  uploadedBy: string
  uploadedAt: string
  notes?: string
}

export interface ActiveAssignment {
  stable: string
  /** Earlier stables, most recent first: rollback goes back to previous[0]. */
  previous: string[]
  canary?: { revision: string, tenants: string[], startedAt: string }
  shadow?: { revision: string, startedAt: string }
}

/** One change of what decides: who, when, why. Kept in the index, newest last (at most HISTORY_MAX). */
export interface PolicyHistoryEntry {
  time: string
  action: 'upload' | 'shadow' | 'canary' | 'promote' | 'rollback' | 'guard_rollback' | 'golden'
  /** Admin token id, 'system' or 'guard' (the automatic canary rollback). */
  actor: string
  revision?: string
  /** The stable revision after the change. */
  stable: string
  tenants?: string[]
  reason?: string
}

const HISTORY_MAX = 1000

interface IndexFile {
  versions: PolicyVersion[]
  active: ActiveAssignment | null
  history?: PolicyHistoryEntry[]
  /** The deployment's golden decisions; absent = the shipped policies/golden.json. */
  golden?: GoldenCase[]
}

export interface PolicyEvaluation { revision: string, allow: boolean, reason: string, error?: string }

export interface PolicyVersionsView {
  versions: PolicyVersion[]
  active: { stable: string, previous: string[], canary?: { revision: string, tenants: string[], startedAt: string }, shadow?: string }
}


export interface PolicyVersionsDeps {
  dataDir: string
  engine: PolicyEngine
  emit: (e: SecurityEventInput) => void
  metrics: Metrics
  log: Logger
  tenantExists: (tenant: string) => boolean
  /** Versions kept (USPGATE_POLICY_HISTORY, default 10); active and previous stables are never deleted. */
  history?: number
  /**
   * Cluster mode: index and bundles live in Redis instead of <dataDir>/policies (broker/cluster.ts);
   * saveIndexIf also tells the other nodes, which call resync().
   */
  shared?: PolicySharedStore
}




export class PolicyVersions {
  private readonly dir: string
  private readonly indexPath: string
  private readonly keep: number
  private index: IndexFile = { versions: [], active: null }
  private readonly loaded = new Map<string, LoadedPolicy>()
  /** What every bundle must reproduce: the deployment's golden decisions, else the shipped ones. */
  private golden: GoldenCase[] = []
  private shippedGolden: GoldenCase[] = []
  private queue: Promise<unknown> = Promise.resolve()
  private readonly metricLabels = new Set<string>()
  /**
   * Cluster mode: the index text as last read from or written to Redis. Every change is written
   * with a compare-and-set against it, so two nodes changing policies at the same moment cannot
   * silently undo each other (a rollback overwritten by an upload made from a stale copy).
   */
  private sharedText: string | null = null

  constructor (private readonly deps: PolicyVersionsDeps) {
    this.dir = join(deps.dataDir, 'policies')
    this.indexPath = join(this.dir, 'index.json')
    this.keep = deps.history ?? DEFAULT_POLICY_HISTORY
  }

  /** Restores versions and the active assignment; an empty store starts from the committed bundle. */
  async load (): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    this.shippedGolden = await loadGolden()
    this.golden = this.shippedGolden
    try {
      const text = this.deps.shared ? await this.deps.shared.loadIndex() : await readFile(this.indexPath, 'utf8')
      if (this.deps.shared) this.sharedText = text
      if (text !== null) {
        const doc = JSON.parse(text) as IndexFile
        this.index = { versions: Array.isArray(doc.versions) ? doc.versions : [], active: doc.active ?? null, history: doc.history ?? [], ...(doc.golden ? { golden: doc.golden } : {}) }
        this.golden = this.index.golden ?? this.shippedGolden
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${this.deps.shared ? 'policy index in Redis' : this.indexPath}: ${(err as Error).message}`)
    }
    const a = this.index.active
    if (a !== null) {
      try {
        const stable = await this.policy(a.stable)
        let canary: LoadedPolicy | undefined
        let shadow: LoadedPolicy | undefined
        try { if (a.canary) canary = await this.policy(a.canary.revision) } catch (err) {
          this.deps.log.error({ err, revision: a.canary?.revision }, 'stored canary policy cannot be loaded; canary dropped')
          delete a.canary
        }
        try { if (a.shadow) shadow = await this.policy(a.shadow.revision) } catch (err) {
          this.deps.log.error({ err, revision: a.shadow?.revision }, 'stored shadow policy cannot be loaded; shadow dropped')
          delete a.shadow
        }
        this.apply(a, stable, canary, shadow)
        this.deps.log.info({ revision: a.stable, canary: a.canary?.revision, shadow: a.shadow?.revision }, 'policy active (restored)')
        return
      } catch (err) {
        this.deps.log.error({ err, revision: a.stable }, 'stored stable policy cannot be loaded; falling back to the committed bundle')
      }
    }
    // Empty store (or unusable stable): the committed bundle, validated, becomes the first version.
    const bytes = await readFile(DEFAULT_BUNDLE_PATH)
    const policy = await loadBundle(bytes, { golden: this.golden })
    if (!this.index.versions.some(v => v.revision === policy.revision)) {
      await this.writeBundle(policy.revision, bytes)
      this.index.versions.push(this.meta(policy.revision, bytes, 'system', 'committed default bundle'))
    }
    this.loaded.set(policy.revision, policy)
    const active: ActiveAssignment = { stable: policy.revision, previous: a !== null && a.stable !== policy.revision ? [a.stable, ...a.previous] : [] }
    const history = withEntry(this.index.history, { action: 'promote', actor: 'system', revision: policy.revision, stable: policy.revision, reason: a === null ? 'first start: the committed bundle' : `stored stable ${a.stable} could not be loaded` })
    if (!(await this.persist({ ...this.index, versions: this.index.versions, active, history }))) {
      // another node of an empty cluster started at the same moment and wrote its index first
      await this.adoptShared()
      return
    }
    this.index.history = history
    this.apply(active, policy, undefined, undefined)
    this.deps.log.info({ revision: policy.revision }, 'policy active')
  }

  view (): PolicyVersionsView {
    const a = this.index.active!
    return {
      versions: this.index.versions.map(v => ({ ...v })),
      active: {
        stable: a.stable,
        previous: [...a.previous],
        ...(a.canary ? { canary: { ...a.canary, tenants: [...a.canary.tenants] } } : {}),
        ...(a.shadow ? { shadow: a.shadow.revision } : {})
      }
    }
  }

  /** Validates (loads + golden) before anything is stored; a refused bundle changes nothing. */
  async upload (bytes: Buffer, notes: string | undefined, actor: string): Promise<PolicyVersion> {
    return await this.change(async () => {
      if (bytes.length === 0) throw new ControlError(400, 'invalid policy bundle', 'bad_archive: the request body is empty (send the bytes of opa build -t wasm)')
      let policy: LoadedPolicy
      try {
        policy = await this.loadUntrusted(bytes)
      } catch (err) {
        if (err instanceof PolicyBundleError) {
          this.deps.emit({ code: 'policy.rejected', actor, action: 'policy.upload', reason: `${err.code}: ${err.message.slice(0, 300)}` })
          throw new ControlError(400, 'invalid policy bundle', `${err.code}: ${err.message}`)
        }
        throw err
      }
      const revision = policy.revision
      if (!REVISION_RE.test(revision)) throw new ControlError(400, 'invalid policy bundle', `bad_manifest: revision "${revision.slice(0, 140)}" must match ${REVISION_RE.source}`)
      if (this.find(revision)) throw new ControlError(409, 'conflict', `policy revision ${revision} already exists`)
      await this.writeBundle(revision, bytes)
      const v = this.meta(revision, bytes, actor, notes)
      // Adding a version does not depend on the rest of the index, so losing the compare-and-set to
      // another node is retried on top of what it wrote (promote, canary and rollback are not: their
      // meaning depends on the state they were asked against, so they answer 409 instead).
      let doc: IndexFile
      let pruned: string[]
      for (let attempt = 1; ; attempt++) {
        doc = { ...this.index, versions: [...this.index.versions, v], active: this.active(), history: withEntry(this.index.history, { action: 'upload', actor, revision, stable: this.active().stable, ...(notes ? { reason: notes } : {}) }) }
        pruned = this.prune(doc)
        if (await this.persist(doc)) break
        await this.adoptShared()
        if (this.find(revision)) throw new ControlError(409, 'conflict', `policy revision ${revision} already exists`)
        if (attempt === 5) {
          if (this.deps.shared) await this.deps.shared.delBundle(revision)
          throw this.concurrentChange()
        }
      }
      this.index = doc
      this.loaded.set(revision, policy)
      for (const r of pruned) {
        if (this.deps.shared) await this.deps.shared.delBundle(r)
        else await rm(this.bundlePath(r), { force: true })
      }
      this.deps.emit({ code: 'policy.uploaded', actor, policyRevision: revision, action: 'policy.upload', reason: `sha256 ${v.sha256.slice(0, 16)}…, ${bytes.length} bytes${notes ? `; ${notes.slice(0, 200)}` : ''}` })
      return { ...v }
    })
  }

  async startShadow (revision: string, actor: string, reason?: string): Promise<PolicyVersionsView> {
    return await this.change(async () => {
      const a = this.active()
      const policy = await this.require(revision)
      if (revision === a.stable) throw new ControlError(409, 'conflict', `${revision} is the stable revision; a shadow must differ from it`)
      const next: ActiveAssignment = { ...a, shadow: { revision, startedAt: new Date().toISOString() } }
      void policy
      await this.commit(next, { action: 'shadow', actor, revision, reason })
      this.deps.emit({ code: 'policy.shadow_started', actor, policyRevision: revision, action: 'policy.shadow', reason: `shadow of stable ${a.stable}` })
      return this.view()
    })
  }

  async startCanary (revision: string, tenants: string[], actor: string, reason?: string): Promise<PolicyVersionsView> {
    return await this.change(async () => {
      const a = this.active()
      await this.require(revision)
      if (revision === a.stable) throw new ControlError(409, 'conflict', `${revision} is already the stable revision`)
      const unique = [...new Set(tenants)]
      const missing = unique.filter(t => !this.deps.tenantExists(t))
      if (missing.length > 0) throw new ControlError(404, 'tenant not found', `no tenant ${missing.map(t => `"${t}"`).join(', ')}`)
      const next: ActiveAssignment = { ...a, canary: { revision, tenants: unique, startedAt: new Date().toISOString() } }
      await this.commit(next, { action: 'canary', actor, revision, tenants: unique, reason })
      this.deps.emit({ code: 'policy.canary_started', actor, policyRevision: revision, action: 'policy.canary', reason: `tenants ${unique.join(', ')} (stable ${a.stable})` })
      return this.view()
    })
  }

  async promote (revision: string, actor: string, reason?: string): Promise<PolicyVersionsView> {
    return await this.change(async () => {
      const a = this.active()
      await this.require(revision)
      if (revision === a.stable) throw new ControlError(409, 'conflict', `${revision} is already the stable revision`)
      const next: ActiveAssignment = { stable: revision, previous: [a.stable, ...a.previous.filter(r => r !== revision && r !== a.stable)].slice(0, this.keep) }
      if (a.canary && a.canary.revision !== revision) next.canary = a.canary
      if (a.shadow && a.shadow.revision !== revision) next.shadow = a.shadow
      await this.commit(next, { action: 'promote', actor, revision, reason })
      this.deps.emit({ code: 'policy.promoted', actor, policyRevision: revision, action: 'policy.promote', reason: `stable ${a.stable} → ${revision}${a.canary?.revision === revision ? ' (canary ended)' : ''}` })
      return this.view()
    })
  }

  /** Canary active → canary off; else stable back to the previous stable. */
  async rollback (actor: string, reason: string | undefined): Promise<PolicyVersionsView> {
    return await this.change(async () => {
      const a = this.active()
      if (a.canary) {
        const { canary, ...rest } = a
        await this.commit(rest, { action: 'rollback', actor, revision: canary.revision, tenants: canary.tenants, reason: `canary off${reason ? `: ${reason}` : ''}` })
        this.deps.emit({ code: 'policy.rolled_back', actor, policyRevision: a.stable, action: 'policy.rollback', reason: `canary ${canary.revision} off for ${canary.tenants.join(', ')}${reason ? `: ${reason}` : ''}` })
        return this.view()
      }
      const prev = a.previous[0]
      if (prev === undefined) throw new ControlError(409, 'conflict', `no previous stable revision to roll back to (stable is ${a.stable})`)
      const next: ActiveAssignment = { stable: prev, previous: a.previous.slice(1) }
      if (a.shadow && a.shadow.revision !== prev) next.shadow = a.shadow
      await this.commit(next, { action: 'rollback', actor, revision: prev, reason: `stable ${a.stable} → ${prev}${reason ? `: ${reason}` : ''}` })
      this.deps.emit({ code: 'policy.rolled_back', actor, policyRevision: prev, action: 'policy.rollback', reason: `stable ${a.stable} → ${prev}${reason ? `: ${reason}` : ''}` })
      return this.view()
    })
  }

  /**
   * A stored revision with exactly the rules of `revision` under the name `<revision>.certify`
   * (the manifest relabelled), uploaded once and reused: certification runs start it as a canary
   * on one tenant to prove rollback without changing what any rule decides.
   */
  async relabelledCopy (revision: string, actor: string): Promise<string> {
    const name = `${revision}.certify`.slice(0, 128)
    if (this.find(name)) return name
    const files = readTarGz(await this.readBundle(revision))
    const manifest = JSON.parse(files.get('.manifest')?.toString('utf8') ?? '{}') as Record<string, unknown>
    files.set('.manifest', Buffer.from(JSON.stringify({ ...manifest, revision: name })))
    await this.upload(writeTarGz(files), `stable ${revision} relabelled for certification canary checks`, actor)
    return name
  }

  diff (revision: string): ShadowDiff {
    if (!this.find(revision)) throw new ControlError(404, 'policy revision not found', `no policy revision ${revision}`)
    const d = this.deps.engine.shadowDiff(revision)
    if (d === undefined) throw new ControlError(409, 'not the shadow', `${revision} is not the shadow revision (start it with POST /v1/policies/${revision}/shadow)`)
    return d
  }

  /** The engine already switched the canary off (synchronously); record it and tell. */
  onCanaryTripped (trip: CanaryTrip): void {
    this.deps.metrics.policyAutoRollbacks.inc()
    this.change(async () => {
      const a = this.active()
      if (a.canary?.revision !== trip.revision) return
      const { canary, ...rest } = a
      await this.commit(rest, { action: 'guard_rollback', actor: 'guard', revision: canary.revision, tenants: canary.tenants, reason: trip.reason })
      this.deps.emit({ code: 'policy.rolled_back', actor: 'guard', tenant: trip.tenant, policyRevision: a.stable, action: 'policy.rollback', reason: `canary ${canary.revision} off for ${canary.tenants.join(', ')}: ${trip.reason}` })
    }).catch(err => this.deps.log.error({ err }, 'recording the automatic canary rollback failed'))
  }

  /** Who changed what decides, when and why; newest first. */
  history (limit = 100): PolicyHistoryEntry[] {
    return (this.index.history ?? []).slice(-limit).reverse().map(e => ({ ...e }))
  }

  /** The bytes of a stored bundle (default: the running stable one), checked against the recorded sha256. */
  async bundle (revision?: string): Promise<{ revision: string, bytes: Buffer }> {
    const r = revision ?? this.active().stable
    const v = this.find(r)
    if (!v) throw new ControlError(404, 'policy revision not found', `no policy revision ${r}`)
    const bytes = await this.readBundle(r)
    if (createHash('sha256').update(bytes).digest('hex') !== v.sha256) throw new Error(`policy bundle ${r}: sha256 differs from the recorded ${v.sha256}`)
    return { revision: r, bytes }
  }

  /** Rego sources and data of two stored revisions, side by side. */
  async compare (from: string, to: string): Promise<BundleComparison> {
    const [a, b] = [await this.bundle(from), await this.bundle(to)]
    return compareBundles(a, b)
  }

  /** A dry run: what `revision` (default: the stable one) decides for one input. Changes nothing, counts nothing. */
  async evaluate (input: PolicyInput, revision?: string): Promise<PolicyEvaluation> {
    const r = revision ?? this.active().stable
    // a stored revision that the current golden decisions would refuse can still be asked
    const policy = this.loaded.get(r) ?? await loadBundle((await this.bundle(r)).bytes)
    try {
      return { revision: r, ...policy.evaluate(input) }
    } catch (err) {
      // what the gateway would do: fail closed
      return { revision: r, allow: false, reason: 'policy_error', error: (err as Error).message.slice(0, 500) }
    }
  }

  goldenCases (): { source: 'deployment' | 'shipped', golden: GoldenCase[] } {
    return { source: this.index.golden ? 'deployment' : 'shipped', golden: this.golden.map(c => ({ ...c })) }
  }

  /**
   * Replaces the deployment's golden decisions (null: back to the shipped ones). The revisions that
   * decide now (stable, canary, shadow) must reproduce them, or nothing changes (400).
   */
  async setGolden (cases: GoldenCase[] | null, actor: string, reason?: string): Promise<{ source: 'deployment' | 'shipped', golden: GoldenCase[] }> {
    return await this.change(async () => {
      const a = this.active()
      const next = cases ?? this.shippedGolden
      for (const r of new Set([a.stable, a.canary?.revision, a.shadow?.revision])) {
        if (r === undefined) continue
        try {
          runGolden(await this.policy(r), next)
        } catch (err) {
          if (err instanceof PolicyBundleError) throw new ControlError(400, 'golden decisions fail', `${r} is active and ${err.message.replace(/^policy bundle \S+ /, '')}`)
          throw err
        }
      }
      const { golden: _old, ...rest } = this.index
      const doc: IndexFile = { ...rest, ...(cases ? { golden: cases } : {}), history: withEntry(this.index.history, { action: 'golden', actor, stable: a.stable, reason: `${cases ? `${cases.length} deployment` : 'the shipped'} golden decisions${reason ? `: ${reason}` : ''}` }) }
      if (!(await this.persist(doc))) {
        await this.adoptShared()
        throw this.concurrentChange()
      }
      this.index = doc
      this.golden = next
      this.deps.emit({ code: 'policy.golden_changed', actor, policyRevision: a.stable, action: 'policy.golden', reason: `${cases ? `${cases.length} deployment` : 'shipped'} golden decisions${reason ? `: ${reason.slice(0, 200)}` : ''}` })
      return this.goldenCases()
    })
  }

  // ---- internals

  private active (): ActiveAssignment {
    if (this.index.active === null) throw new Error('policy versions not loaded')
    return this.index.active
  }

  private find (revision: string): PolicyVersion | undefined {
    return this.index.versions.find(v => v.revision === revision)
  }

  /**
   * An uploaded bundle: validated in a worker with a heap limit and a deadline first, so a hostile module
   * never runs on the event loop; only then loaded here (and stored for the other nodes).
   */
  private async loadUntrusted (bytes: Buffer): Promise<LoadedPolicy> {
    await validateBundleOffThread(bytes, this.golden)
    return await loadBundle(bytes, { golden: this.golden })
  }

  private async require (revision: string): Promise<LoadedPolicy> {
    if (!this.find(revision)) throw new ControlError(404, 'policy revision not found', `no policy revision ${revision}`)
    return await this.policy(revision)
  }

  /** A stored bundle, checked against its recorded sha256 and validated again (golden). */
  private async policy (revision: string, versions = this.index.versions): Promise<LoadedPolicy> {
    const cached = this.loaded.get(revision)
    if (cached) return cached
    const v = versions.find(x => x.revision === revision)
    if (!v) throw new Error(`policy revision ${revision} is not in ${this.indexPath}`)
    const bytes = await this.readBundle(revision)
    const sha = createHash('sha256').update(bytes).digest('hex')
    if (sha !== v.sha256) throw new Error(`${this.bundlePath(revision)}: sha256 ${sha} differs from the recorded ${v.sha256}`)
    // stored bundles (sha256-checked above) were validated off the event loop when they were uploaded
    const p = await loadBundle(bytes, { golden: this.golden })
    if (p.revision !== revision) throw new Error(`${this.bundlePath(revision)} holds revision ${p.revision}`)
    this.loaded.set(revision, p)
    return p
  }

  /** Loads every policy of the assignment, persists it, then switches the engine (nothing switches if the write loses). */
  private async commit (next: ActiveAssignment, entry: Omit<PolicyHistoryEntry, 'time' | 'stable' | 'reason'> & { reason?: string | undefined }): Promise<void> {
    this.deps.shared?.assertWritable()
    const stable = await this.policy(next.stable)
    const canary = next.canary ? await this.policy(next.canary.revision) : undefined
    const shadow = next.shadow ? await this.policy(next.shadow.revision) : undefined
    const { reason, ...rest } = entry
    const history = withEntry(this.index.history, { ...rest, stable: next.stable, ...(reason ? { reason } : {}) })
    if (!(await this.persist({ ...this.index, active: next, history }))) {
      await this.adoptShared()
      throw this.concurrentChange()
    }
    this.index.history = history
    this.apply(next, stable, canary, shadow)
  }

  private concurrentChange (): ControlError {
    return new ControlError(409, 'conflict', 'the policy versions were changed on another node during this request; nothing was changed by it. GET /v1/policies shows the current state; retry if it still applies')
  }

  /** A change: serialised on this node and, in cluster mode, made on top of the latest shared index. */
  private change<T> (fn: () => Promise<T>): Promise<T> {
    return this.serial(async () => {
      this.deps.shared?.assertWritable()
      await this.adoptShared()
      return await fn()
    })
  }

  private apply (a: ActiveAssignment, stable: LoadedPolicy, canary: LoadedPolicy | undefined, shadow: LoadedPolicy | undefined): void {
    this.deps.engine.assign({
      stable,
      ...(canary && a.canary ? { canary: { policy: canary, tenants: a.canary.tenants } } : {}),
      ...(shadow ? { shadow } : {})
    })
    this.index.active = a
    // drop policies no longer active from memory (they are reloaded from disk on demand)
    const keep = new Set([a.stable, a.canary?.revision, a.shadow?.revision])
    for (const r of [...this.loaded.keys()]) if (!keep.has(r)) this.loaded.delete(r)
    this.updateMetric(a)
  }

  private updateMetric (a: ActiveAssignment): void {
    const want = new Map<string, [string, string]>()
    want.set(`${a.stable}\0stable`, [a.stable, 'stable'])
    if (a.canary) want.set(`${a.canary.revision}\0canary`, [a.canary.revision, 'canary'])
    if (a.shadow) want.set(`${a.shadow.revision}\0shadow`, [a.shadow.revision, 'shadow'])
    const gauge = this.deps.metrics.policyInfo
    for (const k of this.metricLabels) {
      if (!want.has(k)) { const [r, s] = k.split('\0') as [string, string]; gauge.remove(r, s); this.metricLabels.delete(k) }
    }
    for (const [k, [r, s]] of want) { gauge.labels(r, s).set(1); this.metricLabels.add(k) }
  }

  /** Keeps the last N versions of `doc`; active and previous-stable revisions are never deleted. */
  private prune (doc: IndexFile): string[] {
    const a = doc.active!
    const protectedRevs = new Set([a.stable, ...a.previous, a.canary?.revision, a.shadow?.revision])
    const excess = doc.versions.length - this.keep
    if (excess <= 0) return []
    const removed: string[] = []
    for (const v of doc.versions) {
      if (removed.length >= excess) break
      if (!protectedRevs.has(v.revision)) removed.push(v.revision)
    }
    doc.versions = doc.versions.filter(v => !removed.includes(v.revision))
    return removed
  }

  private meta (revision: string, bytes: Buffer, actor: string, notes: string | undefined): PolicyVersion {
    return {
      revision,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      size: bytes.length,
      uploadedBy: actor,
      uploadedAt: new Date().toISOString(),
      ...(notes !== undefined && notes !== '' ? { notes } : {})
    }
  }

  private bundlePath (revision: string): string {
    return join(this.dir, `${revision}.tar.gz`)
  }

  /** Writes the index; in cluster mode only if nobody changed it since this node last read it. */
  private async persist (doc: IndexFile): Promise<boolean> {
    const text = JSON.stringify(doc, null, 2) + '\n'
    if (!this.deps.shared) {
      await writeFileAtomic(this.indexPath, text)
      return true
    }
    if (!(await this.deps.shared.saveIndexIf(text, this.sharedText))) return false
    this.sharedText = text
    return true
  }

  private async writeBundle (revision: string, bytes: Buffer): Promise<void> {
    if (this.deps.shared) await this.deps.shared.putBundle(revision, bytes)
    else await writeFileAtomic(this.bundlePath(revision), bytes)
  }

  private async readBundle (revision: string): Promise<Buffer> {
    if (!this.deps.shared) return await readFile(this.bundlePath(revision))
    const bytes = await this.deps.shared.getBundle(revision)
    if (bytes === null) throw new Error(`policy bundle ${revision} is missing from Redis`)
    return bytes
  }

  /**
   * Cluster mode: another node changed the index (or this node missed messages). Re-reads it and
   * switches the engine to the stored assignment; a bundle that cannot be loaded keeps the current one.
   */
  async resync (): Promise<void> {
    await this.serial(async () => { await this.adoptShared() })
  }

  private async adoptShared (): Promise<void> {
    if (!this.deps.shared) return
    const text = await this.deps.shared.loadIndex()
    if (text === null || text === this.sharedText) return
    const doc = JSON.parse(text) as IndexFile
    const versions = Array.isArray(doc.versions) ? doc.versions : []
    this.index.history = doc.history ?? []
    if (doc.golden) this.index.golden = doc.golden
    else delete this.index.golden
    this.golden = doc.golden ?? this.shippedGolden
    const a = doc.active
    if (a === null || a === undefined) {
      this.index.versions = versions
      this.sharedText = text
      return
    }
    const cur = this.index.active
    if (cur === null || JSON.stringify(cur) !== JSON.stringify(a)) {
      const stable = await this.policy(a.stable, versions)
      const canary = a.canary ? await this.policy(a.canary.revision, versions) : undefined
      const shadow = a.shadow ? await this.policy(a.shadow.revision, versions) : undefined
      this.apply(a, stable, canary, shadow)
      this.deps.log.info({ revision: a.stable, canary: a.canary?.revision, shadow: a.shadow?.revision }, 'policy assignment synchronised from the cluster')
    }
    this.index.versions = versions
    this.sharedText = text
  }

  private serial<T> (fn: () => Promise<T>): Promise<T> {
    const next = this.queue.catch(() => {}).then(fn)
    this.queue = next
    return next
  }
}

function withEntry (history: PolicyHistoryEntry[] | undefined, e: Omit<PolicyHistoryEntry, 'time'>): PolicyHistoryEntry[] {
  return [...(history ?? []), { time: new Date().toISOString(), ...e }].slice(-HISTORY_MAX)
}
