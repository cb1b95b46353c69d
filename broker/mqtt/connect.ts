// CONNECT: preConnect namespaces the client id; authenticate runs `connectSteps` in order. Each step
// either refuses (CONNACK code + security event) or adds what it learnt to the attempt.
import { randomUUID } from 'node:crypto'
import type { AedesOptions, Client } from 'aedes'
import { parseUsername, isTenantId, usernameOf, verifySecret, TokenBucket, type EventCode, type Role, type SecurityEventInput } from '../core/index.ts'
import { inboxTopic } from '../usp/index.ts'
import { checkClientId, checkTopicName, checkUsername } from './invariants.ts'
import type { ClientState } from './sessions.ts'
import { setConnackUserProperties, setConnackRefusalReason, resumeQueuedMessages, resumeSessionPresent } from './patches/index.ts'
import { connectError, remoteOf, INTERNAL_ID_SEPARATOR, type CertIdentity, type GatewayClient } from './client.ts'
import { newClientState, policyDenial, type PipelineContext } from './context.ts'
import { CONNACK, CONNACK_V5 } from './reason-codes.ts'

/** What is known about one CONNECT as the steps run. */
interface ConnectAttempt {
  client: GatewayClient
  username: string | undefined
  password: Buffer | undefined
  address: string
  wire: string
  tenant?: string
  principal?: string
  role?: Role
  auth?: 'password' | 'certificate'
  state?: ClientState
  /** Seconds the (username, address) is still in authentication back-off (0: not locked). */
  lockedFor: number
}

interface Refusal {
  code: EventCode
  reason: string
  returnCode: number
  /** a credential failure: counts toward the throttle of (username, address) */
  authFailure?: boolean
  extra?: Partial<SecurityEventInput>
  /** MQTT 5 reason code when it is more precise than the 3.1.1 return code (see CONNACK_V5). */
  reasonV5?: number
}

type ConnectStep = (a: ConnectAttempt, ctx: PipelineContext) => Refusal | undefined

/** One answer for every credential failure, so tenants and principals cannot be probed. */
const badCredentials = (code: EventCode, reason: string, extra: Partial<SecurityEventInput> = {}): Refusal =>
  ({ code, reason, returnCode: CONNACK.BAD_USERNAME_OR_PASSWORD, authFailure: true, extra })

/** Cluster mode: only a node that can trust its copy of the state admits anyone (fail closed). */
const serverAvailable: ConnectStep = (_a, ctx) => {
  const reason = ctx.deps.unavailable?.()
  return reason === undefined ? undefined : { code: 'cluster.connect_refused', reason, returnCode: CONNACK.SERVER_UNAVAILABLE }
}

/**
 * Password logins are throttled per (username, address) after repeated failures. The lock is only
 * noted here: the secret is still checked (a microsecond; secrets are 256 random bits, so checking
 * them during a lock reveals nothing guessable), so a device whose secret was fixed gets back in at
 * once, and a failing attempt during the lock is answered as throttled (see throttledRefusal).
 */
const noteThrottle: ConnectStep = (a, ctx) => {
  if (a.client.gwCertIdentity !== undefined || a.username === undefined) return undefined
  a.lockedFor = ctx.deps.throttle.lockedFor(a.username, a.address)
  return undefined
}

/**
 * A credential failure while locked: a distinct answer from a wrong password (MQTT 5 0x9F Connection
 * rate exceeded, MQTT 3.1.1 3 Server unavailable), carrying the tenant and principal like every auth event.
 */
function throttledRefusal (a: ConnectAttempt, failed: Refusal): Refusal {
  return {
    code: 'auth.throttled',
    reason: `too many failed logins from this address; retry in ${a.lockedFor}s`,
    returnCode: CONNACK.SERVER_UNAVAILABLE,
    reasonV5: CONNACK_V5.CONNECTION_RATE_EXCEEDED,
    extra: { tenant: failed.extra?.tenant, principal: failed.extra?.principal }
  }
}

