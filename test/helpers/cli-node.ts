// A gateway node running the real CLI (`node bin/uspgate.js start`) in cluster mode, in its own
// process, so a test can SIGKILL it (no shutdown, no flush) while other nodes keep running.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const REPO = fileURLToPath(new URL('../..', import.meta.url))

export interface CliNode { proc: ChildProcess, port: number, dataDir: string }

/** Resolves with the node's MQTT port once it logs that it is ready; the process is killed when the test process exits. */
export async function startCliNode (opts: { redisUrl: string, prefix: string, nodeId: string }): Promise<CliNode> {
  const { redisUrl, prefix, nodeId } = opts
  const dataDir = await mkdtemp(join(tmpdir(), `uspgate-test-${nodeId}-`))
  const proc = spawn(process.execPath, [join(REPO, 'bin', 'uspgate.js'), 'start', '--mqtt-port', '0', '--admin-port', '0', '--mqtts-port', 'off'], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    // deliberately no admin token of its own: a joining node must keep the cluster's bootstrap token
    env: { ...process.env, USPGATE_REDIS_URL: redisUrl, USPGATE_REDIS_PREFIX: prefix, USPGATE_NODE_ID: nodeId, USPGATE_ADMIN_TOKEN: '', USPGATE_DATA_DIR: dataDir, USPGATE_LOG_LEVEL: 'warn' }
  })
  process.once('exit', () => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL') })
  let out = ''
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${nodeId} did not start within 20 s:\n${out}`)), 20_000)
    const onData = (d: Buffer): void => {
      out += d.toString()
      const m = /uspgate ready: MQTT on [^\s,]+:(\d+)/.exec(out)
      if (m) { clearTimeout(timer); resolve(Number(m[1])) }
    }
    proc.stdout!.on('data', onData)
    proc.stderr!.on('data', onData)
    proc.once('exit', code => { clearTimeout(timer); reject(new Error(`${nodeId} exited (${String(code)}) before it was ready:\n${out}`)) })
  })
  return { proc, port, dataDir }
}
