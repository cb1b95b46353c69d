// The admin API fuzzed from its own OpenAPI document by schemathesis
// (.ci/fuzz-admin.sh), against a real gateway with some data to find: no 5xx,
// no reply outside its documented status codes / schema / content type /
// headers, no invalid request accepted, no route that ignores auth. Bounded
// (about 20-40 s). schemathesis comes from .ci/install-deps.sh; without it
// this test fails and says so (it is never skipped).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { removeDir } from '../helpers/gateway.ts'
import { startAdminGateway, ADMIN_TOKEN, UNLIMITED } from './helpers.ts'

const ROOT = join(import.meta.dirname, '..', '..')
const SCRIPT = join(ROOT, '.ci', 'fuzz-admin.sh')
const SCHEMATHESIS = process.env.SCHEMATHESIS ?? join(ROOT, '.ci', 'bin', 'venv', 'bin', 'schemathesis')

function run (cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null, output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, SCHEMATHESIS }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', d => { output += d })
    child.stderr.on('data', d => { output += d })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
    child.on('error', reject)
    child.on('close', code => { clearTimeout(timer); resolve({ code, output }) })
  })
}

test('schemathesis fuzz of the admin API from /openapi.json: no 5xx, no schema / status / content-type / header violation', { timeout: 900_000 }, async () => {
  assert.ok(existsSync(SCHEMATHESIS), `schemathesis is not installed at ${SCHEMATHESIS}: run "bash .ci/install-deps.sh" (pip install schemathesis into .ci/bin/venv)`)
  // Auth-failure lock off: the run deliberately sends requests without a token (ignored_auth check).
  const g = await startAdminGateway(UNLIMITED)
  try {
    // Data the schemas' examples point at (tenant acme, endpoint os::00256D-0001), so requests reach the handlers.
    assert.equal((await g.call('POST', '/v1/tenants', { body: { id: 'acme' } })).status, 201)
    assert.equal((await g.call('POST', '/v1/tenants/acme/credentials', { body: { principal: 'os::00256D-0001', role: 'agent' } })).status, 201)
    assert.equal((await g.call('POST', '/v1/tenants/acme/certificates', { body: { principal: 'os::00256D-0002', role: 'agent' } })).status, 201)
    const started = Date.now()
    const { code, output } = await run('bash', [SCRIPT, g.adminUrl, ADMIN_TOKEN], 840_000)
    const seconds = Math.round((Date.now() - started) / 1000)
    assert.equal(code, 0, `schemathesis failed (exit ${String(code)}, ${seconds} s):\n${output.slice(-20_000)}`)
    assert.match(output, /Open API 3\.1/)
    assert.match(output, /(\d+) generated, \1 passed/)
    // the gateway is still healthy and audited what the fuzzer changed
    assert.equal((await g.call('GET', '/healthz', { token: null })).status, 200)
    assert.ok(g.gw.events.query({ code: 'admin.action', limit: 1000 }).length > 10)
    assert.doesNotMatch(g.logText(), /admin request failed/) // no 500 reached the error handler
  } finally { await g.close(); await removeDir(g.dataDir) }
})
