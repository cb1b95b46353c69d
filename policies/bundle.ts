// Loading a compiled bundle (`opa build -t wasm`): unpack, instantiate the wasm, load data.json,
// check the entry point, and run the golden decisions — all before the engine may activate it
// (DESIGN.md: "Activation is atomic and validated").
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { loadPolicy, type LoadedPolicy as OpaWasmPolicy } from '@open-policy-agent/opa-wasm'
import { readTarGz, TarError } from './tar.ts'
import { wasmEvaluator } from './wasm-eval.ts'
import { ENTRYPOINT, type GoldenCase, type PolicyInput, type PolicyResult } from './types.ts'

export const DEFAULT_BUNDLE_PATH = fileURLToPath(new URL('./bundle/bundle.tar.gz', import.meta.url))
export const DEFAULT_GOLDEN_PATH = fileURLToPath(new URL('./golden.json', import.meta.url))

/** Upper bound of a policy's wasm linear memory: 4,096 pages of 64 KiB = 256 MiB. */
export const MAX_WASM_MEMORY_PAGES = 4096

export type PolicyBundleErrorCode =
  | 'bad_archive' | 'bad_manifest' | 'bad_data' | 'bad_wasm' | 'missing_entrypoint' | 'bad_output' | 'golden_failed'

/** A bundle was refused; nothing was activated. The message says what is wrong with it. */
export class PolicyBundleError extends Error {
  override readonly name = 'PolicyBundleError'
  constructor (readonly code: PolicyBundleErrorCode, message: string) {
    super(message)
  }
}

export interface BundleManifest {
  revision: string
  roots?: string[]
  wasm?: Array<{ entrypoint: string, module: string }>
  [key: string]: unknown
}

/** A validated bundle, ready for PolicyEngine.activate(). */
export interface LoadedPolicy {
  readonly revision: string
  readonly manifest: BundleManifest
  /** The data document (data.json) the policy was loaded with. */
  readonly data: Record<string, unknown>
  /** One wasm evaluation. Throws on evaluation errors or output that is not {allow, reason}. */
  evaluate (input: PolicyInput): PolicyResult
}

class WasmPolicy implements LoadedPolicy {
  /** opa_eval with the input written straight into the module's memory (wasm-eval.ts); undefined before ABI 1.2. */
  private readonly evaluateJson: ((inputJson: string) => unknown) | undefined

  constructor (
    readonly revision: string,
    readonly manifest: BundleManifest,
    readonly data: Record<string, unknown>,
    private readonly wasm: OpaWasmPolicy,
    private readonly entrypointId: number
  ) {
    this.evaluateJson = wasmEvaluator(wasm, entrypointId)
  }

  evaluate (input: PolicyInput): PolicyResult {
    let resultSet: unknown
    try {
      resultSet = this.evaluateJson !== undefined ? this.evaluateJson(JSON.stringify(input)) : this.wasm.evaluate(input, this.entrypointId)
    } catch (err) {
      // opa-wasm throws strings as well as Errors (e.g. from opa_abort)
      throw err instanceof Error ? err : new Error(String(err))
    }
    const result = (resultSet as Array<{ result?: unknown }> | undefined)?.[0]?.result as Partial<PolicyResult> | undefined
    if (typeof result?.allow !== 'boolean' || typeof result.reason !== 'string') {
      throw new Error(`${ENTRYPOINT} did not return {allow: boolean, reason: string}: ${JSON.stringify(resultSet)}`)
    }
    return { allow: result.allow, reason: result.reason }
  }
}

export interface LoadBundleOptions {
  /** Decisions the bundle must reproduce before it is accepted. */
  golden?: GoldenCase[]
}

/** Validates and instantiates a bundle.tar.gz. Throws PolicyBundleError on any defect. */
export async function loadBundle (bytes: Uint8Array, opts: LoadBundleOptions = {}): Promise<LoadedPolicy> {
  let files: Map<string, Buffer>
  try {
    files = readTarGz(bytes)
  } catch (err) {
    const why = err instanceof TarError ? err.message : String(err)
    throw new PolicyBundleError('bad_archive', `policy bundle is not a readable tar.gz archive: ${why}`)
  }

  const manifest = parseManifest(files.get('.manifest'))
  const data = parseData(files.get('data.json'))

  const wasmBytes = files.get('policy.wasm')
  if (!wasmBytes) {
    throw new PolicyBundleError('bad_wasm', `policy bundle ${manifest.revision} has no /policy.wasm (build it with: opa build -t wasm -e ${ENTRYPOINT})`)
  }
  let wasm: OpaWasmPolicy
  try {
    // the linear memory is bounded: a module cannot grow the process without limit
    wasm = await loadPolicy(wasmBytes, { initial: 5, maximum: MAX_WASM_MEMORY_PAGES })
  } catch (err) {
    throw new PolicyBundleError('bad_wasm', `policy bundle ${manifest.revision}: /policy.wasm is not a loadable OPA wasm module: ${message(err)}`)
  }

  const entrypoints = (wasm.entrypoints ?? {}) as Record<string, number>
  const entrypointId = entrypoints[ENTRYPOINT]
  if (typeof entrypointId !== 'number') {
    const found = Object.keys(entrypoints).join(', ') || 'none'
    throw new PolicyBundleError('missing_entrypoint', `policy bundle ${manifest.revision} lacks entry point ${ENTRYPOINT} (found: ${found})`)
  }

  try {
    wasm.setData(data)
  } catch (err) {
    throw new PolicyBundleError('bad_data', `policy bundle ${manifest.revision}: data.json could not be loaded into the wasm: ${message(err)}`)
  }

  const policy = new WasmPolicy(manifest.revision, manifest, data, wasm, entrypointId)
  smokeTest(policy)
  if (opts.golden) runGolden(policy, opts.golden)
  return policy
}

