// Redis as an operator runs it in production: TLS only (with and without client certificates), an
// ACL user with a password and the default user switched off, and one Redis shared by deployments
// that keep apart by key prefix. Real redis-server processes, certificates made with openssl.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { startGateway, provision, connect, closeClient, removeDir, waitFor, type TestGateway } from '../helpers/gateway.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { loadConfig, ConfigError } from '../../broker/index.ts'

const USER = { name: 'uspgate', password: 'redis-pass-7f3a9c21' }
const cleanup: Array<() => Promise<void>> = []
after(async () => { for (const f of cleanup.reverse()) await f() })

async function gateway (redis: TestRedis, prefix: string, nodeId: string, tls: Record<string, string> = {}): Promise<TestGateway> {
  const t = await startGateway({ redis: { url: redis.url, prefix, tls }, nodeId })
  cleanup.push(async () => { await t.close(); await removeDir(t.dataDir) })
  return t
}

test('TLS with client certificates and an ACL user: two nodes share state and route messages; nothing listens in clear', async () => {
  const redis = await startRedis({ tls: { clientCertificates: true }, user: USER })
  cleanup.push(() => redis.stop())
  assert.match(redis.url, /^rediss:\/\/uspgate:/)
  const tls = { ca: redis.tls!.ca, cert: redis.tls!.clientCert, key: redis.tls!.clientKey }
  const A = await gateway(redis, 'tls-a:', 'node-a', tls)
  const B = await gateway(redis, 'tls-a:', 'node-b', tls)
  const ag = await provision(A, 'acme', 'os::00256D-T001', 'agent')
  const ct = await provision(A, 'acme', 'self::ctrl-t', 'controller')
  await waitFor(() => B.gw.store.getCredential('acme', 'self::ctrl-t'), 2000, 'credential on node B')
  const sub = await connect(B, { v: 5, username: ct.username, password: ct.secret })
  await sub.subscribeAsync('acme/bulkdata/#', { qos: 1 })
  const got = new Promise<string>(resolve => sub.once('message', (_t, p) => resolve(p.toString())))
  const pub = await connect(A, { v: 5, username: ag.username, password: ag.secret })
  await pub.publishAsync('acme/bulkdata/os::00256D-T001/x', 'over TLS', { qos: 1 })
  assert.equal(await got, 'over TLS')
  await closeClient(sub); await closeClient(pub)

  // the Redis server itself: in clear, or over TLS without a client certificate, nobody gets a reply
  const answer = (socket: Socket): Promise<string> => new Promise(resolve => {
    let text = ''
    socket.on('data', d => { text += d.toString('latin1') })
    socket.on('error', err => resolve(`${text}|${err.message}`))
    socket.on('close', () => resolve(text))
    setTimeout(() => { socket.destroy(); resolve(text) }, 2000).unref()
  })
  const auth = `AUTH ${USER.name} ${USER.password}\r\nPING\r\n`
  const clear = netConnect(redis.port, '127.0.0.1', () => clear.write(auth))
  assert.doesNotMatch(await answer(clear), /PONG/)
  const noCert = tlsConnect({ host: '127.0.0.1', port: redis.port, ca: redis.tls!.ca }, () => noCert.write(auth))
  assert.doesNotMatch(await answer(noCert), /PONG/)
  const withCert = tlsConnect({ host: '127.0.0.1', port: redis.port, ca: redis.tls!.ca, cert: redis.tls!.clientCert, key: redis.tls!.clientKey }, () => withCert.write(auth))
  assert.match(await answer(withCert), /PONG/, 'the control: with the certificate Redis answers')
})

