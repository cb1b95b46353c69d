// Public surface of policies/: topic ACLs as Rego compiled to wasm, decided in-process behind a
// decision cache. Other folders import only from here. Nothing here knows about aedes.
//
//   const engine = new PolicyEngine({ onError: (err, input) => log.error(...) })
//   engine.activate(await loadDefaultBundle())          // or loadBundle(bytes, { golden })
//   const d = engine.decide({ action: 'publish', client, topic, qos, retain })
//   if (!d.allow) deny(d.reason, d.revision)
//   engine.invalidateIdentity(tenant, principal)        // on credential / certificate revocation

// Runtime
export {
  PolicyEngine, DEFAULT_CACHE_SIZE, DEFAULT_GUARD, SHADOW_SAMPLE_SIZE, type PolicyEngineOptions, type PolicyEngineStats, type PolicyAssignment,
  type CanaryGuardOptions, type CanaryTrip, type WindowCounts, type ShadowDiff, type ShadowSample
} from './engine.ts'
export {
  loadBundle, loadDefaultBundle, loadGolden, runGolden, PolicyBundleError, DEFAULT_BUNDLE_PATH, DEFAULT_GOLDEN_PATH,
  type LoadedPolicy, type LoadBundleOptions, type BundleManifest, type PolicyBundleErrorCode, MAX_WASM_MEMORY_PAGES
} from './bundle.ts'
export { validateBundleOffThread, DEFAULT_VALIDATION_LIMITS, type ValidationLimits } from './bundle-validation.ts'
export {
  ENTRYPOINT, type PolicyInput, type PolicyClient, type PolicyAction, type PolicyResult, type Decision, type GoldenCase
} from './types.ts'
export { compareBundles, type BundleComparison, type SourceChange, type DataChange } from './compare.ts'

// Bundle archives (read; relabel a revision)
export { readTarGz, writeTarGz, TarError } from './tar.ts'

// Build tooling (needs the pinned OPA CLI; not used at runtime)
export { OPA_VERSION, findOpa, runOpa, OpaNotFoundError } from './opa-cli.ts'
export { buildBundle, checkBundle, computeRevision, policySources, POLICY_DIR, type BuildOptions, type CheckResult, type PolicySource } from './build-bundle.ts'
