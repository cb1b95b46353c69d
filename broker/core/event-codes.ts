// The stable catalogue of security event codes. Codes are part of the public
// contract (SIEM rules and dashboards match on them): add new ones, never
// rename. docs/security-events.md is generated from / checked against this table.

export type Severity = 'info' | 'warning' | 'critical'

export const EVENT_CODES = {
  'auth.bare_username': { severity: 'warning', meaning: 'CONNECT without a "<tenant>:<principal>" username (missing, no tenant, empty tenant or empty principal).' },
  'auth.unknown_tenant': { severity: 'warning', meaning: 'CONNECT for a tenant that does not exist.' },
  'auth.bad_credentials': { severity: 'warning', meaning: 'Unknown principal or wrong secret.' },
  'auth.tenant_disabled': { severity: 'warning', meaning: 'CONNECT of a device of a disabled tenant (after it authenticated).' },
  'auth.revoked': { severity: 'warning', meaning: 'CONNECT with a credential that was revoked.' },
  'auth.throttled': { severity: 'warning', meaning: 'CONNECT refused because repeated failures for this username/address put it in back-off.' },
  'auth.cert_mismatch': { severity: 'warning', meaning: 'Username does not match the identity of the client certificate.' },
  'auth.cert_revoked': { severity: 'warning', meaning: 'Client certificate (or its issuing CA) is revoked.' },
  'auth.cert_untrusted': { severity: 'warning', meaning: 'Client certificate not issued by a CA trusted for any tenant.' },
  'auth.cert_expired': { severity: 'warning', meaning: 'Client certificate expired or not yet valid.' },
  'acl.cross_tenant': { severity: 'critical', meaning: 'Publish, subscribe, will or delivery outside the caller\'s tenant prefix.' },
  'acl.reserved_topic': { severity: 'warning', meaning: '$-topic ($SYS, $share, ...) requested by a tenant client.' },
  'acl.denied': { severity: 'warning', meaning: 'The policy engine denied the action; reason carries the rule.' },
  'acl.invalid_topic': { severity: 'warning', meaning: 'Topic or filter too long, too deep, with control/NUL characters, invalid UTF-8 or reserved words (__proto__).' },
  'session.takeover_blocked': { severity: 'critical', meaning: 'A client id in use by another identity was presented; the session was not taken over.' },
  'session.invalid_client_id': { severity: 'warning', meaning: 'Client id too long or with control characters / invalid UTF-8.' },
  'limits.packet_too_large': { severity: 'warning', meaning: 'Packet above the maximum packet size; connection closed before buffering it.' },
  'limits.rate_limited': { severity: 'warning', meaning: 'Publish rate above the per-client limit; messages dropped or refused.' },
  'limits.slow_consumer': { severity: 'warning', meaning: 'A subscriber is not reading: more than the client buffer limit is waiting for it, so live deliveries are dropped (a persistent session keeps QoS 1/2 messages queued).' },
  'limits.qos2_inflight': { severity: 'warning', meaning: 'Too many QoS 2 PUBLISHes awaiting PUBREL (PUBREL flood); connection closed.' },
  'limits.connect_timeout': { severity: 'info', meaning: 'Socket opened but no CONNECT in time (slow-loris guard).' },
  'limits.keepalive': { severity: 'info', meaning: 'Client keep-alive expired or keep-alive outside the allowed range.' },
  'proxy.untrusted': { severity: 'warning', meaning: 'A connection from outside the trusted networks (USPGATE_PROXY_PROTOCOL_TRUSTED) started with a PROXY protocol header, i.e. tried to choose the address the gateway sees; closed.' },
  'proxy.malformed': { severity: 'warning', meaning: 'A PROXY protocol header that could not be parsed (or too long); connection closed.' },
  'protocol.error': { severity: 'warning', meaning: 'Malformed MQTT packet or protocol violation; connection closed.' },
  'credential.issued': { severity: 'info', meaning: 'A device credential was issued.' },
  'credential.imported': { severity: 'info', meaning: 'A bulk credential import ran: how many were created, skipped (already present or revoked) and failed (the secrets are never recorded).' },
  'credential.revoked': { severity: 'warning', meaning: 'A device credential was revoked; its live sessions were disconnected.' },
  'credential.rotated': { severity: 'warning', meaning: 'A certification run gave a device credential a new secret (recovery-from-bad-credentials check); the old secret is refused from then on.' },
  'credential.restored': { severity: 'warning', meaning: 'A certification run put a device credential back as it was before a revocation or rotation it made (the device may log in again).' },
  'certify.run_started': { severity: 'info', meaning: 'A certification run started against a device (tenant, endpoint id, level in reason).' },
  'certify.run_finished': { severity: 'info', meaning: 'A certification run ended (passed, failed, cancelled, error; level reached and evidence path in reason).' },
  'certify.restored_after_restart': { severity: 'warning', meaning: 'A certification run was interrupted by a restart; at start the gateway put back the credential / canary it had changed.' },
  'cert.issued': { severity: 'info', meaning: 'A device certificate was issued by a tenant\'s issuing CA.' },
  'cert.revoked': { severity: 'warning', meaning: 'A device certificate serial was revoked (CRL / deny-list); its live mTLS sessions were disconnected.' },
  'cert.expiring': { severity: 'warning', meaning: 'The root CA, server certificate or a tenant / imported CA expires within 30 days (checked at start and daily).' },
  'ca.imported': { severity: 'warning', meaning: 'A vendor CA was imported: certificates it signs now identify as devices of one tenant.' },
  'ca.removed': { severity: 'warning', meaning: 'An imported vendor CA is no longer trusted; live sessions authenticated by it were disconnected.' },
  'ca.revoked': { severity: 'critical', meaning: 'A tenant\'s issuing CA was revoked: all its certificates are refused and their live sessions disconnected.' },
  'tenant.updated': { severity: 'info', meaning: 'Tenant settings (name, USP inspection or audit level) changed.' },
  'tenant.disabled': { severity: 'warning', meaning: 'A tenant was disabled: its live sessions were cut and its CONNECTs are refused.' },
  'tenant.enabled': { severity: 'info', meaning: 'A disabled tenant was enabled again.' },
  'tenant.created': { severity: 'info', meaning: 'A tenant was created.' },
  'admin.auth_failed': { severity: 'warning', meaning: 'Admin API request with a missing or wrong bearer token.' },
  'admin.action': { severity: 'info', meaning: 'Admin audit record of a state-changing admin API call (POST/PATCH/DELETE): actor, role, action, target, result ok / error, HTTP status, request id, remote address.' },
  'admin.forbidden': { severity: 'warning', meaning: 'Admin API call refused with 403: the token\'s role lacks the permission, or the tenant is outside the token\'s scope.' },
  'admin.rate_limited': { severity: 'warning', meaning: 'Admin API request refused with 429: per-token or per-address rate limit, or an address locked after repeated failed authentications.' },
  'admin.token_created': { severity: 'info', meaning: 'An admin token was created (role and tenant scope in reason; the token itself is never recorded).' },
  'admin.token_revoked': { severity: 'warning', meaning: 'An admin token was revoked; it is refused from the next request on.' },
  'events.suppressed': { severity: 'info', meaning: 'Summary of repeated events from one client that were rate-limited in the log (metrics still count all).' },
  'usp.malformed_record': { severity: 'warning', meaning: 'PUBLISH to a USP inbox whose payload is not a valid USP Record.' },
  'usp.from_id_spoofed': { severity: 'critical', meaning: 'USP Record from_id differs from the authenticated Endpoint ID (TR-369 R-SEC.4c).' },
  'usp.misrouted': { severity: 'warning', meaning: 'USP Record to_id differs from the endpoint of the inbox it was sent to.' },
  'usp.endpoint_id_mismatch': { severity: 'critical', meaning: 'MQTT 5 CONNECT user property usp-endpoint-id differs from the authenticated Endpoint ID (TR-369 R-MQTT.13).' },
  'usp.reply_to_cross_tenant': { severity: 'critical', meaning: 'USP reply-to topic outside the publisher\'s tenant.' },
  'policy.error': { severity: 'critical', meaning: 'Policy evaluation failed; the request was denied (fail closed).' },
  'policy.activated': { severity: 'info', meaning: 'A policy revision became active.' },
  'policy.canary_started': { severity: 'info', meaning: 'A canary policy revision started for some tenants.' },
  'policy.rolled_back': { severity: 'warning', meaning: 'Policy rolled back to the previous revision.' },
  'policy.uploaded': { severity: 'info', meaning: 'A policy bundle was uploaded and validated (loads, golden decisions pass); it decides nothing until activated.' },
  'policy.shadow_started': { severity: 'info', meaning: 'A policy revision is evaluated in shadow beside stable: disagreements are counted, it decides nothing.' },
  'policy.promoted': { severity: 'warning', meaning: 'A policy revision became the stable revision for every tenant.' },
  'cluster.redis_down': { severity: 'critical', meaning: 'Cluster mode: this node lost Redis; new CONNECTs are refused (server unavailable) and admin writes fail (503) until it has resynchronised.' },
  'cluster.redis_up': { severity: 'info', meaning: 'Cluster mode: Redis is back and this node reloaded its state from it; new connections are accepted again.' },
  'cluster.connect_refused': { severity: 'warning', meaning: 'Cluster mode: CONNECT refused with server unavailable because this node cannot trust its state copy (Redis down or not yet resynchronised).' }
} as const satisfies Record<string, { severity: Severity, meaning: string }>

export type EventCode = keyof typeof EVENT_CODES

export function isEventCode (s: string): s is EventCode {
  return Object.prototype.hasOwnProperty.call(EVENT_CODES, s)
}