/** With a client certificate the identity comes from the certificate; a username, if sent, must name the same identity (TR-369 R-SEC.4b). */
const certificateIdentity: ConnectStep = (a, ctx) => {
  const cert: CertIdentity | undefined = a.client.gwCertIdentity
  if (cert === undefined) return undefined
  const who = { tenant: cert.tenant, principal: cert.principal }
  if (a.username !== undefined && a.username !== usernameOf(cert.tenant, cert.principal)) {
    return { code: 'auth.cert_mismatch', reason: 'username does not match the client certificate', returnCode: CONNACK.BAD_USERNAME_OR_PASSWORD, extra: who }
  }
  if (ctx.deps.store.getTenant(cert.tenant) === undefined) {
    return { code: 'auth.unknown_tenant', reason: 'certificate of a tenant that does not exist', returnCode: CONNACK.BAD_USERNAME_OR_PASSWORD, extra: who }
  }
  // A revoked credential of the same identity also shuts out its certificate.
  if (ctx.deps.store.getCredential(cert.tenant, cert.principal)?.revokedAt !== undefined) {
    return { code: 'auth.revoked', reason: 'credential of this identity is revoked', returnCode: CONNACK.BAD_USERNAME_OR_PASSWORD, extra: who }
  }
  Object.assign(a, { ...who, role: cert.role, auth: 'certificate' })
  return undefined
}

/** Username `<tenant>:<principal>` of a known tenant, with a live credential whose secret matches. */
const passwordIdentity: ConnectStep = (a, ctx) => {
  if (a.auth !== undefined) return undefined // identified by certificate
  const { store, limits } = ctx.deps
  if (a.username !== undefined) {
    const u = checkUsername(a.username, limits)
    if (!u.ok) return badCredentials('auth.bad_credentials', u.reason)
  }
  const parsed = parseUsername(a.username)
  if (!parsed.ok) return badCredentials(parsed.code, parsed.reason, { principal: a.username })
  const { tenant, principal } = parsed
  if (!isTenantId(tenant) || store.getTenant(tenant) === undefined) {
    return badCredentials('auth.unknown_tenant', 'no such tenant', { tenant: isTenantId(tenant) ? tenant : undefined, principal })
  }
  const cred = store.getCredential(tenant, principal)
  if (cred === undefined) return badCredentials('auth.bad_credentials', 'unknown principal', { tenant, principal })
  if (cred.revokedAt !== undefined) return badCredentials('auth.revoked', `credential revoked at ${cred.revokedAt}`, { tenant, principal })
  if (!verifySecret(a.password, cred.secretHash)) return badCredentials('auth.bad_credentials', 'wrong secret', { tenant, principal })
  ctx.deps.throttle.recordSuccess(a.username!, a.address)
  a.tenant = tenant
  a.principal = principal
  a.role = cred.role
  a.auth = 'password'
  return undefined
}

/** A disabled tenant's devices are refused until the tenant is enabled again (PATCH /v1/tenants/:tenant). */
const tenantEnabled: ConnectStep = (a, ctx) => {
  if (ctx.deps.store.getTenant(a.tenant!)?.disabled !== true) return undefined
  return { code: 'auth.tenant_disabled', reason: 'tenant is disabled', returnCode: CONNACK.NOT_AUTHORIZED, extra: { tenant: a.tenant, principal: a.principal } }
}

const validClientId: ConnectStep = (a, ctx) => {
  const idCheck = checkClientId(a.wire, ctx.deps.limits)
  return idCheck.ok ? undefined : { code: idCheck.code, reason: idCheck.reason, returnCode: CONNACK.IDENTIFIER_REJECTED }
}

/**
 * [MQTT-3.1.3-7/8] MQTT 3.1.1: a zero-byte client id needs Clean Session 1; with Clean Session 0
 * the server answers return code 2 (a gateway-assigned id would leave a session nobody can resume).
 */
const resumableClientId: ConnectStep = a => {
  const c = a.client
  if (c.version === 5 || c.gwAssigned === undefined || c.gwCleanSession !== false) return undefined
  return { code: 'session.invalid_client_id', reason: 'empty client id with Clean Session 0 [MQTT-3.1.3-8]', returnCode: CONNACK.IDENTIFIER_REJECTED }
}

/**
 * Keep Alive 0 means "no keep-alive" [MQTT-3.1.2-23 context] and is accepted: a 3.1.1 client gets no
 * keep-alive timer (TCP keep-alive on the socket still finds dead peers: watchDeadPeers). Above the limit,
 * and for MQTT 5 also at 0, an MQTT 5 client is told the limit as Server Keep Alive [MQTT-3.2.2-21];
 * 3.1.1 has no way to say so, so it gets the defined return code 2, as Mosquitto answers. (aedes'
 * keepaliveLimit, PR #930, refuses 0 too and answers 3.1.1 with the reserved code 6; Mosquitto 2.0.12
 * briefly refused 0 the same way, mosquitto #2309.)
 */
