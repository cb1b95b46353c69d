// When CONNECT and SUBSCRIBE decisions run (broker/mqtt/decision-turn.ts): together at the end of the
// event-loop turn in which they were asked, after that turn's other work, each kind in arrival order;
// subscription decisions at most N per turn. The gateway's own tests (hardening/fairness, conformance)
// check the answers clients get through it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { DecisionTurn } from '../../broker/mqtt/decision-turn.ts'

test('decisions asked in one turn run together after the rest of that turn, in arrival order per kind', async () => {
  const turn = new DecisionTurn(0)
  const log: string[] = []
  turn.connect(() => log.push('connect a'))
  turn.subscription(() => log.push('subscribe a'))
  turn.connect(() => log.push('connect b'))
  turn.subscription(() => {
    log.push('subscribe b')
    // asked while the batch runs (a client's next packet): the next turn
    turn.subscription(() => log.push('subscribe c'))
  })
  log.push('other work of the turn')
  assert.deepEqual(log, ['other work of the turn'])
  await nextTurn()
  assert.deepEqual(log, ['other work of the turn', 'connect a', 'connect b', 'subscribe a', 'subscribe b'])
  await nextTurn()
  assert.deepEqual(log.slice(5), ['subscribe c'])
})

test('subscription decisions run at most N per turn, the rest in later turns in order; connects are not held back', async () => {
  const turn = new DecisionTurn(3)
  const ran: number[] = []
  const connects: number[] = []
  for (let i = 0; i < 8; i++) turn.subscription(() => ran.push(i))
  for (let i = 0; i < 5; i++) turn.connect(() => connects.push(i))
  await nextTurn()
  assert.deepEqual(ran, [0, 1, 2])
  assert.deepEqual(connects, [0, 1, 2, 3, 4])
  await nextTurn()
  assert.deepEqual(ran, [0, 1, 2, 3, 4, 5])
  await nextTurn()
  assert.deepEqual(ran, [0, 1, 2, 3, 4, 5, 6, 7])
})
