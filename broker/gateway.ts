// The composition root: builds the stores for the mode (embedded or cluster) once, wires the
// services together, starts them in order and closes them in reverse. No runtime logic lives here:
// packet handling is in broker/mqtt, USP in broker/usp, certificates in broker/pki, Redis in
// broker/cluster, and what the admin API may do in broker/control.
// first: broker/mqtt's patches load before anything loads mqtt-packet (patches/quiet-debug.ts)
import './mqtt/index.ts'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { hostname } from 'node:os'
import { Aedes, type Client } from 'aedes'
import type { Logger } from 'pino'
import { createLogger, Metrics, SecurityEvents, ProbeListener, requireClusterMasterKey, policyHistoryFromEnv, canaryDenyMultipleFromEnv, unknownSettings, eventExportFromEnv, attachEventSinks, MemoryConnectCounts, type ConnectCounts, type EventExportSettings, type GatewayConfig, type SecurityEventInput } from './core/index.ts'
import { FileStateStore, writeFileAtomic, DEFAULT_USP_SETTINGS, type StateStore } from './store/index.ts'
import { Cluster, clusterNodeId, RedisStateStore, RedisEndpointRegistry, RedisConnectCounts, RedisUspAudit, ClusterPki } from './cluster/index.ts'
import { EndpointRegistry, UspAuditTrail, Presence, uspRecordObserver, inboxTopic, type Endpoints, type SharedUspAudit } from './usp/index.ts'
import { AuthThrottle, SessionIndex, MqttListeners, SharedSubscriptions, ProxyProtocolGate, parseTrustedNetworks, createHooks, trackSessions, reportBrokerErrors, installWholePacketWrites, installConnackSteering, rememberKeptSessions, skipUnreadSysAnnouncements, createMemoryPersistence, countMemoryStore, drainClients, storeGrantedSubscriptionsOnly, discardOfflineState, pendingClientIds, Fairness, type GatewayClient, type ClientState } from './mqtt/index.ts'
import { GatewayControlPlane, PolicyVersions, ensureBootstrapToken } from './control/index.ts'
import { CertificateService } from './pki/index.ts'
import { buildAdminApi, type AdminApi, type AdminSettings } from '../admin-api/index.ts'
import { PolicyEngine } from '../policies/index.ts'
import { CertificationService } from './certify/index.ts'

export interface GatewayOptions {
  /** Print the generated admin token (first start only). Default true. */
  printAdminToken?: boolean
  logger?: Logger
  /** Admin listener settings (TLS, rate limits); default: from USPGATE_ADMIN_* (broker/core/config.ts). */
  adminSettings?: AdminSettings
  /** Audit file rotation, syslog and webhook export; default: from USPGATE_AUDIT_* / _SYSLOG_* / _WEBHOOK_*. */
  eventExport?: EventExportSettings
}

/** What differs between the embedded default and cluster mode: built once, at construction. */
interface Mode {
  cluster: Cluster | undefined
  store: StateStore
  endpoints: Endpoints
  /** Successful connects per tenant and hour (GET /v1/security-stats) */
  connects: ConnectCounts
  sharedUspAudit: SharedUspAudit | undefined
  /** aedes' persistence and (cluster) emitter */
  aedes: { persistence: unknown, mq?: unknown }
  /** Retained / queued message counts of that persistence (metrics) */
  storeCounts: { retained: () => number | Promise<number>, queued: () => number | Promise<number> }
}

