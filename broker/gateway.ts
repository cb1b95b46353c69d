// The gateway runtime: aedes 2.0.0-beta.1 behind tenant-aware hooks, an MQTT
// listener, the admin API, metrics and the security-event sink.
import { createServer, type Server, type Socket } from 'node:net'
import { randomUUID } from 'node:crypto'
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { hostname } from 'node:os'
import { Aedes, type Client } from 'aedes'
import type { Logger } from 'pino'
import type { GatewayConfig } from './core/config.ts'
import { createLogger } from './core/logger.ts'
import { Metrics } from './core/metrics.ts'
import { SecurityEvents, type SecurityEventInput } from './core/security-events.ts'
import { FileStateStore, writeFileAtomic, DEFAULT_USP_SETTINGS } from './store/index.ts'
import type { StateStore } from './store/state-store.ts'
import { RedisStateStore } from './cluster/redis-store.ts'
import { Cluster, clusterNodeId } from './cluster/cluster.ts'
import { EndpointRegistry, type Endpoints } from './usp/endpoints.ts'
import { RedisEndpointRegistry } from './cluster/endpoints-redis.ts'
import { UspAuditTrail } from './usp/audit.ts'
import { installConnackSteering } from './mqtt/patches/connack-user-properties.ts'
import { inboxTopic, type UspInspection } from './usp/index.ts'
import type { ClientState } from './mqtt/sessions.ts'
import { AuthThrottle } from './mqtt/limits.ts'
import { SessionIndex, type SessionHandle } from './mqtt/sessions.ts'
import { createHooks, isGatewayDenial, type GatewayClient } from './mqtt/hooks.ts'
import { createMemoryPersistence } from './mqtt/patches/persistence.ts'
import { coalesceWrites } from './mqtt/socket-writes.ts'
import { generateSecret, hashSecret } from './core/secrets.ts'
import { ControlPlane } from './control/control-plane.ts'
import { CertificateService } from './pki/certificate-service.ts'
import { ClusterPki, requireClusterMasterKey } from './cluster/pki-mirror.ts'
import { buildAdminApi, type AdminApi, type AdminSettings } from '../admin-api/index.ts'
import { PolicyEngine } from '../policies/index.ts'
import { PolicyVersions, policyHistoryFromEnv, canaryDenyMultipleFromEnv } from './control/policy-versions.ts'

/** MQTT 5 DISCONNECT reason codes the gateway sends. */
const DISCONNECT_NOT_AUTHORIZED = 0x87
const DISCONNECT_SERVER_SHUTTING_DOWN = 0x8b
const DISCONNECT_QUOTA_EXCEEDED = 0x97

export interface GatewayOptions {
  /** Print the generated admin token (first start only). Default true. */
  printAdminToken?: boolean
  logger?: Logger
  /** Admin listener settings (TLS, rate limits); default: from USPGATE_ADMIN_* (broker/admin-settings.ts). */
  adminSettings?: AdminSettings
}

export class Gateway {
  readonly nodeId: string
  readonly log: Logger
  readonly metrics: Metrics
  readonly events: SecurityEvents
  readonly store: StateStore
  /** Cluster mode (USPGATE_REDIS_URL): Redis connections, control channel, heartbeats; undefined when embedded. */
  readonly cluster: Cluster | undefined
  readonly sessions: SessionIndex
  readonly control: ControlPlane
  readonly broker: Aedes
  readonly policy: PolicyEngine
  /** Stored policy versions and the active assignment (stable / canary / shadow). */
  readonly policyVersions: PolicyVersions
  readonly endpoints: Endpoints
  readonly uspAudit: UspAuditTrail
  /** The CA (<dataDir>/pki), the MQTTS listener (mutual TLS) and certificate revocation. */
  readonly certificates: CertificateService
  private readonly throttle: AuthThrottle
  private mqttServer: Server | undefined
  private admin: AdminApi | undefined
  private readonly sockets = new Set<Socket>()
  private started = false
  private closing: Promise<void> | undefined
  mqttPort = 0
  adminPort = 0
  adminUrl = ''

