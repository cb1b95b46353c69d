// One broker under test, in its own process so the load generator never shares its event loop.
//   plain:    tsx bench/broker-child.ts aedes            (controls: aedes-nodelay, aedes-nodelay-cork)
//   aedes-auth: plain aedes with password digests and the policy engine in its hooks (a reference)
//   gateway:  tsx bench/broker-child.ts gateway <data-dir>
//   cluster:  tsx bench/broker-child.ts gateway <data-dir> <redis-url> <node-id>   (a node of gateway-2node)
// Started by bench/brokers.ts with an IPC channel: the child sends {type:'ready', port} once it
// listens, then answers requests ({id, type}) with {id, ok, result | error}. It exits when asked
// ('close', so a --cpu-prof profile gets written) or as soon as the parent goes away.
import { createServer, type Server, type Socket } from 'node:net'
import { writeFile, mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { Session } from 'node:inspector/promises'
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks'
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8'
import type * as GatewayModule from '../broker/index.ts'
import type * as CoreModule from '../broker/core/index.ts'
import type * as PoliciesModule from '../policies/index.ts'

// The gateway as it ships: `npm start` and the container run dist/ (tsc's output, `npm run bench`
// builds it first when stale), so that is what is measured. tsx's on-the-fly transpile of the sources
// wraps every named function expression in a __name() call (Object.defineProperty per closure), ~3 %
// of the broker's CPU per USP round trip that no deployment pays. USPGATE_BENCH_SOURCE=1: the sources.
const shipped = (door: string): string => process.env.USPGATE_BENCH_SOURCE === '1' ? `../${door}.ts` : `../dist/${door}.js`
const GATEWAY_MODULE = shipped('broker/index')
// The gateway child loads the gateway the way `uspgate start` does, nothing before it (its patches
// must run before aedes loads mqtt-packet: broker/mqtt/patches/quiet-debug.ts). The plain aedes
// children load aedes first and then, unused, the gateway's modules, as this file always did: their
// heap, and so their GC, stay what every earlier run measured (aedes alone has a ~60 MB smaller old
// generation and runs more full collections; in one run that cost it ~10 % more CPU per round trip).
// The peers run aedes as published (the devDependency aedes-stock, npm:aedes@2.0.0-beta.1), not the
// gateway's copy, which npm install patches (broker/mqtt/patches/aedes-source).
async function loadAedes (): Promise<typeof import('aedes')> {
  const aedes = await import('aedes-stock') as typeof import('aedes')
  await import(GATEWAY_MODULE)
  return aedes
}

export type BrokerKind = 'aedes' | 'aedes-nodelay' | 'aedes-nodelay-cork' | 'aedes-auth' | 'gateway'

export interface CredentialRequest {
  principal: string
  role: 'agent' | 'controller'
}

export type ChildRequest =
  | { id: number, type: 'stats' }
  | { id: number, type: 'provision', tenant: string, credentials: CredentialRequest[] }
  /** cluster node: resolves once this node's state copy (from Redis) has every principal; rejects after timeoutMs */
  | { id: number, type: 'await-credentials', tenant: string, principals: string[], timeoutMs: number }
  | { id: number, type: 'profile-start' }
  /** gateway: start-up time, heap after a GC (with --expose-gc), and the cluster route table's size (bench/fleet-cluster.ts) */
  | { id: number, type: 'fleet-stats' }
  /** a full GC (the child runs with --expose-gc), so an RSS reading holds live memory, not garbage */
  | { id: number, type: 'gc' }
  /** time spent in GC since the broker started, by kind (cumulative; the caller takes differences) */
  | { id: number, type: 'gc-time' }
  | { id: number, type: 'profile-stop', file: string }
  /** sampling heap profiler: what the allocations still live at the stop were made by */
  | { id: number, type: 'heap-start', sampling?: HeapSampling }
  | { id: number, type: 'heap-stop', top: number }
  /** a V8 heap snapshot written to `file` (Chrome DevTools format; bench/heap-snapshot-diff.ts): V8 collects all garbage first */
  | { id: number, type: 'heap-snapshot', file: string }
  | { id: number, type: 'close' }

export interface ChildStats {
  /** process.cpuUsage() of the broker process, µs */
  cpuUserUs: number
  cpuSystemUs: number
  rssBytes: number
  connectedClients: number
}

/** The V8 heap right after a full GC: where a node broker's RSS goes. */
export interface HeapAfterGc {
  /** bytes of live objects, all spaces */
  liveBytes: number
  /** bytes of heap pages the process holds (physical), all spaces; minus liveBytes: free space inside them */
  pagesBytes: number
  /** of pagesBytes, the young generation's (its size follows the allocation rate, not what is live) */
  youngPagesBytes: number
}

export interface GcTime {
  /** scavenges of the young generation, ms */
  minorMs: number
  /** mark-compact (full) collections, ms; their cost grows with the live heap */
  majorMs: number
  /** incremental marking steps and weak callbacks, ms */
  otherMs: number
  majors: number
}

function heapAfterGc (): HeapAfterGc {
  const spaces = getHeapSpaceStatistics()
  return {
    liveBytes: spaces.reduce((n, x) => n + x.space_used_size, 0),
    pagesBytes: spaces.reduce((n, x) => n + x.physical_space_size, 0),
    youngPagesBytes: spaces.filter(x => x.space_name === 'new_space' || x.space_name === 'new_large_object_space').reduce((n, x) => n + x.physical_space_size, 0)
  }
}

/** GC pauses of this process by kind, from perf_hooks' 'gc' entries. */
function gcClock (): () => GcTime {
  const t: GcTime = { minorMs: 0, majorMs: 0, otherMs: 0, majors: 0 }
  const obs = new PerformanceObserver(list => {
    for (const e of list.getEntries()) {
      const kind = ((e as { detail?: unknown }).detail as { kind?: number } | undefined)?.kind
      if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) t.minorMs += e.duration
      else if (kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) { t.majorMs += e.duration; t.majors++ } else t.otherMs += e.duration
    }
  })
  obs.observe({ entryTypes: ['gc'] })
  return () => ({ ...t })
}

