// Fleet-scale cluster scenario (`npm run bench -- --fleet-cluster`): two gateway nodes in cluster
// mode on one redis-server, K idle TR-369 agents on node 2 (K = 0, 1,000, 5,000, 15,000, added step
// by step, split over loader child processes: bench/fleet-cluster-loader.ts), half MQTT 3.1.1 subscribed to
// `<inbox>/#` and half MQTT 5 subscribed to their inbox, all with persistent sessions. At each K:
//   - fan-out: 10 publishers on node 1 → 10 subscribers on node 2 (bench/fanout.ts, saturating,
//     QoS 0 then QoS 1): delivered msg/s and end-to-end p99;
//   - at the same time, controller→agent USP request/response: 10 MQTT 5 controllers on node 1,
//     each with one Get in flight to its own agent on node 2 (Response Topic = its inbox), the agent
//     answering with a GetResp: round-trip p50/p99;
//   - Redis CPU (utime+stime of redis-server from /proc) per routed message (= per Redis PUBLISH,
//     each message crossing from node 1 to node 2 is one PUBLISH with either emitter) over the fan-out's
//     measurement window, also net of Redis' idle CPU at that K; Redis time by command; NUMPAT;
//   - node heap after GC and the route-table size on node 1.
// Then node start-up: a third node started with K = 0 and with K = 15,000 persistent sessions in
// Redis, time of Gateway.start(). And the route table's own memory for 15,000 `<inbox>/#` routes.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import { loadavg } from 'node:os'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Redis } from 'ioredis'
import type { MqttClient } from 'mqtt'
import { startBroker, trackProcess, type BrokerHandle, type CredentialRequest, type FleetStats } from './brokers.ts'
import { startBenchRedis, type BenchRedis } from './redis.ts'
import { connectClient, runFanout, type FanoutResult, type MqttIdentity } from './fanout.ts'
import { Samples, sleep, waitForQuiet, git } from './stats.ts'
import type { LoaderAgent, LoaderResult } from './fleet-cluster-loader.ts'
import { encodeMsg, encodeRecord } from '../broker/usp/index.ts'

const LOADER = fileURLToPath(new URL('./fleet-cluster-loader.ts', import.meta.url))
const REPO = fileURLToPath(new URL('..', import.meta.url))
const TENANT = 'fleet'
const AGENTS_PER_LOADER = 5000

export interface FleetOptions {
  levels: number[]
  publishers: number
  subscribers: number
  rrPairs: number
  warmupMs: number
  measureMs: number
  /** fan-out runs per QoS and K; the one with the highest delivered throughput is reported (the machine is shared) */
  rounds: number
  /** connects in flight per loader */
  concurrency: number
  /** measure node start-up at K = 0 and at the last K */
  startup: boolean
  label: string
  resultsDir: string | null
  log: (line: string) => void
}

export const defaultFleetOptions: FleetOptions = {
  levels: [0, 1000, 5000, 15_000],
  publishers: 10,
  subscribers: 10,
  rrPairs: 10,
  warmupMs: 1000,
  measureMs: 5000,
  rounds: 2,
  concurrency: 100,
  startup: true,
  label: 'fleet-cluster',
  resultsDir: join(REPO, 'bench', 'results'),
  log: line => { console.log(line) }
}

