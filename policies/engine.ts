// The in-process policy engine: decides with the active bundle's wasm, behind a decision cache.
// DESIGN.md "The hot path of one PUBLISH": per-message work after the first decision must be a
// cache hit — no JSON round-trip into wasm. Fails closed: no policy or an evaluation error is a deny.
import { DecisionCache } from './cache.ts'
import type { LoadedPolicy } from './bundle.ts'
import type { Decision, PolicyClient, PolicyInput } from './types.ts'

export const DEFAULT_CACHE_SIZE = 100_000
/**
 * Decisions one connected session keeps warm: an agent's inbox subscription, its publishes and the
 * deliveries to it, and its controller's requests to it (measured ≈4 per agent in the fleet bench).
 */
export const DECISIONS_PER_SESSION = 4

export interface PolicyEngineOptions {
  /** Maximum cached decisions (default 100 000). */
  cacheSize?: number
  /** Called on every evaluation error (the decision is a deny with reason 'policy_error'). */
  onError?: (err: Error, input: PolicyInput) => void
  /** Canary rollback guard; omit to disable it. */
  guard?: Partial<CanaryGuardOptions>
  /** Called (synchronously, after the canary was already switched off) when the guard trips. */
  onCanaryTripped?: (trip: CanaryTrip) => void
  /** Clock for the sliding windows (tests). */
  now?: () => number
  /** Called after each uncached evaluation with its duration (the uspgate_decision_seconds histogram). */
  onEvaluated?: (action: string, seconds: number) => void
}

export interface PolicyEngineStats {
  hits: number
  misses: number
  /** wasm evaluations; a cache hit never adds one */
  evaluations: number
  errors: number
  cached: number
}

export class PolicyEngine {
  /** The whole assignment in one immutable object: every switch is a single assignment. */
  private state: EngineState = EMPTY_STATE
  private shadowReport: ShadowCollector | undefined
  private readonly rates: TenantRates
  private readonly guardOptions: CanaryGuardOptions
  private readonly onCanaryTripped: ((trip: CanaryTrip) => void) | undefined
  private readonly now: () => number
  private readonly cache: DecisionCache<Decision>
  private readonly onError: ((err: Error, input: PolicyInput) => void) | undefined
  private readonly counters = { hits: 0, misses: 0, evaluations: 0, errors: 0 }
  /** sharedDecision's table */
  private readonly shared = new Map<string, Decision>()

  private readonly onEvaluated: ((action: string, seconds: number) => void) | undefined
  constructor (opts: PolicyEngineOptions = {}) {
    this.cache = new DecisionCache(opts.cacheSize ?? DEFAULT_CACHE_SIZE)
    this.onError = opts.onError
    this.now = opts.now ?? Date.now
    this.guardOptions = { ...DEFAULT_GUARD, ...opts.guard }
    this.rates = new TenantRates(this.guardOptions.windowMs)
    this.onCanaryTripped = opts.onCanaryTripped
    this.onEvaluated = opts.onEvaluated
  }

  /**
   * Makes a loaded (validated) policy the only one that decides (stable; no canary, no shadow).
   * The swap is a single assignment, so a decision is made wholly by the old or wholly by the new
   * revision; cached decisions of the old revision are dropped (and could not match anyway: the
   * revision is part of every key).
   */
  activate (policy: LoadedPolicy): void {
    this.assign({ stable: policy })
  }

