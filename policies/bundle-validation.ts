// An uploaded policy bundle is untrusted code: it is first loaded and checked in a worker thread with
// a heap limit and a deadline. A module whose start function never returns, or that allocates without
// bound, fails there (the worker is terminated) and the gateway's event loop never runs it; only a
// bundle that passed is then instantiated on the main thread.
import { Worker } from 'node:worker_threads'
import { PolicyBundleError, type PolicyBundleErrorCode } from './bundle.ts'
import type { GoldenCase } from './types.ts'

export interface ValidationLimits {
  /** The whole validation (instantiate, smoke test, golden decisions) must end within this. */
  timeoutMs: number
  /** V8 heap of the worker (the wasm linear memory is capped separately, see MAX_WASM_MEMORY_PAGES). */
  maxHeapMb: number
}

export const DEFAULT_VALIDATION_LIMITS: ValidationLimits = { timeoutMs: 10_000, maxHeapMb: 128 }

const WORKER_URL = new URL('./bundle-worker.ts', import.meta.url).href
// The worker is a fresh thread: it registers the TypeScript loader (as bin/uspgate.js does) before
// importing the worker module.
const BOOT = `import('tsx/esm/api').then(m => { m.register(); return import(${JSON.stringify(WORKER_URL)}) })`

/** Throws PolicyBundleError when the bundle fails, overruns the deadline or the memory limit. */
export async function validateBundleOffThread (bytes: Uint8Array, golden: GoldenCase[] | undefined, limits: ValidationLimits = DEFAULT_VALIDATION_LIMITS): Promise<void> {
  const worker = new Worker(BOOT, {
    eval: true,
    workerData: { bytes, golden },
    resourceLimits: { maxOldGenerationSizeMb: limits.maxHeapMb, maxYoungGenerationSizeMb: Math.max(4, Math.floor(limits.maxHeapMb / 8)) },
    stdout: true,
    stderr: true
  })
  worker.unref()
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (code: PolicyBundleErrorCode, message: string): void => reject(new PolicyBundleError(code, message))
      const timer = setTimeout(() => fail('bad_wasm', `validation did not finish within ${limits.timeoutMs} ms (a start function or an evaluation that does not return?); the bundle was not loaded`), limits.timeoutMs)
      timer.unref()
      worker.once('message', (m: { ok: boolean, code?: PolicyBundleErrorCode, message?: string }) => {
        clearTimeout(timer)
        if (m.ok) resolve()
        else fail(m.code ?? 'bad_wasm', m.message ?? 'validation failed')
      })
      worker.once('error', (err: Error & { code?: string }) => {
        clearTimeout(timer)
        fail('bad_wasm', err.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? `validation exceeded the ${limits.maxHeapMb} MB memory limit; the bundle was not loaded`
          : `validation failed: ${err.message.slice(0, 300)}`)
      })
      worker.once('exit', code => { clearTimeout(timer); fail('bad_wasm', `validation worker ended (exit code ${code}) without an answer`) })
    })
  } finally {
    await worker.terminate()
  }
}