test('a node with a wrong Redis password, or one that does not trust Redis\' certificate, refuses to start with a clear error that never shows the password', async () => {
  const redis = await startRedis({ tls: { clientCertificates: false }, user: USER })
  cleanup.push(() => redis.stop())
  const wrong = redis.url.replace(encodeURIComponent(USER.password), 'not-the-password')
  await assert.rejects(startGateway({ redis: { url: wrong, prefix: 'x:', tls: { ca: redis.tls!.ca } }, nodeId: 'node-w' }), (err: Error) => {
    assert.match(err.message, /cannot reach Redis at rediss:\/\/uspgate:\*\*\*@127\.0\.0\.1:\d+/)
    assert.match(err.message, /WRONGPASS/)
    assert.doesNotMatch(err.message, /not-the-password/)
    return true
  })
  // no CA given: Redis' certificate is checked against the system store, and fails
  await assert.rejects(startGateway({ redis: { url: redis.url, prefix: 'x:' }, nodeId: 'node-u' }), (err: Error) => {
    assert.match(err.message, /cannot reach Redis at rediss:\/\/uspgate:\*\*\*@/)
    assert.match(err.message, /certificate/i)
    assert.doesNotMatch(err.message, new RegExp(USER.password))
    return true
  })
  // with the CA it starts
  const ok = await gateway(redis, 'x:', 'node-ok', { ca: redis.tls!.ca })
  assert.equal((await ok.api('GET', '/v1/cluster')).status, 200)
})

test('two deployments on one Redis keep apart by key prefix', async () => {
  const redis = await startRedis({ user: USER })
  cleanup.push(() => redis.stop())
  const isp1 = await gateway(redis, 'isp-one:', 'node-1')
  const isp2 = await gateway(redis, 'isp-two:', 'node-2')
  await provision(isp1, 'acme', 'os::00256D-P001', 'agent')
  const tenants2 = await isp2.api('GET', '/v1/tenants')
  assert.equal(JSON.stringify(tenants2.body).includes('acme'), false, 'deployment two sees deployment one\'s tenant')
  assert.equal(isp2.gw.store.getCredential('acme', 'os::00256D-P001'), undefined)
  const r = new Redis(redis.url)
  try {
    const keys = await r.keys('*')
    assert.ok(keys.length > 0)
    const stray = keys.filter(k => !k.startsWith('isp-one:') && !k.startsWith('isp-two:'))
    assert.deepEqual(stray, [], 'every key is under a deployment prefix')
  } finally { r.disconnect() }
})

test('Redis TLS settings are checked at start: a rediss:// URL is required, files must hold PEM, certificate and key go together', () => {
  const dir = join(process.cwd(), 'data-redis-tls-config-test')
  cleanup.push(async () => { await removeDir(dir) })
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
  writeFileSync(join(dir, 'junk.pem'), 'not a certificate')
  const bad = (env: Record<string, string>, pattern: RegExp): void => {
    assert.throws(() => loadConfig({}, env), (err: unknown) => err instanceof ConfigError && pattern.test(err.message), JSON.stringify(env))
  }
  bad({ USPGATE_REDIS_URL: 'redis://127.0.0.1:6379', USPGATE_REDIS_TLS_CA: join(dir, 'ca.pem') }, /USPGATE_REDIS_TLS_CA: applies to TLS connections only: use a rediss:\/\/ URL/)
  bad({ USPGATE_REDIS_URL: 'rediss://127.0.0.1:6379', USPGATE_REDIS_TLS_CA: join(dir, 'missing.pem') }, /USPGATE_REDIS_TLS_CA: cannot read .*missing\.pem: ENOENT/)
  bad({ USPGATE_REDIS_URL: 'rediss://127.0.0.1:6379', USPGATE_REDIS_TLS_CA: join(dir, 'junk.pem') }, /holds no PEM certificate/)
  bad({ USPGATE_REDIS_URL: 'rediss://127.0.0.1:6379', USPGATE_REDIS_TLS_CERT: join(dir, 'ca.pem') }, /USPGATE_REDIS_TLS_KEY: USPGATE_REDIS_TLS_CERT and USPGATE_REDIS_TLS_KEY go together/)
  const ok = loadConfig({}, { USPGATE_REDIS_URL: 'rediss://127.0.0.1:6379', USPGATE_REDIS_TLS_CA: join(dir, 'ca.pem') })
  assert.match(ok.redis!.tls!.ca!, /BEGIN CERTIFICATE/)
})