  /**
   * Atomically installs a whole assignment: stable, optional canary (with its tenants) and optional
   * shadow. The cache is kept when only the canary changes (keys carry the revision, so an entry of
   * a revision no longer active for a tenant can never be served — it is simply never looked up);
   * it is cleared when stable or shadow changes, so dead entries go and a new shadow sees traffic
   * (shadow is evaluated only on stable cache misses: it sees each distinct decision once per cache
   * generation).
   */
  assign (a: PolicyAssignment): void {
    const prev = this.state
    const canary = a.canary === undefined
      ? undefined
      : { policy: a.canary.policy, tenants: new Set(a.canary.tenants), baseline: this.baselineFor(a.stable.revision, a.canary.tenants, prev) }
    this.state = Object.freeze({ stable: a.stable, canary, shadow: a.shadow })
    if (a.shadow?.revision !== prev.shadow?.revision) {
      this.shadowReport = a.shadow === undefined ? undefined : new ShadowCollector(a.shadow.revision, a.stable.revision, this.now())
    } else if (this.shadowReport !== undefined && a.stable.revision !== prev.stable?.revision) {
      this.shadowReport = new ShadowCollector(this.shadowReport.revision, a.stable.revision, this.now())
    }
    if (a.stable.revision !== prev.stable?.revision || a.shadow?.revision !== prev.shadow?.revision) this.cache.clear()
  }

  /** Revision of the stable policy, or '' when none is active. */
  get revision (): string {
    return this.state.stable?.revision ?? ''
  }

  /** The stable policy. */
  get policy (): LoadedPolicy | undefined {
    return this.state.stable
  }

  /** What decides now: stable, canary (+ tenants), shadow revisions. */
  get assignment (): { stable: string, canary?: { revision: string, tenants: string[] }, shadow?: string } {
    const s = this.state
    return {
      stable: s.stable?.revision ?? '',
      ...(s.canary ? { canary: { revision: s.canary.policy.revision, tenants: [...s.canary.tenants] } } : {}),
      ...(s.shadow ? { shadow: s.shadow.revision } : {})
    }
  }

  /** Revision that decides for a tenant ('' when none). */
  revisionFor (tenant: string): string {
    const s = this.state
    return s.canary?.tenants.has(tenant) === true ? s.canary.policy.revision : s.stable?.revision ?? ''
  }

  /** Disagreements of the shadow revision with stable, or undefined when that revision is not the shadow. */
  shadowDiff (revision: string): ShadowDiff | undefined {
    const r = this.shadowReport
    return r?.revision === revision ? r.report() : undefined
  }

  /** Decisions / denies / errors of one tenant under one revision over the guard window. */
  tenantRate (tenant: string, revision: string): WindowCounts {
    return this.rates.sum(tenant, revision, this.now())
  }

  /**
   * Sizes the decision cache for `sessions` connected clients (never below the configured size, never
   * shrinking). A fixed bound stops holding the working set once the fleet outgrows it: a controller
   * cycling through more than ~25k agents under a 100k bound missed on every request (a wasm evaluation,
   * ~15 µs, instead of a map lookup). Growth is by doubling, so a fleet connecting costs O(1) per connect.
   */
  fitSessions (sessions: number): void {
    const need = sessions * DECISIONS_PER_SESSION
    let cap = this.cache.capacity
    if (need <= cap) return
    while (cap < need) cap *= 2
    this.cache.grow(cap)
  }

  /** The decision cache's current bound. */
  get cacheCapacity (): number {
    return this.cache.capacity
  }

  get stats (): PolicyEngineStats {
    return { ...this.counters, cached: this.cache.size }
  }

  /** Synchronous and never throws: a cache hit, else one wasm evaluation (cached when it succeeds). */
  decide (input: PolicyInput): Decision {
    const state = this.state
    const canary = state.canary
    // malformed input (no client) must still end in a deny, never a throw
    const tenant = (input?.client as { tenant?: unknown } | undefined)?.tenant
    const isCanary = canary !== undefined && typeof tenant === 'string' && canary.tenants.has(tenant)
    const policy = isCanary ? canary.policy : state.stable
    if (policy === undefined) return NO_POLICY
    const d = this.decideWith(policy, input)
    if (typeof tenant === 'string') this.record(tenant, d, isCanary)
    if (!d.cached && !isCanary && state.shadow !== undefined && d.reason !== 'policy_error') this.compareShadow(state.shadow, input, d)
    return d
  }