  constructor (readonly config: GatewayConfig, private readonly options: GatewayOptions = {}) {
    // cluster mode needs an id that survives restarts (aedes broker id, will ownership, heartbeats)
    this.nodeId = config.redis ? clusterNodeId(config.nodeId) : config.nodeId ?? `${hostname()}-${process.pid}`
    this.log = options.logger ?? createLogger(config.logLevel, this.nodeId)
    this.metrics = new Metrics(this.nodeId)
    this.events = new SecurityEvents(config.dataDir, this.nodeId, this.log)
    const eventCounter = this.metrics.securityEvents
    this.events.onEvent = code => eventCounter.labels(code).inc()
    // the shared CA needs the same master key on every node: refused before any connection is opened
    if (config.redis && config.mqtts) requireClusterMasterKey(config)
    this.cluster = config.redis ? new Cluster(this.nodeId, config.redis, this.log, this.metrics) : undefined
    this.store = this.cluster ? new RedisStateStore(this.cluster.cmd, config.redis!.prefix) : new FileStateStore(config.dataDir)
    this.sessions = new SessionIndex(this.nodeId)
    this.throttle = new AuthThrottle(config.limits.authFailuresBeforeBackoff, config.limits.authMaxBackoffSeconds)
    // cluster mode: both cluster-wide in Redis (the NDJSON audit file stays per node)
    this.endpoints = this.cluster ? new RedisEndpointRegistry(this.cluster, this.log) : new EndpointRegistry(config.dataDir, this.nodeId)
    this.uspAudit = new UspAuditTrail(config.dataDir, this.cluster, this.log)
    installConnackSteering()
    const emit = (e: SecurityEventInput): void => { this.events.emit(e) }
    // Evaluation errors fail closed (the hook denies) and are reported here.
    this.policy = new PolicyEngine({
      onError: (err, input) => emit({ code: 'policy.error', tenant: input.client.tenant, principal: input.client.principal, action: input.action, topic: input.topic, reason: err.message.slice(0, 200) }),
      guard: { maxDenyMultiple: canaryDenyMultipleFromEnv() },
      onCanaryTripped: trip => this.policyVersions.onCanaryTripped(trip)
    })
    this.events.revision = () => this.policy.revision || undefined
    this.policyVersions = new PolicyVersions({
      dataDir: config.dataDir,
      engine: this.policy,
      emit,
      metrics: this.metrics,
      log: this.log,
      tenantExists: tenant => this.store.getTenant(tenant) !== undefined,
      history: policyHistoryFromEnv(),
      ...(this.cluster ? { shared: { ...this.cluster.policyBackend(), assertWritable: () => this.control.requireWritable() } } : {})
    })
    const hooks = createHooks({
      limits: config.limits,
      store: this.store,
      sessions: this.sessions,
      throttle: this.throttle,
      metrics: this.metrics,
      emit,
      revision: () => this.policy.revision,
      policy: this.policy,
      uspSettings: tenant => this.store.getTenant(tenant)?.usp ?? DEFAULT_USP_SETTINGS,
      onUspRecord: (st, topic, inspection) => this.onUspRecord(st, topic, inspection)
    })
    const limits = config.limits
    this.broker = new Aedes({
      id: this.nodeId,
      persistence: this.cluster?.persistence ?? createMemoryPersistence(),
      ...(this.cluster ? { mq: this.cluster.mq } : {}),
      connectTimeout: limits.connectTimeoutSeconds * 1000,
      // No global cap on messages in flight (aedes' default is 100, the cluster emitter has none):
      // with a cap, 100 deliveries waiting for one subscriber that stopped reading held up routing
      // for every tenant until drainTimeout, and draining the backlog then recursed once per queued
      // message ("Maximum call stack size exceeded"). Memory per slow subscriber is bounded instead
      // by maxClientBufferBytes in authorizeForward.
      concurrency: 0,
      keepaliveLimit: limits.maxKeepAliveSeconds,
      // aedes' own guard stays at its maximum (100, qlobber's limit, GHSA-xxqp-5qx8-gj5q);
      // the stricter tenant limit is applied in the hooks so each refusal is an event.
      maxTopicLevels: 100,
      maximumPacketSize: limits.maxPacketBytes,
      // MQTT 3.1's 23-character client id limit would apply to the namespaced internal
      // id ("<tenant>:<principal>|<id>"); the gateway bounds the client's own id instead.
      maxClientsIdLength: 2048,
      sessionExpiryIntervalLimit: 7 * 24 * 3600,
      pendingSessionsLimit: 100_000,
      // TR-369 R-MQTT.12/.21: an endpoint that asks for Response Information gets its own inbox,
      // which becomes its reply-to topic.
      responseInformation: (client: Client) => {
        const st = (client as GatewayClient).gw
        return st ? inboxTopic(st.tenant, st.role, st.principal) : undefined
      },
      ...hooks,
      ...(this.cluster ? { authenticate: this.cluster.guardAuthenticate(hooks.authenticate, emit) } : {})
    })
    this.certificates = new CertificateService(this, (socket, listener) => this.handleConnection(socket, listener))
    // cluster mode: one PKI for every node, mirrored through Redis (broker/cluster-pki.ts)
    if (this.cluster) {
      this.certificates.pkiSync = new ClusterPki({
        cluster: this.cluster,
        dir: join(config.dataDir, 'pki'),
        log: this.log,
        assertWritable: () => this.control.requireWritable(),
        reload: async () => { await this.certificates.reloadAuthority() }
      })
    }
    this.control = new ControlPlane(this)
    this.wireBrokerEvents()
  }

