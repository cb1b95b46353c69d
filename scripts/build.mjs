// `npm run build`: compiles the gateway and the CLI to dist/ with tsc (one .js per .ts, same tree),
// then copies the files the code reads next to itself (USP .proto schemas, the committed policy bundle,
// golden decisions, OPA_VERSION ...) and writes dist/package.json (module type and version), so
// `node dist/bin/uspgate.js` runs without tsx and without compiling anything at start.
import { spawnSync } from 'node:child_process'
import { cpSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dist = join(root, 'dist')
const SOURCE_DIRS = ['bin', 'broker', 'policies', 'certs', 'admin-api']

rmSync(dist, { recursive: true, force: true })
const tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc')
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root })
if (r.status !== 0) {
  console.error('build: tsc failed')
  process.exit(r.status ?? 1)
}

// Everything that is not TypeScript (nor a test) is an asset some module may read at run time.
function copyAssets (dir) {
  for (const name of readdirSync(join(root, dir))) {
    const rel = join(dir, name)
    if (statSync(join(root, rel)).isDirectory()) { copyAssets(rel); continue }
    if (name.endsWith('.ts') || name.endsWith('.js') && dir === 'bin') continue
    mkdirSync(join(dist, dir), { recursive: true })
    cpSync(join(root, rel), join(dist, rel))
  }
}
for (const d of SOURCE_DIRS) copyAssets(d)

// dist/package.json: ESM for the emitted .js, and the version admin-api/openapi.ts reports.
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
writeFileSync(join(dist, 'package.json'), JSON.stringify({ name: pkg.name, version: pkg.version, type: 'module', private: true }, null, 2) + '\n')
console.log('build: dist/ ready')
