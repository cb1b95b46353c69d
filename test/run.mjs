// Runs every test/**/*.test.ts through node:test with tsx as the loader.
// Node 20's `--test` does not expand globs, so the files are listed here.
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { spawn } from 'node:child_process'

function find (dir) {
  const out = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out.push(...find(p))
    else if (name.endsWith('.test.ts')) out.push(p)
  }
  return out
}

const filter = process.argv.slice(2)
let files = find('test').sort()
if (filter.length) files = files.filter(f => filter.some(x => f.includes(x)))
if (files.length === 0) {
  console.error('no test files matched')
  process.exit(1)
}
const child = spawn(process.execPath, [
  '--import', 'tsx', '--test', '--test-reporter=spec',
  '--test-concurrency=2', '--test-timeout=600000', ...files
], { stdio: 'inherit' })
child.on('exit', code => process.exit(code ?? 1))