  private wireBrokerEvents (): void {
    const b = this.broker
    b.on('client', (client: Client) => {
      const st = (client as GatewayClient).gw
      if (!st) return
      const handle: SessionHandle = {
        state: st,
        disconnect: reasonCode => { client.disconnect({ reasonCode }) }
      }
      ;(client as GatewayClient & { gwHandle?: SessionHandle }).gwHandle = handle
      this.sessions.add(handle)
      this.metrics.connections.labels(st.listener, String(st.protocol)).inc()
      this.endpoints.connected(st.tenant, st.principal, st.role, st.protocol)
      if (st.role === 'agent') this.publishPresence(st, '1')
    })
    b.on('clientDisconnect', (client: Client) => {
      const c = client as GatewayClient & { gwHandle?: SessionHandle }
      if (!c.gwHandle) return
      this.sessions.remove(c.gwHandle)
      c.gwHandle = undefined
      const st = c.gw!
      this.metrics.connections.labels(st.listener, String(st.protocol)).dec()
      // offline only when this was the endpoint's last session on this node
      if (this.sessions.ofIdentity(st.identity).length === 0) {
        this.endpoints.disconnected(st.tenant, st.principal)
        if (st.role === 'agent') this.publishPresence(st, '0')
      }
    })
    const onError = (client: Client | null, err: Error & { errorCode?: number }): void => {
      if (isGatewayDenial(err)) return
      const c = client as GatewayClient | null
      const base = {
        tenant: c?.gw?.tenant,
        principal: c?.gw?.principal,
        clientId: c?.gw?.wireClientId ?? c?.gwWireId,
        remoteAddress: (c?.conn as { remoteAddress?: string } | undefined)?.remoteAddress
      }
      const msg = err.message ?? ''
      if (msg === 'packet too large') {
        this.events.emit({ ...base, code: 'limits.packet_too_large', reason: `packet of ${String((err as { size?: number }).size)} bytes above ${this.config.limits.maxPacketBytes}` })
      } else if (msg === 'connect did not arrive in time') {
        this.events.emit({ ...base, code: 'limits.connect_timeout', reason: msg })
      } else if (msg === 'keep alive timeout' || err.errorCode === 6) {
        this.events.emit({ ...base, code: 'limits.keepalive', reason: msg })
      } else if (msg === 'topic has too many levels') {
        this.events.emit({ ...base, code: 'acl.invalid_topic', reason: msg })
      } else if (/ECONNRESET|EPIPE|ETIMEDOUT|write after end|connection closed/.test(msg + ((err as NodeJS.ErrnoException).code ?? ''))) {
        // the peer went away: not a security event
      } else {
        this.events.emit({ ...base, code: 'protocol.error', reason: msg.slice(0, 200) })
      }
    }
    b.on('clientError', onError)
    b.on('connectionError', onError)
  }

