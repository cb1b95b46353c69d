// SUBSCRIBE: `subscribeSteps` run for each filter of a SUBSCRIBE (and for each subscription aedes
// restores for a persistent session). A refusal answers that filter only (SUBACK 0x87 / 0x80).
import type { AedesOptions, Subscription } from 'aedes'
import { checkTopicFilter } from './invariants.ts'
import { markGranted } from './patches/index.ts'
import { DecisionBudget, overQuota } from './fairness.ts'
import type { ClientState } from './sessions.ts'
import type { GatewayClient } from './client.ts'
import { policyDenial, type Denial, type PipelineContext } from './context.ts'

type SubscribeStep = (st: ClientState, sub: Subscription, ctx: PipelineContext) => Denial | undefined

const notRevoked: SubscribeStep = st => st.revoked ? { ok: false, code: 'auth.revoked', reason: 'credential revoked' } : undefined

/** Subscriptions per client and per tenant (marked by the packet guard in fairness.ts before aedes). */
const withinQuota: SubscribeStep = (_st, sub) => {
  const over = overQuota(sub)
  return over === undefined ? undefined : { ok: false, code: over.code as Denial['code'], reason: over.reason }
}

/** Tenant prefix, no `$` (so no `$share` and no `$SYS`), bounded and clean filter (code, before any policy). */
const filterInsideTenant: SubscribeStep = (st, sub, ctx) => {
  const check = checkTopicFilter(st.tenant, sub.topic, ctx.deps.limits)
  return check.ok ? undefined : check
}

const policyAllowsSubscribe: SubscribeStep = (st, sub, ctx) => {
  const verdict = ctx.decide(st, 'subscribe', sub.topic, sub.qos)
  return verdict.allow ? undefined : policyDenial(verdict)
}

/** The SUBSCRIBE pipeline, in order, per filter. */
export const subscribeSteps: readonly SubscribeStep[] = [notRevoked, withinQuota, filterInsideTenant, policyAllowsSubscribe]

export function subscribeHook (ctx: PipelineContext): Required<Pick<AedesOptions, 'authorizeSubscribe'>>['authorizeSubscribe'] {
  const { emit } = ctx.deps
  const budget = new DecisionBudget(ctx.deps.limits.subscribeDecisionsPerTurn)
  return function authorizeSubscribe (client, sub, done) {
    budget.run(() => decideSubscription(client, sub, done))
  }

  function decideSubscription (client: Parameters<Required<AedesOptions>['authorizeSubscribe']>[0], sub: Subscription, done: (err: Error | null, sub: Subscription | null) => void): void {
    const c = client as GatewayClient
    const st = c.gw
    if (st === undefined) return deny(c, st, sub, { ok: false, code: 'acl.cross_tenant', reason: 'subscribe without an identity' }, done)
    for (const step of subscribeSteps) {
      const r = step(st, sub as Subscription, ctx)
      if (r !== undefined) return deny(c, st, sub, r, done)
    }
    // MQTT 5 subscription options only ever narrow delivery; nothing to rewrite.
    markGranted(sub) // only granted filters are stored in a persistent session (patches/granted-subscriptions.ts)
    done(null, sub as Subscription)
  }

  function deny (c: GatewayClient, st: ClientState | undefined, sub: Subscription, check: Denial, done: (err: Error | null, sub: Subscription | null) => void): void {
    ctx.decisionMetric('subscribe', 'deny', check.code)
    emit(ctx.eventFor(st, c, { code: check.code, action: 'subscribe', topic: sub.topic, reason: check.reason, targetTenant: check.targetTenant }))
    done(null, null) // SUBACK 0x87 (MQTT 5) / 0x80 (3.1.1) for this filter only
  }
}
