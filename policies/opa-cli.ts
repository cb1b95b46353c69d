// Finds and runs the pinned OPA CLI. The pin lives in policies/OPA_VERSION only (also read by
// .ci/install-opa.sh): the compiled wasm depends on the compiler version, so the build, its
// staleness check and the tests must all use that exact release.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The pinned release, e.g. "v1.22.2". */
export const OPA_VERSION = readFileSync(fileURLToPath(new URL('./OPA_VERSION', import.meta.url)), 'utf8').trim()

export class OpaNotFoundError extends Error {
  override readonly name = 'OpaNotFoundError'
}

let found: string | undefined

/**
 * Absolute path of an `opa` that reports the pinned version: $OPA_BIN, then PATH, then
 * $(go env GOPATH)/bin (where .ci/install-opa.sh puts it). Throws OpaNotFoundError otherwise.
 */
export function findOpa (): string {
  if (found !== undefined) return found
  const want = OPA_VERSION.replace(/^v/, '')
  const seen: string[] = []
  for (const candidate of candidates()) {
    const version = versionOf(candidate)
    if (version === undefined) continue
    if (version === want) return (found = candidate)
    seen.push(`${candidate} is ${version}`)
  }
  const also = seen.length > 0 ? ` (${seen.join('; ')})` : ''
  throw new OpaNotFoundError(`opa ${OPA_VERSION} not found on PATH or in $(go env GOPATH)/bin${also}; install it with .ci/install-opa.sh`)
}

/** Runs the pinned opa; the caller checks `status`. */
export function runOpa (args: string[], opts: { cwd?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(findOpa(), args, { cwd: opts.cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
}

function candidates (): string[] {
  const list: string[] = []
  if (process.env.OPA_BIN) list.push(process.env.OPA_BIN)
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir) list.push(join(dir, 'opa'))
  const go = spawnSync('go', ['env', 'GOBIN', 'GOPATH'], { encoding: 'utf8' })
  if (go.status === 0) {
    const [gobin, gopath] = go.stdout.split('\n').map(s => s.trim())
    if (gobin) list.push(join(gobin, 'opa'))
    if (gopath) for (const p of gopath.split(delimiter)) list.push(join(p, 'bin', 'opa'))
  }
  list.push(join(homedir(), 'go', 'bin', 'opa')) // Go's default GOPATH, for hosts without go on PATH
  return [...new Set(list)].filter(p => existsSync(p))
}

function versionOf (bin: string): string | undefined {
  const r = spawnSync(bin, ['version'], { encoding: 'utf8' })
  if (r.status !== 0) return undefined
  return /^Version:\s*(\S+)/m.exec(r.stdout)?.[1]
}
