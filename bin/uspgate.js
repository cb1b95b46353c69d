#!/usr/bin/env node
// Entry for the installed `uspgate` command: runs the compiled CLI (dist/, `npm run build`) when it is
// current, else the TypeScript sources through tsx (a fresh clone before its first build, or sources
// edited since the last build: a stale dist/ never runs instead of them).
import { compiledIsCurrent } from './compiled.js'

if (compiledIsCurrent()) {
  await import(new URL('../dist/bin/uspgate.js', import.meta.url).href)
} else {
  const { register } = await import('tsx/esm/api')
  register()
  await import('./uspgate.ts')
}