export interface RrResult { completed: number, perSec: number, p50Us: number, p99Us: number }
export interface FleetLevel {
  k: number
  /** time to connect and subscribe the agents added at this step */
  connectMs: number
  connectFailed: number
  fanout: { qos0: FanoutResult, qos1: FanoutResult }
  rr: { qos0: RrResult, qos1: RrResult }
  /** Redis CPU per PUBLISH over each fan-out run (µs), and the PUBLISHes counted */
  redisUsPerMsg: { qos0: number, qos1: number }
  redisPublishes: { qos0: number, qos1: number }
  /** Redis CPU with no traffic (% of one core, 3 s before the fan-out): background work that grows with K */
  redisIdleCpuPct: number
  /** Redis µs per PUBLISH after subtracting the idle CPU over the same time */
  redisNetUsPerMsg: { qos0: number, qos1: number }
  /** commands that took the most Redis time during the reported QoS 1 run (INFO commandstats usec) */
  redisTopCommands: Array<{ cmd: string, calls: number, usec: number }>
  numpat: number
  redisUsedMemoryMB: number
  node1: FleetStats
  node2: FleetStats
  loadavg: number[]
}
export interface FleetReport {
  label: string
  startedAt: string
  gitCommit: string | null
  levels: FleetLevel[]
  startup: Array<{ sessions: number, startMs: number, heapUsedMB: number }>
  /** in-process: heap of a RouteTable holding N `<inbox>/#` routes of one peer (null: no route table in this build) */
  routeTableBytesPerRoute: number | null
  problems: string[]
}

function fdLimits (): { soft: number, hard: number } {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find(l => l.startsWith('Max open files'))!
    const [soft, hard] = line.replace('Max open files', '').trim().split(/\s+/).map(Number)
    return { soft: soft!, hard: hard! }
  } catch { return { soft: Infinity, hard: Infinity } }
}

// ---- loader children (each below the fd limit; the soft limit raised to the hard one by sh)

interface Loader { proc: ChildProcess, connect: (port: number, agents: LoaderAgent[], concurrency: number) => Promise<LoaderResult>, close: () => void }

async function startLoader (): Promise<Loader> {
  const proc = spawn('/bin/sh', ['-c', `ulimit -Sn "$(ulimit -Hn)"; exec "${process.execPath}" --import tsx "${LOADER}"`], { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  trackProcess(proc)
  await new Promise<void>((resolve, reject) => {
    proc.once('message', () => resolve())
    proc.once('exit', code => reject(new Error(`fleet loader exited (${String(code)}) before it was ready`)))
  })
  return {
    proc,
    connect: (port, agents, concurrency) => new Promise((resolve, reject) => {
      proc.once('message', m => resolve(m as LoaderResult))
      proc.once('exit', code => reject(new Error(`fleet loader exited (${String(code)})`)))
      proc.send({ type: 'connect', port, agents, concurrency })
    }),
    close: () => { try { proc.send({ type: 'close' }) } catch { proc.kill('SIGKILL') } }
  }
}

// ---- controller → agent request/response (USP Get / GetResp), one in flight per pair

async function startRr (n1Port: number, n2Port: number, ctrls: MqttIdentity[], agents: MqttIdentity[]): Promise<{ run: () => { stop: () => RrResult }, close: () => Promise<void> }> {
  const clients: MqttClient[] = []
  const inbox = (role: 'agent' | 'controller', id: string): string => `${TENANT}/usp/${role}/${id}`
  const agentClients = await Promise.all(agents.map(a => connectClient(n2Port, a)))
  clients.push(...agentClients)
  const ctrlClients = await Promise.all(ctrls.map(c => connectClient(n1Port, c)))
  clients.push(...ctrlClients)
  await Promise.all(agentClients.map((c, i) => c.subscribeAsync(inbox('agent', agents[i]!.endpointId), { qos: 1 })))
  await Promise.all(ctrlClients.map((c, i) => c.subscribeAsync(inbox('controller', ctrls[i]!.endpointId), { qos: 1 })))
  await sleep(200) // routes of the new subscriptions reach the other node
  const requests = ctrls.map((c, i) => encodeRecord({ version: '1.3', toId: agents[i]!.endpointId, fromId: c.endpointId, noSessionContext: { payload: encodeMsg({ msgId: `get-${i}`, body: { request: { get: { paramPaths: ['Device.DeviceInfo.'] } } } }) } }))
  const responses = agents.map((a, i) => encodeRecord({ version: '1.3', toId: ctrls[i]!.endpointId, fromId: a.endpointId, noSessionContext: { payload: encodeMsg({ msgId: `get-${i}`, body: { response: { getResp: { reqPathResults: [{ requestedPath: 'Device.DeviceInfo.' }] } } } }) } }))
  agentClients.forEach((c, i) => c.on('message', () => {
    c.publish(inbox('controller', ctrls[i]!.endpointId), responses[i]!, { qos: 1, properties: { contentType: 'usp.msg' } })
  }))
  return {
    run: () => {
      let running = true
      let completed = 0
      const samples = new Samples()
      const sentAt = new Float64Array(ctrls.length)
      const send = (i: number): void => {
        if (!running) return
        sentAt[i] = performance.now()
        ctrlClients[i]!.publish(inbox('agent', agents[i]!.endpointId), requests[i]!, { qos: 1, properties: { contentType: 'usp.msg', responseTopic: inbox('controller', ctrls[i]!.endpointId) } })
      }
      const t0 = performance.now()
      ctrlClients.forEach((c, i) => {
        c.removeAllListeners('message')
        c.on('message', () => { samples.add((performance.now() - sentAt[i]!) * 1000); completed++; send(i) })
        send(i)
      })
      return {
        stop: () => {
          running = false
          const [p50, p99] = samples.percentiles([50, 99])
          return { completed, perSec: completed / ((performance.now() - t0) / 1000), p50Us: p50!, p99Us: p99! }
        }
      }
    },
    close: async () => { await Promise.all(clients.map(c => c.endAsync(true).catch(() => {}))) }
  }
}

/** Waits until redis-server uses less than 5% of a core over 1 s (at most maxMs). */
async function settleRedis (redis: BenchRedis, maxMs: number): Promise<{ waitedMs: number, idlePct: number }> {
  const start = performance.now()
  for (;;) {
    const c0 = redis.cpuUs()
    const t0 = performance.now()
    await sleep(1000)
    const idlePct = (redis.cpuUs() - c0) / (performance.now() - t0) / 10
    if (idlePct < 5 || performance.now() - start > maxMs) return { waitedMs: performance.now() - start, idlePct }
  }
}

async function commandStats (r: Redis): Promise<Map<string, { calls: number, usec: number }>> {
  const out = new Map<string, { calls: number, usec: number }>()
  for (const m of (await r.info('commandstats')).matchAll(/cmdstat_([^:]+):calls=(\d+),usec=(\d+)/g)) out.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) })
  return out
}

