// Tenant invariants, checked in code before any policy is asked (defence in
// depth): every topic a tenant client touches starts with "<tenant>/", "$"
// topics are never available, and topic strings are bounded and clean.
import type { EventCode } from '../core/index.ts'
import type { Limits } from '../core/index.ts'
import { isTenantId } from '../core/index.ts'

/** A refusal; cross-tenant ones name the tenant whose namespace was targeted (both tenants see the event). */
export type Check = { ok: true } | { ok: false, code: EventCode, reason: string, targetTenant?: string }

const OK: Check = { ok: true }
const deny = (code: EventCode, reason: string): Check => ({ ok: false, code, reason })

/** The first topic level names the targeted tenant when it has a tenant id's shape (a wildcard or '' names none). */
function crossTenant (tenant: string, topic: string, reason: string): Check {
  const first = topic.split('/', 1)[0]!
  return first !== tenant && isTenantId(first) ? { ok: false, code: 'acl.cross_tenant', reason, targetTenant: first } : deny('acl.cross_tenant', reason)
}

/**
 * One pass over the string: rejects C0/C1 controls (incl. NUL, [MQTT-1.5.4-2]),
 * DEL, and U+FFFD — the marker mqtt-packet leaves where the wire bytes were not
 * valid UTF-8 ([MQTT-1.5.4-1] says such a packet is malformed). Returns the
 * number of topic levels, or -1 for a bad character.
 */
function scan (s: string): number {
  let levels = 1
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 47) { levels++; continue } // '/'
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0xfffd) return -1
    // lone surrogates cannot come from valid UTF-8
    if (c >= 0xd800 && c <= 0xdfff) {
      const hi = c <= 0xdbff
      const next = s.charCodeAt(i + 1)
      if (!hi || !(next >= 0xdc00 && next <= 0xdfff)) return -1
      i++
    }
  }
  return levels
}

function common (tenant: string, topic: string, limits: Limits, what: string): Check {
  if (topic.length === 0) return deny('acl.invalid_topic', `empty ${what}`)
  // [MQTT-4.7.2-1] $-topics are server-reserved ($SYS, $share, ...): never for tenants.
  if (topic.charCodeAt(0) === 36) return deny('acl.reserved_topic', `${what} starts with $`)
  // UTF-16 length is a lower bound of the UTF-8 length; check the exact size only when close.
  if (topic.length > limits.maxTopicBytes || (topic.length * 3 > limits.maxTopicBytes && Buffer.byteLength(topic) > limits.maxTopicBytes)) {
    return deny('acl.invalid_topic', `${what} longer than ${limits.maxTopicBytes} bytes`)
  }
  const levels = scan(topic)
  if (levels < 0) return deny('acl.invalid_topic', `${what} contains control characters or invalid UTF-8`)
  if (levels > limits.maxTopicLevels) return deny('acl.invalid_topic', `${what} deeper than ${limits.maxTopicLevels} levels`)
  // Prototype-pollution guard (GHSA-52qw-whmv-87c5): never let "__proto__" reach an object key.
  if (topic.includes('__proto__')) return deny('acl.invalid_topic', `${what} contains a reserved word`)
  return OK
}

/** PUBLISH topic names and will topics. */
export function checkTopicName (tenant: string, topic: string, limits: Limits): Check {
  const c = common(tenant, topic, limits, 'topic')
  if (!c.ok) return c
  if (!topic.startsWith(tenant) || topic.charCodeAt(tenant.length) !== 47) {
    return crossTenant(tenant, topic, `topic outside tenant prefix "${tenant}/"`)
  }
  // [MQTT-3.3.2-2] wildcards are not allowed in topic names (aedes checks too).
  if (topic.includes('+') || topic.includes('#')) return deny('acl.invalid_topic', 'wildcard in topic name')
  return OK
}

/** SUBSCRIBE filters: the first level must be the caller's tenant, never a wildcard. */
export function checkTopicFilter (tenant: string, filter: string, limits: Limits): Check {
  const c = common(tenant, filter, limits, 'filter')
  if (!c.ok) return c
  if (!filter.startsWith(tenant) || filter.charCodeAt(tenant.length) !== 47) {
    return crossTenant(tenant, filter, `filter outside tenant prefix "${tenant}/"`)
  }
  return OK
}

export function checkClientId (clientId: string, limits: Limits): Check {
  if (Buffer.byteLength(clientId) > limits.maxClientIdBytes) return deny('session.invalid_client_id', `client id longer than ${limits.maxClientIdBytes} bytes`)
  if (scan(clientId) < 0) return deny('session.invalid_client_id', 'client id contains control characters or invalid UTF-8')
  if (clientId.includes('__proto__')) return deny('session.invalid_client_id', 'client id contains a reserved word')
  return OK
}

export function checkUsername (username: string, limits: Limits): Check {
  if (Buffer.byteLength(username) > limits.maxUsernameBytes) return deny('auth.bad_credentials', `username longer than ${limits.maxUsernameBytes} bytes`)
  if (scan(username) < 0) return deny('auth.bad_credentials', 'username contains control characters or invalid UTF-8')
  return OK
}