  /** Presence is published by the gateway only: retained "1"/"0" on <tenant>/usp/status/<endpoint-id>. */
  private publishPresence (st: ClientState, value: '1' | '0'): void {
    if (this.broker.closed) return
    this.broker.publish({ cmd: 'publish', topic: `${st.tenant}/usp/status/${st.principal}`, payload: Buffer.from(value), qos: 1, retain: true, dup: false }, err => {
      if (err) this.log.warn({ err, tenant: st.tenant, endpoint: st.principal }, 'presence publish failed')
    })
  }

  private onUspRecord (st: ClientState, topic: string, inspection: UspInspection): void {
    const env = inspection.envelope
    const result = inspection.verdict === 'refuse' ? 'refused' : 'delivered'
    this.metrics.uspRecords.labels(env?.recordType ?? 'unparsed', inspection.message?.msgType ?? 'none', result).inc()
    if (env === undefined) {
      this.uspAudit.record({ time: new Date().toISOString(), tenant: st.tenant, fromId: st.principal, toId: '', topic, recordType: 'unparsed', result, ...(inspection.code ? { code: inspection.code } : {}) })
      return
    }
    this.uspAudit.record({
      time: new Date().toISOString(),
      tenant: st.tenant,
      fromId: env.fromId,
      toId: env.toId,
      topic,
      recordType: env.recordType,
      result,
      ...(inspection.code ? { code: inspection.code } : {}),
      ...(inspection.message ? { msgId: inspection.message.msgId, msgType: inspection.message.msgType, kind: inspection.message.kind } : {})
    })
    if (result === 'delivered' && env.recordType === 'mqtt_connect' && env.mqttConnect) {
      this.endpoints.sawConnectRecord(st.tenant, st.principal, env.mqttConnect.subscribedTopic)
    }
  }

  /** Hands a new socket to aedes with the packet-level guards in front of its handlers. */
  private handleConnection (socket: Socket, listener: string): GatewayClient {
    this.sockets.add(socket)
    socket.once('close', () => this.sockets.delete(socket))
    coalesceWrites(socket)
    // Dead peers of 3.1.1 clients that asked for no keep-alive are still noticed.
    socket.setKeepAlive(true, 60_000)
    const client = this.broker.handle(socket) as GatewayClient & { _parser: NodeJS.EventEmitter }
    client.gwListener = listener
    client.gwRemote = socket.remoteAddress ?? 'unknown'
    const maxInflight = this.config.limits.maxInflightQos2
    // Runs before aedes sees each parsed packet.
    client._parser.prependListener('packet', (packet: { cmd: string, qos?: number, messageId?: number, subscriptions?: Array<{ topic: string }> }) => {
      const st = client.gw
      if (packet.cmd === 'publish' && packet.qos === 2 && st) {
        // GHSA-5jvp-3p2v-5qgf: a client sending QoS 2 PUBLISHes and withholding
        // PUBREL grew the broker's incoming store without bound (aedes 1.1.3
        // added maxInflightInbound). Over the cap the connection is closed.
        st.inflightQos2.add(packet.messageId!)
        if (st.inflightQos2.size > maxInflight) {
          this.events.emit({ code: 'limits.qos2_inflight', tenant: st.tenant, principal: st.principal, clientId: st.wireClientId, remoteAddress: st.remoteAddress, reason: `more than ${maxInflight} QoS 2 messages awaiting PUBREL` })
          if (client.version === 5) client.disconnect({ reasonCode: DISCONNECT_QUOTA_EXCEEDED })
          else socket.destroy()
        }
      } else if (packet.cmd === 'pubrel' && st) {
        st.inflightQos2.delete(packet.messageId!)
      } else if (packet.cmd === 'subscribe' && client.version === 5) {
        // aedes answers MQTT 5 "$share/..." with 0x9E before any hook runs; report it here.
        for (const s of packet.subscriptions ?? []) {
          if (s.topic.startsWith('$share/')) {
            this.events.emit({ code: 'acl.reserved_topic', tenant: st?.tenant, principal: st?.principal, clientId: st?.wireClientId, remoteAddress: st?.remoteAddress, action: 'subscribe', topic: s.topic, reason: 'shared subscriptions are not available to tenants' })
          }
        }
      }
    })
    return client
  }

