// Fleet scenario (`npm run bench -- --fleet`): one node, a real fleet. K idle USP Agents (split
// over loader processes, bench/fleet-loader.ts) are connected, each subscribed to its inbox
// `<tenant>/usp/agent/<id>` (MQTT 5; every 10th agent is MQTT 3.1.1 and subscribes `<inbox>/#`).
// One MQTT 5 Controller sends real USP Get Records (protobufjs, broker/usp schemas) to the agents
// in turn with 200 in flight; each agent answers with a GetResp to the controller's inbox (MQTT 5
// Response Topic, or the 3.1.1 reply-to suffix). Targets side by side in the same run: Mosquitto
// (Debian, password file + pattern ACLs), plain aedes 2.0.0-beta.1, and the gateway (inspection
// and policy on). Reported per K and target: round trips/s, p50/p99 RTT, broker CPU µs per round
// trip and per connect (from /proc), RSS with the fleet and per agent, time to connect the fleet.
import { fork, type ChildProcess } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt, { type MqttClient } from 'mqtt'
import { uspSchema } from '../broker/usp/index.ts'
import { startBroker, trackProcess, type BrokerHandle } from './brokers.ts'
import type { GcTime, HeapAfterGc, HeapSampling, HeapSite } from './broker-child.ts'
import { startMosquitto, mosquittoUsername } from './mosquitto.ts'
import { Samples, sleep, waitForQuiet, nowUs, machineCpuUs, git } from './stats.ts'
import { summarizeProfile, formatSummary, type ProfileSummary } from './profile-summary.ts'
import { heapSnapshotDiff, formatHeapDiff } from './heap-snapshot-diff.ts'
import type { FleetAgent, FleetLoaderMessage, FleetLoaderRequest } from './fleet-loader.ts'

const LOADER = fileURLToPath(new URL('./fleet-loader.ts', import.meta.url))
const REPO = fileURLToPath(new URL('..', import.meta.url))
const CLK_TCK = 100

/**
 * The issue's three, and two references it does not name, not in the default run, their ratios
 * references, not targets: `aedes-auth` (plain aedes with the password digests and the policy engine in
 * its hooks, bench/broker-child.ts), to tell the policy's share of the gateway's cost over plain aedes;
 * `gateway-base` (the gateway of another checkout, `--fleet-base=<dir>`), to measure a change to the
 * gateway against the code before it in the same run, windows interleaved.
 */
export const FLEET_TARGETS = ['mosquitto', 'aedes', 'aedes-auth', 'gateway', 'gateway-base'] as const
export type FleetTargetName = typeof FLEET_TARGETS[number]

/** Broker processes that take credentials issued by the bench (Mosquitto gets a password file instead). */
function issuesCredentials (name: FleetTargetName): boolean {
  return name === 'gateway' || name === 'gateway-base' || name === 'aedes-auth'
}

export interface FleetOptions {
  fleetSizes: number[]
  targets: FleetTargetName[]
  /** The checkout the `gateway-base` target runs (built, with node_modules). */
  baseCheckout?: string
  tenant: string
  inFlight: number
  /** CONNECTs in flight over all loaders while the fleet connects */
  connectConcurrency: number
  warmupMs: number
  /** one measurement window */
  measureMs: number
  /**
   * Windows measured back to back on the same connected fleet; round trips/s and CPU per round trip
   * are their medians (one 10 s window of the same code varied by up to 1.7× on this 2-core machine).
   */
  windows: number
  /**
   * Gets per second of the paced window that follows each saturated one (0: none). CPU per round trip
   * depends on the load (fewer messages per event-loop turn, more syscalls and turns per message), and
   * saturated throughput differs between targets and windows; paced, every target and K carry the same
   * load, so their CPU per round trip compares like for like. Below every target's saturation.
   */
  pacedRate: number
  /**
   * Fleet connects measured on their own before the fleets are prepared: each round starts every
   * (K, target) afresh (new broker process, new loaders, nothing else connected anywhere), connects
   * its fleet, measures, and stops it; the order rotates per round. The fleet connect figures are
   * their medians (0: the connect of the prepared fleet only, as measured while the fleets prepared
   * before it sit connected). One connect of the same code varied by 1.28-1.84× vs aedes.
   */
  connectRounds: number
  /** every n-th agent is MQTT 3.1.1 (subscribes `<inbox>/#`) */
  v311Every: number
  profile: boolean
  /** sampling heap profile of the fleet connect (node targets): where the memory per agent goes */
  heap: boolean
  /** V8 heap snapshots before and after the fleet connect (node targets), and their difference per agent: which objects hold the memory per agent (the RSS figures of such a run include the snapshot writer's) */
  snapshots: boolean
  /** sampling allocation profile of the first round-trip window (node targets): bytes allocated per round trip, by function */
  allocations: boolean
  /** sampling heap profile from round 2 to the end (node targets): what the steady state allocates and keeps (a leak shows here) */
  retained: boolean
  /** the same rounds, counting also what full collections reclaimed: what reached the old generation (promotion), by function */
  promoted: boolean
  profileDir: string
  log: (line: string) => void
}

/** Every fleet run is kept here as well as in bench/results/fleet.json, for bench/fleet-summary.ts. */
export const FLEET_RUNS_DIR = join(REPO, 'bench', 'results', 'fleet-runs')

export const defaultFleetOptions: FleetOptions = {
  fleetSizes: [1000, 10_000],
  targets: ['mosquitto', 'aedes', 'gateway'],
  tenant: 'bench',
  inFlight: 200,
  connectConcurrency: 200,
  warmupMs: 2000,
  measureMs: 10_000,
  windows: 5,
  pacedRate: 3000,
  connectRounds: 3,
  v311Every: 10,
  profile: false,
  heap: false,
  snapshots: false,
  allocations: false,
  retained: false,
  promoted: false,
  profileDir: join(REPO, 'bench', 'results', 'profiles'),
  log: line => { console.log(line) }
}

export interface FleetResult {
  target: string
  agents: number
  connected: number
  connectFailures: string[]
  /** first CONNECT sent to the last SUBACK received, all loaders (median of the connect rounds, when measured) */
  connectMs: number
  brokerCpuUsPerConnect: number
  /** every connect round (connectRounds), and the connect of the prepared fleet */
  connects: { rounds: ConnectSample[], prepared: ConnectSample }
  roundTripsPerSec: number
  rttP50Ms: number
  rttP99Ms: number
  brokerCpuUsPerRoundTrip: number
  brokerCpuPct: number
  /** every window: round trips/s and broker CPU per round trip (the figures above are their medians) */
  windows: Array<{ roundTripsPerSec: number, brokerCpuUsPerRoundTrip: number, brokerSysUsPerRoundTrip: number, brokerHelperThreadsUsPerRoundTrip: number, keepAlivePingsPerSec: number, machineStealPct?: number, syscalls?: { readsPerRoundTrip: number, writesPerRoundTrip: number }, tcp?: { segmentsPerRoundTrip: number, pureAcksPerRoundTrip: number, delayedAcksPerRoundTrip: number }, gc?: { minorUsPerRoundTrip: number, majorUsPerRoundTrip: number, otherUsPerRoundTrip: number, majors: number }, paced?: { roundTripsPerSec: number, brokerCpuUsPerRoundTrip: number, keepAlivePingsPerSec: number } }>
  /** median over the paced windows (pacedRate Gets per second): CPU per round trip at the same load for every target and K */
  pacedCpuUsPerRoundTrip?: number
  /** Gets with no GetResp within 10 s (written off), during the window */
  lost: number
  rssIdleMB: number
  rssFleetMB: number
  /** (RSS with the fleet − RSS before it) / K; node brokers: both read after a full GC (live memory, not uncollected garbage) */
  rssPerAgentKB: number
  /** node brokers: where the RSS per agent went, from the V8 heap read after the same full GCs */
  memoryPerAgent?: MemoryPerAgent
  provisionMs: number
  loadavg: number[]
  otherCpuPct: number | null
  /**
   * Mean over the windows of the machine's CPU time the hypervisor gave to other guests (steal, % of all
   * cores): a window with steal ran on a host busy with someone else's work, which also slows what did run.
   */
  machineStealPct: number | null
  /** --cpu-prof, by phase (connect, roundtrips, paced); operations: agents connected or round trips in the profiled span, for per-operation comparisons (bench/profile-summary.ts --diff) */
  profiles: Record<string, { file: string, summary: ProfileSummary, operations?: number }>
  /** live bytes by allocating function after the fleet connected (--heap-prof) */
  heap?: { totalBytes: number, sites: HeapSite[] }
}

