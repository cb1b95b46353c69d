// Runs inside the validation worker (bundle-validation.ts): loads the untrusted bundle exactly as the
// engine would (instantiate, entry point, data, smoke test, golden decisions) and reports the outcome.
import { parentPort, workerData } from 'node:worker_threads'
import { loadBundle, PolicyBundleError } from './bundle.ts'
import type { GoldenCase } from './types.ts'

const { bytes, golden } = workerData as { bytes: Uint8Array, golden: GoldenCase[] | undefined }
try {
  const policy = await loadBundle(bytes, golden !== undefined ? { golden } : {})
  parentPort!.postMessage({ ok: true, revision: policy.revision })
} catch (err) {
  parentPort!.postMessage(err instanceof PolicyBundleError
    ? { ok: false, code: err.code, message: err.message }
    : { ok: false, code: 'bad_wasm', message: err instanceof Error ? err.message : String(err) })
}
