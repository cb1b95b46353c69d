// Whether dist/ (scripts/build.mjs) is current: built, and no file under the source folders (TypeScript
// or an asset it reads: .proto, the policy bundle, the console's sources) has changed since. Used by the `uspgate` launcher (a stale dist/ must never run instead of the sources)
// and by `npm start` (build only when needed). Plain JS so it runs before anything is compiled.
import { existsSync, readdirSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url))
export const SOURCE_DIRS = ['bin', 'broker', 'policies', 'certs', 'admin-api']
/** Written last by the build, so its time is the build's. */
export const BUILD_STAMP = join(REPO_ROOT, 'dist', 'package.json')

function changedSince (time, dir) {
  let entries
  try { entries = readdirSync(dir, { withFileTypes: true }) } catch { return false }
  for (const e of entries) {
    const p = join(dir, e.name)
    // a dist/ folder inside a source folder (admin-api/console/dist) is build output, not a source
    if (e.isDirectory() ? e.name !== 'dist' && changedSince(time, p) : statSync(p).mtimeMs > time) return true
  }
  return false
}

/** A few ms: about 200 stat calls. */
export function compiledIsCurrent () {
  if (!existsSync(BUILD_STAMP)) return false
  const built = statSync(BUILD_STAMP).mtimeMs
  return !SOURCE_DIRS.some(d => changedSince(built, join(REPO_ROOT, d)))
}
