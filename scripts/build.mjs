// `npm run build`: compiles the gateway and the CLI to dist/ with tsc (one .js per .ts, same tree),
// builds the web console (admin-api/console/build.ts, esbuild) when stale, then copies the files the code
// reads next to itself (USP .proto schemas, the committed policy bundle, golden decisions, OPA_VERSION,
// the console's built assets ...) and writes dist/package.json (module type and version), so
// `node dist/bin/uspgate.js` runs without tsx and compiles nothing at start.
// `--if-stale` (npm start): does nothing when dist/ is current. The new tree is built beside dist/ and
// swapped in by rename, so a CLI running meanwhile sees the old tree or the new one, never half of one.
import { spawnSync } from 'node:child_process'
import { cpSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, mkdirSync, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createRequire } from 'node:module'
import { REPO_ROOT as root, SOURCE_DIRS, compiledIsCurrent } from '../bin/compiled.js'

if (process.argv.includes('--if-stale') && compiledIsCurrent()) process.exit(0)

const dist = join(root, 'dist')
const next = join(root, `dist.building-${process.pid}`)
rmSync(next, { recursive: true, force: true })
const tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc')
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', next], { stdio: 'inherit', cwd: root })
if (r.status !== 0) {
  rmSync(next, { recursive: true, force: true })
  console.error('build: tsc failed')
  process.exit(r.status ?? 1)
}

// The console's assets (admin-api/console/dist, served by admin-api/plugins/console.ts) come from its own build.
const consoleBuild = join(root, 'admin-api', 'console', 'build.ts')
if (existsSync(consoleBuild)) {
  const c = spawnSync(process.execPath, ['--import', 'tsx', consoleBuild, '--if-stale'], { stdio: 'inherit', cwd: root })
  if (c.status !== 0) {
    rmSync(next, { recursive: true, force: true })
    console.error('build: the console build failed')
    process.exit(c.status ?? 1)
  }
}

// Everything that is not TypeScript (nor bin/'s plain-JS launcher, nor the console's browser sources,
// bundled into console/dist) is an asset some module may read at run time.
const NOT_SHIPPED = new Set([join('admin-api', 'console', 'src')])
function copyAssets (dir) {
  for (const name of readdirSync(join(root, dir))) {
    const rel = join(dir, name)
    if (NOT_SHIPPED.has(rel)) continue
    if (statSync(join(root, rel)).isDirectory()) { copyAssets(rel); continue }
    if (name.endsWith('.ts') || (dir === 'bin' && name.endsWith('.js'))) continue
    mkdirSync(join(next, dir), { recursive: true })
    cpSync(join(root, rel), join(next, rel))
  }
}
for (const d of SOURCE_DIRS) copyAssets(d)

// dist/package.json: ESM for the emitted .js, and the version admin-api/openapi.ts reports (../package.json).
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
writeFileSync(join(next, 'package.json'), JSON.stringify({ name: pkg.name, version: pkg.version, type: 'module', private: true }, null, 2) + '\n')

const old = join(root, `dist.old-${process.pid}`)
if (existsSync(dist)) renameSync(dist, old)
renameSync(next, dist)
rmSync(old, { recursive: true, force: true })
console.log('build: dist/ ready')
