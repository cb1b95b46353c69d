// Cluster mode: one PKI for every node. The pki directory (<dataDir>/pki: encrypted CA keys,
// certificates, CRLs, state.json) is mirrored in Redis:
//   - hash `<prefix>pki` (relative path → file content) and counter `<prefix>pki:version`, replaced
//     together in one MULTI after every CA mutation of a node;
//   - control message `{ kind: 'pki', version }` on `<prefix>control`; other nodes download the hash
//     when its version is newer than theirs, write the files atomically, load them into a fresh
//     CertificateAuthority and swap it in (TLS context reload, live certificate sessions re-checked);
//   - lock `<prefix>pki:lock` (SET NX PX 30000) around download-or-create-and-upload at start and around
//     every mutation, so two nodes never create two roots or lose each other's changes.
// Per node, never shared: the MQTTS server certificate and key (each node's own SANs, signed by the
// shared root) and the serverSans field of state.json. The master key is never stored in Redis: every
// node needs the same USPGATE_PKI_MASTER_KEY.
import { readdir, readFile, rename, unlink } from 'node:fs/promises'
import { join, sep, isAbsolute, normalize } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { CertError } from '../../certs/index.ts'
import type { Cluster } from './cluster.ts'
import { ControlError } from '../core/index.ts'
import { writeFileAtomic } from '../store/index.ts'

export const PKI_LOCK_TTL_MS = 30_000
const LOCK_POLL_MS = 50
/** A mutation waits this long for another node's PKI change before answering 503. */
const MUTATE_LOCK_WAIT_MS = 10_000
/** At start a node waits for another node creating or uploading the PKI (at most one lock TTL). */
const START_LOCK_WAIT_MS = PKI_LOCK_TTL_MS + 5_000
/** Files of the pki directory that stay per node (server certificate with this node's SANs). */
const LOCAL_ONLY = new Set(['server.crt.pem', 'server.key.pem'])
const STATE_FILE = 'state.json'
const UNLOCK_SCRIPT = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


export interface ClusterPkiOptions {
  cluster: Cluster
  /** The pki directory (<dataDir>/pki). */
  dir: string
  log: Logger
  /** Throws ControlError 503 while the node cannot write shared state. */
  assertWritable: () => void
  /** Loads the pki directory into a fresh CertificateAuthority and swaps it in. */
  reload: () => Promise<void>
}

type Files = Map<string, string>

export class ClusterPki {
  /** Version of the shared PKI the local directory holds (0: none yet). */
  version = 0
  private remote: Files | undefined
  private queue: Promise<unknown> = Promise.resolve()
  private active = false
  /** A local change could not be uploaded (Redis went away): uploaded at the next resync if still newest. */
  private pending = false
  readonly keys: { hash: string, version: string, lock: string }
  private readonly token: string

  constructor (private readonly opts: ClusterPkiOptions) {
    const p = opts.cluster.settings.prefix
    this.keys = { hash: `${p}pki`, version: `${p}pki:version`, lock: `${p}pki:lock` }
    this.token = `${opts.cluster.nodeId}/${opts.cluster.instance}`
    opts.cluster.sub.on('message', (channel: string, text: string) => {
      if (channel !== opts.cluster.keys.control) return
      let msg: { origin?: string, kind?: string, version?: number }
      try { msg = JSON.parse(text) as typeof msg } catch { return }
      if (msg.kind !== 'pki' || msg.origin === opts.cluster.instance || typeof msg.version !== 'number') return
      if (!this.active || msg.version <= this.version) return
      this.serial(async () => await this.pull()).catch(err => this.opts.log.error({ err }, 'shared PKI update not applied; retried at the next change or resync'))
    })
  }

  private get cmd (): Cluster['cmd'] { return this.opts.cluster.cmd }

  /** First load: download the shared PKI, or create it (init on an empty directory) and upload it, under the lock. */
  async initialize (init: () => Promise<void>): Promise<void> {
    await this.serial(async () => {
      const lock = await this.lock(START_LOCK_WAIT_MS)
      try {
        const remote = await this.fetch()
        if (remote.version > 0) await this.writeLocal(remote.files)
        try {
          await init()
        } catch (err) {
          if (remote.version > 0 && err instanceof CertError && err.code === 'cert.bad_master_key') {
            throw new CertError('cert.bad_master_key', `${err.message}; the shared PKI in Redis (${this.keys.hash}) was created with another key: every node needs the same USPGATE_PKI_MASTER_KEY`, { cause: err })
          }
          throw err
        }
        if (remote.version > 0) { this.version = remote.version; this.remote = remote.files }
        await this.upload(lock)
        this.active = true
        this.opts.log.info({ version: this.version }, remote.version > 0 ? 'shared PKI loaded from Redis' : 'PKI uploaded to Redis (shared by every node)')
      } finally {
        await this.unlock(lock)
      }
    })
  }

