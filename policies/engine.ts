// The in-process policy engine: decides with the active bundle's wasm, behind a decision cache.
// DESIGN.md "The hot path of one PUBLISH": per-message work after the first decision must be a
// cache hit — no JSON round-trip into wasm. Fails closed: no policy or an evaluation error is a deny.
import { DecisionCache } from './cache.ts'
import type { LoadedPolicy } from './bundle.ts'
import type { Decision, PolicyClient, PolicyInput } from './types.ts'

export const DEFAULT_CACHE_SIZE = 100_000

export interface PolicyEngineOptions {
  /** Maximum cached decisions (default 100 000). */
  cacheSize?: number
  /** Called on every evaluation error (the decision is a deny with reason 'policy_error'). */
  onError?: (err: Error, input: PolicyInput) => void
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
  private active: LoadedPolicy | undefined
  private readonly cache: DecisionCache<Decision>
  private readonly onError: ((err: Error, input: PolicyInput) => void) | undefined
  private readonly counters = { hits: 0, misses: 0, evaluations: 0, errors: 0 }

  constructor (opts: PolicyEngineOptions = {}) {
    this.cache = new DecisionCache(opts.cacheSize ?? DEFAULT_CACHE_SIZE)
    this.onError = opts.onError
  }

  /**
   * Makes a loaded (validated) policy the one that decides. The swap is a single assignment, so a
   * decision is made wholly by the old or wholly by the new revision; cached decisions of the old
   * revision are dropped (and could not match anyway: the revision is part of every key).
   */
  activate (policy: LoadedPolicy): void {
    this.active = policy
    this.cache.clear()
  }

  /** Revision of the active policy, or '' when none is active. */
  get revision (): string {
    return this.active?.revision ?? ''
  }

  get policy (): LoadedPolicy | undefined {
    return this.active
  }

  get stats (): PolicyEngineStats {
    return { ...this.counters, cached: this.cache.size }
  }

  /** Synchronous and never throws: a cache hit, else one wasm evaluation (cached when it succeeds). */
  decide (input: PolicyInput): Decision {
    const policy = this.policyFor(input)
    if (policy === undefined) return NO_POLICY
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
    try {
      // Only the contract's fields reach the Rego, so the key above covers everything it can read.
      result = policy.evaluate(contractInput(input))
    } catch (err) {
      return this.fail(policy, err, input)
    }
    const { allow, reason } = result
    const revision = policy.revision
    this.cache.set(identity, key, Object.freeze({ allow, reason, revision, cached: true }))
    return Object.freeze({ allow, reason, revision, cached: false })
  }

  /** Cache-only lookup for a synchronous hot path that must not evaluate: undefined on a miss. */
  peek (input: PolicyInput): Decision | undefined {
    const policy = this.policyFor(input)
    if (policy === undefined) return undefined
    try {
      const hit = this.cache.get(identityKey(input.client), decisionKey(policy.revision, input))
      if (hit !== undefined) this.counters.hits++
      return hit
    } catch {
      return undefined
    }
  }

  /** Drops every cached decision of one identity; call it when its credential is revoked. */
  invalidateIdentity (tenant: string, principal: string): number {
    return this.cache.deleteIdentity(`${tenant}:${principal}`)
  }

  /** The policy that decides for this input. One revision for all tenants today; the place where
   * stable / canary / shadow revisions per tenant will be chosen. */
  private policyFor (_input: PolicyInput): LoadedPolicy | undefined {
    return this.active
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

const NO_POLICY: Decision = Object.freeze({
  allow: false, reason: 'no_policy', revision: '', cached: false, error: 'no policy bundle is active'
})

/** "<tenant>:<principal>" — the username form; tenant ids never contain ':' (DESIGN.md). */
function identityKey (client: PolicyClient): string {
  return client.tenant + ':' + client.principal
}

/**
 * Everything the Rego can read, as one string: revision, action, client fields, qos, retain,
 * target, and the topic last. Client-chosen strings are length-prefixed and the topic ends the
 * key, so two different inputs never share a key (action, role, auth and listener are words the
 * gateway itself sets; tenant and principal select the identity bucket).
 */
function decisionKey (revision: string, input: PolicyInput): string {
  const c = input.client
  let key = revision + '\0' + input.action + '\0' + c.role + '\0' + c.auth + '\0' + c.listener + '\0' +
    scalar(c.protocol) + '\0' + str(c.client_id) + '\0' + scalar(input.qos) + '\0' + scalar(input.retain)
  const t = input.target
  if (t !== undefined) key += '\0' + str(t.tenant) + str(t.principal) + str(t.role)
  return key + '\0' + (input.topic === undefined ? '' : str(input.topic))
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
