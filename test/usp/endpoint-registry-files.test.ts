// The embedded endpoint registry's files: a flush appends only the endpoints that changed to
// endpoints.log (endpoints.json is not rewritten each second), and a restart folds the log into
// endpoints.json with every endpoint offline and its first contact kept.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EndpointRegistry } from '../../broker/usp/index.ts'

const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(l => l !== '')

test('a flush appends the changed endpoints only; a restart keeps everything, offline', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'uspgate-endpoints-'))
  try {
    const r = new EndpointRegistry(dir, 'n1')
    await r.load()
    for (let i = 0; i < 300; i++) r.connected('acme', `os::A-${i}`, 'agent', i % 10 === 0 ? 4 : 5)
    await r.flush()
    assert.equal((await lines(join(dir, 'endpoints.log'))).length, 300)
    const snapshot = await readFile(join(dir, 'endpoints.json'), 'utf8').catch(() => null)
    const first = (await r.get('acme', 'os::A-7'))!.firstContact
    r.disconnected('acme', 'os::A-7')
    r.sawConnectRecord('acme', 'os::A-8', 'acme/usp/agent/os::A-8')
    await r.flush()
    assert.equal((await lines(join(dir, 'endpoints.log'))).length, 302, 'two changed endpoints, two lines')
    assert.equal(await readFile(join(dir, 'endpoints.json'), 'utf8').catch(() => null), snapshot, 'the snapshot is not rewritten per flush')

    const again = new EndpointRegistry(dir, 'n1')
    await again.load()
    const list = await again.list('acme')
    assert.equal(list.length, 300)
    assert.ok(list.every(e => !e.online))
    assert.equal((await again.get('acme', 'os::A-7'))!.firstContact, first)
    assert.equal((await again.get('acme', 'os::A-8'))!.subscribedTopic, 'acme/usp/agent/os::A-8')
    assert.equal((await again.get('acme', 'os::A-10'))!.mqttVersion, '3.1.1')
    assert.deepEqual(await lines(join(dir, 'endpoints.log')), [], 'folded into endpoints.json at start')
    assert.equal((JSON.parse(await readFile(join(dir, 'endpoints.json'), 'utf8')) as unknown[]).length, 300)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('the presence timeline keeps the newest 50 transitions per endpoint, newest first, with the reason', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'uspgate-endpoints-'))
  try {
    const r = new EndpointRegistry(dir, 'n1')
    await r.load()
    for (let i = 0; i < 40; i++) {
      r.connected('acme', 'os::P-1', 'agent', i % 2 === 0 ? 5 : 4)
      r.disconnected('acme', 'os::P-1', { reason: i === 39 ? 'keepalive' : 'disconnect' }, i % 2 === 0 ? 5 : 4)
    }
    const list = await r.presence('acme', 'os::P-1')
    assert.equal(list.length, 50)
    assert.deepEqual([list[0]!.state, list[0]!.reason, list[0]!.mqttVersion, list[1]!.state, list[2]!.reason], ['offline', 'keepalive', '3.1.1', 'online', 'disconnect'])
    assert.deepEqual(await r.presence('acme', 'os::P-2'), [])
    assert.deepEqual(await r.presence('other', 'os::P-1'), [], 'per tenant')
    await r.flush()
  } finally { await rm(dir, { recursive: true, force: true }) }
})