export interface FleetStats {
  startMs: number
  heapUsedBytes: number
  rssBytes: number
  /** cluster mode with the route-table emitter: local filters, peers, routes mirrored from peers */
  routes?: { localFilters: number, remoteNodes: number, remoteRoutes: number }
}

export interface ProvisionResult {
  /** principal → secret, in request order */
  secrets: string[]
  ms: number
}

export type ChildMessage =
  | { type: 'ready', kind: BrokerKind, port: number, pid: number, notes: string[] }
  | { id: number, ok: true, result: unknown }
  | { id: number, ok: false, error: string }

/** Token for the gateway's admin API (the bench talks to the control plane over IPC instead). */
const BENCH_ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef0123456789'
const ACTOR = { id: 'bench', role: 'admin' }
/** Concurrent issueCredential calls: each one rewrites the whole state file, so bound the batch. */
const ISSUE_BATCH = 100

function send (msg: ChildMessage): void {
  process.send?.(msg)
}

function listen (server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const a = server.address()
      resolve(typeof a === 'object' && a !== null ? a.port : 0)
    })
  })
}

interface Running {
  port: number
  notes: string[]
  connectedClients: () => number
  provision: (tenant: string, creds: CredentialRequest[]) => Promise<ProvisionResult>
  awaitCredentials: (tenant: string, principals: string[], timeoutMs: number) => Promise<void>
  fleetStats?: () => FleetStats
  close: () => Promise<void>
}

/**
 * aedes 2.0.0-beta.1 as shipped: new Aedes(), memory persistence, no hooks, net.createServer(broker.handle).
 * Control variants (npm run bench -- --controls) change only the sockets, to tell the cost of the
 * gateway's socket settings apart from the cost of its hooks:
 *   nodelay       socket.setNoDelay(true) (TCP_NODELAY: one segment per write)
 *   nodelay-cork  the same, plus every socket corked from its first write in an event-loop turn
 *                 until setImmediate (one writev per socket per turn instead of one per packet)
 */