function buildMode (config: GatewayConfig, nodeId: string, log: Logger, metrics: Metrics): Mode {
  if (config.redis === undefined) {
    const persistence = createMemoryPersistence()
    return {
      cluster: undefined,
      store: new FileStateStore(config.dataDir),
      endpoints: new EndpointRegistry(config.dataDir, nodeId),
      connects: new MemoryConnectCounts(),
      sharedUspAudit: undefined,
      aedes: { persistence },
      storeCounts: countMemoryStore(persistence)
    }
  }
  // the shared CA needs the same master key on every node: refused before any connection is opened
  if (config.mqtts) requireClusterMasterKey(config)
  const cluster = new Cluster(nodeId, config.redis, log, metrics)
  return {
    cluster,
    store: new RedisStateStore(cluster.cmd, config.redis.prefix),
    // cluster mode: endpoints and the USP audit trail are cluster-wide in Redis (the NDJSON files stay per node)
    endpoints: new RedisEndpointRegistry(cluster, log),
    connects: new RedisConnectCounts(cluster, log),
    sharedUspAudit: new RedisUspAudit(cluster, log),
    aedes: { persistence: cluster.persistence, mq: cluster.mq },
    storeCounts: cluster.storeCounts
  }
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
  readonly control: GatewayControlPlane
  readonly broker: Aedes
  readonly policy: PolicyEngine
  /** Stored policy versions and the active assignment (stable / canary / shadow). */
  readonly policyVersions: PolicyVersions
  readonly endpoints: Endpoints
  /** Successful connects per tenant and hour. */
  readonly connects: ConnectCounts
  readonly uspAudit: UspAuditTrail
  /** The CA (<dataDir>/pki), the MQTTS listener (mutual TLS) and certificate revocation. */
  readonly certificates: CertificateService
  /** Certification runs, evidence bundles and the device matrix (broker/certify). */
  readonly certify: CertificationService
  private readonly throttle: AuthThrottle
  private readonly listeners: MqttListeners
  private admin: AdminApi | undefined
  private probe: ProbeListener | undefined
  private started = false
  private closing: Promise<void> | undefined
  mqttPort = 0
  /** The probe + metrics listener's port (USPGATE_PROBE_PORT), 0 when off. */
  probePort = 0
  adminPort = 0
  /** Ports of the WebSocket listeners (0 while off). */
  get wsPort (): number { return this.listeners.wsPort }
  get wssPort (): number { return this.listeners.wssPort }
  adminUrl = ''

  constructor (readonly config: GatewayConfig, private readonly options: GatewayOptions = {}) {
    // cluster mode needs an id that survives restarts (aedes broker id, will ownership, heartbeats)
    // (the metrics' `node` label too: the host name, not <host>-<pid>, so series survive a restart)
    this.nodeId = config.redis ? clusterNodeId(config.nodeId) : config.nodeId ?? hostname()
    this.log = options.logger ?? createLogger(config.logLevel, this.nodeId)
    this.metrics = new Metrics(this.nodeId)
    const eventExport = options.eventExport ?? eventExportFromEnv()
    this.events = new SecurityEvents(config.dataDir, this.nodeId, this.log, eventExport.audit)
    attachEventSinks(this.events, eventExport, { dropped: this.metrics.eventExportDropped, log: this.log })
    const eventCounter = this.metrics.securityEvents
    // tenant label only for tenants in the store: a tenant named in a refused CONNECT is attacker-chosen
    this.events.onEvent = (code, tenant) => eventCounter.labels(code, tenant !== undefined && this.store.getTenant(tenant) !== undefined ? tenant : '').inc()
    const mode = buildMode(config, this.nodeId, this.log, this.metrics)
    this.cluster = mode.cluster
    this.store = mode.store
    this.endpoints = mode.endpoints
    this.connects = mode.connects
    this.uspAudit = new UspAuditTrail(config.dataDir, mode.sharedUspAudit)
    this.sessions = new SessionIndex(this.nodeId)
    this.throttle = new AuthThrottle(config.limits.authFailuresBeforeBackoff, config.limits.authMaxBackoffSeconds)
    // the serializer first, then the wrappers that run before it (patches/whole-packet-writes.ts)
    installWholePacketWrites()
    installConnackSteering()
    const emit = (e: SecurityEventInput): void => { this.events.emit(e) }
    // Evaluation errors fail closed (the hook denies) and are reported here.
    this.policy = new PolicyEngine({
      onError: (err, input) => emit({ code: 'policy.error', tenant: input.client.tenant, principal: input.client.principal, action: input.action, topic: input.topic, reason: err.message.slice(0, 200) }),
      guard: { maxDenyMultiple: canaryDenyMultipleFromEnv() },
      onCanaryTripped: trip => this.policyVersions.onCanaryTripped(trip),
      onEvaluated: (action, seconds) => { this.metrics.decisionSeconds.observe(action, seconds) }
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
    // shared subscriptions: one member per group on this node, so not offered in cluster mode
    const shared = new SharedSubscriptions(mode.cluster === undefined)
    const hooks = createHooks({
      shared,
      limits: config.limits,
      store: this.store,
      sessions: this.sessions,
      throttle: this.throttle,
      metrics: this.metrics,
      emit,
      revision: () => this.policy.revision,
      policy: this.policy,
      uspSettings: tenant => this.store.getTenant(tenant)?.usp ?? DEFAULT_USP_SETTINGS,
      ...(mode.cluster ? { unavailable: () => mode.cluster!.unavailableReason(), connectionQuota: mode.cluster.tenantQuotas } : {}),
      identityRevoked: st => this.identityRevoked(st),
      onUspRecord: uspRecordObserver({ records: this.metrics.hotCounter(this.metrics.uspRecords), audit: this.uspAudit, endpoints: this.endpoints })
    })
    const limits = config.limits
    this.broker = new Aedes({
      id: this.nodeId,
      ...mode.aedes,
      persistence: storeGrantedSubscriptionsOnly(mode.aedes.persistence),
      connectTimeout: limits.connectTimeoutSeconds * 1000,
      // No global cap on messages in flight (aedes' default is 100, the cluster emitter has none):
      // with a cap, 100 deliveries waiting for one subscriber that stopped reading held up routing
      // for every tenant until drainTimeout, and draining the backlog then recursed once per queued
      // message ("Maximum call stack size exceeded"). Memory per slow subscriber is bounded instead
      // by maxClientBufferBytes in the delivery pipeline.
      concurrency: 0,
      // 0: aedes' own check answers 3.1.1 CONNACK 6 (reserved); the CONNECT pipeline applies the
      // limit instead (connect.ts, keepAliveInRange: MQTT 5 Server Keep Alive, 3.1.1 code 2, 0 accepted)
      keepaliveLimit: 0,
      // CONNACK Receive Maximum: the QoS 2 in-flight cap enforced in listeners.ts [MQTT-3.3.4-9]
      receiveMaximum: limits.maxInflightQos2,
      // client → server topic aliases, resolved before authorizePublish sees the topic [MQTT-3.3.2-7..13]
      topicAliasMaximum: limits.topicAliasMaximum,
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
      ...hooks
    } as ConstructorParameters<typeof Aedes>[0])
    rememberKeptSessions(this.broker) // Session Present for kept sessions without subscriptions [MQTT-3.2.2-2]
    skipUnreadSysAnnouncements(this.broker, { cluster: mode.cluster !== undefined })
    // Revocation reaches what a connection left behind (delayed will, persistent session, queue).
    this.sessions.pendingIds = () => pendingClientIds(this.broker)
    this.sessions.discardOffline = ids => {
      discardOfflineState(this.broker, ids).then(
        n => { if (n > 0) this.log.info({ sessions: n }, 'offline state of revoked sessions discarded') },
        err => this.log.warn({ err }, 'discarding offline state of revoked sessions failed'))
    }
    const cluster = mode.cluster
    const fairness = new Fairness({ limits, store: this.store, sessions: this.sessions, metrics: this.metrics, emit, ...(cluster ? { clusterSubscriptions: (t: string) => cluster.tenantQuotas.otherSubscriptions(t) } : {}) })
    this.broker.on('subscribe', (_subs: unknown, client: Client) => fairness.recount(client as GatewayClient))
    this.broker.on('unsubscribe', (_subs: unknown, client: Client) => fairness.recount(client as GatewayClient))
    this.listeners = new MqttListeners({
      broker: this.broker,
      limits,
      metrics: this.metrics,
      emit,
      shared,
      fairness,
      ...(config.proxyTrusted ? { proxyGate: new ProxyProtocolGate({ trusted: parseTrustedNetworks(config.proxyTrusted), emit, timeoutMs: limits.connectTimeoutSeconds * 1000 }) } : {})
    })
    const presence = new Presence(
      (topic, payload, done) => {
        if (this.broker.closed) return
        this.broker.publish({ cmd: 'publish', topic, payload, qos: 1, retain: true, dup: false }, done)
      },
      (err, tenant, endpoint) => this.log.warn({ err, tenant, endpoint }, 'presence publish failed')
    )
    trackSessions(this.broker, {
      sessions: this.sessions,
      metrics: this.metrics,
      online: st => {
        this.policy.fitSessions(this.sessions.size)
        this.connects.ok(st.tenant)
        this.endpoints.connected(st.tenant, st.principal, st.role, st.protocol)
        if (st.role === 'agent') presence.online(st.tenant, st.principal)
      },
      offline: (st, cause) => {
        this.endpoints.disconnected(st.tenant, st.principal, cause, st.protocol)
        if (st.role === 'agent') presence.offline(st.tenant, st.principal)
      }
    })
    reportBrokerErrors(this.broker, emit, limits)
    this.certificates = new CertificateService(this, this.listeners)
    // cluster mode: one PKI for every node, mirrored through Redis (broker/cluster/pki-mirror.ts)
    if (this.cluster) {
      this.certificates.pkiSync = new ClusterPki({
        cluster: this.cluster,
        dir: join(config.dataDir, 'pki'),
        log: this.log,
        assertWritable: () => this.control.requireWritable(),
        reload: async () => { await this.certificates.reloadAuthority() }
      })
    }
    this.certify = new CertificationService({
      dataDir: config.dataDir,
      nodeId: this.nodeId,
      store: this.store,
      sessions: this.sessions,
      events: this.events,
      endpoints: this.endpoints,
      mqttAddress: () => ({ host: ['0.0.0.0', '::', ''].includes(config.mqttHost) ? '127.0.0.1' : config.mqttHost, port: this.mqttPort }),
      disconnectIdentity: (tenant, principal) => this.disconnectIdentity(tenant, principal),
      uspAuditOf: async tenant => await this.uspAudit.list(tenant, 1000),
      policyAssignment: () => this.policy.assignment,
      revisionFor: tenant => this.policy.revisionFor(tenant),
      ensureCanaryRevision: async stable => await this.policyVersions.relabelledCopy(stable, 'certify'),
      startCanary: async (revision, tenants, actor) => { await this.policyVersions.startCanary(revision, tenants, actor) },
      rollback: async (actor, reason) => { await this.policyVersions.rollback(actor, reason) },
      sign: async data => await (await this.certificates.authority()).signWithRoot(data),
      requireWritable: () => this.control.requireWritable(),
      // cluster mode: runs are forwarded to the node holding the device's session
      ...(this.cluster !== undefined ? { nodes: { request: async (node: string, topic: string, body: unknown) => await this.cluster!.requestNode(node, topic, body), handle: (topic: string, h: (body: unknown) => Promise<unknown>) => { this.cluster!.handle(topic, h) } } } : {})
    })
    this.control = new GatewayControlPlane(this)
    const persistence = mode.aedes.persistence as { countOffline: () => Promise<{ clientsCount: number }> }
    this.metrics.brokerCounts = {
      connectedSessions: () => this.sessions.size,
      storedSessions: async () => (await persistence.countOffline()).clientsCount,
      subscriptions: () => {
        let n = 0
        for (const c of this.clients()) n += Object.keys((c as unknown as { subscriptions?: object }).subscriptions ?? {}).length
        return n
      },
      retainedMessages: async () => await mode.storeCounts.retained(),
      queuedMessages: async () => await mode.storeCounts.queued()
    }
  }

  private clients (): Client[] {
    return Object.values((this.broker as unknown as { clients: Record<string, Client> }).clients)
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
    const config = this.config
    // a misspelled setting would otherwise be silently ignored (USPGATE_PUBLISH_RAET)
    for (const u of unknownSettings(process.env)) {
      this.log.warn({ setting: u.name, ...(u.suggestion ? { suggestion: u.suggestion } : {}) }, `unknown setting ${u.name} is ignored${u.suggestion ? `; did you mean ${u.suggestion}?` : ''}`)
    }
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 })
    if (this.cluster) await this.cluster.connect(this.store as RedisStateStore)
    await this.store.load()
    await this.events.open()
    await this.endpoints.load()
    await this.uspAudit.open()
    await ensureBootstrapToken({ dataDir: config.dataDir, configured: config.adminToken, store: this.store, shared: this.cluster !== undefined, print: this.options.printAdminToken !== false, log: this.log })
    // Restores stored versions and the active assignment (stable / canary / shadow); an empty store
    // starts from the committed bundle. Every bundle is validated (loads, golden) before it decides.
    await this.policyVersions.load()
    await this.broker.listen()
    if (this.cluster) await this.startCluster(this.cluster)

    this.mqttPort = await this.listeners.startTcp(config.mqttHost, config.mqttPort, this.log)
    await this.certificates.start() // MQTTS listener (when configured) and CA expiry checks
    if (config.ws) await this.listeners.startWebSocket(config.ws.host, config.ws.port, undefined, this.log)
    // secure WebSocket: the server certificate of the gateway CA, as on MQTTS
    if (config.wss) await this.listeners.startWebSocket(config.wss.host, config.wss.port, (await this.certificates.authority()).serverTlsMaterial(), this.log)
    await this.certify.load() // puts back what a certification run interrupted by a restart changed

    this.admin = await buildAdminApi(this.control, { logger: this.log, ...(this.options.adminSettings ? { settings: this.options.adminSettings } : {}) })
    this.adminPort = await this.admin.listen(config.adminHost, config.adminPort)
    const adminHost = config.adminHost.includes(':') ? `[${config.adminHost}]` : config.adminHost
    this.adminUrl = `${this.admin.scheme}://${adminHost}:${this.adminPort}`
    // device certificates name where their CRL is fetched without a token
    this.certificates.crlBaseUrl = config.crlBaseUrl ?? this.adminUrl
    if (config.probe) {
      this.probe = new ProbeListener({ nodeId: this.nodeId, metrics: this.metrics, ready: () => this.ready }, err => this.log.error({ err }, 'probe listener error'))
      this.probePort = await this.probe.listen(config.probe.host, config.probe.port)
    }
    // Lets the CLI find a running gateway from the data dir alone.
    await writeFileAtomic(join(config.dataDir, 'admin.json'), JSON.stringify({ url: this.adminUrl, node: this.nodeId }) + '\n')
    this.log.info({ mqtt: `${config.mqttHost}:${this.mqttPort}`, admin: this.adminUrl, dataDir: config.dataDir }, 'uspgate started')
  }

  get ready (): boolean {
    return this.started && this.closing === undefined && this.listeners.listening
  }

  /** Control channel, heartbeats and the shared event stream (cluster mode). */
  private async startCluster (cluster: Cluster): Promise<void> {
    const store = this.store as RedisStateStore
    this.events.onWritten = ev => cluster.appendEvent(ev)
    // this node id counts no connection yet (a restart after a crash: its old counts go)
    await cluster.tenantQuotas.reconcile(new Map())
    await cluster.start({
      resync: async () => {
        await store.load()
        // quota releases that could not be written while away: this node's counts, rewritten
        await cluster.tenantQuotas.reconcile(this.countedConnections())
        await this.policyVersions.resync()
        await this.certificates.pkiSync?.resync() // certificate revocations and trust missed while away
        // revocations missed while away: cut sessions whose credential is now revoked
        for (const h of this.sessions.matching(() => true)) {
          if (store.getCredential(h.state.tenant, h.state.principal)?.revokedAt !== undefined) this.disconnectIdentity(h.state.tenant, h.state.principal)
        }
        // tenants disabled while away
        for (const t of store.listTenants()) if (t.disabled === true) this.disconnectTenant(t.id)
      },
      onRevoked: (tenant, principal) => { this.disconnectIdentity(tenant, principal) },
      onTenantChanged: tenant => { if (store.getTenant(tenant)?.disabled === true) this.disconnectTenant(tenant) },
      onPolicyChanged: async () => { await this.policyVersions.resync() },
      onRemoteEvent: ev => this.events.ingest(ev),
      heartbeat: () => {
        const a = this.policyVersions.view().active
        return { revisions: { stable: a.stable, ...(a.canary ? { canary: a.canary.revision } : {}), ...(a.shadow ? { shadow: a.shadow } : {}) }, sessions: this.sessions.size }
      },
      emit: e => { this.events.emit(e) }
    })
    // subscription quotas across the nodes: this node's counts written, the others' read (tenant-quota.ts)
    cluster.tenantQuotas.startSubscriptionSync(
      () => this.store.listTenants().filter(t => (t.quotas?.maxSubscriptions ?? 0) > 0).map(t => t.id),
      t => this.sessions.subscriptionsOf(t))
  }

  /** Live connections counted in the cluster-wide tenant connection quota, per tenant. */
  private countedConnections (): Map<string, number> {
    const counts = new Map<string, number>()
    for (const h of this.sessions.matching(s => s.quotaCounted === true)) counts.set(h.state.tenant, (counts.get(h.state.tenant) ?? 0) + 1)
    return counts
  }

  /** Why a session's identity is no longer trusted now (asked when a will fires after its connection ended). */
  private identityRevoked (st: ClientState): string | undefined {
    if (this.store.getTenant(st.tenant) === undefined) return 'tenant no longer exists'
    const cred = this.store.getCredential(st.tenant, st.principal)
    if (cred?.revokedAt !== undefined) return `credential revoked at ${cred.revokedAt}`
    if (st.auth === 'password' && cred === undefined) return 'credential no longer exists'
    if (st.auth === 'certificate' && (st.certPeer === undefined || !this.certificates.peerTrusted(st.certPeer))) return 'client certificate (or its CA) no longer trusted'
    return undefined
  }

  /** Cuts every live session of one identity (credential revocation) and drops its cached decisions. */
  disconnectIdentity (tenant: string, principal: string): number {
    this.policy.invalidateIdentity(tenant, principal)
    return this.sessions.cutIdentity(`${tenant}:${principal}`)
  }

  /** Cuts every live session of a disabled tenant on this node (its CONNECTs are refused by the connect step). */
  disconnectTenant (tenant: string): number {
    return this.sessions.cutTenant(tenant)
  }

  async close (): Promise<void> {
    if (this.closing) return await this.closing
    this.closing = (async () => {
      this.log.info('uspgate shutting down')
      await this.certify.close() // running certification runs are cancelled and put back what they changed
      // drain: /readyz answers 503 from here on (closing is set), no new connection is accepted,
      // MQTT 5 clients are told why (0x8B) and get up to half the drain time to go before a cut
      this.listeners.stopAccepting()
      this.certificates.close()
      const cut = await drainClients(this.clients(), (this.config.drainSeconds ?? 10) * 500)
      if (cut > 0) this.log.warn({ connections: cut }, 'drain: connections still open were closed')
      await new Promise<void>(resolve => this.broker.close(() => resolve()))
      this.listeners.destroyAll()
      await this.endpoints.flush() // the last offline marks, before the Redis connections close
      await this.connects.flush()
      await this.cluster?.close()
      await this.admin?.close()
      await this.probe?.close()
      this.throttle.close()
      await this.uspAudit.close()
      await this.events.close()
      await this.store.flush()
    })()
    return await this.closing
  }
}
