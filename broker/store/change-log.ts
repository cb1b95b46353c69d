// Append-only change log of the embedded state store: one JSON change per line (NDJSON), fsync'd
// before a change is acknowledged. Changes that arrive while a write is in flight are committed
// together with one write and one fdatasync (group commit), so the cost of a change does not
// depend on how much state exists. A crash can leave a torn last line: it is ignored (and cut off)
// when the log is read; anything unreadable before the last line is corruption and is refused.
import { open, readFile, truncate } from 'node:fs/promises'
import { dirname } from 'node:path'

export class ChangeLogCorrupt extends Error {}

interface Write { text: string, lines: number, resolve: () => void, reject: (err: Error) => void }
interface Checkpoint { checkpoint: () => Promise<void>, resolve: () => void, reject: (err: Error) => void }
type Pending = Write | Checkpoint

export class ChangeLog<T> {
  /** Complete lines in the file (read at open plus appended since). */
  lines = 0
  /** Bytes of complete lines in the file. */
  private size = 0
  private exists = false
  private pending: Pending[] = []
  private draining: Promise<void> | undefined

  constructor (readonly path: string, private readonly mode = 0o600) {}

  /**
   * Reads every complete change. A torn tail (no final newline, or unparsable bytes after the last
   * complete line) is dropped from the file so the next append starts on a clean line.
   */
  async read (): Promise<T[]> {
    let buf: Buffer
    try {
      buf = await readFile(this.path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') { this.exists = false; this.size = 0; this.lines = 0; return [] }
      throw err
    }
    this.exists = true
    const out: T[] = []
    let start = 0
    let good = 0
    while (start < buf.length) {
      const nl = buf.indexOf(0x0a, start)
      const end = nl < 0 ? buf.length : nl
      const line = buf.subarray(start, end).toString('utf8')
      let value: T | undefined
      if (nl >= 0 && line.trim() !== '') {
        try { value = JSON.parse(line) as T } catch { value = undefined }
      }
      if (nl >= 0 && line.trim() === '') { start = nl + 1; good = start; continue }
      if (value === undefined) {
        // only the tail may be torn: every byte after this point must be part of it
        const rest = buf.subarray(nl < 0 ? end : nl + 1)
        if (rest.some(b => b !== 0 && b !== 0x0a && b !== 0x20)) {
          throw new ChangeLogCorrupt(`change log ${this.path}: unreadable line at byte ${start} followed by more changes`)
        }
        break
      }
      out.push(value)
      start = nl + 1
      good = start
    }
    if (good < buf.length) await truncate(this.path, good)
    this.size = good
    this.lines = out.length
    return out
  }

  /** Appends changes durably; resolves once they are on disk (fdatasync). */
  append (changes: T[]): Promise<void> {
    if (changes.length === 0) return Promise.resolve()
    const text = changes.map(c => JSON.stringify(c) + '\n').join('')
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ text, lines: changes.length, resolve, reject })
      this.lines += changes.length
      this.draining ??= this.drain()
    })
  }

  /**
   * Runs `writeSnapshot` in order with the appends (after every change queued before this call is
   * on disk, before any change queued after it is written), then empties the log: the snapshot,
   * taken by the caller at call time, holds every change the log held.
   */
  checkpoint (writeSnapshot: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ checkpoint: writeSnapshot, resolve, reject })
      this.draining ??= this.drain()
    })
  }

  /** Waits until every append so far is on disk (or failed). */
  async idle (): Promise<void> {
    while (this.draining !== undefined) await this.draining
  }

  private async drain (): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const head = this.pending[0]!
        if ('checkpoint' in head) {
          this.pending.shift()
          try {
            await head.checkpoint()
            await this.empty()
            head.resolve()
          } catch (err) { head.reject(err as Error) }
          continue
        }
        // group commit: every append queued up to the next checkpoint, one write, one fdatasync
        let n = 0
        while (n < this.pending.length && !('checkpoint' in this.pending[n]!)) n++
        const batch = this.pending.splice(0, n) as Write[]
        try {
          await this.write(batch.map(p => p.text).join(''))
          for (const p of batch) p.resolve()
        } catch (err) {
          for (const p of batch) p.reject(err as Error)
        }
      }
    } finally {
      this.draining = undefined
    }
  }

  private async empty (): Promise<void> {
    const queued = this.pending.reduce((k, p) => k + ('lines' in p ? p.lines : 0), 0)
    this.lines = queued
    if (!this.exists) return
    const fh = await open(this.path, 'r+')
    try {
      await fh.truncate(0)
      await fh.sync()
    } finally { await fh.close() }
    this.size = 0
  }

  private async write (text: string): Promise<void> {
    const created = !this.exists
    const fh = await open(this.path, 'a', this.mode)
    try {
      await fh.write(text)
      await fh.datasync()
      this.exists = true
      this.size += Buffer.byteLength(text)
    } catch (err) {
      // a partial write must not become a torn line in the middle of later changes
      await fh.truncate(this.size).catch(() => {})
      throw err
    } finally {
      await fh.close()
    }
    if (created) {
      // the new file's directory entry must survive a crash too
      const dh = await open(dirname(this.path), 'r')
      try { await dh.sync() } finally { await dh.close() }
    }
  }
}
