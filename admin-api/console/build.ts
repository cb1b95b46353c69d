// Builds the web console (admin-api/console/src → admin-api/console/dist) with esbuild: one ES module
// bundle (Preact + htm + the pages), the stylesheet and index.html. `--if-stale` rebuilds only when a
// source, this script or package-lock.json is newer than the last build (npm start and the e2e tests
// use it, so a fresh clone works without a manual step).
import { mkdir, readFile, readdir, rename, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const HERE = import.meta.dirname
const SRC = join(HERE, 'src')
const DIST = join(HERE, 'dist')
const STAMP = join(DIST, '.built')

async function newestSource (): Promise<number> {
  let newest = 0
  for (const name of await readdir(SRC)) newest = Math.max(newest, (await stat(join(SRC, name))).mtimeMs)
  for (const f of [join(HERE, 'build.ts'), join(HERE, '..', '..', 'package-lock.json')]) {
    newest = Math.max(newest, await stat(f).then(s => s.mtimeMs, () => 0))
  }
  return newest
}

export async function isConsoleStale (): Promise<boolean> {
  const built = await stat(STAMP).then(s => s.mtimeMs, () => -1)
  return built < await newestSource()
}

export async function buildConsole (): Promise<void> {
  const { build } = await import('esbuild')
  await mkdir(DIST, { recursive: true })
  const out = await build({
    entryPoints: [join(SRC, 'main.ts')],
    outfile: join(DIST, 'app.js'),
    bundle: true,
    format: 'esm',
    target: ['es2022'],
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
    write: false
  })
  // Each file replaced atomically: two test files building at once, or a gateway serving while a
  // build runs, never see a half-written asset.
  await writeAtomic(join(DIST, 'app.js'), out.outputFiles[0]!.contents)
  await writeAtomic(join(DIST, 'index.html'), await readFile(join(SRC, 'index.html')))
  await writeAtomic(join(DIST, 'app.css'), await readFile(join(SRC, 'console.css')))
  await writeAtomic(STAMP, new Date().toISOString() + '\n')
}

async function writeAtomic (path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
  await writeFile(tmp, data)
  await rename(tmp, path)
}

/** Builds when missing or stale; returns whether it built. */
export async function ensureConsoleBuilt (): Promise<boolean> {
  if (!await isConsoleStale()) return false
  await buildConsole()
  return true
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const ifStale = process.argv.includes('--if-stale')
  const built = ifStale ? await ensureConsoleBuilt() : (await buildConsole(), true)
  console.log(built ? `console built into ${DIST}` : 'console is up to date')
}
