// Micro-benchmark of one policy decision with the committed bundle: a cache hit (the per-message
// hot path) and a miss (one wasm evaluation). Targets: cached < 2 µs, uncached < 100 µs.
//   npx tsx bench/decision.ts
import { pathToFileURL } from 'node:url'
import { PolicyEngine, loadDefaultBundle, type PolicyClient, type PolicyInput } from '../policies/index.ts'

export interface DecisionBenchResult {
  cachedUs: number
  uncachedUs: number
}

const agent: PolicyClient = {
  tenant: 'acme', principal: 'os::00256D-0001', role: 'agent', client_id: 'os::00256D-0001', protocol: 5, auth: 'certificate', listener: 'mqtts'
}

function publish (topic: string): PolicyInput {
  return { action: 'publish', client: agent, topic, qos: 1, retain: false }
}

/** µs per call of fn over n calls. */
function time (n: number, fn: (i: number) => void): number {
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) fn(i)
  return Number(process.hrtime.bigint() - start) / 1000 / n
}

export async function runDecisionBench (opts: { cachedIterations?: number, uncachedIterations?: number } = {}): Promise<DecisionBenchResult> {
  const cachedN = opts.cachedIterations ?? 1_000_000
  const uncachedN = opts.uncachedIterations ?? 20_000
  const policy = await loadDefaultBundle()

  // Cached: one USP Notify topic decided over and over, as for every message after the first.
  const hot = new PolicyEngine()
  hot.activate(policy)
  const input = publish('acme/usp/controller/self::ctrl')
  let allowed = 0
  time(10_000, () => { if (hot.decide(input).allow) allowed++ }) // warm-up (JIT)
  const cachedUs = time(cachedN, () => { if (hot.decide(input).allow) allowed++ })
  if (hot.stats.evaluations !== 1) throw new Error(`cached run evaluated ${hot.stats.evaluations} times`)

  // Uncached: distinct topics, so every call misses and evaluates in wasm.
  const cold = new PolicyEngine({ cacheSize: uncachedN * 4 })
  cold.activate(policy)
  const warm = Array.from({ length: 2_000 }, (_, i) => publish(`acme/bulkdata/os::00256D-0001/warm/${i}`))
  const inputs = Array.from({ length: uncachedN }, (_, i) => publish(`acme/bulkdata/os::00256D-0001/m/${i}`))
  time(warm.length, i => { if (cold.decide(warm[i]!).allow) allowed++ })
  const uncachedUs = time(uncachedN, i => { if (cold.decide(inputs[i]!).allow) allowed++ })
  if (cold.stats.hits !== 0) throw new Error(`uncached run hit the cache ${cold.stats.hits} times`)
  if (allowed === 0) throw new Error('benchmark inputs were denied')

  return { cachedUs, uncachedUs }
}

function printTable (r: DecisionBenchResult): void {
  const rows: Array<[string, number, number]> = [
    ['decision, cached (cache hit)', r.cachedUs, 2],
    ['decision, uncached (wasm eval)', r.uncachedUs, 100]
  ]
  console.log('case                              µs/op    target')
  for (const [name, us, target] of rows) {
    console.log(`${name.padEnd(32)} ${us.toFixed(3).padStart(7)}   < ${target} µs ${us < target ? 'ok' : 'MISSED'}`)
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runDecisionBench().then(printTable, (err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
