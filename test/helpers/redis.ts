// Real redis-server processes for tests: started on free ports (no persistence to disk), killed and
// restarted on the same port, and always cleaned up (process exit kills leftovers).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer, connect as netConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server'

export interface TestRedis {
  port: number
  /** redis://127.0.0.1:<port>, or rediss://<user>:<password>@127.0.0.1:<port> with `tls` / `user`. */
  url: string
  /** With `tls`: PEM of the test CA, and a client certificate + key it signed. */
  tls?: { ca: string, clientCert: string, clientKey: string, dir: string }
  /** SIGKILL: an abrupt outage (connections reset, nothing flushed). */
  kill: () => Promise<void>
  /**
   * Stops and starts again on the same port. Default: SIGKILL, so it comes back empty (no RDB/AOF).
   * `{ save: true }`: SHUTDOWN SAVE first, so the data comes back (a restart of a persistent Redis).
   */
  restart: (opts?: { save?: boolean, downMs?: number }) => Promise<void>
  /** Kills and removes the temp dir. */
  stop: () => Promise<void>
  readonly running: boolean
}

const live = new Set<ChildProcess>()
let hooked = false
function hookExit (): void {
  if (hooked) return
  hooked = true
  process.once('exit', () => { for (const p of live) { try { p.kill('SIGKILL') } catch { /* gone */ } } })
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

async function waitListening (port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>(resolve => {
      const s = netConnect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port}`)
    await new Promise(r => setTimeout(r, 25))
  }
}

/** A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate (openssl). */
function makeCertificates (dir: string): NonNullable<TestRedis['tls']> {
  const ssl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }) }
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=uspgate test Redis CA')
  for (const [name, ext] of [['server', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], ['client', 'extendedKeyUsage=clientAuth']] as const) {
    writeFileSync(join(dir, `${name}.ext`), `${ext}\n`)
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=uspgate test Redis ${name}`)
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`)
  }
  const read = (f: string): string => readFileSync(join(dir, f), 'utf8')
  return { ca: read('ca.crt'), clientCert: read('client.crt'), clientKey: read('client.key'), dir }
}

export interface RedisOptions {
  port?: number
  /** Serve TLS only; `clientCertificates: true` also requires a client certificate (tls-auth-clients yes). */
  tls?: { clientCertificates: boolean }
  /** An ACL user with a password; the default (password-less) user is switched off. */
  user?: { name: string, password: string }
}

export async function startRedis (opts: RedisOptions = {}): Promise<TestRedis> {
  hookExit()
  const dir = await mkdtemp(join(tmpdir(), 'uspgate-redis-'))
  const port = opts.port ?? await freePort()
  const tls = opts.tls ? makeCertificates(dir) : undefined
  const listen = opts.tls
    ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', join(dir, 'server.crt'), '--tls-key-file', join(dir, 'server.key'), '--tls-ca-cert-file', join(dir, 'ca.crt'), '--tls-auth-clients', opts.tls.clientCertificates ? 'yes' : 'no']
    : ['--port', String(port)]
  const acl = opts.user ? ['--user', 'default', 'off', '--user', opts.user.name, 'on', `>${opts.user.password}`, '~*', '&*', '+@all'] : []
  const auth = opts.user ? `${encodeURIComponent(opts.user.name)}:${encodeURIComponent(opts.user.password)}@` : ''
  let proc: ChildProcess | undefined
  let stderr = ''
  const launch = async (): Promise<void> => {
    const p = spawn(REDIS_SERVER, [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning', ...acl], { stdio: ['ignore', 'ignore', 'pipe'] })
    p.stderr!.on('data', d => { stderr += String(d) })
    live.add(p)
    p.once('exit', () => { live.delete(p); if (proc === p) proc = undefined })
    proc = p
    await new Promise<void>((resolve, reject) => {
      p.once('error', reject)
      p.once('exit', code => reject(new Error(`redis-server exited (${String(code)}): ${stderr}`)))
      waitListening(port).then(resolve, reject)
    })
  }
  const kill = async (): Promise<void> => {
    const p = proc
    if (!p) return
    await new Promise<void>(resolve => { p.once('exit', () => resolve()); p.kill('SIGKILL') })
  }
  await launch()
  return {
    port,
    url: `${tls ? 'rediss' : 'redis'}://${auth}127.0.0.1:${port}`,
    ...(tls ? { tls } : {}),
    kill,
    restart: async (o = {}) => {
      if (o.save === true && (opts.tls || opts.user)) throw new Error('restart({ save: true }) talks plain, unauthenticated RESP: use it with a plain Redis')
      if (o.save === true && proc !== undefined) {
        const p = proc
        const exited = new Promise<void>(resolve => p.once('exit', () => resolve()))
        await new Promise<void>(resolve => {
          const s = netConnect(port, '127.0.0.1', () => s.write('SHUTDOWN SAVE\r\n'))
          s.on('error', () => resolve()); s.on('close', () => resolve())
        })
        await exited
      } else {
        await kill()
      }
      if (o.downMs !== undefined) await new Promise(r => setTimeout(r, o.downMs))
      await launch()
    },
    stop: async () => { await kill(); await rm(dir, { recursive: true, force: true }) },
    get running () { return proc !== undefined }
  }
}
