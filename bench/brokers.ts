// Parent side of bench/broker-child.ts: starts a broker in a child process, talks to it over IPC,
// and guarantees that the child and its temp data dir are gone when the run ends, however it ends.
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BrokerKind, ChildMessage, ChildRequest, ChildStats, CredentialRequest, FleetStats, GcTime, HeapAfterGc, HeapSampling, HeapSite, ProvisionResult } from './broker-child.ts'

export type { BrokerKind, ChildStats, CredentialRequest, FleetStats }

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never

const CHILD = fileURLToPath(new URL('./broker-child.ts', import.meta.url))
const REPO = fileURLToPath(new URL('..', import.meta.url))
const START_TIMEOUT_MS = 30_000
const REQUEST_TIMEOUT_MS = 180_000

export interface BrokerHandle {
  kind: BrokerKind
  port: number
  pid: number
  notes: string[]
  stats: () => Promise<ChildStats>
  provision: (tenant: string, credentials: CredentialRequest[]) => Promise<ProvisionResult>
  /** Cluster node: waits until its state copy (from Redis) holds every principal. */
  awaitCredentials: (tenant: string, principals: string[], timeoutMs: number) => Promise<void>
  /** A full GC in the child (started with --expose-gc; else a no-op), and the heap after it. */
  gc: () => Promise<HeapAfterGc>
  /** GC pause time since the start, by kind */
  gcTime: () => Promise<GcTime>
  profileStart: () => Promise<void>
  /** Gateway: start-up time, heap after GC, route-table size (bench/fleet-cluster.ts). */
  fleetStats: () => Promise<FleetStats>
  /** Writes the CPU profile since profileStart to file (.cpuprofile, Chrome DevTools format). */
  profileStop: (file: string) => Promise<string>
  /** Sampling heap profiler: live allocations by allocating function (after a GC) at the stop. */
  /** allocations: everything allocated until the stop, collected or not (else what is live at the stop) */
  heapStart: (sampling?: HeapSampling) => Promise<void>
  heapStop: (top: number) => Promise<{ totalBytes: number, sites: HeapSite[] }>
  /** A V8 heap snapshot (of live objects: V8 collects first) written to `file`; resolves to its path. */
  heapSnapshot: (file: string) => Promise<string>
  /** Graceful stop (lets a --cpu-prof profile be written), SIGKILL after a grace period. */
  stop: () => Promise<void>
}

export interface StartOptions {
  /** Extra node flags for the child, e.g. ['--cpu-prof', '--cpu-prof-dir=...']. */
  nodeFlags?: string[]
  /** gateway only: run in cluster mode on this Redis with this node id (a node of gateway-2node) */
  cluster?: { redisUrl: string, nodeId: string }
  /**
   * Run the broker of another checkout of this repository (its bench/broker-child.ts, its built dist/,
   * its shipped node flags), e.g. a `git worktree` of the commit before a change: the fleet bench's
   * `gateway-base` target, measured in the same run as this checkout's gateway.
   */
  checkout?: string
}

// ---- process-wide cleanup registry: children to kill and dirs to remove, also on signals/exit
const liveChildren = new Set<ChildProcess>()
const tempDirs = new Set<string>()
let hooksInstalled = false

function cleanupSync (): void {
  for (const c of liveChildren) { try { c.kill('SIGKILL') } catch { /* gone */ } }
  liveChildren.clear()
  for (const d of tempDirs) { try { rmSync(d, { recursive: true, force: true }) } catch { /* best effort */ } }
  tempDirs.clear()
}

function installHooks (): void {
  if (hooksInstalled) return
  hooksInstalled = true
  process.once('exit', cleanupSync)
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      cleanupSync()
      process.exit(130)
    })
  }
}

/** Registers another process (e.g. the bench's redis-server) to be SIGKILLed on every exit path. */
export function trackProcess (child: ChildProcess): void {
  installHooks()
  if (child.exitCode !== null || child.signalCode !== null) return
  liveChildren.add(child)
  child.once('exit', () => liveChildren.delete(child))
}

export function makeTempDir (prefix: string): string {
  installHooks()
  const d = mkdtempSync(join(tmpdir(), prefix))
  tempDirs.add(d)
  return d
}

export function removeTempDir (d: string): void {
  rmSync(d, { recursive: true, force: true })
  tempDirs.delete(d)
}

/** Kills every broker child still running and removes every temp dir (idempotent). */
export function cleanupAll (): void {
  cleanupSync()
}

/**
 * The node flags `npm start` runs the gateway with (and the container image: a test keeps them equal),
 * read from package.json, so every bench measures the gateway as it ships. Plain aedes keeps Node's defaults.
 */
export function shippedGatewayNodeFlags (repo = REPO): string[] {
  const start = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start
  const m = /exec node ((?:--\S+\s+)*)dist\/bin\/uspgate\.js start/.exec(start)
  if (m === null) throw new Error(`package.json scripts.start does not exec node dist/bin/uspgate.js start: ${start}`)
  return m[1]!.split(/\s+/).filter(f => f !== '')
}