/** The committed bundle (policies/bundle/bundle.tar.gz), checked against policies/golden.json. */
export async function loadDefaultBundle (): Promise<LoadedPolicy> {
  const [bytes, golden] = await Promise.all([readFile(DEFAULT_BUNDLE_PATH), loadGolden()])
  return loadBundle(bytes, { golden })
}

/**
 * Reads a golden file: a JSON list of cases, or {"golden": [...]} — the committed file uses the
 * object form because `opa test policies/` loads every JSON file there as a data document, which
 * must be an object; the Rego tests then run the same cases (policies/golden_test.rego).
 */
export async function loadGolden (path = DEFAULT_GOLDEN_PATH): Promise<GoldenCase[]> {
  const doc = JSON.parse(await readFile(path, 'utf8')) as GoldenCase[] | { golden: GoldenCase[] }
  const cases = Array.isArray(doc) ? doc : doc.golden
  if (!Array.isArray(cases)) throw new Error(`${path}: expected a list of golden cases or {"golden": [...]}`)
  return cases
}

function parseManifest (bytes: Buffer | undefined): BundleManifest {
  if (!bytes) throw new PolicyBundleError('bad_manifest', 'policy bundle has no /.manifest (a revision is required)')
  let manifest: Partial<BundleManifest>
  try {
    manifest = JSON.parse(bytes.toString('utf8')) as Partial<BundleManifest>
  } catch (err) {
    throw new PolicyBundleError('bad_manifest', `policy bundle /.manifest is not JSON: ${message(err)}`)
  }
  if (typeof manifest?.revision !== 'string' || manifest.revision === '') {
    throw new PolicyBundleError('bad_manifest', 'policy bundle /.manifest has no revision (build with opa build --revision <rev>)')
  }
  return manifest as BundleManifest
}

function parseData (bytes: Buffer | undefined): Record<string, unknown> {
  if (!bytes) return {}
  let data: unknown
  try {
    data = JSON.parse(bytes.toString('utf8'))
  } catch (err) {
    throw new PolicyBundleError('bad_data', `policy bundle /data.json is not JSON: ${message(err)}`)
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new PolicyBundleError('bad_data', 'policy bundle /data.json must be a JSON object')
  }
  return data as Record<string, unknown>
}

/** A bundle must answer a plain CONNECT with {allow, reason}, whatever the answer. */
function smokeTest (policy: LoadedPolicy): void {
  const input: PolicyInput = {
    action: 'connect',
    client: { tenant: 'smoke', principal: 'smoke', role: 'agent', client_id: 'smoke', protocol: 5, auth: 'password', listener: 'smoke' }
  }
  try {
    policy.evaluate(input)
  } catch (err) {
    throw new PolicyBundleError('bad_output', `policy bundle ${policy.revision}: evaluating ${ENTRYPOINT} failed: ${message(err)}`)
  }
}

/** Throws PolicyBundleError golden_failed naming every case (up to 10) the policy does not reproduce. */
export function runGolden (policy: LoadedPolicy, cases: GoldenCase[]): void {
  const failures: string[] = []
  cases.forEach((c, i) => {
    const label = c.name ?? `#${i + 1} ${c.input.action} ${c.input.topic ?? ''}`.trim()
    const want = show(c.expect.allow, c.expect.reason)
    try {
      const got = policy.evaluate(c.input)
      if (got.allow !== c.expect.allow || (c.expect.reason !== undefined && got.reason !== c.expect.reason)) {
        failures.push(`"${label}": expected ${want}, got ${show(got.allow, got.reason)}`)
      }
    } catch (err) {
      failures.push(`"${label}": expected ${want}, evaluation failed: ${message(err)}`)
    }
  })
  if (failures.length > 0) {
    const shown = failures.slice(0, 10).map(f => `  - ${f}`).join('\n')
    const more = failures.length > 10 ? `\n  ... and ${failures.length - 10} more` : ''
    throw new PolicyBundleError('golden_failed',
      `policy bundle ${policy.revision} fails ${failures.length} of ${cases.length} golden decisions:\n${shown}${more}`)
  }
}

function show (allow: boolean, reason: string | undefined): string {
  return `${allow ? 'allow' : 'deny'}${reason !== undefined ? `/${reason}` : ''}`
}

function message (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
