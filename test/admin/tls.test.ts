// The admin listener over real TLS: USPGATE_ADMIN_TLS=on (HTTPS with the
// gateway's server certificate, verified against its root CA) and mtls (a
// client certificate from the admin client CA on every connection; device
// certificates of the gateway's own tenant CAs and other CAs are refused at
// the handshake; the bearer token is still required).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { removeDir, waitFor } from '../helpers/gateway.ts'
import { opensslCa, opensslIssue, removeTempDirs, tempDir } from '../certs/helpers.ts'
import { adminSettingsFromEnv } from '../../broker/core/index.ts'
import { ConfigError } from '../../broker/index.ts'
import { startAdminGateway, httpsCall, ADMIN_TOKEN, UNLIMITED } from './helpers.ts'

after(() => removeTempDirs())

test('USPGATE_ADMIN_TLS=on: HTTPS with the gateway server certificate, TLS 1.2 floor, plain HTTP refused', async () => {
  const g = await startAdminGateway({ ...UNLIMITED, tls: 'on' })
  try {
    assert.match(g.adminUrl, /^https:\/\/127\.0\.0\.1:\d+$/)
    const root = await g.gw.certificates.trustBundlePem()
    const ok = await httpsCall(`${g.adminUrl}/v1/tenants`, { ca: root, token: ADMIN_TOKEN })
    assert.equal(ok.status, 200)
    assert.ok(ok.headers['x-request-id'])
    assert.equal((await httpsCall(`${g.adminUrl}/v1/tenants`, { ca: root })).status, 401)
    // the certificate names 127.0.0.1 too (USPGATE_SERVER_SANS)
    assert.equal((await httpsCall(`${g.adminUrl}/healthz`, { ca: root, servername: '' })).status, 200)
    // a client that does not trust the gateway root refuses the server
    const otherCa = opensslCa(tempDir(), 'other', '/CN=not the gateway')
    await assert.rejects(httpsCall(`${g.adminUrl}/healthz`, { ca: readFileSync(otherCa.certFile, 'utf8') }), /self[- ]signed|unable to verify|certificate/i)
    await assert.rejects(fetch(g.adminUrl.replace('https:', 'http:') + '/healthz'), /fetch failed/)
    await assert.rejects(httpsCall(`${g.adminUrl}/healthz`, { ca: root, maxVersion: 'TLSv1.1' }), /protocol|version|alert|EPROTO/i) // [TR-369 R-MQTT.48] floor, as on MQTTS
    // the discovery file the CLI reads carries the https URL
    assert.match(readFileSync(join(g.dataDir, 'admin.json'), 'utf8'), /"url":"https:/)
  } finally { await g.close(); await removeDir(g.dataDir) }
})

test('USPGATE_ADMIN_TLS=mtls: only certificates of the admin client CA open the listener; the token is still required', async () => {
  const dir = tempDir()
  const adminCa = opensslCa(dir, 'admin-ca', '/O=Example ISP/CN=uspgate admin clients')
  const ops = opensslIssue(dir, 'ops', { caCertFile: adminCa.certFile, caKeyFile: adminCa.keyFile, subject: '/CN=noc-oncall' })
  const rogueCa = opensslCa(dir, 'rogue-ca', '/CN=rogue')
  const rogue = opensslIssue(dir, 'rogue', { caCertFile: rogueCa.certFile, caKeyFile: rogueCa.keyFile, subject: '/CN=noc-oncall' })
  const pem = (f: string): string => readFileSync(f, 'utf8')
  const g = await startAdminGateway({ ...UNLIMITED, tls: 'mtls', clientCaPem: pem(adminCa.certFile) })
  try {
    const root = await g.gw.certificates.trustBundlePem()
    const client = { ca: root, cert: pem(ops.certFile), key: pem(ops.keyFile) }
    assert.equal((await httpsCall(`${g.adminUrl}/v1/tenants`, { ...client, token: ADMIN_TOKEN })).status, 200)
    assert.equal((await httpsCall(`${g.adminUrl}/v1/tenants`, client)).status, 401) // the certificate alone is not enough
    assert.equal((await httpsCall(`${g.adminUrl}/v1/tenants`, { ...client, method: 'POST', token: ADMIN_TOKEN })).status, 400)

    // a device certificate from the gateway's own tenant CA (chain included) must not open the admin API
    await g.gw.control.addTenant({ id: 'acme' }, { id: 'test', role: 'admin' })
    const device = await g.gw.certificates.issue('acme', { principal: 'os::00256D-0001', role: 'agent' }, { id: 'test', role: 'admin' })
    const refusals: Array<[string, { cert?: string, key?: string }]> = [
      ['no client certificate', {}],
      ['a certificate from another CA', { cert: pem(rogue.certFile), key: pem(rogue.keyFile) }],
      ['a device certificate of a tenant CA', { cert: device.certPem + device.chainPem, key: device.keyPem }]
    ]
    for (const [what, id] of refusals) {
      await assert.rejects(httpsCall(`${g.adminUrl}/v1/tenants`, { ca: root, token: ADMIN_TOKEN, ...id }), (err: Error & { code?: string }) => {
        assert.match(`${err.code ?? ''} ${err.message}`, /ECONNRESET|EPIPE|alert|certificate|socket hang up/i, what)
        return true
      }, what)
    }
    // probes are behind the client certificate too
    await assert.rejects(httpsCall(`${g.adminUrl}/healthz`, { ca: root }))
    assert.equal((await httpsCall(`${g.adminUrl}/healthz`, client)).status, 200)
    // each refused handshake is an admin.auth_failed event
    await waitFor(() => g.gw.events.query({ code: 'admin.auth_failed' }).filter(e => e.action === 'tls.handshake').length >= 3, 3000, 'tls.handshake events')
  } finally { await g.close(); await removeDir(g.dataDir) }
})

test('admin listener settings are validated up front with one line naming the setting', async () => {
  assert.throws(() => adminSettingsFromEnv({ USPGATE_ADMIN_TLS: 'yes' }), (e: Error) => e instanceof ConfigError && /USPGATE_ADMIN_TLS: "yes" is not one of off, on, mtls/.test(e.message))
  assert.throws(() => adminSettingsFromEnv({ USPGATE_ADMIN_TLS: 'mtls' }), (e: Error) => e instanceof ConfigError && /USPGATE_ADMIN_CLIENT_CA/.test(e.message))
  assert.throws(() => adminSettingsFromEnv({ USPGATE_ADMIN_TLS: 'mtls', USPGATE_ADMIN_CLIENT_CA: '/nonexistent/ca.pem' }), /cannot read/)
  assert.throws(() => adminSettingsFromEnv({ USPGATE_ADMIN_TOKEN_RATE: '-1' }), /USPGATE_ADMIN_TOKEN_RATE/)
  const ok = adminSettingsFromEnv({ USPGATE_ADMIN_TOKEN_RATE: '5', USPGATE_ADMIN_ADDRESS_RATE: '0', USPGATE_ADMIN_AUTH_FAILURES: '3' })
  assert.deepEqual([ok.tls, ok.tokenRate, ok.addressRate, ok.authFailuresPerMinute], ['off', 5, 0, 3])
  const r = await promisify(execFile)(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'uspgate.js'), 'start'], {
    env: { ...process.env, USPGATE_DATA_DIR: tempDir(), USPGATE_ADMIN_TLS: 'mtls', USPGATE_ADMIN_CLIENT_CA: '' }
  }).catch((e: { code: number, stderr: string }) => e)
  assert.equal((r as { code: number }).code, 2)
  assert.match((r as { stderr: string }).stderr.trim(), /^uspgate: invalid setting USPGATE_ADMIN_CLIENT_CA: /)
})