  private decideWith (policy: LoadedPolicy, input: PolicyInput): Decision {
    let identity: string
    let key: string
    try {
      identity = identityKey(input.client)
      key = decisionKey(policy.revision, input)
    } catch (err) {
      return this.fail(policy, err, input)
    }
    const hit = this.cache.get(identity, key)
    if (hit !== undefined) {
      this.counters.hits++
      return hit
    }
    this.counters.misses++
    this.counters.evaluations++
    let result
    // timed only on a miss: a cache hit costs less than reading the clock twice
    // performance.now(): a double, where hrtime.bigint() allocated two BigInts per evaluation
    const started = this.onEvaluated !== undefined ? performance.now() : 0
    try {
      // Only the contract's fields reach the Rego, so the key above covers everything it can read.
      result = policy.evaluate(contractInput(input))
    } catch (err) {
      return this.fail(policy, err, input)
    }
    if (this.onEvaluated !== undefined) this.onEvaluated(input.action, (performance.now() - started) / 1e3)
    const { allow, reason } = result
    const revision = policy.revision
    this.cache.set(identity, key, this.sharedDecision(allow, reason, revision, true))
    return this.sharedDecision(allow, reason, revision, false)
  }

  /**
   * One frozen object per (revision, allow, reason, cached): a decision carries nothing of its input,
   * so the decision cache and every session's memo share a handful of objects instead of holding one
   * per topic (at 10,000 agents the Controller's memo held 10,000 copies, and reading the one for the
   * next Get's inbox was one more cold cache line per round trip). Bounded: a bundle whose reasons
   * vary per input just stops sharing once the table is full, and starts over.
   */
  private sharedDecision (allow: boolean, reason: string, revision: string, cached: boolean): Decision {
    const key = (cached ? (allow ? 'A' : 'D') : (allow ? 'a' : 'd')) + revision.length + ':' + revision + reason
    let d = this.shared.get(key)
    if (d === undefined) {
      if (this.shared.size >= MAX_SHARED_DECISIONS) this.shared.clear()
      d = Object.freeze({ allow, reason, revision, cached })
      this.shared.set(key, d)
    }
    return d
  }

  /** Cache-only lookup for a synchronous hot path that must not evaluate: undefined on a miss. */
  peek (input: PolicyInput): Decision | undefined {
    const state = this.state
    const canary = state.canary
    // malformed input (no client) must still end in a deny, never a throw
    const tenant = (input?.client as { tenant?: unknown } | undefined)?.tenant
    const isCanary = canary !== undefined && typeof tenant === 'string' && canary.tenants.has(tenant)
    const policy = isCanary ? canary.policy : state.stable
    if (policy === undefined) return undefined
    try {
      const hit = this.cache.get(identityKey(input.client), decisionKey(policy.revision, input))
      if (hit !== undefined) {
        this.counters.hits++
        this.record(input.client.tenant, hit, isCanary)
      }
      return hit
    } catch {
      return undefined
    }
  }

  /** Drops every cached decision of one identity; call it when its credential is revoked. */
  invalidateIdentity (tenant: string, principal: string): number {
    return this.cache.deleteIdentity(`${tenant}:${principal}`)
  }

  /**
   * A decision the caller kept (a session's memo of its topics) was used again: counted like a cache
   * hit, in the tenant's window too, so the canary guard sees every publish it decided.
   */
  reused (tenant: string, d: Decision): void {
    this.counters.hits++
    const canary = this.state.canary
    this.record(tenant, d, canary !== undefined && canary.tenants.has(tenant))
  }

  /** Counts the decision in the tenant's sliding window; a canary deny/error checks the guard. */
  private record (tenant: string, d: Decision, isCanary: boolean): void {
    const now = this.now()
    this.rates.record(tenant, d.revision, d.allow, d.reason === 'policy_error', now)
    if (isCanary && !d.allow) this.checkGuard(tenant, d.revision, now)
  }

  /** The stable deny/error rates of the canary tenants just before the canary starts (its baseline). */
  private baselineFor (stableRevision: string, tenants: string[], prev: EngineState): Map<string, WindowCounts> {
    const out = new Map<string, WindowCounts>()
    // a canary that is re-assigned unchanged keeps its baseline
    if (prev.canary !== undefined && prev.stable?.revision === stableRevision) {
      for (const t of tenants) { const b = prev.canary.baseline.get(t); if (b) out.set(t, b) }
    }
    const now = this.now()
    for (const t of tenants) if (!out.has(t)) out.set(t, this.rates.sum(t, stableRevision, now))
    return out
  }

