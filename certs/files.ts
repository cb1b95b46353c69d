// Durable, private file writes: temp file + fsync + rename + fsync(dir), so a
// crash leaves either the old or the new file, never a torn one; mode 0600
// because the PKI directory holds (encrypted) CA keys and trust decisions.
import { open, rename, mkdir, readFile, unlink } from 'node:fs/promises'
import { dirname, join, basename } from 'node:path'
import { randomBytes } from 'node:crypto'

export async function ensurePrivateDir (dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
}

export async function writeFileAtomic (path: string, data: string | Buffer): Promise<void> {
  const dir = dirname(path)
  await ensurePrivateDir(dir)
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  const fh = await open(tmp, 'wx', 0o600)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } catch (err) {
    await fh.close()
    await unlink(tmp).catch(() => {})
    throw err
  }
  await fh.close()
  await rename(tmp, path)
  const dh = await open(dir, 'r')
  try { await dh.sync() } finally { await dh.close() }
}

/** The file's text, or undefined when it does not exist. */
export async function readTextIfExists (path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}