async function startAedes (variant: 'plain' | 'nodelay' | 'nodelay-cork'): Promise<Running> {
  const { Aedes } = await loadAedes()
  const broker = new Aedes()
  await broker.listen()
  const server = variant === 'plain'
    ? createServer(broker.handle)
    : createServer(socket => {
      socket.setNoDelay(true)
      if (variant === 'nodelay-cork') coalesceWrites(socket)
      broker.handle(socket)
    })
  const port = await listen(server)
  const notes = {
    plain: 'aedes 2.0.0-beta.1 as published (aedes-stock), new Aedes() defaults, memory persistence, no auth hooks, net.createServer(broker.handle)',
    nodelay: 'control: plain aedes + socket.setNoDelay(true), no hooks',
    'nodelay-cork': 'control: plain aedes + setNoDelay(true) + writes coalesced per event-loop turn (cork until setImmediate), no hooks'
  }
  return {
    port,
    notes: [notes[variant]],
    connectedClients: () => (broker as unknown as { connectedClients: number }).connectedClients,
    provision: async () => ({ secrets: [], ms: 0 }),
    awaitCredentials: async () => {},
    close: async () => {
      server.close()
      await new Promise<void>(resolve => broker.close(() => resolve()))
    }
  }
}

type AedesClient = import('aedes').Client
type PolicyClient = PoliciesModule.PolicyClient

/**
 * A reference, not a target: plain aedes doing the authentication and ACL work the fleet bench's
 * Mosquitto does (password file + pattern ACLs), with the gateway's own parts and nothing else:
 * the gateway's secrets (broker/core: generated, stored as a SHA-256 digest, compared in constant time), and the committed
 * policy bundle behind the PolicyEngine's decision cache asked for CONNECT, each SUBSCRIBE filter,
 * each PUBLISH and each delivery (the policy contract's four actions). Not done: the gateway's topic
 * invariants, USP inspection, presence, sessions index, quotas and fairness, security events, metrics,
 * socket settings and aedes patches. It tells how much of the gateway's cost over plain aedes is the
 * policy work itself, which the issue's 1.5× connect target compares against a broker that does none.
 */
async function startAedesWithAuth (): Promise<Running> {
  const { Aedes } = await loadAedes()
  const { PolicyEngine, loadDefaultBundle } = await import(shipped('policies/index')) as typeof PoliciesModule
  const { generateSecret, hashSecret, verifySecret } = await import(shipped('broker/core/index')) as typeof CoreModule
  const engine = new PolicyEngine()
  engine.activate(await loadDefaultBundle())
  /** "<tenant>:<principal>" → its secret's digest and role */
  const users = new Map<string, { digest: string, tenant: string, principal: string, role: 'agent' | 'controller' }>()
  const identities = new WeakMap<AedesClient, PolicyClient>()
  // CONNACK 4 bad user name or password, 5 not authorized (aedes' AuthErrorCode, a const enum)
  const refused = (returnCode: 4 | 5): import('aedes').AuthenticateError => Object.assign(new Error('not authorized'), { returnCode: returnCode as import('aedes').AuthErrorCode })
  const broker = new Aedes({
    authenticate (client, username, password, done) {
      const user = username !== undefined ? users.get(username) : undefined
      if (user === undefined || !verifySecret(password, user.digest)) { done(refused(4), false); return }
      const who: PolicyClient = { tenant: user.tenant, principal: user.principal, role: user.role, client_id: client.id, protocol: client.version ?? 4, auth: 'password', listener: 'mqtt' }
      if (!engine.decide({ action: 'connect', client: who }).allow) { done(refused(5), false); return }
      identities.set(client, who)
      done(null, true)
    },
    authorizeSubscribe (client, sub, done) {
      const who = identities.get(client)
      done(null, who !== undefined && engine.decide({ action: 'subscribe', client: who, topic: sub.topic, qos: sub.qos }).allow ? sub : null)
    },
    authorizePublish (client, packet, done) {
      const who = client !== null ? identities.get(client) : undefined
      done(who !== undefined && engine.decide({ action: 'publish', client: who, topic: packet.topic, qos: packet.qos, retain: packet.retain }).allow ? null : new Error('not authorized'))
    },
    authorizeForward (client, packet) {
      const who = identities.get(client)
      return who !== undefined && engine.decide({ action: 'deliver', client: who, topic: packet.topic, qos: packet.qos }).allow ? packet : null
    }
  })
  await broker.listen()
  const server = createServer(broker.handle)
  const port = await listen(server)
  return {
    port,
    notes: ['reference: aedes 2.0.0-beta.1 + the gateway\'s secret digests + the committed policy bundle (PolicyEngine with its decision cache) asked for connect, subscribe, publish and deliver; nothing else of the gateway'],
    connectedClients: () => (broker as unknown as { connectedClients: number }).connectedClients,
    provision: async (tenant, creds) => {
      const t0 = Date.now()
      const secrets = creds.map(c => {
        const secret = generateSecret()
        users.set(`${tenant}:${c.principal}`, { digest: hashSecret(secret), tenant, principal: c.principal, role: c.role })
        return secret
      })
      return { secrets, ms: Date.now() - t0 }
    },
    awaitCredentials: async () => {},
    close: async () => {
      server.close()
      await new Promise<void>(resolve => broker.close(() => resolve()))
    }
  }
}