export async function startBroker (kind: BrokerKind, opts: StartOptions = {}): Promise<BrokerHandle> {
  installHooks()
  const label = opts.cluster !== undefined ? `${kind} ${opts.cluster.nodeId}` : kind
  const workDir = makeTempDir(`uspgate-bench-${opts.cluster?.nodeId ?? kind}-`)
  const dataDir = join(workDir, 'data')
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const logPath = join(workDir, 'broker.log')
  const logFd = openSync(logPath, 'a')
  const args = kind !== 'gateway' ? [kind] : opts.cluster !== undefined ? [kind, dataDir, opts.cluster.redisUrl, opts.cluster.nodeId] : [kind, dataDir]
  const repo = opts.checkout ?? REPO
  const shippedFlags = kind === 'gateway' ? shippedGatewayNodeFlags(repo) : []
  const child = fork(opts.checkout === undefined ? CHILD : join(opts.checkout, 'bench', 'broker-child.ts'), args, {
    cwd: repo,
    execArgv: ['--import', 'tsx', ...shippedFlags, ...(opts.nodeFlags ?? [])],
    stdio: ['ignore', logFd, logFd, 'ipc'],
    env: { ...process.env, NODE_ENV: 'production' }
  })
  closeSync(logFd)
  liveChildren.add(child)
  // IPC send failures are reported through the send callbacks; never crash the parent on them
  child.on('error', () => {})
  const logTail = (): string => {
    try {
      const lines = readFileSync(logPath, 'utf8').split('\n').slice(-15).map(l => l.length > 400 ? l.slice(0, 400) + '…' : l)
      return `--- last lines of the ${label} broker log:\n${lines.join('\n')}`
    } catch { return '' }
  }

  let nextId = 1
  const pending = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void, timer: NodeJS.Timeout }>()
  let exited = false
  const exitedP = new Promise<void>(resolve => child.once('exit', (code, signal) => {
    exited = true
    liveChildren.delete(child)
    for (const p of pending.values()) {
      clearTimeout(p.timer)
      p.reject(new Error(`${label} broker exited (code ${String(code)}, signal ${String(signal)}) during a request\n${logTail()}`))
    }
    pending.clear()
    resolve()
  }))

  const ready = await new Promise<Extract<ChildMessage, { type: 'ready' }>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label} broker did not start within ${START_TIMEOUT_MS} ms\n${logTail()}`)), START_TIMEOUT_MS)
    child.on('message', (raw: unknown) => {
      const m = raw as ChildMessage
      if ('type' in m) { clearTimeout(timer); resolve(m); return }
      const p = pending.get(m.id)
      if (!p) return
      pending.delete(m.id)
      clearTimeout(p.timer)
      if (m.ok) p.resolve(m.result)
      else p.reject(new Error(`${label} broker: ${m.error}`))
    })
    void exitedP.then(() => { clearTimeout(timer); reject(new Error(`${label} broker exited before it was ready\n${logTail()}`)) })
  }).catch((err: unknown) => {
    child.kill('SIGKILL')
    throw err
  })

  function request<T> (req: WithoutId<ChildRequest>): Promise<T> {
    if (exited || !child.connected) return Promise.reject(new Error(`${label} broker is not running\n${logTail()}`))
    const id = nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id)
        reject(new Error(`${label} broker did not answer ${req.type} within ${REQUEST_TIMEOUT_MS} ms`))
      }, REQUEST_TIMEOUT_MS)
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer })
      child.send({ ...req, id } as ChildRequest, err => {
        if (!err) return
        clearTimeout(timer)
        pending.delete(id)
        reject(new Error(`${label} broker: ${err.message}\n${logTail()}`))
      })
    })
  }

  return {
    kind,
    port: ready.port,
    pid: ready.pid,
    notes: shippedFlags.length === 0 ? ready.notes : [...ready.notes, `node ${shippedFlags.join(' ')} (as npm start)`],
    stats: () => request<ChildStats>({ type: 'stats' }),
    provision: (tenant, credentials) => request<ProvisionResult>({ type: 'provision', tenant, credentials }),
    awaitCredentials: (tenant, principals, timeoutMs) => request<void>({ type: 'await-credentials', tenant, principals, timeoutMs }),
    profileStart: () => request<void>({ type: 'profile-start' }),
    fleetStats: () => request<FleetStats>({ type: 'fleet-stats' }),
    gc: () => request<HeapAfterGc>({ type: 'gc' }),
    gcTime: () => request<GcTime>({ type: 'gc-time' }),
    profileStop: file => request<string>({ type: 'profile-stop', file }),
    heapStart: sampling => request<void>({ type: 'heap-start', sampling }),
    heapStop: top => request<{ totalBytes: number, sites: HeapSite[] }>({ type: 'heap-stop', top }),
    heapSnapshot: file => request<string>({ type: 'heap-snapshot', file }),
    async stop () {
      if (!exited) {
        try { child.send({ type: 'close', id: nextId++ }) } catch { /* channel gone */ }
        const grace = setTimeout(() => child.kill('SIGKILL'), 10_000)
        await exitedP
        clearTimeout(grace)
      }
      removeTempDir(workDir)
    }
  }
}