function topCommands (a: Map<string, { calls: number, usec: number }>, b: Map<string, { calls: number, usec: number }>): Array<{ cmd: string, calls: number, usec: number }> {
  return [...b.entries()].map(([cmd, v]) => ({ cmd, calls: v.calls - (a.get(cmd)?.calls ?? 0), usec: v.usec - (a.get(cmd)?.usec ?? 0) }))
    .filter(x => x.calls > 0).sort((x, y) => y.usec - x.usec).slice(0, 6)
}

/** Heap of N routes in the route table (in this process; null when the build has no route table). */
async function routeTableBytesPerRoute (n: number): Promise<number | null> {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  let mod: { RouteTable: new () => { replace: (node: string, instance: string, seq: number, filters: Iterable<string>) => void, size: number } }
  try { mod = await import('../broker/cluster/routing/index.ts') as unknown as typeof mod } catch { return null }
  const filters = Array.from({ length: n }, (_, i) => `${TENANT}/usp/agent/os::0FLEET-idle${i}/#`)
  gc(); gc()
  const before = process.memoryUsage().heapUsed
  const table = new mod.RouteTable()
  table.replace('node2', 'instance', 1, filters)
  gc(); gc()
  const after = process.memoryUsage().heapUsed
  if (table.size !== n) throw new Error('route table size mismatch')
  // the filter strings themselves are shared with the node's own copies; counted here anyway
  return (after - before) / n
}