/** Corks the socket at its first write in an event-loop turn and uncorks it in setImmediate. */
function coalesceWrites (socket: Socket): void {
  let corked = false
  const uncork = (): void => { corked = false; socket.uncork() }
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean
  ;(socket as unknown as { write: (...args: unknown[]) => boolean }).write = (...args: unknown[]) => {
    if (!corked) { corked = true; socket.cork(); setImmediate(uncork) }
    return write(...args)
  }
}

/** Cluster-mode settings of a gateway-2node node (same Redis and prefix on both, own node id). */
export interface ClusterNodeArgs {
  redisUrl: string
  nodeId: string
}

/** Shared by both cluster nodes (required in cluster mode; MQTTS is off, so the CA is never used). */
const BENCH_PKI_MASTER_KEY = 'bench-pki-master-key-0123456789abcdef'

/**
 * The uspgate Gateway with its real defaults, except the per-client publish rate limit.
 * With `cluster`: the same, in cluster mode on the given Redis (MQTTS off: two nodes on one host).
 */
async function startGateway (dataDir: string, cluster?: ClusterNodeArgs): Promise<Running> {
  const { Gateway, loadConfig } = await import(GATEWAY_MODULE) as typeof GatewayModule
  // loadConfig with an empty environment = the shipped defaults (log level info, default limits,
  // default policy, invariants, USP inspection); only ports, paths and the rate limit are set here.
  const config = loadConfig({
    'data-dir': dataDir,
    'mqtt-host': '127.0.0.1',
    'mqtt-port': '0',
    'admin-host': '127.0.0.1',
    'admin-port': '0',
    'admin-token': BENCH_ADMIN_TOKEN,
    'node-id': cluster?.nodeId ?? 'bench-gateway',
    'publish-rate': '0',
    // no MQTTS listener: the bench does not use it, and its fixed default port may be taken
    'mqtts-port': 'off',
    ...(cluster !== undefined
      ? { 'redis-url': cluster.redisUrl, 'redis-prefix': 'uspgate-bench:', 'pki-master-key': BENCH_PKI_MASTER_KEY }
      : {})
  }, {})
  const gw = new Gateway(config, { printAdminToken: false })
  const t0 = performance.now()
  await gw.start()
  const startMs = performance.now() - t0
  return {
    port: gw.mqttPort,
    notes: [
      `uspgate Gateway, loadConfig() defaults (log level ${config.logLevel}, max packet ${config.limits.maxPacketBytes} B)`,
      'limits.publishRatePerSecond = 0: per-client publish rate limit DISABLED (default 1000 msg/s per client caps each publisher by design)',
      ...(cluster !== undefined ? [`cluster mode: node ${cluster.nodeId} on ${cluster.redisUrl} (prefix uspgate-bench:), MQTTS off`] : [])
    ],
    connectedClients: () => (gw.broker as unknown as { connectedClients: number }).connectedClients,
    provision: async (tenant, creds) => {
      const t0 = Date.now()
      if (gw.control.listTenants().every(t => t.id !== tenant)) await gw.control.addTenant({ id: tenant, name: 'benchmark' }, ACTOR)
      const secrets: string[] = []
      for (let i = 0; i < creds.length; i += ISSUE_BATCH) {
        const batch = creds.slice(i, i + ISSUE_BATCH)
        const issued = await Promise.all(batch.map(c => gw.control.issueCredential(tenant, c, ACTOR)))
        for (const r of issued) secrets.push(r.secret)
      }
      return { secrets, ms: Date.now() - t0 }
    },
    awaitCredentials: async (tenant, principals, timeoutMs) => {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const missing = principals.filter(p => gw.store.getCredential(tenant, p) === undefined)
        if (missing.length === 0) return
        if (Date.now() > deadline) throw new Error(`${missing.length} of ${principals.length} credentials of tenant ${tenant} still unknown on this node after ${timeoutMs} ms (first: ${missing[0]!})`)
        await new Promise(resolve => setTimeout(resolve, 50))
      }
    },
    fleetStats: () => {
      (globalThis as { gc?: () => void }).gc?.()
      // the route-table emitter has stats(); an older emitter (mqemitter-redis) has none
      const mq = (gw.cluster as unknown as { mq?: { stats?: () => FleetStats['routes'] } } | undefined)?.mq
      const routes = typeof mq?.stats === 'function' ? mq.stats() : undefined
      return { startMs, heapUsedBytes: process.memoryUsage().heapUsed, rssBytes: process.memoryUsage.rss(), ...(routes !== undefined ? { routes } : {}) }
    },
    close: async () => { await gw.close() }
  }
}