  /** Runs one CA mutation on the newest shared copy, under the lock, and uploads the result. */
  async mutate<T> (task: () => Promise<T>): Promise<T> {
    this.opts.assertWritable()
    return await this.serial(async () => {
      const lock = await this.lock(MUTATE_LOCK_WAIT_MS)
      try {
        await this.pull()
        let out: { ok: true, value: T } | { ok: false, err: unknown }
        try { out = { ok: true, value: await task() } } catch (err) { out = { ok: false, err } }
        // also after a failed task: it may have changed something first (e.g. created the tenant CA)
        await this.upload(lock)
        if (!out.ok) throw out.err
        return out.value
      } finally {
        await this.unlock(lock)
      }
    })
  }

  /** Cluster resync (start, reconnect): apply a newer shared copy, or upload a change Redis missed. */
  async resync (): Promise<void> {
    if (!this.active) return
    await this.serial(async () => {
      const remote = await this.fetchVersion()
      if (this.pending || remote < this.version) {
        // a local change that never reached Redis, or a Redis that came back without the PKI
        const lock = await this.lock(MUTATE_LOCK_WAIT_MS)
        try {
          if (await this.fetchVersion() <= this.version) {
            this.remote = undefined
            await this.upload(lock)
            return
          }
          this.opts.log.error('a local PKI change was never shared and another node changed the PKI since; the shared copy wins')
          this.pending = false
          await this.pull()
        } finally { await this.unlock(lock) }
        return
      }
      await this.pull()
    })
  }

  // ------------------------------------------------------------ internals