  async start (): Promise<void> {
    if (this.started) throw new Error('gateway already started')
    this.started = true
    try {
      await this.startServices()
    } catch (err) {
      // Release what was opened (Redis connections keep reconnecting, listeners keep the process
      // alive), so a failed start leaves nothing behind; the caller reports the error.
      await this.close().catch(closeErr => this.log.warn({ err: closeErr }, 'cleanup after a failed start'))
      throw err
    }
  }

  private async startServices (): Promise<void> {
    await mkdir(this.config.dataDir, { recursive: true, mode: 0o700 })
    if (this.cluster) await this.cluster.connect(this.store as RedisStateStore)
    await this.store.load()
    await this.events.open()
    await this.endpoints.load()
    await this.uspAudit.open()
    await this.ensureAdminToken()
    // The committed bundle, validated (entry point, golden decisions) before it takes traffic.
    // Restores stored versions and the active assignment (stable / canary / shadow); an empty store
    // starts from the committed bundle. Every bundle is validated (loads, golden) before it decides.
    await this.policyVersions.load()
    await this.broker.listen()
    if (this.cluster) await this.startCluster(this.cluster)

    this.mqttServer = createServer(socket => this.handleConnection(socket, 'mqtt'))
    // a listener error after start (EMFILE...) must not kill the process
    this.mqttServer.on('error', err => this.log.error({ err }, 'mqtt listener error'))
    this.mqttPort = await listen(this.mqttServer, this.config.mqttHost, this.config.mqttPort)
    await this.certificates.start() // MQTTS listener (when configured) and CA expiry checks

    this.admin = await buildAdminApi(this.control, { logger: this.log, ...(this.options.adminSettings ? { settings: this.options.adminSettings } : {}) })
    this.adminPort = await this.admin.listen(this.config.adminHost, this.config.adminPort)
    const adminHost = this.config.adminHost.includes(':') ? `[${this.config.adminHost}]` : this.config.adminHost
    this.adminUrl = `${this.admin.scheme}://${adminHost}:${this.adminPort}`
    // Lets the CLI find a running gateway from the data dir alone.
    await writeFileAtomic(join(this.config.dataDir, 'admin.json'), JSON.stringify({ url: this.adminUrl, node: this.nodeId }) + '\n', 0o600)
    this.log.info({ mqtt: `${this.config.mqttHost}:${this.mqttPort}`, admin: this.adminUrl, dataDir: this.config.dataDir }, 'uspgate started')
  }

  get ready (): boolean {
    return this.started && this.closing === undefined && this.mqttServer?.listening === true
  }

