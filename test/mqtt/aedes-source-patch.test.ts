// The source patches of broker/mqtt/patches/aedes-source are applied by npm install (patch-package):
// the gateway's aedes carries them, and the bench's peer (aedes-stock) is the aedes that was published.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const require = createRequire(import.meta.url)
// the package directory: its entry point, aedes.js, sits at the top (the exports map hides lib/ and package.json)
const packageDir = (name: string): string => dirname(require.resolve(name))
const manifest = (name: string): { name: string, version: string } => JSON.parse(readFileSync(join(packageDir(name), 'package.json'), 'utf8'))
const connectHandler = (name: string): string => readFileSync(join(packageDir(name), 'lib/handlers/connect.js'), 'utf8')
/** The body of emptyQueue, the last step of every CONNECT. */
const emptyQueueOf = (source: string): string => {
  const start = source.indexOf('function emptyQueue (arg, done) {')
  assert.ok(start >= 0, 'aedes has an emptyQueue step')
  return source.slice(start, source.indexOf('\n}\n', start))
}

test('the gateway\'s aedes reads a session queue without a stream.pipeline per CONNECT (aedes+2.0.0-beta.1.patch, applied by npm install)', () => {
  const body = emptyQueueOf(connectHandler('aedes'))
  assert.doesNotMatch(body, /pipeline\(/, 'emptyQueue still builds a stream.pipeline: run npm install (postinstall applies broker/mqtt/patches/aedes-source)')
  assert.match(body, /drainQueue\(outgoing, /)
})

test('the bench\'s peer is aedes as published: aedes-stock is the same release, unpatched', () => {
  const stock = manifest('aedes-stock')
  assert.equal(stock.name, 'aedes')
  assert.equal(stock.version, manifest('aedes').version)
  assert.match(emptyQueueOf(connectHandler('aedes-stock')), /pipeline\(\n {4}outgoing,/)
})
