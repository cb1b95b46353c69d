// The default USP topic layout (DESIGN.md "Identity and namespaces"):
//   <tenant>/usp/agent/<agent-endpoint-id>            an Agent's inbox
//   <tenant>/usp/controller/<controller-endpoint-id>  a Controller's inbox
//   <tenant>/usp/status/<agent-endpoint-id>           presence, published by the gateway only
//   <tenant>/bulkdata/<agent-endpoint-id>/...         Bulk Data reports (JSON/CSV, not USP)
// and the MQTT 3.1.1 reply-to suffix `/reply-to=<topic with every "/" as "%2F">` (TR-369 R-MQTT.24).

export type UspTopicKind = 'agent' | 'controller' | 'status' | 'bulkdata' | 'other'
export type InboxRole = 'agent' | 'controller'

export interface UspTopic {
  /** The first topic level, as is ('' for an empty topic or a leading '/'). */
  tenant: string
  kind: UspTopicKind
  /** For every kind but 'other': the level naming the endpoint. */
  endpointId?: string
  /** Levels after the endpoint id, reply-to suffix excluded, when the topic has any ('' for a trailing '/'). */
  subtopic?: string
  /** The decoded MQTT 3.1.1 reply-to, when the topic carries the suffix ('' if it is empty). */
  replyTo?: string
}

const REPLY_TO_MARKER = '/reply-to='
const USP_KINDS = ['agent', 'controller', 'status'] as const

/**
 * Splits a topic name into tenant, USP kind, endpoint id, sub-levels and 3.1.1 reply-to.
 *
 * Deterministic rules for odd input:
 * - The reply-to is what follows the LAST `/reply-to=` (TR-369 R-MQTT.25), with every `%2F` or
 *   `%2f` turned back into `/` (percent-encoding hex digits are case-insensitive, RFC 3986 §2.1);
 *   nothing else is decoded. An earlier `/reply-to=` stays in the base topic, as a sub-level.
 * - Levels after the endpoint id are kept in `subtopic`, not dropped: a 3.1.1 endpoint subscribes
 *   `<inbox>/#`, so such a topic still reaches the inbox owner and must be treated as its inbox.
 *   Every topic under `<inbox>/` therefore parses as that inbox, whatever follows.
 * - An empty endpoint level (`acme/usp/agent/`, `acme/bulkdata//x`) makes the topic 'other', and so
 *   does a marker in the endpoint level (`acme/usp/agent/reply-to=x`: no Endpoint ID looks like that).
 * - Levels are compared exactly (MQTT topics are case-sensitive): `acme/USP/agent/x` is 'other'.
 *
 * Runs twice per USP round trip (request and response): it reads the levels in place with indexOf
 * instead of splitting the topic into an array of every level.
 */
export function parseUspTopic (topic: string): UspTopic {
  let base = topic
  let replyTo: string | undefined
  const marker = topic.lastIndexOf(REPLY_TO_MARKER)
  if (marker >= 0) {
    base = topic.slice(0, marker)
    replyTo = decodeReplyTo(topic.slice(marker + REPLY_TO_MARKER.length))
  }
  const tenantEnd = base.indexOf('/')
  const result: UspTopic = { tenant: tenantEnd < 0 ? base : base.slice(0, tenantEnd), kind: 'other' }

  // where the endpoint level starts: after `<tenant>/usp/<agent|controller|status>/` or `<tenant>/bulkdata/`
  // (a topic without '/' has tenantEnd -1, and then neither prefix can be there)
  let endpointAt = -1
  let kind: UspTopicKind = 'other'
  if (base.startsWith('usp/', tenantEnd + 1)) {
    const kindAt = tenantEnd + 5
    for (const k of USP_KINDS) {
      if (base.startsWith(k, kindAt) && base.charCodeAt(kindAt + k.length) === SLASH) {
        kind = k
        endpointAt = kindAt + k.length + 1
        break
      }
    }
  } else if (base.startsWith('bulkdata/', tenantEnd + 1)) {
    kind = 'bulkdata'
    endpointAt = tenantEnd + 10
  }
  if (endpointAt >= 0) {
    const endpointEnd = base.indexOf('/', endpointAt)
    const endpointId = endpointEnd < 0 ? base.slice(endpointAt) : base.slice(endpointAt, endpointEnd)
    if (endpointId !== '') {
      result.kind = kind
      result.endpointId = endpointId
      if (endpointEnd >= 0) result.subtopic = base.slice(endpointEnd + 1)
    }
  }
  if (replyTo !== undefined) result.replyTo = replyTo
  return result
}

const SLASH = 0x2f

/** An Agent or Controller inbox, with or without a reply-to suffix or further sub-levels. */
export function isUspInbox (topic: string): boolean {
  const kind = parseUspTopic(topic).kind
  return kind === 'agent' || kind === 'controller'
}

/** `<tenant>/usp/<role>/<endpointId>`; throws on a tenant or Endpoint ID that cannot be one topic level. */
export function inboxTopic (tenant: string, role: InboxRole, endpointId: string): string {
  assertTopicLevel(tenant, 'tenant')
  assertTopicLevel(endpointId, 'endpoint id')
  if (role !== 'agent' && role !== 'controller') throw new TypeError(`unknown inbox role: ${String(role)}`)
  return `${tenant}/usp/${role}/${endpointId}`
}

/** Appends the MQTT 3.1.1 reply-to suffix (TR-369 R-MQTT.24): `<topic>/reply-to=<replyTo, / as %2F>`. */
export function withReplyTo (topic: string, replyTo: string): string {
  return `${topic}${REPLY_TO_MARKER}${replyTo.replaceAll('/', '%2F')}`
}

function decodeReplyTo (encoded: string): string {
  return encoded.replace(/%2F/gi, '/')
}

function assertTopicLevel (level: string, what: string): void {
  // Endpoint IDs never contain '/', '+' or '#' (TR-369), and MQTT forbids U+0000 in topics.
  if (level === '' || /[/+#\u0000]/.test(level)) throw new TypeError(`invalid ${what} for a topic level: ${JSON.stringify(level)}`)
}
