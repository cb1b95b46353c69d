// The decision cache and failure behaviour of PolicyEngine, with real wasm bundles.
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import { PolicyEngine, loadBundle, loadDefaultBundle, type LoadedPolicy, type PolicyInput } from '../../policies/index.ts'
import { AGENT_ID, agent, buildTempBundle, controller, req } from './helpers.ts'

let policy: LoadedPolicy
before(async () => { policy = await loadDefaultBundle() })

/** The loaded policy with a counter on its wasm evaluations. */
function counted (p: LoadedPolicy): { policy: LoadedPolicy, calls: () => number } {
  let n = 0
  const wrapped: LoadedPolicy = {
    revision: p.revision,
    manifest: p.manifest,
    data: p.data,
    evaluate: (input: PolicyInput) => { n++; return p.evaluate(input) }
  }
  return { policy: wrapped, calls: () => n }
}

const inbox = req('publish', controller, `acme/usp/agent/${AGENT_ID}`)

test('a cache hit returns the same decision without calling wasm', () => {
  const { policy: spy, calls } = counted(policy)
  const engine = new PolicyEngine()
  engine.activate(spy)
  const first = engine.decide(inbox)
  assert.equal(first.cached, false)
  assert.equal(calls(), 1)
  for (let i = 0; i < 5; i++) {
    const again = engine.decide({ ...inbox, client: { ...inbox.client } })
    assert.deepEqual({ ...again, cached: false }, first)
    assert.equal(again.cached, true)
  }
  assert.equal(calls(), 1)
  assert.deepEqual(engine.stats, { hits: 5, misses: 1, evaluations: 1, errors: 0, cached: 1 })
  assert.equal(engine.peek(inbox)?.allow, true)
  assert.equal(engine.peek({ ...inbox, topic: 'acme/usp/agent/other' }), undefined)
  assert.equal(calls(), 1)
})

test('every field the Rego can read is part of the key', () => {
  const { policy: spy, calls } = counted(policy)
  const engine = new PolicyEngine()
  engine.activate(spy)
  engine.decide(inbox)
  const variants: PolicyInput[] = [
    { ...inbox, qos: 2 }, { ...inbox, retain: true }, { ...inbox, topic: `${inbox.topic}/x` }, { ...inbox, action: 'deliver' },
    { ...inbox, client: { ...controller, role: 'agent' } }, { ...inbox, client: { ...controller, client_id: 'ctrl-2' } },
    { ...inbox, client: { ...controller, protocol: 4 } }, { ...inbox, client: { ...controller, listener: 'ws' } },
    { ...inbox, client: { ...controller, auth: 'certificate' } }, { ...inbox, client: { ...controller, principal: 'other::ctrl' } },
    { ...inbox, target: { tenant: 'acme', principal: AGENT_ID, role: 'agent' } }
  ]
  for (const v of variants) assert.equal(engine.decide(v).cached, false, JSON.stringify(v))
  assert.equal(calls(), 1 + variants.length)
  const d = engine.decide({ ...inbox, qos: 2 })
  assert.deepEqual([d.allow, d.reason, d.cached], [false, 'qos2_on_usp_topic', true])
})

test('activating a revision drops the cache and decisions carry the new revision', async () => {
  const engine = new PolicyEngine()
  engine.activate(policy)
  engine.decide(inbox)
  assert.equal(engine.decide(inbox).cached, true)

  const next = buildTempBundle({ files: { 'data.json': JSON.stringify({ tenants: { acme: { disabled: true } } }) } })
  assert.notEqual(next.revision, policy.revision)
  engine.activate(await loadBundle(next.bytes))
  assert.equal(engine.revision, next.revision)
  assert.equal(engine.stats.cached, 0)
  const d = engine.decide(inbox)
  assert.deepEqual([d.allow, d.reason, d.revision, d.cached], [false, 'tenant_disabled', next.revision, false])

  // rolling back is another activation: the old revision decides again, nothing cached survives
  engine.activate(policy)
  const back = engine.decide(inbox)
  assert.deepEqual([back.allow, back.revision, back.cached], [true, policy.revision, false])
})

test('invalidateIdentity drops only that identity', () => {
  const { policy: spy, calls } = counted(policy)
  const engine = new PolicyEngine()
  engine.activate(spy)
  const agentInput = req('subscribe', agent, `acme/usp/agent/${AGENT_ID}`)
  engine.decide(inbox)
  engine.decide({ ...inbox, topic: `${inbox.topic}/reply-to=acme%2Fusp%2Fcontroller%2Fself::ctrl` })
  engine.decide(agentInput)
  assert.equal(calls(), 3)

  assert.equal(engine.invalidateIdentity('acme', controller.principal), 2)
  assert.equal(engine.peek(inbox), undefined)
  assert.equal(engine.decide(inbox).cached, false)
  assert.equal(engine.decide(agentInput).cached, true)
  assert.equal(calls(), 4)
  assert.equal(engine.invalidateIdentity('other', controller.principal), 0)
})

