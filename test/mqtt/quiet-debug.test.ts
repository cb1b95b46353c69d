// broker/mqtt/patches/quiet-debug.ts: mqtt-packet's loggers, switched off, are a function that does
// nothing (no rest-arguments array, no `enabled` getter per call); DEBUG still switches them on. Each
// case is a fresh process that loads the gateway as `uspgate start` does, and real mqtt-packet.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const PROBE = fileURLToPath(new URL('./quiet-debug-probe.ts', import.meta.url))

function probe (env: { DEBUG?: string }, enableLater = ''): { applied: boolean, packets: number, stderr: string } {
  const childEnv = { ...process.env }
  delete childEnv.DEBUG
  if (env.DEBUG !== undefined) childEnv.DEBUG = env.DEBUG
  const r = spawnSync(process.execPath, ['--import', 'tsx', PROBE, enableLater], { cwd: ROOT, env: childEnv, encoding: 'utf8', timeout: 120_000 })
  assert.equal(r.status, 0, `probe failed: ${r.stderr}`)
  return { ...JSON.parse(r.stdout) as { applied: boolean, packets: number }, stderr: r.stderr }
}

test('without DEBUG, mqtt-packet logs nothing even when debug is switched on later: its loggers were created switched off', () => {
  const r = probe({}, 'mqtt-packet:*,ioredis:*')
  assert.equal(r.applied, true, 'loading broker/index.ts first installs the patch before mqtt-packet loads')
  assert.equal(r.packets, 1, 'mqtt-packet still parses')
  // Unpatched, debug 4's loggers check `enabled` on every call, so this run-time switch-on would print
  // mqtt-packet:parser lines: their absence is the patch at work.
  assert.doesNotMatch(r.stderr, /mqtt-packet:/)
  assert.match(r.stderr, /ioredis:probe other namespaces log as before/, 'other packages keep the debug package as it is')
})

test('DEBUG=mqtt-packet:* at start still gives the real parser and writer logs', () => {
  const r = probe({ DEBUG: 'mqtt-packet:*' })
  assert.equal(r.applied, true)
  assert.equal(r.packets, 1)
  assert.match(r.stderr, /mqtt-packet:parser .*_parseHeader/)
  assert.match(r.stderr, /mqtt-packet:writeToStream publish: packet:/)
})