  private checkGuard (tenant: string, revision: string, now: number): void {
    const g = this.guardOptions
    if (!g.enabled) return
    const canary = this.state.canary
    if (canary === undefined || canary.policy.revision !== revision) return
    const c = this.rates.sum(tenant, revision, now)
    if (c.decisions < g.minDecisions) return
    const base = canary.baseline.get(tenant) ?? ZERO_COUNTS
    const enough = base.decisions >= g.minDecisions
    const baseDeny = enough ? base.denies / base.decisions : 0
    const baseErr = enough ? base.errors / base.decisions : 0
    const denyRate = c.denies / c.decisions
    const errRate = c.errors / c.decisions
    const denyLimit = Math.max(g.maxDenyMultiple * baseDeny, g.minDenyRate)
    const errLimit = Math.max(g.maxDenyMultiple * baseErr, g.minDenyRate)
    let why: string | undefined
    if (c.errors >= g.minDenies && errRate > errLimit) {
      why = `canary ${revision} error rate ${pct(errRate)} for tenant ${tenant} (${c.errors}/${c.decisions} in ${g.windowMs / 1000}s) above ${pct(errLimit)} (stable baseline ${pct(baseErr)})`
    } else if (c.denies >= g.minDenies && denyRate > denyLimit) {
      why = `canary ${revision} deny rate ${pct(denyRate)} for tenant ${tenant} (${c.denies}/${c.decisions} in ${g.windowMs / 1000}s) above ${g.maxDenyMultiple}x stable baseline ${pct(baseDeny)}${enough ? '' : ' (too few baseline decisions: counted as 0)'} with floor ${pct(g.minDenyRate)}`
    }
    if (why === undefined) return
    // Off at once, synchronously: the very next decision of these tenants is stable's.
    const s = this.state
    this.state = Object.freeze({ stable: s.stable, canary: undefined, shadow: s.shadow })
    try {
      this.onCanaryTripped?.({ revision, tenant, reason: why, canary: c, baseline: base })
    } catch {
      // an observer must not break a decision
    }
  }

  private compareShadow (shadow: LoadedPolicy, input: PolicyInput, stable: Decision): void {
    const report = this.shadowReport
    if (report === undefined) return
    let got: { allow: boolean, reason: string }
    try {
      got = shadow.evaluate(contractInput(input))
    } catch {
      got = { allow: false, reason: 'policy_error' }
    }
    report.add(input, stable, got, this.now())
  }

  private fail (policy: LoadedPolicy, err: unknown, input: PolicyInput): Decision {
    this.counters.errors++
    const error = err instanceof Error ? err : new Error(String(err))
    try {
      this.onError?.(error, input)
    } catch {
      // a failing observer must not turn a deny into a throw
    }
    return Object.freeze({ allow: false, reason: 'policy_error', revision: policy.revision, cached: false, error: error.message })
  }
}

/** Distinct shared decisions an engine keeps (sharedDecision): revisions × outcomes × reasons, normally a few dozen. */
const MAX_SHARED_DECISIONS = 1024

const NO_POLICY: Decision = Object.freeze({
  allow: false, reason: 'no_policy', revision: '', cached: false, error: 'no policy bundle is active'
})

/** "<tenant>:<principal>" — the username form; tenant ids never contain ':' (DESIGN.md). */
function identityKey (client: PolicyClient): string {
  return client.tenant + ':' + client.principal
}

/**
 * Everything the Rego can read, as one flat string: revision, action, client fields, qos, retain,
 * target, and the topic last. Client-chosen strings are length-prefixed and the topic ends the
 * key, so two different inputs never share a key (action, role, auth and listener are words the
 * gateway itself sets; tenant and principal select the identity bucket).
 */
