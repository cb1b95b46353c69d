// `uspgate token create|list|revoke` as a user runs them, against a real gateway.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { removeDir } from '../helpers/gateway.ts'
import { startAdminGateway, ADMIN_TOKEN } from './helpers.ts'

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'uspgate.js')

test('token create (shown once), list, use, revoke; a viewer token is refused changes with a clear 403', async () => {
  const g = await startAdminGateway()
  const cli = async (token: string, ...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> => {
    try {
      const r = await promisify(execFile)(process.execPath, [BIN, ...args], { env: { ...process.env, USPGATE_ADMIN_URL: g.adminUrl, USPGATE_ADMIN_TOKEN: token } })
      return { code: 0, stdout: r.stdout, stderr: r.stderr }
    } catch (err) {
      const e = err as { code: number, stdout: string, stderr: string }
      return { code: e.code, stdout: e.stdout, stderr: e.stderr }
    }
  }
  try {
    const created = await cli(ADMIN_TOKEN, 'token', 'create', 'night shift', '--role', 'viewer', '--tenants', 'acme,globex', '--json')
    assert.equal(created.code, 0, created.stderr)
    const tok = JSON.parse(created.stdout) as { id: string, token: string, role: string, tenants: string[] }
    assert.deepEqual([tok.role, tok.tenants], ['viewer', ['acme', 'globex']])
    const human = await cli(ADMIN_TOKEN, 'token', 'create', 'soc', '--role', 'security')
    assert.equal(human.code, 0)
    assert.match(human.stdout, /^token tok-[0-9a-f]{16} \(security, every tenant\):\n {2}usa_[A-Za-z0-9_-]{43}\n\(shown only this once/)

    const list = await cli(ADMIN_TOKEN, 'token', 'list')
    assert.equal(list.code, 0)
    assert.match(list.stdout, /^id +name +role +tenants +createdAt +state/)
    assert.match(list.stdout, new RegExp(`${tok.id} +night shift +viewer +acme,globex .* active`))
    assert.match(list.stdout, /bootstrap +bootstrap +admin +\* .* bootstrap/)
    assert.ok(!list.stdout.includes(tok.token))

    assert.equal((await cli(tok.token, 'tenant', 'list')).code, 0)
    const refused = await cli(tok.token, 'tenant', 'add', 'acme')
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /403 forbidden: role viewer may not tenant.create/)
    assert.match((await cli(tok.token, 'token', 'list')).stderr, /403 forbidden/)

    const revoked = await cli(ADMIN_TOKEN, 'token', 'revoke', tok.id)
    assert.equal(revoked.code, 0)
    assert.match(revoked.stdout, new RegExp(`revoked token ${tok.id} \\(night shift\\)`))
    assert.match((await cli(tok.token, 'tenant', 'list')).stderr, /401 unauthorized/)
    assert.match((await cli(ADMIN_TOKEN, 'token', 'revoke', 'bootstrap')).stderr, /409 bootstrap token: .*USPGATE_ADMIN_TOKEN/)
    assert.match((await cli(ADMIN_TOKEN, 'token', 'create', 'x')).stderr, /--role viewer\|security\|noc\|admin is required/)
    assert.match((await cli(ADMIN_TOKEN, 'token', 'create', 'x', '--role', 'root')).stderr, /400 invalid request/)
  } finally { await g.close(); await removeDir(g.dataDir) }
})
