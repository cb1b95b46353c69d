#!/usr/bin/env node
// Entry for the installed `uspgate` command: runs the compiled CLI (dist/, `npm run build`) when it is
// at least as new as the TypeScript sources, else the sources through tsx (a fresh clone before its
// first build, or sources edited since the last build: a stale dist/ must never run instead of them).
import { existsSync, readdirSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'

const root = fileURLToPath(new URL('..', import.meta.url))
const stamp = join(root, 'dist', 'package.json') // written last by scripts/build.mjs

/** True when some .ts file under the source folders changed after the build (a few ms: ~200 stats). */
function sourcesNewerThan (time, dir) {
  let entries
  try { entries = readdirSync(dir, { withFileTypes: true }) } catch { return false }
  for (const e of entries) {
    const p = join(dir, e.name)
    if (e.isDirectory() ? sourcesNewerThan(time, p) : e.name.endsWith('.ts') && statSync(p).mtimeMs > time) return true
  }
  return false
}

function compiledIsCurrent () {
  if (!existsSync(stamp)) return false
  const built = statSync(stamp).mtimeMs
  return !['bin', 'broker', 'policies', 'certs', 'admin-api'].some(d => sourcesNewerThan(built, join(root, d)))
}

if (compiledIsCurrent()) {
  await import(new URL('../dist/bin/uspgate.js', import.meta.url).href)
} else {
  const { register } = await import('tsx/esm/api')
  register()
  await import('./uspgate.ts')
}
