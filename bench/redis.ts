// A throwaway redis-server for the gateway-2node target (the logic of test/helpers/redis.ts, which
// bench/ must not import): a free port, no persistence, its dir and process registered with
// bench/brokers.ts so that they are gone on every exit path (normal end, error, signal, watchdog).
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer, connect as netConnect } from 'node:net'
import { makeTempDir, removeTempDir, trackProcess } from './brokers.ts'

export const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server'
const START_TIMEOUT_MS = 5000

export interface BenchRedis {
  port: number
  url: string
  pid: number
  /** CPU time of redis-server so far (µs; Linux /proc, 0 elsewhere) */
  cpuUs: () => number
  /** SIGKILL (nothing to flush: no persistence) and remove the dir; idempotent. */
  stop: () => Promise<void>
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

async function waitListening (port: number, deadline: number, exited: () => string | null): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>(resolve => {
      const s = netConnect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    const why = exited()
    if (why !== null) throw new Error(why)
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port} within ${START_TIMEOUT_MS} ms`)
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

export async function startBenchRedis (): Promise<BenchRedis> {
  const dir = makeTempDir('uspgate-bench-redis-')
  const port = await freePort()
  const p = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  let failure: string | null = null
  p.stderr!.on('data', d => { stderr += String(d) })
  p.once('error', err => { failure = `cannot start ${REDIS_SERVER}: ${err.message} (install redis-server, set REDIS_SERVER, or run with --no-cluster)` })
  const exitedP = new Promise<void>(resolve => p.once('exit', code => {
    failure ??= `redis-server exited (${String(code)}): ${stderr.trim()}`
    resolve()
  }))
  trackProcess(p)
  const stop = async (): Promise<void> => {
    if (p.exitCode === null && p.signalCode === null && failure === null) {
      p.kill('SIGKILL')
      await exitedP
    }
    removeTempDir(dir)
  }
  try {
    await waitListening(port, Date.now() + START_TIMEOUT_MS, () => failure)
  } catch (err) {
    await stop()
    throw err
  }
  return { port, url: `redis://127.0.0.1:${port}`, pid: p.pid!, cpuUs: () => procCpuUs(p.pid!), stop }
}

/** utime + stime of a process from /proc/<pid>/stat (clock ticks of 1/100 s on Linux); 0 if unavailable. */
function procCpuUs (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) * 10_000
  } catch { return 0 }
}