export async function runFleetCluster (options: Partial<FleetOptions> = {}): Promise<FleetReport> {
  const o: FleetOptions = { ...defaultFleetOptions, ...options }
  const log = o.log
  const maxK = Math.max(...o.levels)
  const report: FleetReport = { label: o.label, startedAt: new Date().toISOString(), gitCommit: git(['rev-parse', 'HEAD']), levels: [], startup: [], routeTableBytesPerRoute: null, problems: [] }
  const fd = fdLimits()
  if (fd.hard < maxK + 2000) throw new Error(`the hard fd limit (${fd.hard}) is too low for ${maxK} agents on one node (needs ${maxK + 2000})`)
  if (fd.soft < maxK + 2000) throw new Error(`raise the soft fd limit first: ulimit -n ${fd.hard} (now ${fd.soft}; node 2 holds ${maxK} sockets)`)

  let redis: BenchRedis | undefined
  const nodes: BrokerHandle[] = []
  const loaders: Loader[] = []
  let admin: Redis | undefined
  try {
    redis = await startBenchRedis()
    admin = new Redis({ port: redis.port })
    const node = async (nodeId: string): Promise<BrokerHandle> => await startBroker('gateway', { nodeFlags: ['--expose-gc'], cluster: { redisUrl: redis!.url, nodeId } })
    const n1 = await node('node1')
    nodes.push(n1)
    const n2 = await node('node2')
    nodes.push(n2)
    log(`fleet-cluster (${o.label}): node1 :${n1.port}, node2 :${n2.port}, redis-server pid ${redis.pid}; load average ${loadavg().map(x => x.toFixed(2)).join(' ')}`)

    const ids = (prefix: string, n: number, endpoint: (i: number) => string): MqttIdentity[] => Array.from({ length: n }, (_, i) => ({ clientId: `${prefix}${i}`, endpointId: endpoint(i) }))
    const pubIds = ids('pub', o.publishers, i => `os::0FLEET-pub${i}`)
    const subIds = ids('sub', o.subscribers, i => `self::fleet-sub${i}`)
    const rrAgentIds = ids('rra', o.rrPairs, i => `os::0FLEET-rra${i}`)
    const rrCtrlIds = ids('rrc', o.rrPairs, i => `self::fleet-rrc${i}`)
    const idleIds = ids('idle', maxK, i => `os::0FLEET-idle${i}`)
    const groups = [
      [pubIds, 'agent'], [subIds, 'controller'], [rrAgentIds, 'agent'], [rrCtrlIds, 'controller'], [idleIds, 'agent']
    ] as const
    const requests: CredentialRequest[] = groups.flatMap(([g, role]) => g.map(id => ({ principal: id.endpointId, role })))
    log(`issuing ${requests.length} credentials through node1...`)
    const { secrets, ms } = await n1.provision(TENANT, requests)
    await n2.awaitCredentials(TENANT, requests.map(r => r.principal), 300_000)
    log(`  ${secrets.length} credentials in ${(ms / 1000).toFixed(1)} s (${(secrets.length / (ms / 1000)).toFixed(0)}/s), known on node2`)
    let at = 0
    const withCreds = (g: readonly MqttIdentity[]): MqttIdentity[] => g.map(id => ({ ...id, username: `${TENANT}:${id.endpointId}`, password: secrets[at++]! }))
    const [pubs, subs, rrAgents, rrCtrls, idle] = groups.map(([g]) => withCreds(g))

    const startNode3 = async (sessions: number): Promise<void> => {
      const t = Date.now()
      const n3 = await node('node3')
      try {
        const s = await n3.fleetStats()
        report.startup.push({ sessions, startMs: s.startMs, heapUsedMB: s.heapUsedBytes / 2 ** 20 })
        log(`  node3 started with ${sessions} persistent sessions in Redis: Gateway.start() ${fmtMs(s.startMs * 1000)} (process to ready ${((Date.now() - t) / 1000).toFixed(1)} s), heap after GC ${(s.heapUsedBytes / 2 ** 20).toFixed(1)} MB`)
      } finally { await n3.stop() }
    }
    if (o.startup) await startNode3(0)

    const loaderCount = Math.max(1, Math.ceil(maxK / AGENTS_PER_LOADER))
    for (let i = 0; i < loaderCount && maxK > 0; i++) loaders.push(await startLoader())
    const rr = await startRr(n1.port, n2.port, rrCtrls!, rrAgents!)
    const stats = async (): Promise<{ cpuUserUs: number, cpuSystemUs: number, rssBytes: number, connectedClients: number }> => {
      const [a, b] = await Promise.all([n1.stats(), n2.stats()])
      return { cpuUserUs: a.cpuUserUs + b.cpuUserUs + redis!.cpuUs(), cpuSystemUs: a.cpuSystemUs + b.cpuSystemUs, rssBytes: a.rssBytes + b.rssBytes, connectedClients: a.connectedClients + b.connectedClients }
    }

    let connected = 0
    for (const k of [...o.levels].sort((a, b) => a - b)) {
      // ---- grow the fleet to k idle agents on node 2
      const fresh = idle!.slice(connected, k)
      const t0 = Date.now()
      const perLoader: LoaderAgent[][] = loaders.map(() => [])
      fresh.forEach((a, i) => {
        const v = (connected + i) % 2 === 0 ? 4 : 5
        const inbox = `${TENANT}/usp/agent/${a.endpointId}`
        perLoader[i % loaders.length]!.push({ clientId: `${a.clientId}-v${v}`, username: a.username!, password: a.password!, v, filter: v === 4 ? `${inbox}/#` : inbox })
      })
      let failed = 0
      if (fresh.length > 0) {
        log(`connecting ${fresh.length} idle agents to node2 (${loaders.length} loader processes)...`)
        const results = await Promise.all(loaders.map((l, i) => perLoader[i]!.length > 0 ? l.connect(n2.port, perLoader[i]!, o.concurrency) : Promise.resolve<LoaderResult>({ connected: 0, failed: 0, ms: 0 })))
        failed = results.reduce((s, r) => s + r.failed, 0)
        const firstError = results.find(r => r.firstError !== undefined)?.firstError
        if (failed > 0) report.problems.push(`K=${k}: ${failed} agents did not connect+subscribe (first: ${firstError})`)
      }
      const connectMs = Date.now() - t0
      connected = k
      if (fresh.length > 0) log(`  ${fresh.length - failed} agents connected and subscribed in ${(connectMs / 1000).toFixed(1)} s${failed ? `, ${failed} failed` : ''}`)
      // aedes sends retained messages after the SUBACK: every wildcard SUBSCRIBE goes on scanning the
      // whole `retained` hash (one presence message per agent) for a while. Measure routing once Redis is idle.
      const settled = await settleRedis(redis, 300_000)
      log(`  Redis settled after ${(settled.waitedMs / 1000).toFixed(1)} s (${settled.idlePct.toFixed(1)}% of a core)`)
      await waitForQuiet(20_000, 15)

      try {
        // ---- fan-out (saturating) with request/response beside it, QoS 0 then QoS 1
        const baseClients = (await stats()).connectedClients
        const fanout: Partial<FleetLevel['fanout']> = {}
        const rrRes: Partial<FleetLevel['rr']> = {}
        const redisUs: Partial<FleetLevel['redisUsPerMsg']> = {}
        const publishes: Partial<FleetLevel['redisPublishes']> = {}
        const net: Partial<FleetLevel['redisNetUsPerMsg']> = {}
        let top: FleetLevel['redisTopCommands'] = []
        const idle0 = redis.cpuUs()
        const idleT0 = performance.now()
        await sleep(3000)
        const idleUsPerMs = (redis.cpuUs() - idle0) / (performance.now() - idleT0)
        log(`  K=${k}: Redis CPU with no traffic ${(idleUsPerMs / 10).toFixed(1)}% of a core`)
        for (const qos of [0, 1] as const) for (let round = 0; round < o.rounds; round++) {
          const key = qos === 0 ? 'qos0' : 'qos1'
          // Redis CPU and commands over runFanout's measurement window exactly: its first brokerStats()
          // call opens the window (after the subscribers subscribed and the warm-up), the second closes it
          const marks: Array<{ cpu: number, t: number, cmds: Map<string, { calls: number, usec: number }> }> = []
          const rrRun = rr.run()
          const f = await runFanout({
            port: n1.port,
            subscriberPort: n2.port,
            qos,
            tenant: TENANT,
            publishers: pubs!,
            subscribers: subs!,
            payloadBytes: 256,
            warmupMs: o.warmupMs,
            measureMs: o.measureMs,
            window: 64,
            batch: 16,
            // runFanout waits for "no clients left" at its end: the fleet and the request/response clients stay
            brokerStats: async () => {
              if (marks.length < 2) marks.push({ cpu: redis!.cpuUs(), t: performance.now(), cmds: await commandStats(admin!) })
              const s = await stats()
              return { ...s, connectedClients: Math.max(0, s.connectedClients - baseClients) }
            }
          })
          const rrNow = rrRun.stop()
          await sleep(300) // last responses in flight
          const [m0, m1] = marks as [typeof marks[0], typeof marks[0]]
          const cmd0 = m0.cmds
          const cmd1 = m1.cmds
          const pubs1 = (cmd1.get('publish')?.calls ?? 0) - (cmd0.get('publish')?.calls ?? 0)
          const cpuUs = m1.cpu - m0.cpu
          const usPerPublish = cpuUs / Math.max(1, pubs1)
          const netUs = Math.max(0, cpuUs - idleUsPerMs * (m1.t - m0.t)) / Math.max(1, pubs1)
          log(`  K=${k} QoS ${qos} round ${round + 1}: ${fmtInt(f.deliveredPerSec)} msg/s delivered, p99 ${fmtMs(f.latencyP99Us)}; request/response ${fmtInt(rrNow.perSec)}/s p99 ${fmtMs(rrNow.p99Us)}; Redis ${usPerPublish.toFixed(2)} µs per PUBLISH (${netUs.toFixed(2)} net of idle; ${pubs1} PUBLISHes); other procs ${f.otherCpuPct?.toFixed(0) ?? '?'}%`)
          if (fanout[key] !== undefined && fanout[key].deliveredPerSec >= f.deliveredPerSec) continue
          fanout[key] = f
          rrRes[key] = rrNow
          publishes[key] = pubs1
          redisUs[key] = usPerPublish
          net[key] = netUs
          if (qos === 1) top = topCommands(cmd0, cmd1)
        }
        const numpat = Number(await admin.call('PUBSUB', 'NUMPAT'))
        const usedMemory = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1] ?? 0)
        const [s1, s2] = await Promise.all([n1.fleetStats(), n2.fleetStats()])
        report.levels.push({
          k,
          connectMs,
          connectFailed: failed,
          fanout: fanout as FleetLevel['fanout'],
          rr: rrRes as FleetLevel['rr'],
          redisUsPerMsg: redisUs as FleetLevel['redisUsPerMsg'],
          redisPublishes: publishes as FleetLevel['redisPublishes'],
          redisIdleCpuPct: idleUsPerMs / 10,
          redisNetUsPerMsg: net as FleetLevel['redisNetUsPerMsg'],
          redisTopCommands: top,
          numpat,
          redisUsedMemoryMB: usedMemory / 2 ** 20,
          node1: s1,
          node2: s2,
          loadavg: loadavg()
        })
        log(`  K=${k}: Redis time by command (QoS 1 run): ${top.map(t => `${t.cmd} ${t.calls}× ${(t.usec / Math.max(1, t.calls)).toFixed(1)} µs`).join(', ')}`)
        log(`  K=${k}: Redis NUMPAT ${numpat}, used_memory ${(usedMemory / 2 ** 20).toFixed(1)} MB; node1 heap ${(s1.heapUsedBytes / 2 ** 20).toFixed(1)} MB${s1.routes ? ` (${s1.routes.remoteRoutes} routes mirrored)` : ''}, node2 heap ${(s2.heapUsedBytes / 2 ** 20).toFixed(1)} MB`)
      } catch (err) {
        // e.g. the fan-out clients cannot even connect: a result, recorded, and the run goes on
        report.problems.push(`K=${k}: ${(err as Error).message}`)
        log(`  K=${k}: measurement failed: ${(err as Error).message}`)
      }
    }
    await rr.close()

    if (o.startup && maxK > 0) await startNode3(maxK)
    report.routeTableBytesPerRoute = await routeTableBytesPerRoute(Math.max(maxK, 1000))
    if (report.routeTableBytesPerRoute !== null) log(`route table: ${report.routeTableBytesPerRoute.toFixed(0)} B of heap per \`<inbox>/#\` route (${Math.max(maxK, 1000)} routes, in-process)`)
  } finally {
    for (const l of loaders) l.close()
    for (const n of nodes.reverse()) await n.stop().catch(() => {})
    admin?.disconnect()
    await redis?.stop()
  }
  log('')
  log(formatFleet(report))
  if (o.resultsDir !== null) {
    await mkdir(o.resultsDir, { recursive: true })
    const file = join(o.resultsDir, `${o.label}.json`)
    await writeFile(file, JSON.stringify(report, null, 2) + '\n')
    log(`results: ${file}`)
  }
  return report
}

