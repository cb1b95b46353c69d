// Successful connects per tenant and hour, in memory (embedded mode): windows by whole hours, tenant
// filter, and hours older than the longest window dropped.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryConnectCounts, HOUR_MS, KEPT_HOURS } from '../../broker/core/index.ts'

test('connect counts: per tenant and hour, summed over the hours of a window, old hours dropped', async () => {
  let now = Date.parse('2026-01-10T12:30:00Z')
  const c = new MemoryConnectCounts(() => now)
  for (let i = 0; i < 5; i++) c.ok('acme')
  c.ok('beta')
  now += HOUR_MS // the next hour
  c.ok('acme')
  const all = await c.counts(now - 24 * HOUR_MS)
  assert.deepEqual([...all].sort(), [['acme', 6], ['beta', 1]])
  // a window that starts in the last hour counts that whole hour only
  assert.deepEqual([...await c.counts(now - 60_000)], [['acme', 1]])
  assert.deepEqual([...await c.counts(now - 24 * HOUR_MS, ['beta'])], [['beta', 1]], 'tenant filter')
  // eight days later the first hours are gone (the 7 d window no longer reaches them)
  now += (KEPT_HOURS + 24) * HOUR_MS
  c.ok('beta')
  assert.deepEqual([...await c.counts(0)], [['beta', 1]])
  const held = (c as unknown as { hours: Map<number, unknown> }).hours.size
  assert.equal(held, 1, 'memory per tenant and hour, not per connect')
})