  private async serial<T> (task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task)
    this.queue = run.catch(() => {})
    return await run
  }

  private async lock (waitMs: number): Promise<string> {
    const value = `${this.token}/${randomBytes(6).toString('hex')}`
    const deadline = Date.now() + waitMs
    for (;;) {
      let ok: string | null
      try {
        ok = await this.cmd.set(this.keys.lock, value, 'PX', PKI_LOCK_TTL_MS, 'NX')
      } catch (err) {
        throw new ControlError(503, 'state store unavailable', `Redis is unreachable (${(err as Error).message}); the shared PKI cannot change`)
      }
      if (ok === 'OK') return value
      if (Date.now() > deadline) throw new ControlError(503, 'pki busy', `another node holds ${this.keys.lock}; retry shortly`)
      await new Promise(resolve => setTimeout(resolve, LOCK_POLL_MS))
    }
  }

  private async unlock (value: string): Promise<void> {
    try { await this.cmd.eval(UNLOCK_SCRIPT, 1, this.keys.lock, value) } catch { /* expires by itself */ }
  }

  private async fetchVersion (): Promise<number> {
    return Number(await this.cmd.get(this.keys.version) ?? 0)
  }

  /** Version and files in one MULTI (a consistent copy). */
  private async fetch (): Promise<{ version: number, files: Files }> {
    const res = await this.cmd.multi().get(this.keys.version).hgetall(this.keys.hash).exec()
    if (res === null) throw new Error('shared PKI read aborted')
    for (const [err] of res) if (err) throw err
    const version = Number(res[0]![1] ?? 0)
    const files = new Map(Object.entries((res[1]![1] ?? {}) as Record<string, string>))
    return { version, files }
  }

  /** Downloads and applies the shared copy when it is newer than the local one. */
  private async pull (): Promise<void> {
    const remote = await this.fetch()
    if (remote.version <= this.version) return
    await this.writeLocal(remote.files)
    await this.opts.reload()
    this.version = remote.version
    this.remote = remote.files
    this.pending = false
    this.opts.log.info({ version: remote.version }, 'shared PKI updated from Redis')
  }

  /** Uploads the local directory if it differs from the last shared copy; publishes the new version. */
  private async upload (lock: string): Promise<void> {
    const files = await this.snapshot()
    if (this.remote !== undefined && sameFiles(files, this.remote)) return
    try {
      if (await this.cmd.get(this.keys.lock) !== lock) throw new Error(`lost ${this.keys.lock} (held longer than ${PKI_LOCK_TTL_MS} ms)`)
      const next = Math.max(await this.fetchVersion(), this.version) + 1
      const res = await this.cmd.multi().del(this.keys.hash).hset(this.keys.hash, Object.fromEntries(files)).set(this.keys.version, String(next)).exec()
      if (res === null) throw new Error('shared PKI write aborted')
      for (const [err] of res) if (err) throw err
      this.version = next
      this.remote = files
      this.pending = false
    } catch (err) {
      this.pending = true
      this.opts.log.error({ err }, 'PKI change not shared through Redis; uploaded at the next resync')
      throw new ControlError(503, 'state store unavailable', 'the certificate change was applied on this node but could not be shared through Redis; it is shared when Redis is back')
    }
    const msg = { origin: this.opts.cluster.instance, kind: 'pki', version: this.version }
    try {
      await this.cmd.publish(this.opts.cluster.keys.control, JSON.stringify(msg))
    } catch (err) {
      this.opts.log.warn({ err }, 'pki control message not published; other nodes pick the change up at their next resync')
    }
  }

  /** The shared part of the pki directory: relative path → content (state.json without serverSans). */
  private async snapshot (): Promise<Files> {
    const files: Files = new Map()
    // state.json first: every file it names was written before it
    const state = await readIfExists(join(this.opts.dir, STATE_FILE))
    const walk = async (rel: string): Promise<void> => {
      let entries
      try { entries = await readdir(join(this.opts.dir, rel), { withFileTypes: true }) } catch { return }
      for (const e of entries) {
        if (e.name.startsWith('.')) continue // temp files of atomic writes
        const path = rel === '' ? e.name : `${rel}/${e.name}`
        if (e.isDirectory()) { await walk(path); continue }
        if (!e.isFile() || LOCAL_ONLY.has(path) || path === STATE_FILE) continue
        const text = await readIfExists(join(this.opts.dir, path))
        if (text !== undefined) files.set(path, text)
      }
    }
    await walk('')
    if (state !== undefined) files.set(STATE_FILE, withServerSans(state, []))
    return files
  }

  /** Replaces the shared part of the local directory with `files` (each written atomically, 0600). */
  private async writeLocal (files: Files): Promise<void> {
    const dir = this.opts.dir
    const local = await readIfExists(join(dir, STATE_FILE))
    let sans: unknown = []
    try { if (local !== undefined) sans = (JSON.parse(local) as { serverSans?: unknown }).serverSans ?? [] } catch { /* re-issued */ }
    const localRoot = await readIfExists(join(dir, 'root-ca.crt.pem'))
    const remoteRoot = files.get('root-ca.crt.pem')
    if (localRoot !== undefined && remoteRoot !== undefined && localRoot !== remoteRoot) {
      // this node had its own CA (embedded mode, or a per-node CA from before): kept aside, not lost
      const aside = `${dir}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`
      await rename(dir, aside)
      this.opts.log.warn({ kept: aside }, 'the local CA differs from the shared one in Redis; the local pki directory was moved aside and replaced by the shared PKI')
      sans = []
    }
    for (const [rel, text] of files) {
      const path = safeJoin(dir, rel)
      await writeFileAtomic(path, rel === STATE_FILE ? withServerSans(text, sans) : text)
    }
    const old = await this.snapshot()
    for (const rel of old.keys()) {
      if (!files.has(rel)) await unlink(safeJoin(dir, rel)).catch(() => {})
    }
  }
}

function withServerSans (stateText: string, sans: unknown): string {
  const state = JSON.parse(stateText) as Record<string, unknown>
  return JSON.stringify({ ...state, serverSans: sans }, null, 2) + '\n'
}

function sameFiles (a: Files, b: Files): boolean {
  if (a.size !== b.size) return false
  for (const [k, v] of a) if (b.get(k) !== v) return false
  return true
}

/** A path from Redis must stay inside the pki directory. */
function safeJoin (dir: string, rel: string): string {
  const n = normalize(rel)
  if (rel === '' || isAbsolute(rel) || n.startsWith('..') || n.split(sep).includes('..') || LOCAL_ONLY.has(n)) {
    throw new Error(`refusing shared PKI file path "${rel}"`)
  }
  return join(dir, n)
}

async function readIfExists (path: string): Promise<string | undefined> {
  try { return await readFile(path, 'utf8') } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