// ---- /proc

/** utime and stime of a /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat file (fields 14 and 15), in µs. */
function statTimesUs (path: string): { user: number, sys: number } {
  const stat = readFileSync(path, 'utf8')
  // fields after the command name, which may itself contain spaces and ')'
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { user: Number(f[11]) * 1e6 / CLK_TCK, sys: Number(f[12]) * 1e6 / CLK_TCK }
}

/** The whole process: every thread, user and kernel time. */
function procCpuUs (pid: number): { total: number, sys: number } {
  const t = statTimesUs(`/proc/${pid}/stat`)
  return { total: t.user + t.sys, sys: t.sys }
}

/** CPU µs of the process's threads other than the main (JS) thread: V8's GC and compiler helpers, libuv's pool. */
function procHelperThreadsUs (pid: number): number {
  let us = 0
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      if (tid === String(pid)) continue
      try {
        const t = statTimesUs(`/proc/${pid}/task/${tid}/stat`)
        us += t.user + t.sys
      } catch { /* the thread ended */ }
    }
  } catch { /* not Linux */ }
  return us
}

function procRssBytes (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : 0
}

interface TcpCounters { segments: number, pureAcks: number, delayedAcks: number }

/**
 * The machine's TCP counters (/proc/net/snmp, /proc/net/netstat): segments sent, pure ACKs received and
 * delayed ACKs sent. On loopback both ends are this machine, and a segment's receive side runs inside
 * the sender's system call, so these tell what the kernel time per round trip is made of.
 */
function tcpCounters (): TcpCounters | undefined {
  try {
    const row = (text: string, prefix: string): Map<string, number> => {
      const [h, v] = text.split('\n').filter(l => l.startsWith(prefix + ':'))
      const names = h!.split(/\s+/).slice(1)
      const values = v!.split(/\s+/).slice(1).map(Number)
      return new Map(names.map((n, i) => [n, values[i]!]))
    }
    const tcp = row(readFileSync('/proc/net/snmp', 'utf8'), 'Tcp')
    const ext = row(readFileSync('/proc/net/netstat', 'utf8'), 'TcpExt')
    return { segments: tcp.get('OutSegs')!, pureAcks: ext.get('TCPPureAcks')!, delayedAcks: ext.get('DelayedACKs')! }
  } catch { return undefined }
}

/** What the machine's TCP did between two readings, per round trip. */
function tcpPerRoundTrip (a: TcpCounters, b: TcpCounters, roundTrips: number): NonNullable<FleetResult['windows'][number]['tcp']> {
  const n = Math.max(1, roundTrips)
  return { segmentsPerRoundTrip: (b.segments - a.segments) / n, pureAcksPerRoundTrip: (b.pureAcks - a.pureAcks) / n, delayedAcksPerRoundTrip: (b.delayedAcks - a.delayedAcks) / n }
}

interface Syscalls { reads: number, writes: number }

/** The broker's read and write system calls so far, all threads (/proc/<pid>/io syscr, syscw). */
function procSyscalls (pid: number): Syscalls | undefined {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8')
    const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? NaN)
    const r = { reads: field('syscr'), writes: field('syscw') }
    return Number.isFinite(r.reads) && Number.isFinite(r.writes) ? r : undefined
  } catch { return undefined }
}

/** The broker's system calls between two readings, per round trip. */
function syscallsPerRoundTrip (a: Syscalls, b: Syscalls, roundTrips: number): NonNullable<FleetResult['windows'][number]['syscalls']> {
  const n = Math.max(1, roundTrips)
  return { readsPerRoundTrip: (b.reads - a.reads) / n, writesPerRoundTrip: (b.writes - a.writes) / n }
}

// ---- targets

interface FleetTarget {
  name: FleetTargetName
  port: number
  pid: number
  note: string
  /** credentials per identity (undefined: no auth) */
  credentials: Map<string, { username: string, password: string }> | undefined
  provisionMs: number
  profileStart?: () => Promise<void>
  profileStop?: (file: string) => Promise<string>
  gc?: () => Promise<HeapAfterGc>
  gcTime?: () => Promise<GcTime>
  heapStart?: (sampling?: HeapSampling) => Promise<void>
  heapStop?: (top: number) => Promise<{ totalBytes: number, sites: HeapSite[] }>
  heapSnapshot?: (file: string) => Promise<string>
  stop: () => Promise<void>
}

interface Identity { clientId: string, endpointId: string, role: 'agent' | 'controller' }

const PROVISION_CHUNK = 1000

async function startTarget (name: FleetTargetName, tenant: string, ids: Identity[], baseCheckout?: string): Promise<FleetTarget> {
  if (name === 'mosquitto') {
    const creds = new Map(ids.map(id => [id.endpointId, { username: mosquittoUsername(tenant, id.endpointId), password: randomBytes(18).toString('base64url') }]))
    const t0 = Date.now()
    const m = await startMosquitto(tenant, [...creds.values()], ids.filter(i => i.role === 'controller').map(i => ({ username: creds.get(i.endpointId)!.username, endpointId: i.endpointId })))
    return { name, port: m.port, pid: m.pid, note: `${m.version}, password file (${ids.length} users, mosquitto_passwd hashes) + pattern ACLs`, credentials: creds, provisionMs: Date.now() - t0, stop: m.stop }
  }
  // --expose-gc: RSS is read after a full GC in both node brokers (live memory, not what the GC has not yet collected)
  let b: BrokerHandle
  if (name === 'gateway-base') {
    const checkout = baseCheckout! // runFleetBench refuses gateway-base without one
    b = await startBroker('gateway', { nodeFlags: ['--expose-gc'], checkout })
    b.notes.push(`gateway-base: the checkout ${checkout} at ${checkoutCommit(checkout)}`)
  } else {
    b = await startBroker(name, { nodeFlags: ['--expose-gc'] })
  }
  let credentials: FleetTarget['credentials']
  const t0 = Date.now()
  if (issuesCredentials(name)) {
    credentials = new Map()
    for (let i = 0; i < ids.length; i += PROVISION_CHUNK) {
      const chunk = ids.slice(i, i + PROVISION_CHUNK)
      const { secrets } = await b.provision(tenant, chunk.map(id => ({ principal: id.endpointId, role: id.role })))
      chunk.forEach((id, j) => credentials!.set(id.endpointId, { username: `${tenant}:${id.endpointId}`, password: secrets[j]! }))
    }
  }
  return {
    name,
    port: b.port,
    pid: b.pid,
    note: b.notes.join('; '),
    credentials,
    provisionMs: Date.now() - t0,
    profileStart: () => b.profileStart(),
    profileStop: file => b.profileStop(file),
    gc: () => b.gc(),
    gcTime: () => b.gcTime(),
    heapStart: sampling => b.heapStart(sampling),
    heapStop: top => b.heapStop(top),
    heapSnapshot: file => b.heapSnapshot(file),
    stop: () => b.stop()
  }
}