const keepAliveInRange: ConnectStep = (a, ctx) => {
  const limit = ctx.deps.limits.maxKeepAliveSeconds
  const c = a.client
  const keepAlive = c.gwKeepAlive ?? 0
  if (limit <= 0 || keepAlive <= limit) {
    if (c.version === 5 && keepAlive === 0 && limit > 0) c._serverKeepAlive = limit
    return undefined
  }
  if (c.version === 5) {
    c._serverKeepAlive = limit
    return undefined
  }
  return { code: 'limits.keepalive', reason: `keep-alive ${keepAlive}s above the limit of ${limit}s`, returnCode: CONNACK.IDENTIFIER_REJECTED }
}

/**
 * The same identity reconnecting with its client id is a normal MQTT session takeover
 * [MQTT-3.1.4-2]; another identity presenting a client id that is online here is refused and reported.
 */
const noTakeover: ConnectStep = (a, ctx) => {
  const holder = ctx.deps.sessions.heldByOther(a.wire, usernameOf(a.tenant!, a.principal!))
  if (holder === undefined) return undefined
  const holderTenant = holder.split(':')[0]
  return {
    code: 'session.takeover_blocked',
    reason: `client id is in use by another identity (${holderTenant === a.tenant ? holder : 'another tenant'})`,
    returnCode: CONNACK.IDENTIFIER_REJECTED,
    extra: holderTenant !== a.tenant ? { targetTenant: holderTenant } : {}
  }
}

/** A takeover by the same identity and client id on this node replaces a connection, it adds none. */
const replacesOwnConnection = (a: ConnectAttempt, ctx: PipelineContext): boolean =>
  ctx.deps.sessions.ofIdentity(usernameOf(a.tenant!, a.principal!)).some(h => h.state.wireClientId === a.wire)

const tenantConnectionsRefusal = (ctx: PipelineContext, tenant: string, quota: number, where: string): Refusal => {
  ctx.deps.metrics.drops.labels('limits.tenant_connections').inc()
  return { code: 'limits.tenant_connections', reason: `tenant ${tenant} holds its quota of ${quota} connections ${where}`, returnCode: CONNACK.SERVER_UNAVAILABLE, reasonV5: CONNACK_V5.QUOTA_EXCEEDED }
}

/** The tenant's connection quota on this node (in cluster mode also across the cluster: clusterConnectionQuota). */
const withinTenantConnections: ConnectStep = (a, ctx) => {
  const quota = ctx.deps.store.getTenant(a.tenant!)?.quotas?.maxConnections ?? 0
  if (quota <= 0 || ctx.deps.sessions.tenantUsage(a.tenant!).connections < quota) return undefined
  if (replacesOwnConnection(a, ctx)) return undefined
  return tenantConnectionsRefusal(ctx, a.tenant!, quota, 'on this node')
}

/**
 * Issue 14 (tenant quotas hold for the tenant, not per node): in cluster mode the connection is also
 * counted in Redis, atomically against every node's count; the last step, as it is asynchronous.
 * The place is given back when the connection closes, whenever that is. Redis unreachable: refused
 * (fail closed, like every cluster-mode CONNECT without a trusted state).
 */
async function clusterConnectionQuota (a: ConnectAttempt, ctx: PipelineContext): Promise<Refusal | undefined> {
  const counter = ctx.deps.connectionQuota
  const quota = ctx.deps.store.getTenant(a.tenant!)?.quotas?.maxConnections ?? 0
  if (counter === undefined || quota <= 0) return undefined
  // a takeover on this node: the connection it replaces still holds its place until it closes
  const allowed = quota + (replacesOwnConnection(a, ctx) ? 1 : 0)
  let full: number | undefined
  try {
    full = await counter.acquire(a.tenant!, allowed)
  } catch (err) {
    return { code: 'cluster.connect_refused', reason: `tenant connection quota cannot be checked: ${(err as Error).message}`, returnCode: CONNACK.SERVER_UNAVAILABLE }
  }
  if (full !== undefined) return tenantConnectionsRefusal(ctx, a.tenant!, quota, `across the cluster (${full} counted)`)
  a.state!.quotaCounted = true
  const tenant = a.tenant!
  const conn = a.client.conn as { once(ev: 'close', f: () => void): void, destroyed?: boolean }
  if (conn.destroyed === true) counter.release(tenant)
  else conn.once('close', () => counter.release(tenant))
  return undefined
}