test('the cache stays within its bound', () => {
  const engine = new PolicyEngine({ cacheSize: 100 })
  engine.activate(policy)
  for (let i = 0; i < 1000; i++) engine.decide(req('publish', agent, `acme/bulkdata/${AGENT_ID}/m${i}`))
  assert.ok(engine.stats.cached <= 100, `cached ${engine.stats.cached}`)
  // a hot entry survives the churn
  const hot = req('publish', agent, `acme/bulkdata/${AGENT_ID}/hot`)
  engine.decide(hot)
  for (let i = 0; i < 1000; i++) {
    engine.decide(req('publish', agent, `acme/bulkdata/${AGENT_ID}/n${i}`))
    if (i % 10 === 0) assert.equal(engine.decide(hot).cached, true)
  }
})

test('the cache grows with the connected fleet: a controller cycling through more agents than the base bound still hits', () => {
  const engine = new PolicyEngine({ cacheSize: 100 })
  engine.activate(policy)
  const agents = Array.from({ length: 300 }, (_, i) => req('publish', controller, `acme/usp/agent/os::00256D-${String(i).padStart(4, '0')}`))
  const cycle = (): number => agents.filter(a => engine.decide(a).cached).length
  cycle()
  assert.equal(cycle(), 0, 'under the fixed bound every request of the next cycle misses')
  engine.fitSessions(300) // 300 agents connected: 4 decisions each
  assert.equal(engine.cacheCapacity, 1600)
  cycle()
  assert.equal(cycle(), 300, 'sized for the fleet, the second cycle is all hits')
  engine.fitSessions(10)
  assert.equal(engine.cacheCapacity, 1600, 'never shrinks')
})

test('a controller addressing a fleet shares one decision object per outcome, not one per topic (memory and cache lines per agent)', () => {
  const engine = new PolicyEngine()
  engine.activate(policy)
  const agents = Array.from({ length: 50 }, (_, i) => req('publish', controller, `acme/usp/agent/os::00256D-${String(i).padStart(4, '0')}`))
  const fresh = new Set(agents.map(a => engine.decide(a)))
  const hits = new Set(agents.map(a => engine.decide(a)))
  assert.equal(fresh.size, 1, 'every first decision (allow, same reason, same revision) is the same frozen object')
  assert.equal(hits.size, 1, 'every cache hit too')
  const [f] = fresh; const [h] = hits
  assert.deepEqual([f!.allow, f!.cached, h!.allow, h!.cached], [true, false, true, true])
  assert.ok(Object.isFrozen(f) && Object.isFrozen(h))
  // a different outcome is a different object, with its own reason
  const denied = engine.decide({ ...agents[0]!, qos: 2 })
  assert.deepEqual([denied.allow, denied.reason], [false, 'qos2_on_usp_topic'])
  assert.notEqual(denied, f)
})

test('an evaluation error fails closed, reports, and is not cached', async () => {
  const { bytes } = buildTempBundle({
    only: true,
    files: {
      'policy.rego': `package uspgate.authz

import rego.v1

default decision := {"allow": false, "reason": "no_rule"}

# two complete-rule values for one input: a runtime conflict error in wasm
decision := {"allow": true, "reason": "a"} if input.topic == "acme/boom"

decision := {"allow": true, "reason": "b"} if input.topic == "acme/boom"

# not the {allow, reason} contract
decision := "oops" if input.topic == "acme/odd"

decision := {"allow": true, "reason": "fine"} if input.topic == "acme/fine"
`
    }
  })
  const errors: Array<[Error, PolicyInput]> = []
  const engine = new PolicyEngine({ onError: (err, input) => { errors.push([err, input]) } })
  const loaded = await loadBundle(bytes)
  engine.activate(loaded)

  const boom = req('publish', agent, 'acme/boom')
  const d = engine.decide(boom)
  assert.deepEqual([d.allow, d.reason, d.revision, d.cached], [false, 'policy_error', loaded.revision, false])
  assert.match(d.error ?? '', /conflict|multiple/i)
  assert.equal(errors.length, 1)
  assert.equal(errors[0]?.[1], boom)

  const odd = engine.decide(req('publish', agent, 'acme/odd'))
  assert.deepEqual([odd.allow, odd.reason], [false, 'policy_error'])
  assert.match(odd.error ?? '', /did not return \{allow: boolean, reason: string\}/)

  // not cached: the next identical request evaluates (and fails) again
  assert.equal(engine.decide(boom).reason, 'policy_error')
  assert.equal(errors.length, 3)
  assert.equal(engine.stats.errors, 3)
  assert.equal(engine.stats.cached, 0)

  // the instance still works after a wasm abort
  assert.deepEqual(pick(engine.decide(req('publish', agent, 'acme/fine'))), { allow: true, reason: 'fine' })
})

test('malformed input and a throwing onError still yield a deny, never a throw', () => {
  const engine = new PolicyEngine({ onError: () => { throw new Error('observer broke') } })
  engine.activate(policy)
  const bad = { action: 'publish', topic: 'acme/x' } as unknown as PolicyInput
  const d = engine.decide(bad)
  assert.deepEqual([d.allow, d.reason], [false, 'policy_error'])
  assert.equal(engine.peek(bad), undefined)
})

test('no active policy: deny with reason no_policy', () => {
  const engine = new PolicyEngine()
  const d = engine.decide(inbox)
  assert.deepEqual([d.allow, d.reason, d.revision], [false, 'no_policy', ''])
  assert.equal(engine.peek(inbox), undefined)
})

function pick (d: { allow: boolean, reason: string }): { allow: boolean, reason: string } {
  return { allow: d.allow, reason: d.reason }
}