function decisionKey (revision: string, input: PolicyInput): string {
  const c = input.client
  // Joined, not built with +: a chain of + is a rope of cons cells, which the cache then keeps
  // (measured ~800 B per cached key instead of ~180 B: kilobytes per connected agent).
  const parts = [revision, input.action, c.role, c.auth, c.listener, scalar(c.protocol), str(c.client_id), scalar(input.qos), scalar(input.retain)]
  const t = input.target
  if (t !== undefined) parts.push(str(t.tenant) + str(t.principal) + str(t.role))
  parts.push(input.topic === undefined ? '' : str(input.topic))
  return parts.join('\0')
}

function str (v: unknown): string {
  return typeof v === 'string' ? v.length + ':' + v : '?' + JSON.stringify(v)
}

function scalar (v: unknown): string {
  return typeof v === 'number' || typeof v === 'boolean' ? String(v) : v === undefined ? '' : '?' + JSON.stringify(v)
}

function contractInput (input: PolicyInput): PolicyInput {
  const c = input.client
  const out: PolicyInput = {
    action: input.action,
    client: {
      tenant: c.tenant,
      principal: c.principal,
      role: c.role,
      client_id: c.client_id,
      protocol: c.protocol,
      auth: c.auth,
      listener: c.listener
    }
  }
  if (input.topic !== undefined) out.topic = input.topic
  if (input.qos !== undefined) out.qos = input.qos
  if (input.retain !== undefined) out.retain = input.retain
  if (input.target !== undefined) out.target = { tenant: input.target.tenant, principal: input.target.principal, role: input.target.role }
  return out
}

// ---- versions: assignment, shadow report, canary guard

export interface PolicyAssignment {
  stable: LoadedPolicy
  canary?: { policy: LoadedPolicy, tenants: string[] } | undefined
  shadow?: LoadedPolicy | undefined
}

interface EngineState {
  readonly stable: LoadedPolicy | undefined
  readonly canary: { policy: LoadedPolicy, tenants: Set<string>, baseline: Map<string, WindowCounts> } | undefined
  readonly shadow: LoadedPolicy | undefined
}

const EMPTY_STATE: EngineState = Object.freeze({ stable: undefined, canary: undefined, shadow: undefined })

export interface CanaryGuardOptions {
  enabled: boolean
  /** Sliding window of the per-tenant, per-revision counters (default 30 s). */
  windowMs: number
  /** Trip when the canary deny (or error) rate exceeds this multiple of stable's baseline (default 3). */
  maxDenyMultiple: number
  /** Canary decisions of a tenant in the window before the guard judges (default 20). */
  minDecisions: number
  /** Canary denies (or errors) of a tenant in the window before the guard may trip (default 5). */
  minDenies: number
  /** Absolute floor of the limit, so a zero baseline does not make one deny a trip (default 0.1). */
  minDenyRate: number
}

export const DEFAULT_GUARD: CanaryGuardOptions = { enabled: true, windowMs: 30_000, maxDenyMultiple: 3, minDecisions: 20, minDenies: 5, minDenyRate: 0.1 }

export interface WindowCounts { decisions: number, denies: number, errors: number }
const ZERO_COUNTS: WindowCounts = Object.freeze({ decisions: 0, denies: 0, errors: 0 })

export interface CanaryTrip {
  revision: string
  tenant: string
  reason: string
  canary: WindowCounts
  baseline: WindowCounts
}

const BUCKETS = 10

/** Decisions, denies and errors in BUCKETS time buckets covering the window. */
class RateWindow {
  private readonly epoch = new Array<number>(BUCKETS).fill(-1)
  private readonly n = new Array<number>(BUCKETS).fill(0)
  private readonly d = new Array<number>(BUCKETS).fill(0)
  private readonly e = new Array<number>(BUCKETS).fill(0)

  record (bucket: number, deny: boolean, error: boolean): void {
    const i = bucket % BUCKETS
    if (this.epoch[i] !== bucket) { this.epoch[i] = bucket; this.n[i] = 0; this.d[i] = 0; this.e[i] = 0 }
    this.n[i]!++
    if (deny) this.d[i]!++
    if (error) this.e[i]!++
  }