export function formatFleet (r: FleetReport): string {
  const out = [`fleet-cluster (${r.label}, commit ${r.gitCommit?.slice(0, 12) ?? '?'}): 2 nodes on one redis-server, K idle agents on node 2 (half 3.1.1 <inbox>/#, half MQTT 5 inbox)`]
  out.push('| K | agents connect | QoS 0 delivered/s | QoS 0 p99 | QoS 1 delivered/s | QoS 1 p99 | req/resp p99 (QoS 1 run) | Redis µs/PUBLISH (QoS 0 / 1) | net of idle | Redis idle CPU | NUMPAT | node1 heap | load avg |')
  out.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
  for (const l of r.levels) {
    out.push(`| ${fmtInt(l.k)} | ${(l.connectMs / 1000).toFixed(1)} s${l.connectFailed ? ` (${l.connectFailed} failed)` : ''} | ${fmtInt(l.fanout.qos0.deliveredPerSec)} | ${fmtMs(l.fanout.qos0.latencyP99Us)} | ${fmtInt(l.fanout.qos1.deliveredPerSec)} | ${fmtMs(l.fanout.qos1.latencyP99Us)} | ${fmtMs(l.rr.qos1.p99Us)} | ${l.redisUsPerMsg.qos0.toFixed(2)} / ${l.redisUsPerMsg.qos1.toFixed(2)} | ${l.redisNetUsPerMsg.qos0.toFixed(2)} / ${l.redisNetUsPerMsg.qos1.toFixed(2)} | ${l.redisIdleCpuPct.toFixed(1)}% | ${l.numpat} | ${(l.node1.heapUsedBytes / 2 ** 20).toFixed(0)} MB${l.node1.routes ? ` (${fmtInt(l.node1.routes.remoteRoutes)} routes)` : ''} | ${l.loadavg[0]!.toFixed(1)} |`)
  }
  for (const s of r.startup) out.push(`node start-up with ${fmtInt(s.sessions)} persistent sessions in Redis: ${fmtMs(s.startMs * 1000)} (heap after GC ${s.heapUsedMB.toFixed(0)} MB)`)
  if (r.routeTableBytesPerRoute !== null) out.push(`route table memory: ${r.routeTableBytesPerRoute.toFixed(0)} B per <inbox>/# route`)
  for (const p of r.problems) out.push(`PROBLEM: ${p}`)
  return out.join('\n')
}

