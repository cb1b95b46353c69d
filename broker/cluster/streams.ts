// Capped Redis streams of JSON entries (field "e"): the one way the cluster appends to and reads the
// security-event stream and the per-tenant USP audit streams.
import type { Redis } from 'ioredis'

/** Appends one entry, trimming the stream to about `max` entries; resolves false (never throws) when Redis refused it. */
export async function appendJson (redis: Redis, key: string, max: number, value: unknown): Promise<boolean> {
  try {
    await redis.xadd(key, 'MAXLEN', '~', String(max), '*', 'e', JSON.stringify(value))
    return true
  } catch {
    return false
  }
}

/** The JSON value of one stream entry's fields, or undefined when the entry is not one of ours. */
export function entryJson (fields: string[]): unknown {
  const i = fields.indexOf('e')
  if (i < 0 || fields[i + 1] === undefined) return undefined
  try { return JSON.parse(fields[i + 1]!) as unknown } catch { return undefined }
}

/** The newest `count` entries, newest first (XREVRANGE), with their ids. */
export async function readNewest (redis: Redis, key: string, count: number): Promise<Array<{ id: string, value: unknown }>> {
  const entries = await redis.xrevrange(key, '+', '-', 'COUNT', count)
  return entries.map(([id, fields]) => ({ id, value: entryJson(fields) }))
}