  sum (bucket: number): WindowCounts {
    const out = { decisions: 0, denies: 0, errors: 0 }
    for (let i = 0; i < BUCKETS; i++) {
      if (this.epoch[i]! > bucket - BUCKETS) { out.decisions += this.n[i]!; out.denies += this.d[i]!; out.errors += this.e[i]! }
    }
    return out
  }
}

/** tenant → revision → window. Two Map lookups per decision, no allocation after the first. */
class TenantRates {
  private readonly byTenant = new Map<string, Map<string, RateWindow>>()
  private readonly bucketMs: number

  constructor (windowMs: number) {
    this.bucketMs = Math.max(1, Math.floor(windowMs / BUCKETS))
  }

  record (tenant: string, revision: string, allow: boolean, error: boolean, now: number): void {
    let revs = this.byTenant.get(tenant)
    if (revs === undefined) { revs = new Map(); this.byTenant.set(tenant, revs) }
    let w = revs.get(revision)
    if (w === undefined) {
      // revisions are few; a tenant keeps at most the last 4 it was decided by
      if (revs.size >= 4) revs.delete(revs.keys().next().value!)
      w = new RateWindow()
      revs.set(revision, w)
    }
    w.record(Math.floor(now / this.bucketMs), !allow, error)
  }

  sum (tenant: string, revision: string, now: number): WindowCounts {
    return this.byTenant.get(tenant)?.get(revision)?.sum(Math.floor(now / this.bucketMs)) ?? { ...ZERO_COUNTS }
  }
}

export interface ShadowSample {
  time: string
  tenant: string
  principal: string
  role: string
  action: string
  topic?: string
  stable: { allow: boolean, reason: string }
  shadow: { allow: boolean, reason: string }
}

export interface ShadowDiff {
  revision: string
  stable: string
  since: string
  /** Distinct decisions compared (stable cache misses of stable tenants). */
  compared: number
  disagreements: number
  counts: Array<{ action: string, stable: string, shadow: string, count: number }>
  sample: ShadowSample[]
}

export const SHADOW_SAMPLE_SIZE = 100
const SHADOW_MAX_KEYS = 1000

class ShadowCollector {
  private compared = 0
  private disagreements = 0
  private readonly counts = new Map<string, { action: string, stable: string, shadow: string, count: number }>()
  private readonly sample: ShadowSample[] = []

  constructor (readonly revision: string, readonly stable: string, private readonly since: number) {}

  add (input: PolicyInput, stable: Decision, shadow: { allow: boolean, reason: string }, now: number): void {
    this.compared++
    if (stable.allow === shadow.allow && stable.reason === shadow.reason) return
    this.disagreements++
    const s = `${stable.allow ? 'allow' : 'deny'}/${stable.reason}`
    const w = `${shadow.allow ? 'allow' : 'deny'}/${shadow.reason}`
    const key = `${input.action}|${s}|${w}`
    const c = this.counts.get(key)
    if (c !== undefined) c.count++
    else if (this.counts.size < SHADOW_MAX_KEYS) this.counts.set(key, { action: input.action, stable: s, shadow: w, count: 1 })
    if (this.sample.length >= SHADOW_SAMPLE_SIZE) this.sample.shift()
    this.sample.push({
      time: new Date(now).toISOString(),
      tenant: input.client.tenant,
      principal: input.client.principal,
      role: input.client.role,
      action: input.action,
      ...(input.topic !== undefined ? { topic: input.topic } : {}),
      stable: { allow: stable.allow, reason: stable.reason },
      shadow: { allow: shadow.allow, reason: shadow.reason }
    })
  }

  report (): ShadowDiff {
    return {
      revision: this.revision,
      stable: this.stable,
      since: new Date(this.since).toISOString(),
      compared: this.compared,
      disagreements: this.disagreements,
      counts: [...this.counts.values()].sort((a, b) => b.count - a.count).map(c => ({ ...c })),
      sample: this.sample.map(x => ({ ...x }))
    }
  }
}

function pct (x: number): string {
  return `${(x * 100).toFixed(1)}%`
}