function fmtInt (n: number): string { return Math.round(n).toLocaleString('en-US') }
function fmtMs (us: number): string { return Number.isFinite(us) ? `${(us / 1000).toFixed(us < 10_000 ? 2 : 0)} ms` : 'n/a' }

/**
 * `--startup-only=K`: node start-up alone. A node is started on an empty cluster (0 sessions), K
 * persistent sessions (one QoS 1 `<inbox>/#` subscription each) are then stored in Redis through
 * aedes-persistence-redis itself, and a second node is started on them: Gateway.start() time of each.
 * Seconds instead of the minutes it takes to connect K agents (which the full scenario also measures).
 */
export async function runStartupOnly (sessions: number, log: (line: string) => void = line => { console.log(line) }): Promise<Array<{ sessions: number, startMs: number, heapUsedMB: number }>> {
  const req = createRequire(import.meta.url)
  const redisPersistence = req('aedes-persistence-redis') as (opts: Record<string, unknown>) => { addSubscriptions(client: { id: string }, subs: Array<{ topic: string, qos: number }>): Promise<unknown> }
  const PersistenceRedis = createRequire(req.resolve('aedes-persistence-redis'))('ioredis') as new (opts: Record<string, unknown>) => { disconnect(): void }
  const { Aedes } = await import('aedes')
  const redis = await startBenchRedis()
  const nodes: BrokerHandle[] = []
  const out: Array<{ sessions: number, startMs: number, heapUsedMB: number }> = []
  try {
    const start = async (nodeId: string, n: number): Promise<void> => {
      const node = await startBroker('gateway', { nodeFlags: ['--expose-gc'], cluster: { redisUrl: redis.url, nodeId } })
      nodes.push(node)
      const s = await node.fleetStats()
      out.push({ sessions: n, startMs: s.startMs, heapUsedMB: s.heapUsedBytes / 2 ** 20 })
      log(`node ${nodeId} started with ${n} persistent sessions in Redis: Gateway.start() ${fmtMs(s.startMs * 1000)}, heap after GC ${(s.heapUsedBytes / 2 ** 20).toFixed(1)} MB`)
    }
    await start('node1', 0)
    const conn = new PersistenceRedis({ port: redis.port, keyPrefix: 'uspgate-bench:aedes:' })
    const persistence = redisPersistence({ conn })
    const writer = await Aedes.createBroker({ persistence } as never)
    const t0 = Date.now()
    for (let i = 0; i < sessions; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, sessions - i) }, (_, j) => persistence.addSubscriptions(
        { id: `${TENANT}:os::0FLEET-idle${i + j}|idle${i + j}` }, [{ topic: `${TENANT}/usp/agent/os::0FLEET-idle${i + j}/#`, qos: 1 }])))
    }
    log(`${sessions} sessions stored in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    await new Promise<void>(resolve => writer.close(() => resolve()))
    conn.disconnect()
    // the persistence's setup() alone, upstream and patched, alternated in this process (same-run ratio)
    let patch: ((p: unknown, c: unknown) => unknown) | undefined
    try { patch = (await import('../broker/cluster/patches/index.ts') as unknown as { batchPersistenceSetup: typeof patch }).batchPersistenceSetup } catch { /* build without the patch */ }
    if (patch !== undefined) {
      const times: Record<'upstream' | 'pipelined', number[]> = { upstream: [], pipelined: [] }
      const fakeBroker = { id: 'setup-bench', subscribe: (_t: string, _f: unknown, cb: () => void) => cb(), unsubscribe: (_t: string, _f: unknown, cb: () => void) => cb() }
      for (let round = 0; round < 3; round++) {
        for (const kind of ['upstream', 'pipelined'] as const) {
          const c = new PersistenceRedis({ port: redis.port, keyPrefix: 'uspgate-bench:aedes:' })
          const p = redisPersistence({ conn: c }) as unknown as { setup(b: unknown): Promise<void> }
          if (kind === 'pipelined') patch(p, c)
          const t = performance.now()
          await p.setup(fakeBroker)
          times[kind].push(performance.now() - t)
          c.disconnect()
        }
      }
      const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
      log(`persistence setup() with ${sessions} sessions, median of 3 alternated: upstream ${median(times.upstream).toFixed(0)} ms, pipelined ${median(times.pipelined).toFixed(0)} ms (${(median(times.upstream) / median(times.pipelined)).toFixed(2)}× faster)`)
    }
    await start('node2', sessions)
  } finally {
    for (const n of nodes.reverse()) await n.stop().catch(() => {})
    await redis.stop()
  }
  return out
}