/** The commit a checkout is at (and "+ changes" when its tracked files differ from it). */
function checkoutCommit (dir: string): string {
  const commit = git(['rev-parse', '--short', 'HEAD'], dir)
  if (commit === null) return 'an unknown commit (not a git checkout)'
  return `${commit}${git(['status', '--porcelain', '--untracked-files=no'], dir) === '' ? '' : ' + changes'}`
}

// ---- loaders

interface Loader {
  child: ChildProcess
  request: (m: FleetLoaderRequest) => void
  next: <T extends FleetLoaderMessage['type']>(type: T) => Promise<Extract<FleetLoaderMessage, { type: T }>>
}

async function startLoader (): Promise<Loader> {
  const child = fork(LOADER, [], { cwd: REPO, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  trackProcess(child)
  const waiting = new Map<string, Array<(m: FleetLoaderMessage) => void>>()
  child.on('message', (raw: unknown) => {
    const m = raw as FleetLoaderMessage
    const q = waiting.get(m.type)
    q?.shift()?.(m)
  })
  const next = <T extends FleetLoaderMessage['type']>(type: T): Promise<Extract<FleetLoaderMessage, { type: T }>> =>
    new Promise((resolve, reject) => {
      const onExit = (): void => reject(new Error(`fleet loader exited while waiting for '${type}'`))
      child.once('exit', onExit)
      const q = waiting.get(type) ?? []
      q.push(m => { child.off('exit', onExit); resolve(m as Extract<FleetLoaderMessage, { type: T }>) })
      waiting.set(type, q)
    })
  const ready = next('ready')
  await ready
  return { child, request: m => { child.send(m) }, next }
}

/** PINGREQs the loaders have sent so far: the Keep Alive of agents that had nothing else to send. */
async function loaderPings (loaders: Loader[]): Promise<number> {
  const replies = loaders.map(l => l.next('stats'))
  for (const l of loaders) l.request({ type: 'stats' })
  return (await Promise.all(replies)).reduce((n, s) => n + s.pinged, 0)
}

// ---- the controller: Gets out, GetResps in, RTT by msg_id

class Controller {
  private readonly sent = new Map<string, number>()
  private seq = 0
  private cursor = 0
  private stopped = true
  private sweep: NodeJS.Timeout | undefined
  private pace: NodeJS.Timeout | undefined
  /** Gets per second when paced; undefined: saturated (each answer sends the next Get) */
  private rate: number | undefined
  completed = 0
  /** GetResps received since start, window or not */
  answered = 0
  lost = 0
  readonly rtt = new Samples(1 << 16)
  recording = false
  private readonly inbox: string
  private readonly schema = uspSchema()

  private constructor (private readonly client: MqttClient, private readonly endpointId: string, private readonly tenant: string, private agents: FleetAgent[]) {
    this.inbox = `${tenant}/usp/controller/${endpointId}`
    client.on('message', (_topic, payload) => this.onResponse(payload))
  }

  static async connect (port: number, tenant: string, id: Identity, cred: { username: string, password: string } | undefined, agents: FleetAgent[]): Promise<Controller> {
    const client = await mqtt.connectAsync({
      host: '127.0.0.1',
      port,
      protocolVersion: 5,
      clientId: id.clientId,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
      ...(cred ? { username: cred.username, password: cred.password } : {}),
      properties: { userProperties: { 'usp-endpoint-id': id.endpointId } }
    })
    const c = new Controller(client, id.endpointId, tenant, agents)
    const granted = await client.subscribeAsync(`${c.inbox}/#`, { qos: 1 })
    if (granted[0]!.qos !== 1) throw new Error(`controller SUBSCRIBE refused (${granted[0]!.qos})`)
    return c
  }

  /**
   * Starts (or restarts) sending. Saturated (no rate): inFlight Gets, each answer sending the next.
   * Paced: `rate` Gets per second, released every 5 ms, never more than inFlight unanswered.
   */
  start (inFlight: number, rate?: number): void {
    this.stopped = false
    this.rate = rate
    if (rate === undefined) {
      for (let i = 0; i < inFlight; i++) this.sendNext()
    } else {
      const t0 = nowUs()
      let released = 0
      this.pace = setInterval(() => {
        const due = Math.floor((nowUs() - t0) / 1e6 * rate)
        // a stall is not made up for with a burst: at most 50 ms of Gets are owed
        if (due - released > rate / 20) released = due - Math.ceil(rate / 20)
        while (released < due && this.sent.size < inFlight && !this.stopped) { released++; this.sendNext() }
      }, 5)
    }
    // Gets without an answer for 10 s are written off so a lost message does not shrink the window
    this.sweep = setInterval(() => {
      const cutoff = nowUs() - 10_000_000
      for (const [id, t] of this.sent) {
        if (t > cutoff) break
        this.sent.delete(id)
        this.lost++
        if (this.rate === undefined) this.sendNext()
      }
    }, 1000)
  }

  /** Stops sending and waits for the Gets in flight to be answered (or written off after maxMs). */
  async stopAndDrain (maxMs: number): Promise<void> {
    this.stopped = true
    clearInterval(this.pace)
    const t0 = Date.now()
    while (this.sent.size > 0 && Date.now() - t0 < maxMs) await sleep(50)
    clearInterval(this.sweep)
    this.lost += this.sent.size
    this.sent.clear()
  }

  /** Agents that did not connect get no Gets (their requests would only time out). */
  exclude (ids: Set<string>): void {
    this.agents = this.agents.filter(a => !ids.has(a.clientId))
  }

  private sendNext (): void {
    if (this.stopped || this.agents.length === 0) return
    const agent = this.agents[this.cursor]!
    this.cursor = (this.cursor + 1) % this.agents.length
    const msgId = `g${++this.seq}`
    const { Record: R, Msg: M } = this.schema
    const msg = M.encode(M.fromObject({ header: { msgId, msgType: 'GET' }, body: { request: { get: { paramPaths: ['Device.DeviceInfo.Manufacturer', 'Device.DeviceInfo.SerialNumber'], maxDepth: 1 } } } })).finish()
    const record = Buffer.from(R.encode(R.fromObject({ version: '1.3', toId: agent.endpointId, fromId: this.endpointId, noSessionContext: { payload: msg } })).finish())
    const inbox = `${this.tenant}/usp/agent/${agent.endpointId}`
    // a 3.1.1 agent sees no Response Topic: the reply-to travels as the topic suffix (R-MQTT.24)
    const topic = agent.v === 5 ? inbox : `${inbox}/reply-to=${this.inbox.split('/').join('%2F')}`
    this.sent.set(msgId, nowUs())
    this.client.publish(topic, record, { qos: 1, properties: { responseTopic: this.inbox, contentType: 'usp.msg' } })
  }

  private onResponse (payload: Buffer): void {
    const { Record: R, Msg: M } = this.schema
    let msgId: string | undefined
    try {
      const rec = R.decode(payload) as unknown as { noSessionContext?: { payload: Uint8Array } }
      msgId = (M.decode(rec.noSessionContext!.payload) as unknown as { header?: { msgId?: string } }).header?.msgId
    } catch { return }
    const t = msgId === undefined ? undefined : this.sent.get(msgId)
    if (t === undefined) return
    this.sent.delete(msgId!)
    this.answered++
    if (this.recording) {
      this.completed++
      this.rtt.add(nowUs() - t)
    }
    if (this.rate === undefined) this.sendNext()
  }

  async close (): Promise<void> { clearInterval(this.sweep); clearInterval(this.pace); await this.client.endAsync(true).catch(() => {}) }
}

/** kB per agent, RSS with the fleet minus RSS before it split by where it is. */
export interface MemoryPerAgent { liveHeapKB: number, freeInOldPagesKB: number, youngPagesKB: number, outsideHeapKB: number }

function perAgent (idle: HeapAfterGc, fleet: HeapAfterGc, rssBytes: number, agents: number): MemoryPerAgent {
  const kb = (bytes: number): number => bytes / 1024 / agents
  const pages = fleet.pagesBytes - idle.pagesBytes
  const live = fleet.liveBytes - idle.liveBytes
  const young = fleet.youngPagesBytes - idle.youngPagesBytes
  // after a full GC the young generation holds nothing live: its pages are all free space
  return { liveHeapKB: kb(live), freeInOldPagesKB: kb(pages - young - live), youngPagesKB: kb(young), outsideHeapKB: kb(rssBytes - pages) }
}

// ---- one (K, target) fleet: prepared once, measured in windows interleaved with the others

function fleetIdentities (k: number): { agents: Identity[], controller: Identity } {
  const w = String(k - 1).length
  const agents = Array.from({ length: k }, (_, i): Identity => {
    const eid = `os::0FLEET-a${String(i).padStart(w, '0')}`
    return { clientId: eid, endpointId: eid, role: 'agent' }
  })
  return { agents, controller: { clientId: 'fleet-controller', endpointId: 'self::fleet-controller', role: 'controller' } }
}

/** A target with its fleet connected, its controller idle between windows. */
interface PreparedFleet {
  name: FleetTargetName
  k: number
  target: FleetTarget
  loaders: Loader[]
  ctl: Controller
  connected: number
  connectFailures: string[]
  connectMs: number
  connectCpuUs: number
  rssIdle: number
  memoryPerAgent?: MemoryPerAgent
  rssFleet: number
  heap?: FleetResult['heap']
  profiles: FleetResult['profiles']
  /** every agent has been asked once (the first turn decides every topic; later windows warm up briefly) */
  warm: boolean
  windows: FleetResult['windows']
  windowMs: number
  brokerUs: number
  otherUs: number | undefined
  lost: number
  rttStart: number
}

async function profiled<T> (o: FleetOptions, f: { name: string, k: number, target: FleetTarget, profiles: FleetResult['profiles'] }, phase: string, fn: () => Promise<T>): Promise<T> {
  const t = f.target
  if (!o.profile || t.profileStart === undefined) return await fn()
  await t.profileStart()
  try { return await fn() } finally {
    const file = await t.profileStop!(join(o.profileDir, `fleet-${f.name}-k${f.k}-${phase}.cpuprofile`))
    f.profiles[phase] = { file, summary: await summarizeProfile(file, 25) }
  }
}

/** The agents as the loaders connect them (every v311Every-th one MQTT 3.1.1), with their credentials on the gateway. */
function fleetAgents (o: FleetOptions, agents: Identity[], target: FleetTarget): FleetAgent[] {
  return agents.map((a, i) => {
    const cred = target.credentials?.get(a.endpointId)
    return { clientId: a.clientId, endpointId: a.endpointId, v: (i % o.v311Every === o.v311Every - 1 ? 4 : 5), ...(cred ? { username: cred.username, password: cred.password } : {}) }
  })
}

/**
 * Four loader processes at every K: only K may differ between the fleets a ratio compares. With 2 at
 * K = 1,000 and 4 at 10,000, the gateway's own CPU per round trip at 1,000 agents rose from ~140 to
 * ~166 µs when given the same 4 loaders (more processes competing for the 2 cores and their caches):
 * part of its "growth with K" was the bench's loader count.
 */
const LOADERS = 4

export interface ConnectSample { connected: number, connectMs: number, connectCpuUs: number }

/** Connects the fleet through the loaders (connectConcurrency CONNECTs in flight): wall time from the first CONNECT to the last SUBACK, and the broker's CPU. */
async function connectFleet (o: FleetOptions, target: FleetTarget, loaders: Loader[], fleet: FleetAgent[]): Promise<ConnectSample & { connectFailures: string[], failedIds: Set<string> }> {
  const per = Math.ceil(fleet.length / loaders.length)
  const cpu0 = procCpuUs(target.pid).total
  const t0 = process.hrtime.bigint()
  const done = loaders.map(l => l.next('connected'))
  loaders.forEach((l, i) => l.request({ type: 'connect', port: target.port, tenant: o.tenant, agents: fleet.slice(i * per, (i + 1) * per), concurrency: Math.ceil(o.connectConcurrency / loaders.length), timeoutMs: 120_000 }))
  const conn = await Promise.all(done)
  const connectMs = Number(process.hrtime.bigint() - t0) / 1e6
  const connectCpuUs = procCpuUs(target.pid).total - cpu0
  return {
    connected: conn.reduce((s, c) => s + c.ok, 0),
    connectMs,
    connectCpuUs,
    connectFailures: conn.flatMap(c => c.failures).slice(0, 5),
    failedIds: new Set(conn.flatMap(c => c.failedIds))
  }
}

function connectLine (c: ConnectSample & { connectFailures?: string[] }, k: number): string {
  const failures = c.connectFailures !== undefined && c.connectFailures.length > 0 ? `; failures: ${c.connectFailures.join('; ')}` : ''
  return `${c.connected}/${k} agents connected and subscribed in ${(c.connectMs / 1000).toFixed(2)} s (${(c.connectCpuUs / Math.max(1, c.connected)).toFixed(0)} µs broker CPU per agent)${failures}`
}

/** One connect round of one (K, target): a fresh broker and loaders, the fleet connected and measured, everything stopped. */
async function connectRound (o: FleetOptions, name: FleetTargetName, k: number): Promise<ConnectSample> {
  const { agents, controller } = fleetIdentities(k)
  const target = await startTarget(name, o.tenant, [...agents, controller], o.baseCheckout)
  const loaders: Loader[] = []
  try {
    const fleet = fleetAgents(o, agents, target)
    for (let i = 0; i < LOADERS; i++) loaders.push(await startLoader())
    await sleep(1000)
    await waitForQuiet(15_000)
    const c = await connectFleet(o, target, loaders, fleet)
    o.log(`  K=${k} ${name}: ${connectLine(c, k)}`)
    return { connected: c.connected, connectMs: c.connectMs, connectCpuUs: c.connectCpuUs }
  } finally {
    await closeFleet({ target, loaders, ctl: undefined })
  }
}

/** Starts the target, provisions it, connects the controller and the whole fleet (measured), reads RSS. */
async function prepareFleet (o: FleetOptions, name: FleetTargetName, k: number): Promise<PreparedFleet> {
  const log = o.log
  const { agents, controller } = fleetIdentities(k)
  log(`fleet K=${k} on ${name}: starting${issuesCredentials(name) ? ` and issuing ${k + 1} credentials` : ''}...`)
  const target = await startTarget(name, o.tenant, [...agents, controller], o.baseCheckout)
  log(`  ${target.note}${target.credentials ? `; ${k + 1} credentials in ${(target.provisionMs / 1000).toFixed(1)} s` : ''}`)
  const loaders: Loader[] = []
  let ctl: Controller | undefined
  const profiles: FleetResult['profiles'] = {}
  try {
    const fleet = fleetAgents(o, agents, target)
    for (let i = 0; i < LOADERS; i++) loaders.push(await startLoader())
    ctl = await Controller.connect(target.port, o.tenant, controller, target.credentials?.get(controller.endpointId), fleet)
    await sleep(1000)
    const heapIdle = await target.gc?.()
    const rssIdle = procRssBytes(target.pid)
    const snapshotting = o.snapshots && target.heapSnapshot !== undefined
    const [snapshotBefore, snapshotWith] = ['before-fleet', 'with-fleet'].map(when => join(o.profileDir, `${name}-K${k}-${when}.heapsnapshot`)) as [string, string]
    if (snapshotting) await target.heapSnapshot!(snapshotBefore)

    await waitForQuiet(15_000)
    const heapProfiling = o.heap && target.heapStart !== undefined
    if (heapProfiling) await target.heapStart!()
    const conn = await profiled(o, { name, k, target, profiles }, 'connect', async () => await connectFleet(o, target, loaders, fleet))
    const { connected, connectMs, connectCpuUs, connectFailures } = conn
    if (profiles.connect !== undefined) profiles.connect.operations = connected
    if (conn.failedIds.size > 0) ctl.exclude(conn.failedIds)
    log(`  ${connectLine(conn, k)}${o.connectRounds > 0 ? ' (with the fleets prepared before it connected)' : ''}`)
    await sleep(2000)
    const heapFleet = await target.gc?.()
    const rssFleet = procRssBytes(target.pid)
    if (snapshotting) {
      await target.heapSnapshot!(snapshotWith)
      log(`  heap snapshots ${snapshotBefore} and ${snapshotWith}: what the fleet added, by object and holder:`)
      for (const line of formatHeapDiff(heapSnapshotDiff(snapshotBefore, snapshotWith, Math.max(1, connected)), 30)) log(`    ${line}`)
    }
    const memoryPerAgent = heapIdle !== undefined && heapFleet !== undefined ? perAgent(heapIdle, heapFleet, rssFleet - rssIdle, Math.max(1, connected)) : undefined
    let heap: FleetResult['heap']
    if (heapProfiling) {
      heap = await target.heapStop!(25)
      log(`  live heap allocated while the fleet connected: ${(heap.totalBytes / 2 ** 20).toFixed(1)} MB (${(heap.totalBytes / 1024 / Math.max(1, connected)).toFixed(1)} kB/agent), by allocating function:`)
      for (const x of heap.sites) log(`    ${(x.bytes / 1024 / Math.max(1, connected)).toFixed(2).padStart(7)} kB/agent  ${x.fn} ${x.where}`)
    }
    const where = memoryPerAgent !== undefined ? `: live heap ${memoryPerAgent.liveHeapKB.toFixed(1)}, free inside old-generation pages ${memoryPerAgent.freeInOldPagesKB.toFixed(1)}, young generation ${memoryPerAgent.youngPagesKB.toFixed(1)}, outside the heap ${memoryPerAgent.outsideHeapKB.toFixed(1)}` : ''
    log(`  RSS ${(rssIdle / 2 ** 20).toFixed(1)} → ${(rssFleet / 2 ** 20).toFixed(1)} MB (${((rssFleet - rssIdle) / 1024 / Math.max(1, connected)).toFixed(1)} kB/agent${where})`)
    return { name, k, target, loaders, ctl, connected, connectFailures, connectMs, connectCpuUs, rssIdle, rssFleet, ...(memoryPerAgent !== undefined ? { memoryPerAgent } : {}), ...(heap !== undefined ? { heap } : {}), profiles, warm: false, windows: [], windowMs: 0, brokerUs: 0, otherUs: 0, lost: 0, rttStart: 0 }
  } catch (err) {
    await closeFleet({ target, loaders, ctl })
    throw err
  }
}

/**
 * One measured window on a prepared fleet: the controller starts, warms up (the first time: at
 * least one full turn of the fleet, since the first Get to an agent is also the first policy
 * decision of its topics on the gateway; later: warmupMs), the window is measured, the controller
 * stops and its Gets in flight drain.
 */
async function measureWindow (o: FleetOptions, f: PreparedFleet): Promise<void> {
  const { ctl, target: t } = f
  await waitForQuiet(15_000)
  const first = !f.warm
  ctl.start(o.inFlight)
  const warm0 = Date.now()
  const answered0 = ctl.answered
  await sleep(o.warmupMs)
  if (first) {
    while (ctl.answered - answered0 < f.connected && Date.now() - warm0 < 180_000) await sleep(200)
    o.log(`  K=${f.k} ${f.name} warm-up: ${ctl.answered - answered0} round trips in ${((Date.now() - warm0) / 1000).toFixed(1)} s`)
    f.warm = true
  }
  const pings0 = await loaderPings(f.loaders)
  const m0 = machineCpuUs()
  const self0 = process.cpuUsage()
  const lost0 = ctl.lost
  const c0 = procCpuUs(t.pid)
  const h0 = procHelperThreadsUs(t.pid)
  const w0 = process.hrtime.bigint()
  const done0 = ctl.completed
  const gc0 = await t.gcTime?.()
  const tcp0 = tcpCounters()
  const sc0 = procSyscalls(t.pid)
  ctl.recording = true
  // the first window is the profiled one
  const allocating = first && o.allocations && t.heapStart !== undefined
  if (allocating) await t.heapStart!('allocated')
  if (first) await profiled(o, f, 'roundtrips', () => sleep(o.measureMs))
  else await sleep(o.measureMs)
  if (allocating) {
    const a = await t.heapStop!(25)
    const n = Math.max(1, ctl.completed - done0)
    o.log(`  allocated in the first window: ${(a.totalBytes / n).toFixed(0)} B per round trip, by allocating function:`)
    for (const x of a.sites) o.log(`    ${(x.bytes / n).toFixed(0).padStart(7)} B/rt  ${x.fn} ${x.where}`)
  }
  const wMs = Number(process.hrtime.bigint() - w0) / 1e6
  const c1 = procCpuUs(t.pid)
  const wUs = c1.total - c0.total
  const sysUs = c1.sys - c0.sys
  const helperUs = procHelperThreadsUs(t.pid) - h0
  const tcp1 = tcpCounters()
  const sc1 = procSyscalls(t.pid)
  ctl.recording = false
  const pings = await loaderPings(f.loaders) - pings0
  const self = process.cpuUsage(self0)
  const m1 = machineCpuUs()
  const n = ctl.completed - done0
  if (first && f.profiles.roundtrips !== undefined) f.profiles.roundtrips.operations = n
  const gc1 = gc0 !== undefined ? await t.gcTime?.() : undefined
  const perRt = (ms: number): number => ms * 1000 / Math.max(1, n)
  f.windows.push({
    roundTripsPerSec: n / (wMs / 1000),
    brokerCpuUsPerRoundTrip: wUs / Math.max(1, n),
    brokerSysUsPerRoundTrip: sysUs / Math.max(1, n),
    brokerHelperThreadsUsPerRoundTrip: helperUs / Math.max(1, n),
    keepAlivePingsPerSec: pings / (wMs / 1000),
    ...(m0 !== undefined && m1 !== undefined ? { machineStealPct: (m1.steal - m0.steal) / Math.max(1, m1.total - m0.total) * 100 } : {}),
    ...(sc0 !== undefined && sc1 !== undefined ? { syscalls: syscallsPerRoundTrip(sc0, sc1, n) } : {}),
    ...(tcp0 !== undefined && tcp1 !== undefined ? { tcp: tcpPerRoundTrip(tcp0, tcp1, n) } : {}),
    ...(gc0 !== undefined && gc1 !== undefined ? { gc: { minorUsPerRoundTrip: perRt(gc1.minorMs - gc0.minorMs), majorUsPerRoundTrip: perRt(gc1.majorMs - gc0.majorMs), otherUsPerRoundTrip: perRt(gc1.otherMs - gc0.otherMs), majors: gc1.majors - gc0.majors } } : {})
  })
  f.windowMs += wMs
  f.brokerUs += wUs
  f.lost += ctl.lost - lost0
  // everything but the broker and this process (loaders included): a rough contention figure
  f.otherUs = f.otherUs !== undefined && m0 !== undefined && m1 !== undefined ? f.otherUs + Math.max(0, m1.busy - m0.busy - wUs - (self.user + self.system)) : undefined
  await ctl.stopAndDrain(15_000)
  const x = f.windows[f.windows.length - 1]!
  if (o.pacedRate > 0) {
    ctl.start(o.inFlight, o.pacedRate)
    await sleep(1000)
    const ppings0 = await loaderPings(f.loaders)
    const pc0 = procCpuUs(t.pid).total
    const pw0 = process.hrtime.bigint()
    const pa0 = ctl.answered
    if (first) await profiled(o, f, 'paced', () => sleep(o.measureMs))
    else await sleep(o.measureMs)
    const pUs = procCpuUs(t.pid).total - pc0
    const pMs = Number(process.hrtime.bigint() - pw0) / 1e6
    const pn = ctl.answered - pa0
    const ppings = await loaderPings(f.loaders) - ppings0
    if (first && f.profiles.paced !== undefined) f.profiles.paced.operations = pn
    await ctl.stopAndDrain(15_000)
    x.paced = { roundTripsPerSec: pn / (pMs / 1000), brokerCpuUsPerRoundTrip: pUs / Math.max(1, pn), keepAlivePingsPerSec: ppings / (pMs / 1000) }
  }
  const gc = x.gc !== undefined ? `, GC ${x.gc.minorUsPerRoundTrip.toFixed(1)} young + ${x.gc.majorUsPerRoundTrip.toFixed(1)} full (${x.gc.majors}×) + ${x.gc.otherUsPerRoundTrip.toFixed(1)} incremental` : ''
  const tcp = x.tcp !== undefined ? `; TCP segments ${x.tcp.segmentsPerRoundTrip.toFixed(2)}, pure ACKs ${x.tcp.pureAcksPerRoundTrip.toFixed(2)}, delayed ACKs ${x.tcp.delayedAcksPerRoundTrip.toFixed(2)} per round trip` : ''
  const sys = x.syscalls !== undefined ? `; broker reads ${x.syscalls.readsPerRoundTrip.toFixed(2)}, writes ${x.syscalls.writesPerRoundTrip.toFixed(2)} per round trip` : ''
  const keepAlive = `; keep-alive PINGREQs ${x.keepAlivePingsPerSec.toFixed(0)}/s`
  const steal = x.machineStealPct !== undefined ? `, steal ${x.machineStealPct.toFixed(1)}%` : ''
  const paced = x.paced !== undefined ? `; paced at ${Math.round(x.paced.roundTripsPerSec)}/s: ${x.paced.brokerCpuUsPerRoundTrip.toFixed(0)} µs, ${x.paced.keepAlivePingsPerSec.toFixed(0)} PINGREQs/s` : ''
  o.log(`  K=${f.k} ${f.name} window ${f.windows.length}: ${Math.round(x.roundTripsPerSec)}/s, ${x.brokerCpuUsPerRoundTrip.toFixed(0)} µs broker CPU per round trip (kernel ${x.brokerSysUsPerRoundTrip.toFixed(0)}, helper threads ${x.brokerHelperThreadsUsPerRoundTrip.toFixed(0)}${gc}${tcp}${sys}${keepAlive})${paced}, load ${loadavg()[0]!.toFixed(2)}${steal}`)
}

function summarize (f: PreparedFleet, rounds: ConnectSample[]): FleetResult {
  const [p50, p99] = f.ctl.rtt.percentiles([50, 99])
  const prepared: ConnectSample = { connected: f.connected, connectMs: f.connectMs, connectCpuUs: f.connectCpuUs }
  const connects = rounds.length > 0 ? rounds : [prepared]
  return {
    target: f.name,
    agents: f.k,
    connected: f.connected,
    connectFailures: f.connectFailures,
    connectMs: median(connects.map(c => c.connectMs)),
    brokerCpuUsPerConnect: median(connects.map(c => c.connectCpuUs / Math.max(1, c.connected))),
    connects: { rounds, prepared },
    roundTripsPerSec: median(f.windows.map(x => x.roundTripsPerSec)),
    rttP50Ms: p50! / 1000,
    rttP99Ms: p99! / 1000,
    brokerCpuUsPerRoundTrip: median(f.windows.map(x => x.brokerCpuUsPerRoundTrip)),
    windows: f.windows,
    ...(f.windows.every(x => x.paced !== undefined) ? { pacedCpuUsPerRoundTrip: median(f.windows.map(x => x.paced!.brokerCpuUsPerRoundTrip)) } : {}),
    brokerCpuPct: f.brokerUs / 1000 / f.windowMs * 100,
    lost: f.lost,
    rssIdleMB: f.rssIdle / 2 ** 20,
    rssFleetMB: f.rssFleet / 2 ** 20,
    rssPerAgentKB: (f.rssFleet - f.rssIdle) / 1024 / Math.max(1, f.connected),
    ...(f.memoryPerAgent !== undefined ? { memoryPerAgent: f.memoryPerAgent } : {}),
    provisionMs: f.target.provisionMs,
    loadavg: loadavg().map(x => Math.round(x * 100) / 100),
    otherCpuPct: f.otherUs !== undefined ? f.otherUs / 1000 / f.windowMs * 100 : null,
    machineStealPct: f.windows.every(x => x.machineStealPct !== undefined) && f.windows.length > 0 ? f.windows.reduce((a, x) => a + x.machineStealPct!, 0) / f.windows.length : null,
    profiles: f.profiles,
    ...(f.heap !== undefined ? { heap: f.heap } : {})
  }
}

async function closeFleet (f: { target: FleetTarget, loaders: Loader[], ctl: Controller | undefined }): Promise<void> {
  await f.ctl?.close()
  await Promise.all(f.loaders.map(async l => {
    const d = l.next('disconnected').catch(() => {})
    try { l.request({ type: 'disconnect' }) } catch { /* gone */ }
    await Promise.race([d, sleep(15_000)])
    l.child.kill('SIGKILL')
  }))
  await f.target.stop()
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

const fleetKey = (k: number, name: FleetTargetName): string => `${k} ${name}`

/** The list from its `by`-th element on, then the rest (round `by` of an interleaved measurement: the order rotates). */
function rotated<T> (xs: readonly T[], by: number): T[] {
  const n = xs.length === 0 ? 0 : by % xs.length
  return [...xs.slice(n), ...xs.slice(0, n)]
}

export interface FleetReport {
  results: FleetResult[]
  /** what the run measured with: a summary over runs (`bench/fleet-summary.ts`) only pools runs of one shape */
  shape: FleetShape
  checks: FleetCheck[]
  /**
   * Not targets: plain aedes's own CPU per round trip at the largest K against the smallest, measured in
   * the same windows. The issue takes aedes's cost as flat in K; on this machine its ratio shows how far
   * the gateway's ratio moves with the run rather than with the code.
   */
  references: Array<{ name: string, value: string, figure?: number }>
}

export interface FleetShape { fleetSizes: number[], targets: FleetTargetName[], windows: number, windowSeconds: number, pacedRate: number, connectRounds: number }

/** One target of the issue in one run: the figure as a number (a ratio, or a percentage), its limit, and the verdict. */
export interface FleetCheck { name: string, figure: number, unit: '×' | '%', limit: number, atMost: boolean, value: string, target: string, verdict: 'PASS' | 'FAIL' }

/** A ratio with two decimals, a percentage with one: how every fleet figure is printed. */
export function formatFigure (figure: number, unit: '×' | '%'): string {
  return `${figure.toFixed(unit === '%' ? 1 : 2)}${unit}`
}

export function fleetCheck (name: string, figure: number, unit: '×' | '%', limit: number, atMost: boolean): FleetCheck {
  const pass = atMost ? figure <= limit : figure >= limit
  return { name, figure, unit, limit, atMost, value: formatFigure(figure, unit), target: `${atMost ? '≤' : '≥'} ${unit === '%' ? limit : limit.toFixed(2)}${unit}`, verdict: pass ? 'PASS' : 'FAIL' }
}

/**
 * First the connect rounds (connectRounds: each (K, target) started afresh, its fleet connected and
 * measured alone, stopped; the order rotating per round). Then every (K, target) fleet is prepared
 * (one after the other: the connect of each is measured again while the fleets before it sit idle,
 * reported but not the verdict), then the windows are interleaved: round r measures one
 * window of every fleet in turn, the order rotating each round. Each pair the targets compare
 * (gateway vs aedes, K = 10,000 vs 1,000) is thereby measured under the same machine conditions,
 * minutes apart at most; measured one target after the other, the same code on this 2-core machine
 * varied by up to 1.7× between windows minutes apart, which decided the verdicts more than the code.
 */
export async function runFleetBench (options: Partial<FleetOptions> = {}): Promise<FleetReport> {
  const o: FleetOptions = { ...defaultFleetOptions, ...options }
  // before any target starts, not minutes into the run
  if (o.targets.includes('gateway-base') && o.baseCheckout === undefined) throw new Error('the gateway-base target needs --fleet-base=<checkout of the code to compare against>')
  const fleets: PreparedFleet[] = []
  const connectRounds = new Map<string, ConnectSample[]>()
  const pairs = o.fleetSizes.flatMap(k => o.targets.map(name => ({ k, name })))
  for (let r = 0; r < o.connectRounds; r++) {
    o.log(`connect round ${r + 1} of ${o.connectRounds}`)
    for (const { k, name } of rotated(pairs, r)) {
      const samples = connectRounds.get(fleetKey(k, name)) ?? []
      samples.push(await connectRound(o, name, k))
      connectRounds.set(fleetKey(k, name), samples)
    }
  }
  try {
    for (const k of o.fleetSizes) {
      for (const name of o.targets) fleets.push(await prepareFleet(o, name, k))
    }
    // every fleet warmed up in round 1 (its memos and caches filled); from round 2 on, what stays live is growth
    const sampled = (o.retained || o.promoted) && o.windows > 1 ? fleets.filter(f => f.target.heapStart !== undefined) : []
    const sampling = o.promoted ? 'promoted' : 'live'
    for (let w = 0; w < o.windows; w++) {
      if (w === 1) for (const f of sampled) await f.target.heapStart!(sampling)
      o.log(`round ${w + 1} of ${o.windows}`)
      for (const f of rotated(fleets, w)) await measureWindow(o, f)
    }
    for (const f of sampled) {
      const h = await f.target.heapStop!(15)
      const rts = f.windows.slice(1).reduce((s, x) => s + x.roundTripsPerSec * o.measureMs / 1000, 0)
      const what = sampling === 'promoted' ? 'reached the old generation (live after a full GC, or reclaimed by one)' : 'still live after a full GC'
      o.log(`K=${f.k} ${f.name}: allocated in rounds 2-${o.windows} and ${what}: ${(h.totalBytes / 2 ** 20).toFixed(2)} MB (${(h.totalBytes / Math.max(1, rts)).toFixed(1)} B per round trip), by allocating function:`)
      for (const x of h.sites) o.log(`    ${(x.bytes / 1024).toFixed(0).padStart(8)} kB  ${x.fn} ${x.where}`)
    }
    const results = fleets.map(f => summarize(f, connectRounds.get(fleetKey(f.k, f.name)) ?? []))
    for (const r of results) {
      o.log(`K=${r.agents} ${r.target}: ${Math.round(r.roundTripsPerSec)} round trips/s, RTT p50 ${r.rttP50Ms.toFixed(1)} ms p99 ${r.rttP99Ms.toFixed(1)} ms, ${r.brokerCpuUsPerRoundTrip.toFixed(0)} µs broker CPU per round trip (windows ${r.windows.map(x => x.brokerCpuUsPerRoundTrip.toFixed(0)).join(', ')}), lost ${r.lost}`)
      const seconds = (c: ConnectSample): string => (c.connectMs / 1000).toFixed(2)
      if (r.connects.rounds.length > 0) o.log(`  fleet connect ${(r.connectMs / 1000).toFixed(2)} s, median of rounds ${r.connects.rounds.map(seconds).join(', ')} s; prepared with the fleets before it connected: ${seconds(r.connects.prepared)} s`)
      for (const [phase, p] of Object.entries(r.profiles)) o.log(formatSummary(`  profile ${phase} (${p.file}${p.operations !== undefined ? `, ${p.operations} ${phase === 'connect' ? 'agents' : 'round trips'}` : ''})`, p.summary))
    }
    const shape: FleetShape = { fleetSizes: o.fleetSizes, targets: o.targets, windows: o.windows, windowSeconds: o.measureMs / 1000, pacedRate: o.pacedRate, connectRounds: o.connectRounds }
    return { shape, results, checks: fleetChecks(results), references: fleetReferences(results) }
  } finally {
    for (const f of fleets) await closeFleet(f)
  }
}

/** The fleet sizes measured in a run, smallest first. */
function fleetSizes (rs: FleetResult[]): number[] {
  return [...new Set(rs.map(r => r.agents))].sort((a, b) => a - b)
}

/** One target's result at one fleet size. */
function resultOf (rs: FleetResult[], target: string, k: number): FleetResult | undefined {
  return rs.find(r => r.target === target && r.agents === k)
}

/** One target's CPU per round trip at the largest K against the smallest (saturated; paced when measured). */
interface GrowthRatio { small: number, big: number, saturated: number, paced: number | undefined }

function growthRatio (rs: FleetResult[], target: FleetTargetName): GrowthRatio | undefined {
  const ks = fleetSizes(rs)
  const small = ks[0]
  const big = ks[ks.length - 1]
  if (small === undefined || big === undefined || small === big) return undefined
  const a = resultOf(rs, target, small)
  const b = resultOf(rs, target, big)
  if (a === undefined || b === undefined) return undefined
  const paced = a.pacedCpuUsPerRoundTrip !== undefined && b.pacedCpuUsPerRoundTrip !== undefined ? b.pacedCpuUsPerRoundTrip / a.pacedCpuUsPerRoundTrip : undefined
  return { small, big, saturated: b.brokerCpuUsPerRoundTrip / a.brokerCpuUsPerRoundTrip, paced }
}

export function fleetChecks (rs: FleetResult[]): FleetCheck[] {
  const checks: FleetCheck[] = []
  const ks = fleetSizes(rs)
  const big = ks[ks.length - 1]
  const g = growthRatio(rs, 'gateway')
  if (g !== undefined) {
    checks.push(fleetCheck(`gateway CPU per round trip, K=${g.big} vs K=${g.small} (saturated, 200 in flight)`, g.saturated, '×', 1.1, true))
    if (g.paced !== undefined) {
      checks.push(fleetCheck(`gateway CPU per round trip, K=${g.big} vs K=${g.small} (paced, the same load)`, g.paced, '×', 1.1, true))
    }
  }
  for (const k of ks) {
    const g = resultOf(rs, 'gateway', k)
    const a = resultOf(rs, 'aedes', k)
    if (!g || !a) continue
    checks.push(fleetCheck(`round trips/s vs aedes, K=${k}`, g.roundTripsPerSec / a.roundTripsPerSec * 100, '%', 100, false))
    checks.push(fleetCheck(`RSS per agent vs aedes, K=${k}`, g.rssPerAgentKB / a.rssPerAgentKB, '×', 2, true))
    if (k === big) checks.push(fleetCheck(`time to connect K=${k} vs aedes`, g.connectMs / a.connectMs, '×', 1.5, true))
  }
  return checks
}

export function fleetReferences (rs: FleetResult[]): FleetReport['references'] {
  const refs: FleetReport['references'] = []
  const g = growthRatio(rs, 'aedes')
  if (g !== undefined) {
    // the same ratio of the broker the issue takes as flat in K
    refs.push({ name: `plain aedes CPU per round trip, K=${g.big} vs K=${g.small} (saturated)`, value: formatFigure(g.saturated, '×'), figure: g.saturated })
    if (g.paced !== undefined) refs.push({ name: `plain aedes CPU per round trip, K=${g.big} vs K=${g.small} (paced)`, value: formatFigure(g.paced, '×'), figure: g.paced })
  }
  const ks = fleetSizes(rs)
  // what the agents themselves keep: the RSS per agent also holds the young generation's pages, a few MB
  // that do not depend on K and decide the ratio at 1,000 agents (bench/FLEET.md, twenty-first pass)
  for (const k of ks) {
    const gw = resultOf(rs, 'gateway', k)?.memoryPerAgent
    const plain = resultOf(rs, 'aedes', k)?.memoryPerAgent
    if (gw === undefined || plain === undefined) continue
    const ratio = gw.liveHeapKB / plain.liveHeapKB
    refs.push({ name: `live heap per agent vs aedes, K=${k}`, value: `${formatFigure(ratio, '×')} (${gw.liveHeapKB.toFixed(1)} vs ${plain.liveHeapKB.toFixed(1)} kB)`, figure: ratio })
  }
  // the policy's share: aedes with the same authentication and policy work, against plain aedes and the gateway
  for (const k of ks) {
    const auth = resultOf(rs, 'aedes-auth', k)
    if (auth === undefined) continue
    const plain = resultOf(rs, 'aedes', k)
    const gw = resultOf(rs, 'gateway', k)
    if (plain !== undefined) refs.push({ name: `time to connect K=${k}, aedes-auth vs aedes`, value: `${(auth.connectMs / plain.connectMs).toFixed(2)}× (CPU per connect ${auth.brokerCpuUsPerConnect.toFixed(0)} vs ${plain.brokerCpuUsPerConnect.toFixed(0)} µs)` })
    if (gw !== undefined) {
      refs.push({ name: `time to connect K=${k}, gateway vs aedes-auth`, value: `${(gw.connectMs / auth.connectMs).toFixed(2)}× (CPU per connect ${gw.brokerCpuUsPerConnect.toFixed(0)} vs ${auth.brokerCpuUsPerConnect.toFixed(0)} µs)` })
      refs.push({ name: `round trips/s K=${k}, gateway vs aedes-auth`, value: `${(gw.roundTripsPerSec / auth.roundTripsPerSec * 100).toFixed(1)}%` })
    }
  }
  // a change against the code before it, in the same run: this checkout's gateway over the base checkout's
  for (const k of ks) {
    const base = resultOf(rs, 'gateway-base', k)
    const gw = resultOf(rs, 'gateway', k)
    if (base === undefined || gw === undefined) continue
    const us = (n: number): string => n.toFixed(0)
    refs.push({ name: `gateway vs gateway-base, K=${k}: CPU per round trip saturated`, value: `${formatFigure(gw.brokerCpuUsPerRoundTrip / base.brokerCpuUsPerRoundTrip, '×')} (${us(gw.brokerCpuUsPerRoundTrip)} vs ${us(base.brokerCpuUsPerRoundTrip)} µs)` })
    if (gw.pacedCpuUsPerRoundTrip !== undefined && base.pacedCpuUsPerRoundTrip !== undefined) {
      refs.push({ name: `gateway vs gateway-base, K=${k}: CPU per round trip paced`, value: `${formatFigure(gw.pacedCpuUsPerRoundTrip / base.pacedCpuUsPerRoundTrip, '×')} (${us(gw.pacedCpuUsPerRoundTrip)} vs ${us(base.pacedCpuUsPerRoundTrip)} µs)` })
    }
    refs.push({ name: `gateway vs gateway-base, K=${k}: round trips/s`, value: `${(gw.roundTripsPerSec / base.roundTripsPerSec * 100).toFixed(1)}%` })
  }
  return refs
}

export function formatFleetReport (r: FleetReport): string {
  const rows: string[][] = [['K agents', 'target', 'round trips/s', 'p50 / p99 RTT (ms)', 'broker CPU/round trip', 'paced', 'RSS idle → with fleet', 'RSS/agent', 'fleet connect', 'CPU/connect', 'lost', 'load avg', 'steal']]
  for (const x of r.results) {
    rows.push([
      x.agents.toLocaleString('en-US'), x.target, Math.round(x.roundTripsPerSec).toLocaleString('en-US'),
      `${x.rttP50Ms.toFixed(0)} / ${x.rttP99Ms.toFixed(0)}`, `${x.brokerCpuUsPerRoundTrip.toFixed(0)} µs`, x.pacedCpuUsPerRoundTrip !== undefined ? `${x.pacedCpuUsPerRoundTrip.toFixed(0)} µs` : '-',
      `${x.rssIdleMB.toFixed(1)} → ${x.rssFleetMB.toFixed(1)} MB`, `${x.rssPerAgentKB.toFixed(1)} kB`,
      `${(x.connectMs / 1000).toFixed(2)} s${x.connected < x.agents ? ` (${x.agents - x.connected} failed)` : ''}`,
      `${x.brokerCpuUsPerConnect.toFixed(0)} µs`, String(x.lost), x.loadavg[0]!.toFixed(2),
      x.machineStealPct !== null ? `${x.machineStealPct.toFixed(1)}%` : '-'
    ])
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map(row => row[i]!.length)))
  const out = rows.map((row, i) => {
    const line = row.map((c, j) => c.padEnd(widths[j]!)).join('  ').trimEnd()
    return i === 0 ? `${line}\n${widths.map(w => '-'.repeat(w)).join('  ')}` : line
  })
  out.push('', 'targets:')
  for (const c of r.checks) out.push(`  ${c.name}: ${c.value} (target ${c.target}) ${c.verdict}`)
  if (r.references.length > 0) {
    out.push('references, not targets:')
    for (const x of r.references) out.push(`  ${x.name}: ${x.value}`)
  }
  return out.join('\n')
}
