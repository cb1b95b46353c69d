// Misspelled USPGATE_* variables: start-up warns, naming the setting that was most likely meant,
// instead of silently ignoring them (a real `uspgate start` process).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KNOWN_SETTINGS, unknownSettings } from '../../broker/core/index.ts'
import { removeDir } from '../helpers/gateway.ts'

const REPO = join(import.meta.dirname, '..', '..')

test('unknown USPGATE_* variables are reported with the closest known setting; near-misses only', () => {
  const env = {
    USPGATE_PUBLISH_RAET: '5',
    USPGATE_PUBLISH_RATE: '10',
    USPGATE_REDIS_ULR: 'redis://x',
    USPGATE_MQTTS_PROT: '8883',
    USPGATE_ADMIN_TOKEN_RAT: '5',
    USPGATE_SOMETHING_ELSE_ENTIRELY: 'x',
    PATH: '/bin',
    uspgate_lower: 'not ours'
  }
  assert.deepEqual(unknownSettings(env), [
    { name: 'USPGATE_ADMIN_TOKEN_RAT', suggestion: 'USPGATE_ADMIN_TOKEN_RATE' },
    { name: 'USPGATE_MQTTS_PROT', suggestion: 'USPGATE_MQTTS_PORT' },
    { name: 'USPGATE_PUBLISH_RAET', suggestion: 'USPGATE_PUBLISH_RATE' },
    { name: 'USPGATE_REDIS_ULR', suggestion: 'USPGATE_REDIS_URL' },
    { name: 'USPGATE_SOMETHING_ELSE_ENTIRELY' }
  ])
  assert.deepEqual(unknownSettings(Object.fromEntries(KNOWN_SETTINGS.map(k => [k, 'x']))), [])
})

test('every known setting is documented in the README settings and every documented one is known', async () => {
  const readme = await readFile(join(REPO, 'README.md'), 'utf8')
  const documented = new Set(readme.match(/USPGATE_[A-Z0-9_]+/g))
  for (const k of KNOWN_SETTINGS) assert.ok(documented.has(k), `${k} is read but not in README.md`)
  documented.delete('USPGATE_PUBLISH_RAET') // the README's example of a typo
  for (const d of documented) assert.ok(KNOWN_SETTINGS.includes(d), `${d} is in README.md but nothing reads it (add it to KNOWN_SETTINGS in broker/core/config.ts)`)
})

test('uspgate start warns about USPGATE_PUBLISH_RAET naming USPGATE_PUBLISH_RATE, and still starts', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'uspgate-unknown-'))
  const proc = spawn(process.execPath, [join(REPO, 'bin', 'uspgate.js'), 'start', '--mqtt-port', '0', '--admin-port', '0', '--mqtts-port', 'off', '--data-dir', dataDir], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, USPGATE_PUBLISH_RAET: '5', USPGATE_ADMIN_TOKEN: 'unknown-settings-test-token-0123456789abcdef' }
  })
  let out = ''
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready within 60 s:\n${out}`)), 60_000)
      const onData = (d: Buffer): void => { out += d.toString(); if (out.includes('uspgate ready')) { clearTimeout(timer); resolve() } }
      proc.stdout.on('data', onData)
      proc.stderr.on('data', onData)
      proc.once('exit', code => { clearTimeout(timer); reject(new Error(`exited ${String(code)}:\n${out}`)) })
    })
    const line = out.split('\n').find(l => l.includes('USPGATE_PUBLISH_RAET'))
    assert.ok(line, out)
    const rec = JSON.parse(line) as { level: number, msg: string, setting: string, suggestion: string }
    assert.equal(rec.level, 40) // pino warn
    assert.equal(rec.msg, 'unknown setting USPGATE_PUBLISH_RAET is ignored; did you mean USPGATE_PUBLISH_RATE?')
    assert.deepEqual([rec.setting, rec.suggestion], ['USPGATE_PUBLISH_RAET', 'USPGATE_PUBLISH_RATE'])
  } finally {
    const exited = new Promise(resolve => proc.once('exit', resolve))
    proc.kill('SIGTERM')
    await exited
    await removeDir(dataDir)
  }
})