/** TR-369 R-MQTT.13: an MQTT 5 endpoint names its Endpoint ID in CONNECT; it must be the authenticated one. */
const endpointIdMatches: ConnectStep = a => {
  const claimed = a.client.gwUspEndpointId
  if (claimed === undefined || !(Array.isArray(claimed) ? claimed.some(x => x !== a.principal) : claimed !== a.principal)) return undefined
  return { code: 'usp.endpoint_id_mismatch', reason: `usp-endpoint-id ${JSON.stringify(String(claimed).slice(0, 80))} is not the authenticated endpoint`, returnCode: CONNACK.NOT_AUTHORIZED }
}

/** The will topic obeys the tenant invariants like any PUBLISH. */
const willInsideTenant: ConnectStep = (a, ctx) => {
  const will = a.client._will
  if (!will) return undefined
  const w = checkTopicName(a.tenant!, will.topic, ctx.deps.limits)
  return w.ok ? undefined : { code: w.code, reason: `will ${w.reason}`, returnCode: CONNACK.NOT_AUTHORIZED, extra: { action: 'will', topic: will.topic, targetTenant: w.targetTenant } }
}

const buildState: ConnectStep = (a, ctx) => {
  const { limits } = ctx.deps
  const c = a.client
  a.state = newClientState({
    tenant: a.tenant!,
    principal: a.principal!,
    role: a.role!,
    wireClientId: a.wire,
    internalId: c.id,
    protocol: c.version,
    listener: c.gwListener ?? 'mqtt',
    auth: a.auth!,
    remoteAddress: a.address,
    cleanStart: c._cleanStart === true,
    certSerial: a.auth === 'certificate' ? c.gwCertIdentity?.serial : undefined,
    certPeer: a.auth === 'certificate' ? c.gwCertIdentity?.peer : undefined,
    bucket: limits.publishRatePerSecond > 0 ? new TokenBucket(limits.publishRatePerSecond, limits.publishBurst) : undefined
  })
  return undefined
}

const policyAllowsConnect: ConnectStep = (a, ctx) => {
  const verdict = ctx.decide(a.state!, 'connect')
  if (verdict.allow) return undefined
  const denial = policyDenial(verdict)
  return { code: denial.code, reason: denial.reason, returnCode: CONNACK.NOT_AUTHORIZED, extra: { policyRevision: verdict.revision } }
}

const policyAllowsWill: ConnectStep = (a, ctx) => {
  const will = a.client._will
  if (!will) return undefined
  const w = ctx.decide(a.state!, 'publish', will.topic, will.qos ?? 0, will.retain ?? false)
  if (w.allow) return undefined
  const denial = policyDenial(w)
  return { code: denial.code, reason: `will: ${denial.reason}`, returnCode: CONNACK.NOT_AUTHORIZED, extra: { action: 'will', topic: will.topic, policyRevision: w.revision } }
}

/** Idle time before the kernel probes a connection no MQTT keep-alive watches. */
const TCP_KEEPALIVE_MS = 60_000

/**
 * Keep Alive 0 without a Server Keep Alive (an MQTT 3.1.1 client, or any client when no limit is
 * configured) leaves no keep-alive timer on the connection, so TCP keep-alive finds its dead peer.
 * Only then: every other connection has aedes' timer [MQTT-3.1.2-24], and a socket option set at
 * accept cost every connection two setsockopt calls and a kernel timer for nothing. TCP sockets
 * (MQTT and MQTTS) only; a WebSocket stream has no socket handle here.
 */
function watchDeadPeers (c: GatewayClient): void {
  if ((c.gwKeepAlive ?? 0) !== 0 || c._serverKeepAlive !== undefined) return
  const socket = c.conn as { _handle?: { setKeepAlive?: unknown }, setKeepAlive?: (enable: boolean, delayMs: number) => unknown }
  if (typeof socket._handle?.setKeepAlive === 'function') socket.setKeepAlive!(true, TCP_KEEPALIVE_MS)
}