/** CPU profile of a window of the run (the same data as node --cpu-prof, without startup and provisioning). */
export interface HeapSite { fn: string, where: string, bytes: number }

/**
 * Live allocations (sampling heap profiler, 32 kB interval) by allocating function, after a GC; or with
 * `allocations`, everything allocated meanwhile, also what the GC has already collected (the GC's work).
 */
/**
 * What a heap sampling counts: 'live' what is still held after a full GC at the stop (leaks); 'promoted'
 * that plus what full collections reclaimed in between, i.e. what reached the old generation (the last,
 * forced collection also reclaims the young generation's garbage of that moment: an upper bound);
 * 'allocated' everything allocated (per-function allocation rate).
 */
export type HeapSampling = 'live' | 'promoted' | 'allocated'

class HeapSampler {
  private session: Session | undefined
  private sampling: HeapSampling = 'live'

  async start (sampling: HeapSampling = 'live'): Promise<void> {
    this.session = new Session()
    this.session.connect()
    this.sampling = sampling
    await this.session.post('HeapProfiler.enable')
    const collected = sampling === 'allocated'
      ? { includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }
      : sampling === 'promoted' ? { includeObjectsCollectedByMajorGC: true } : {}
    await this.session.post('HeapProfiler.startSampling', { samplingInterval: 32768, ...collected })
  }

  async stop (top: number): Promise<{ totalBytes: number, sites: HeapSite[] }> {
    if (this.session === undefined) throw new Error('heap sampling not started')
    if (this.sampling !== 'allocated') await this.session.post('HeapProfiler.collectGarbage')
    const { profile } = await this.session.post('HeapProfiler.stopSampling')
    this.session.disconnect()
    this.session = undefined
    const bySite = new Map<string, HeapSite>()
    let totalBytes = 0
    type Node = { callFrame: { functionName: string, url: string, lineNumber: number }, selfSize: number, children: Node[] }
    const visit = (n: Node): void => {
      if (n.selfSize > 0) {
        const url = n.callFrame.url.replace(/^.*\/node_modules\//, '').replace(/^file:\/\/.*?\/(broker|bench|policies|admin-api)\//, '$1/')
        const key = `${n.callFrame.functionName || '(anonymous)'}@${url}:${n.callFrame.lineNumber + 1}`
        const site = bySite.get(key) ?? { fn: n.callFrame.functionName || '(anonymous)', where: `${url}:${n.callFrame.lineNumber + 1}`, bytes: 0 }
        site.bytes += n.selfSize
        bySite.set(key, site)
        totalBytes += n.selfSize
      }
      for (const c of n.children) visit(c)
    }
    visit(profile.head as unknown as Node)
    return { totalBytes, sites: [...bySite.values()].sort((a, b) => b.bytes - a.bytes).slice(0, top) }
  }
}

class WindowProfiler {
  private session: Session | undefined

