// Fuzzing the envelope peek and the inspection with a seeded PRNG (USP_FUZZ_SEED reproduces a run).
//
// Oracle. The peek is a "valid Record" verdict, so whenever it accepts bytes:
//  - protobufjs must decode the same bytes as a Record without throwing, and agree on
//    version / to_id / from_id / record_type;
//  - an enforcing inspection passes only if that full decode says from_id is the publisher and
//    to_id the inbox endpoint.
// Whenever the peek refuses, an enforcing inspection must refuse as usp.malformed_record.
// Nothing may throw. (Deliberately stricter than protobufjs: see broker/usp/wire.ts.)

import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  peekRecord, decodeMsgHeader, inspectUspPublish, encodeRecord, encodeMsg, fullyDecodeRecord, inboxTopic,
  type RecordEnvelope
} from '../../broker/usp/index.ts'
import { SEED, prng, int, pick, randomBytes, randomRecordInput, controllerGetRecord, type Random } from './fixtures.ts'
import { lenField, varintField, fixed32Field, fixed64Field, tag } from './wire-builder.ts'

const camelToSnake = (s: string): string => s.replace(/[A-Z]/g, c => `_${c.toLowerCase()}`)

interface Target { publisher: string; inboxEndpoint: string }

/** Picks the audit level per input; each test reseeds it so tests reproduce on their own. */
let fuzzRnd: Random = prng(SEED)

/** Applies the oracle to one input; returns whether the peek accepted it. */
function check (bytes: Buffer, target: Target, label: string): boolean {
  const peek = peekRecord(bytes)
  // Also exercise the Msg header reader; it must not throw either.
  const header = decodeMsgHeader(bytes)
  assert.equal(typeof header.ok, 'boolean', label)

  const inspection = inspectUspPublish({
    publisher: { tenant: 'acme', endpointId: target.publisher, role: 'controller' },
    topic: inboxTopic('acme', 'agent', target.inboxEndpoint),
    payload: bytes,
    responseTopic: 'acme/usp/controller/c',
    protocolVersion: 5,
    mode: 'enforce',
    audit: pick(fuzzRnd, ['envelope', 'message'] as const)
  })

  if (!peek.ok) {
    assert.equal(inspection.verdict, 'refuse', label)
    assert.equal(inspection.code, 'usp.malformed_record', label)
    return false
  }
  let full: Record<string, unknown>
  try {
    full = fullyDecodeRecord(bytes)
  } catch (err) {
    assert.fail(`${label}: peek accepted bytes protobufjs rejects (${(err as Error).message}): ${bytes.toString('hex')}`)
  }
  const env = peek as RecordEnvelope
  assert.equal(env.version, full.version ?? '', label)
  assert.equal(env.toId, full.toId, label)
  assert.equal(env.fromId, full.fromId, label)
  assert.equal(env.recordType, camelToSnake(String(full.recordType)), label)
  if (inspection.verdict === 'pass') {
    assert.equal(full.fromId, target.publisher, label)
    assert.equal(full.toId, target.inboxEndpoint, label)
  }
  return true
}

function validSamples (rnd: Random, count: number): Array<{ bytes: Buffer; target: Target }> {
  const out = []
  for (let i = 0; i < count; i++) {
    const input = randomRecordInput(rnd)
    if (input.noSessionContext !== undefined && rnd() < 0.5) {
      input.noSessionContext.payload = encodeMsg({ msgId: `m${i}`, body: { request: { get: { paramPaths: ['Device.'], maxDepth: 2 } } } })
    }
    out.push({ bytes: encodeRecord(input), target: { publisher: input.fromId, inboxEndpoint: input.toId } })
  }
  out.push({ bytes: controllerGetRecord(), target: { publisher: 'self::usp-controller', inboxEndpoint: 'os::00256D-0123456789' } })
  return out
}

test('random buffers never throw and are never accepted by accident', () => {
  fuzzRnd = prng(SEED ^ 1)
  const rnd = prng(SEED)
  const target = { publisher: 'a', inboxEndpoint: 'b' }
  for (let i = 0; i < 5000; i++) {
    check(randomBytes(rnd, int(rnd, 200)), target, `seed ${SEED} random #${i}`)
  }
})