/** The CONNECT pipeline, in order. */
export const connectSteps: readonly ConnectStep[] = [
  serverAvailable,
  noteThrottle,
  certificateIdentity,
  passwordIdentity,
  tenantEnabled,
  validClientId,
  resumableClientId,
  keepAliveInRange,
  noTakeover,
  withinTenantConnections,
  endpointIdMatches,
  willInsideTenant,
  buildState,
  policyAllowsConnect,
  policyAllowsWill
]

export function connectHooks (ctx: PipelineContext): Required<Pick<AedesOptions, 'preConnect' | 'authenticate'>> {
  const { metrics, emit, throttle } = ctx.deps
  const connectOk = metrics.connectResults.labels('accepted', 'ok')
  return {
    // Runs first on a valid CONNECT. The client id aedes will use is rewritten
    // to "<claimed username>|<client id>": sessions, wills and persistence keys
    // are then scoped to the identity that must still authenticate, so no
    // identity can ever resume or take over another identity's session, and no
    // client id can collide with an object key such as "__proto__"
    // (GHSA-52qw-whmv-87c5). A failed authentication rejects the CONNECT.
    preConnect (client, packet, done) {
      const c = client as GatewayClient
      let wire = packet.clientId ?? ''
      if (wire.length === 0) {
        // [MQTT-3.1.3-6] the server assigns an id to an empty client id (TR-369 R-MQTT.8/9);
        // MQTT 5 is told it (Assigned Client Identifier), 3.1.1 needs Clean Session 1 (resumableClientId)
        wire = `uspgate-${randomUUID()}`
        c.gwAssigned = wire
      }
      c.gwWireId = wire
      c.gwKeepAlive = packet.keepalive
      c.gwCleanSession = packet.clean
      const eid = packet.properties?.userProperties?.['usp-endpoint-id']
      if (eid !== undefined) c.gwUspEndpointId = eid
      // a certificate, when present, is the identity (the username must then match it)
      const owner = c.gwCertIdentity ? usernameOf(c.gwCertIdentity.tenant, c.gwCertIdentity.principal) : packet.username ?? ''
      packet.clientId = `${owner}${INTERNAL_ID_SEPARATOR}${wire}`
      done(null, true)
    },

    authenticate (client: Client, username, password, done) {
      const c = client as GatewayClient
      const a: ConnectAttempt = { client: c, username, password, address: remoteOf(client), wire: c.gwWireId ?? client.id, tenant: undefined, principal: undefined, role: undefined, auth: undefined, state: undefined, lockedFor: 0 }
      const refuse = (refusal: Refusal): void => {
        let r = refusal
        if (r.authFailure && a.lockedFor > 0) r = throttledRefusal(a, r) // not counted again: the lock does not grow while locked
        else if (r.authFailure && username !== undefined) throttle.recordFailure(username, a.address)
        if (r.reasonV5 !== undefined && client.version === 5) setConnackRefusalReason(client, r.reasonV5)
        metrics.connectResults.labels('refused', r.code).inc()
        const who = a.tenant !== undefined ? { tenant: a.tenant, principal: a.principal } : {}
        emit({ code: r.code, reason: r.reason, remoteAddress: a.address, clientId: a.wire, action: 'connect', ...who, ...r.extra })
        done(connectError(r.returnCode), null)
      }
      for (const step of connectSteps) {
        const r = step(a, ctx)
        if (r !== undefined) { refuse(r); return }
      }
      if (ctx.deps.connectionQuota === undefined) { admit(); return }
      clusterConnectionQuota(a, ctx).then(r => { if (r === undefined) admit(); else refuse(r) }, (err: unknown) => {
        refuse({ code: 'cluster.connect_refused', reason: `tenant connection quota: ${(err as Error).message}`, returnCode: CONNACK.SERVER_UNAVAILABLE })
      })

      function admit (): void {
        const st = a.state!
        c.gw = st
        watchDeadPeers(c)
        if (client.version === 5 && st.role === 'agent') {
          // TR-369 R-MQTT.15/.44: tell the Agent which topic to subscribe to (its inbox).
          setConnackUserProperties(client, { 'subscribe-topic': inboxTopic(st.tenant, 'agent', st.principal) })
        }
        if (c.gwAssigned !== undefined && client.version === 5) c._assignedClientId = c.gwAssigned
        resumeQueuedMessages(c)
        resumeSessionPresent(c)
        connectOk.inc()
        done(null, true)
      }
    }
  }
}
