// Mosquitto (Debian's package) as a fleet-scenario peer, doing comparable auth work to the
// gateway: a password file (mosquitto_passwd hashes, one line per client) and pattern ACLs that
// confine every Agent to its own inbox and let it write only to controller inboxes.
// Usernames are "<tenant>_<endpoint id with ':' as '_'>": a mosquitto password file cannot hold a
// ':' in a username.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { createServer, connect as netConnect } from 'node:net'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { userInfo } from 'node:os'
import { makeTempDir, removeTempDir, trackProcess } from './brokers.ts'

export interface MosquittoUser { username: string, password: string }

export interface RunningMosquitto {
  port: number
  pid: number
  version: string
  stop: () => Promise<void>
}

export function mosquittoUsername (tenant: string, endpointId: string): string {
  return `${tenant}_${endpointId.replace(/:/g, '_')}`
}

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      const port = typeof a === 'object' && a !== null ? a.port : 0
      s.close(() => resolve(port))
    })
  })
}

/**
 * Starts mosquitto on a free loopback port. `controllers` get `topic` lines (their own inbox to
 * read, every agent inbox to write); every other client falls under the patterns (%c = client id
 * = the Agent's Endpoint ID).
 */
export async function startMosquitto (tenant: string, users: MosquittoUser[], controllers: Array<{ username: string, endpointId: string }>): Promise<RunningMosquitto> {
  // Debian installs it in /usr/sbin, which is not on every user's PATH
  const bin = process.env.MOSQUITTO ?? (existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : 'mosquitto')
  const dir = makeTempDir('uspgate-bench-mosquitto-')
  const passwd = join(dir, 'passwd')
  writeFileSync(passwd, users.map(u => `${u.username}:${u.password}`).join('\n') + '\n', { mode: 0o600 })
  execFileSync(process.env.MOSQUITTO_PASSWD ?? 'mosquitto_passwd', ['-U', passwd], { stdio: 'ignore' })
  const acl = [
    ...controllers.flatMap(c => [`user ${c.username}`, `topic read ${tenant}/usp/controller/${c.endpointId}`, `topic read ${tenant}/usp/controller/${c.endpointId}/#`, `topic write ${tenant}/usp/agent/#`, '']),
    `pattern read ${tenant}/usp/agent/%c`,
    `pattern read ${tenant}/usp/agent/%c/#`,
    `pattern write ${tenant}/usp/controller/#`,
    ''
  ].join('\n')
  writeFileSync(join(dir, 'acl'), acl, { mode: 0o600 })
  const port = await freePort()
  writeFileSync(join(dir, 'mosquitto.conf'), [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous false',
    `password_file ${passwd}`,
    `acl_file ${join(dir, 'acl')}`,
    // as root mosquitto would switch to the "mosquitto" user, who cannot read this 0700 temp dir
    `user ${userInfo().username}`,
    'persistence false',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    ''
  ].join('\n'))
  const version = (() => {
    try { return execFileSync(bin, ['-h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) } catch (err) { return String((err as { stdout?: string }).stdout ?? '') }
  })().split('\n')[0]?.trim() ?? 'mosquitto'
  const child: ChildProcess = spawn(bin, ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] })
  trackProcess(child)
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000) })
  // ready once the port accepts connections
  const deadline = Date.now() + 10_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited (${child.exitCode}): ${stderr}`)
    const ok = await new Promise<boolean>(resolve => {
      const s = netConnect({ port, host: '127.0.0.1' })
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (ok) break
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${stderr}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return {
    port,
    pid: child.pid!,
    version,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise(resolve => child.once('exit', resolve))
        child.kill('SIGTERM')
        const t = setTimeout(() => child.kill('SIGKILL'), 5000)
        await exited
        clearTimeout(t)
      }
      removeTempDir(dir)
    }
  }
}