/** Random sequences of plausible fields (known and unknown numbers, right and wrong wire types). */
function randomFieldSoup (rnd: Random): Buffer {
  const parts: Buffer[] = []
  // Usually start from the required ids, so the soup reaches the accepting paths too.
  if (rnd() < 0.8) parts.push(lenField(2, pick(rnd, ['a', 'b'])), lenField(3, pick(rnd, ['a', 'b'])))
  const n = int(rnd, 4)
  for (let i = 0; i < n; i++) {
    const field = pick(rnd, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 99, 0])
    switch (int(rnd, 7)) {
      case 0: parts.push(varintField(field, int(rnd, 5))); break
      case 1: parts.push(fixed32Field(field, int(rnd, 1000))); break
      case 2: parts.push(fixed64Field(field)); break
      case 3: parts.push(tag(field, pick(rnd, [3, 4, 6, 7]))); break
      case 4: parts.push(lenField(field, pick(rnd, ['a', 'b', '', '1.3']))); break
      default: {
        // A record-type body made of a few random inner fields.
        const inner = Buffer.concat([
          rnd() < 0.5 ? varintField(1, int(rnd, 3)) : lenField(1, 'r'),
          rnd() < 0.5 ? lenField(2, randomBytes(rnd, int(rnd, 6))) : fixed32Field(2, 7)
        ])
        parts.push(lenField(field, inner))
      }
    }
  }
  return Buffer.concat(parts)
}

test('random field soups: accepted only when protobufjs agrees', () => {
  fuzzRnd = prng(SEED ^ 2)
  const rnd = prng(SEED + 2)
  let accepted = 0
  for (let i = 0; i < 5000; i++) {
    const target = { publisher: pick(rnd, ['a', 'b']), inboxEndpoint: pick(rnd, ['a', 'b']) }
    if (check(randomFieldSoup(rnd), target, `seed ${SEED} soup #${i}`)) accepted++
  }
  assert.ok(accepted > 50, `the soup should reach the accepting paths (accepted ${accepted})`)
})

test('every truncation of a valid record is refused', () => {
  fuzzRnd = prng(SEED ^ 3)
  const samples = validSamples(prng(SEED + 3), 60)
  for (const [s, { bytes, target }] of samples.entries()) {
    assert.equal(check(bytes, target, `sample ${s} whole`), true)
    for (let length = 0; length < bytes.length; length++) {
      // record_type is the last field protobufjs writes, so no strict prefix is a whole Record.
      assert.equal(check(bytes.subarray(0, length), target, `seed ${SEED} sample ${s} truncated to ${length}`), false)
    }
  }
})

test('bit flips of valid records never throw and never pass unless still valid', () => {
  fuzzRnd = prng(SEED ^ 4)
  const samples = validSamples(prng(SEED + 4), 25)
  let stillValid = 0
  for (const [s, { bytes, target }] of samples.entries()) {
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const flipped = Buffer.from(bytes)
      flipped[bit >> 3]! ^= 1 << (bit & 7)
      if (check(flipped, target, `seed ${SEED} sample ${s} bit ${bit}`)) stillValid++
    }
  }
  assert.ok(stillValid > 0) // flips inside values keep the structure: those must still agree
})

test('pathological sizes stay fast and never throw', () => {
  fuzzRnd = prng(SEED ^ 5)
  const target = { publisher: 'a', inboxEndpoint: 'b' }
  const started = Date.now()
  // ~1 MiB of unknown varint fields (field 99: tag 0x98 0x06, value 0), then 1 MiB of continuation bytes.
  const unknownFields = Buffer.alloc(3 * 350_000)
  for (let i = 0; i < unknownFields.length; i += 3) unknownFields.set([0x98, 0x06, 0x00], i)
  check(unknownFields, target, 'many unknown fields')
  check(Buffer.alloc(1024 * 1024, 0x80), target, 'continuation bytes')
  // Deep nesting of unknown length-delimited fields: skipped without recursion.
  let nested: Buffer = Buffer.from('x')
  for (let i = 0; i < 2000; i++) nested = lenField(99, nested)
  check(nested, target, 'nested')
  assert.ok(Date.now() - started < 2000)
})
