// A minimal, schema-driven walker over the protobuf wire format, for attacker-supplied bytes.
//
// It reads one message level at a time (tags, varints, fixed-width and length-delimited values),
// checks each known field against its rule and skips unknown fields, in one pass: O(size),
// no recursion, no allocation per byte, and it never throws. Nested messages are walked by the
// caller, one fixed level after another, so nesting depth never depends on the input.
//
// Deliberately stricter than a general protobuf decoder (fail closed; valid USP never trips these):
// - groups (wire types 3/4) are refused: proto3 USP schemas have none;
// - a singular known field that occurs twice is refused: decoders disagree on merging duplicates
//   (protobuf-c merges sub-messages, protobufjs replaces them), so the gateway could check a value
//   the receiver never sees;
// - string fields must be valid UTF-8 (proto3 requires it);
// - tags must fit 32 bits and varints 64 bits.

import { isUtf8 } from 'node:buffer'

export type FieldKind = 'string' | 'bytes' | 'message' | 'varint' | 'fixed32'

export interface FieldRule {
  readonly name: string
  readonly kind: FieldKind
  readonly repeated?: boolean
}

export type MessageRules = Readonly<Record<number, FieldRule>>

/** Where a field's value sits (`start`..`end`, for length-delimited kinds) and its number value
 *  (varint as a signed int32 like protobufjs reads enums, fixed32 as unsigned). */
export interface FieldSpan {
  readonly start: number
  readonly end: number
  readonly value: number
}

/** A walked message's known fields, indexed by field number (a small array: rules name fields 1..13). */
export type FieldSpans = ReadonlyArray<FieldSpan | undefined>

export type WalkResult =
  | { ok: true; fields: FieldSpans }
  | { ok: false; reason: string }

const WIRE_VARINT = 0
const WIRE_I64 = 1
const WIRE_LEN = 2
const WIRE_I32 = 5

const EXPECTED_WIRE: Readonly<Record<FieldKind, number>> = {
  string: WIRE_LEN,
  bytes: WIRE_LEN,
  message: WIRE_LEN,
  varint: WIRE_VARINT,
  fixed32: WIRE_I32
}

// readVarint's results. JS is single-threaded and readVarint's callers copy these out before
// anything else can run, so module-level scratch avoids an allocation per varint.
let varintValue = 0 // exact below 2^53, approximate above (only ever compared against lengths)
let varintLow32 = 0 // the low 32 bits as a signed int32

/** Reads a varint at `pos`; returns the position after it, or -1 (truncated) / -2 (over 64 bits). */
function readVarint (buf: Uint8Array, pos: number, end: number): number {
  let value = 0
  let low32 = 0
  let scale = 1
  for (let i = 0; i < 10; i++) {
    if (pos >= end) return -1
    const byte = buf[pos++]!
    const bits = byte & 0x7f
    if (i < 5) low32 |= bits << (7 * i)
    value += bits * scale
    scale *= 128
    if (byte < 0x80) {
      if (i === 9 && byte > 1) return -2
      varintValue = value
      varintLow32 = low32
      return pos
    }
  }
  return -2
}

function varintFailure (code: number, at: number): string {
  return code === -1 ? `truncated varint at byte ${at}` : `varint longer than 64 bits at byte ${at}`
}

/** Walks the fields of one message occupying `buf[start..end)`. */
export function walkMessage (
  buf: Uint8Array, start: number, end: number, rules: MessageRules, messageName: string
): WalkResult {
  const fields: Array<FieldSpan | undefined> = []
  let pos = start
  while (pos < end) {
    const tagAt = pos
    pos = readVarint(buf, pos, end)
    if (pos < 0) return { ok: false, reason: varintFailure(pos, tagAt) }
    if (varintValue > 0xffffffff) return { ok: false, reason: `tag wider than 32 bits at byte ${tagAt}` }
    const fieldNumber = Math.floor(varintValue / 8)
    const wireType = varintLow32 & 7
    if (fieldNumber === 0) return { ok: false, reason: `field number 0 at byte ${tagAt}` }

    let valueStart = pos
    let valueEnd = pos
    let value = 0
    switch (wireType) {
      case WIRE_VARINT:
        pos = readVarint(buf, pos, end)
        if (pos < 0) return { ok: false, reason: varintFailure(pos, valueStart) }
        value = varintLow32
        valueEnd = pos
        break
      case WIRE_I64:
        if (end - pos < 8) return { ok: false, reason: `truncated 64-bit value at byte ${pos}` }
        pos += 8
        valueEnd = pos
        break
      case WIRE_LEN: {
        pos = readVarint(buf, pos, end)
        if (pos < 0) return { ok: false, reason: varintFailure(pos, valueStart) }
        if (varintValue > end - pos) {
          return { ok: false, reason: `length ${varintValue} at byte ${valueStart} runs past the end of ${messageName}` }
        }
        valueStart = pos
        pos += varintValue
        valueEnd = pos
        break
      }
      case WIRE_I32:
        if (end - pos < 4) return { ok: false, reason: `truncated 32-bit value at byte ${pos}` }
        value = (buf[pos]! | (buf[pos + 1]! << 8) | (buf[pos + 2]! << 16) | (buf[pos + 3]! << 24)) >>> 0
        pos += 4
        valueEnd = pos
        break
      case 3:
      case 4:
        return { ok: false, reason: `group (wire type ${wireType}) at byte ${tagAt}: not used by USP` }
      default:
        return { ok: false, reason: `invalid wire type ${wireType} at byte ${tagAt}` }
    }

    const rule = rules[fieldNumber]
    if (rule === undefined) continue // unknown field: skipped, as protobuf requires
    if (wireType !== EXPECTED_WIRE[rule.kind]) {
      return { ok: false, reason: `${messageName}.${rule.name} has wire type ${wireType}, expected ${EXPECTED_WIRE[rule.kind]}` }
    }
    if (!rule.repeated && fields[fieldNumber] !== undefined) return { ok: false, reason: `${messageName}.${rule.name} occurs more than once` }
    if (rule.kind === 'string' && !validUtf8(buf, valueStart, valueEnd)) {
      return { ok: false, reason: `${messageName}.${rule.name} is not valid UTF-8` }
    }
    fields[fieldNumber] = { start: valueStart, end: valueEnd, value }
  }
  return { ok: true, fields }
}

/** Valid UTF-8; ASCII (every Endpoint ID and msg_id in practice) without a view or a native call. */
function validUtf8 (buf: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    if (buf[i]! >= 0x80) return isUtf8(buf.subarray(start, end))
  }
  return true
}

const utf8 = new TextDecoder('utf-8')

/**
 * The text of a string field already checked by walkMessage ('' when absent, as in proto3).
 * `likely`: the text the caller expects (an inbox's endpoint id, the publisher's own): when the field
 * holds exactly its characters, all ASCII, that string is the answer: no decode, no new string. The
 * result is the same text either way.
 */
export function stringField (buf: Uint8Array, span: FieldSpan | undefined, likely?: string): string {
  if (span === undefined) return ''
  if (likely !== undefined && sameAscii(buf, span.start, span.end, likely)) return likely
  // a PUBLISH payload is a Buffer: its toString decodes in place (no view, no TextDecoder call)
  return Buffer.isBuffer(buf) ? buf.toString('utf8', span.start, span.end) : utf8.decode(buf.subarray(span.start, span.end))
}

/** `buf[start..end)` is exactly the ASCII text `s` (and so its UTF-8 too). */
function sameAscii (buf: Uint8Array, start: number, end: number, s: string): boolean {
  if (end - start !== s.length) return false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0x80 || buf[start + i] !== c) return false
  }
  return true
}