  /**
   * The bootstrap admin token: USPGATE_ADMIN_TOKEN if set, else the one in
   * <data>/admin-token, else a new one written there (0600) and printed once.
   * Only its hash is kept in the state store.
   */
  private async ensureAdminToken (): Promise<void> {
    const file = join(this.config.dataDir, 'admin-token')
    let token = this.config.adminToken
    let generated = false
    const existing = this.store.listAdminTokens().find(t => t.id === 'bootstrap')
    if (token === undefined) {
      try {
        token = (await readFile(file, 'utf8')).trim()
        await chmod(file, 0o600)
      } catch {
        if (existing !== undefined && this.cluster !== undefined) {
          // A cluster store already holds the bootstrap token (set by another node): never
          // replace it with a new local one, which would lock every other node's admins out.
          this.log.info('admin bootstrap token is held by the shared store; set USPGATE_ADMIN_TOKEN to use the CLI on this node')
          return
        }
        token = generateSecret('usa')
        await writeFile(file, token + '\n', { mode: 0o600, flag: 'wx' })
        generated = true
      }
    }
    const hash = hashSecret(token)
    if (existing?.tokenHash !== hash) {
      await this.store.putAdminToken({ id: 'bootstrap', name: 'bootstrap', role: 'admin', tokenHash: hash, createdAt: new Date().toISOString() })
    }
    if (generated && this.options.printAdminToken !== false) {
      // Shown once on the console, never through the logger.
      process.stdout.write(`\nAdmin token (shown once; also stored 0600 in ${file}):\n  ${token}\n\n`)
    }
  }

  /** Control channel, heartbeats and the shared event stream (cluster mode). */
  private async startCluster (cluster: Cluster): Promise<void> {
    const store = this.store as RedisStateStore
    this.events.onWritten = ev => cluster.appendEvent(ev)
    await cluster.start({
      resync: async () => {
        await store.load()
        await this.policyVersions.resync()
        await this.certificates.pkiSync?.resync() // certificate revocations and trust missed while away
        // revocations missed while away: cut sessions whose credential is now revoked
        for (const h of this.sessions.matching(() => true)) {
          if (store.getCredential(h.state.tenant, h.state.principal)?.revokedAt !== undefined) this.disconnectIdentity(h.state.tenant, h.state.principal)
        }
      },
      onRevoked: (tenant, principal) => { this.disconnectIdentity(tenant, principal) },
      onPolicyChanged: async () => { await this.policyVersions.resync() },
      onRemoteEvent: ev => this.events.ingest(ev),
      heartbeat: () => {
        const a = this.policyVersions.view().active
        return { revisions: { stable: a.stable, ...(a.canary ? { canary: a.canary.revision } : {}), ...(a.shadow ? { shadow: a.shadow } : {}) }, sessions: this.sessions.list().length }
      },
      emit: e => { this.events.emit(e) }
    })
  }

  /** Disconnects every live session of one identity (credential revocation). */
  disconnectIdentity (tenant: string, principal: string): number {
    this.policy.invalidateIdentity(tenant, principal)
    const handles = this.sessions.ofIdentity(`${tenant}:${principal}`)
    for (const h of handles) {
      h.state.revoked = true
      h.disconnect(DISCONNECT_NOT_AUTHORIZED)
    }
    return handles.length
  }

  async close (): Promise<void> {
    if (this.closing) return await this.closing
    this.closing = (async () => {
      this.log.info('uspgate shutting down')
      this.mqttServer?.close()
      this.certificates.close()
      // MQTT 5 clients are told why (0x8B) before the sockets close.
      for (const client of Object.values((this.broker as unknown as { clients: Record<string, Client> }).clients)) {
        try { client.disconnect({ reasonCode: DISCONNECT_SERVER_SHUTTING_DOWN }) } catch { /* already closing */ }
      }
      await new Promise<void>(resolve => this.broker.close(() => resolve()))
      for (const s of this.sockets) s.destroy()
      await this.endpoints.flush() // the last offline marks, before the Redis connections close
      await this.cluster?.close()
      await this.admin?.close()
      this.throttle.close()
      await this.uspAudit.close()
      await this.events.close()
      await this.store.flush()
    })()
    return await this.closing
  }
}

function listen (server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      const addr = server.address()
      resolve(typeof addr === 'object' && addr ? addr.port : port)
    })
  })
}

export function newRequestId (): string {
  return randomUUID()
}
