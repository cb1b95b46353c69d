// Shared test fixtures for broker/usp: a seeded PRNG, sample endpoints, and random valid Records.

import { encodeMsg, encodeRecord, type RecordInput } from '../../broker/usp/index.ts'

export const AGENT = 'os::00256D-0123456789'
export const CONTROLLER = 'self::usp-controller'
export const TENANT = 'acme'
export const AGENT_INBOX = `${TENANT}/usp/agent/${AGENT}`
export const CONTROLLER_INBOX = `${TENANT}/usp/controller/${CONTROLLER}`

/** Seed for every random test; override with USP_FUZZ_SEED=<n> to reproduce a failure. */
export const SEED = Number(process.env.USP_FUZZ_SEED ?? 0x5eed1369)

/** mulberry32: small, fast, deterministic. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export type Random = () => number

export function int (rnd: Random, max: number): number {
  return Math.floor(rnd() * max)
}

export function pick<T> (rnd: Random, items: readonly T[]): T {
  return items[int(rnd, items.length)]!
}

export function randomBytes (rnd: Random, length: number): Buffer {
  const out = Buffer.alloc(length)
  for (let i = 0; i < length; i++) out[i] = int(rnd, 256)
  return out
}

const ID_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789-_.:%ÄéЖ中😀'
/** A non-empty string with some multi-byte UTF-8. */
export function randomText (rnd: Random, maxLength: number): string {
  const chars = Array.from(ID_CHARS)
  let s = ''
  const n = 1 + int(rnd, maxLength)
  for (let i = 0; i < n; i++) s += pick(rnd, chars)
  return s
}

export function getMsg (msgId = 'get-1'): Buffer {
  return encodeMsg({
    msgId,
    body: { request: { get: { paramPaths: ['Device.DeviceInfo.Manufacturer', 'Device.DeviceInfo.ModelName'], maxDepth: 1 } } }
  })
}

export function getRespMsg (msgId = 'get-1'): Buffer {
  return encodeMsg({
    msgId,
    body: {
      response: {
        getResp: {
          reqPathResults: [{
            requestedPath: 'Device.DeviceInfo.Manufacturer',
            resolvedPathResults: [{ resolvedPath: 'Device.DeviceInfo.', resultParams: { Manufacturer: 'ACME' } }]
          }]
        }
      }
    }
  })
}

/** A Controller → Agent Get, ready to publish to the Agent's inbox. */
export function controllerGetRecord (overrides: Partial<RecordInput> = {}): Buffer {
  return encodeRecord({ version: '1.0', toId: AGENT, fromId: CONTROLLER, noSessionContext: { payload: getMsg() }, ...overrides })
}

/** A random Record that every decoder must accept: each record type, optional envelope fields. */
export function randomRecordInput (rnd: Random): RecordInput {
  const base: RecordInput = {
    version: pick(rnd, ['1.0', '1.3', '1.4', '9.99', '']),
    toId: randomText(rnd, 40),
    fromId: randomText(rnd, 40)
  }
  if (rnd() < 0.3) base.payloadSecurity = pick(rnd, ['PLAINTEXT', 'TLS12'] as const)
  if (rnd() < 0.2) base.macSignature = randomBytes(rnd, int(rnd, 40))
  if (rnd() < 0.2) base.senderCert = randomBytes(rnd, int(rnd, 60))
  switch (int(rnd, 7)) {
    case 0: return { ...base, noSessionContext: { payload: randomBytes(rnd, 1 + int(rnd, 80)) } }
    case 1: return {
      ...base,
      sessionContext: {
        sessionId: int(rnd, 1e9),
        sequenceId: String(2 ** 40 + int(rnd, 1000)),
        expectedId: int(rnd, 10),
        payloadSarState: pick(rnd, ['NONE', 'BEGIN', 'INPROCESS', 'COMPLETE'] as const),
        payload: [randomBytes(rnd, int(rnd, 30)), randomBytes(rnd, int(rnd, 30))]
      }
    }
    case 2: return { ...base, websocketConnect: {} }
    case 3: return { ...base, mqttConnect: { version: pick(rnd, ['V3_1_1', 'V5'] as const), subscribedTopic: randomText(rnd, 60) } }
    case 4: return { ...base, stompConnect: { subscribedDestination: randomText(rnd, 30) } }
    case 5: return { ...base, disconnect: { reason: randomText(rnd, 30), reasonCode: int(rnd, 2 ** 32) } }
    default: return { ...base, udsConnect: {} }
  }
}