  async start (): Promise<void> {
    if (this.session === undefined) {
      this.session = new Session()
      this.session.connect()
      await this.session.post('Profiler.enable')
      await this.session.post('Profiler.setSamplingInterval', { interval: 200 })
    }
    await this.session.post('Profiler.start')
  }

  async stop (file: string): Promise<string> {
    if (this.session === undefined) throw new Error('profiler not started')
    const { profile } = await this.session.post('Profiler.stop')
    await mkdir(dirname(file), { recursive: true })
    await writeFile(file, JSON.stringify(profile))
    return file
  }
}

async function main (): Promise<void> {
  const kind = process.argv[2] as BrokerKind
  if (process.send === undefined) throw new Error('broker-child must be started with an IPC channel (bench/brokers.ts)')
  let running: Running
  if (kind === 'aedes') running = await startAedes('plain')
  else if (kind === 'aedes-nodelay') running = await startAedes('nodelay')
  else if (kind === 'aedes-nodelay-cork') running = await startAedes('nodelay-cork')
  else if (kind === 'aedes-auth') running = await startAedesWithAuth()
  else if (kind === 'gateway') {
    const dir = process.argv[3]
    if (!dir) throw new Error('gateway child needs a data dir')
    const [redisUrl, nodeId] = [process.argv[4], process.argv[5]]
    running = await startGateway(dir, redisUrl !== undefined && nodeId !== undefined ? { redisUrl, nodeId } : undefined)
  } else throw new Error(`unknown broker kind ${String(kind)}`)

  const profiler = new WindowProfiler()
  const gcTime = gcClock()
  const heap = new HeapSampler()
  let closing = false
  const shutdown = async (code: number): Promise<void> => {
    if (closing) return
    closing = true
    const force = setTimeout(() => process.exit(code), 5000)
    force.unref()
    try { await running.close() } catch { /* exiting anyway */ }
    process.exit(code)
  }
  // The parent went away (crash, Ctrl-C): never outlive it.
  process.on('disconnect', () => { void shutdown(0) })
  process.on('SIGTERM', () => { void shutdown(0) })
  process.on('SIGINT', () => { void shutdown(0) })

  process.on('message', (raw: unknown) => {
    const req = raw as ChildRequest
    const reply = (p: Promise<unknown>): void => {
      p.then(
        result => send({ id: req.id, ok: true, result }),
        (err: unknown) => send({ id: req.id, ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) })
      )
    }
    switch (req.type) {
      case 'stats': {
        const cpu = process.cpuUsage()
        const stats: ChildStats = { cpuUserUs: cpu.user, cpuSystemUs: cpu.system, rssBytes: process.memoryUsage.rss(), connectedClients: running.connectedClients() }
        reply(Promise.resolve(stats))
        break
      }
      case 'provision':
        reply(running.provision(req.tenant, req.credentials))
        break
      case 'await-credentials':
        reply(running.awaitCredentials(req.tenant, req.principals, req.timeoutMs))
        break
      case 'gc':
        (globalThis as { gc?: () => void }).gc?.()
        reply(Promise.resolve(heapAfterGc()))
        break
      case 'gc-time':
        reply(Promise.resolve(gcTime()))
        break
      case 'fleet-stats':
        reply(running.fleetStats !== undefined ? Promise.resolve(running.fleetStats()) : Promise.reject(new Error('no fleet stats for this broker kind')))
        break
      case 'profile-start':
        reply(profiler.start())
        break
      case 'heap-start':
        reply(heap.start(req.sampling))
        break
      case 'heap-stop':
        reply(heap.stop(req.top))
        break
      case 'heap-snapshot':
        reply(mkdir(dirname(req.file), { recursive: true }).then(() => writeHeapSnapshot(req.file)))
        break
      case 'profile-stop':
        reply(profiler.stop(req.file))
        break
      case 'close':
        send({ id: req.id, ok: true, result: null })
        void shutdown(0)
        break
    }
  })
  send({ type: 'ready', kind, port: running.port, pid: process.pid, notes: running.notes })
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
