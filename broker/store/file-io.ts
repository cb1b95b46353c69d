// Durable file writes: temp file + fsync + rename + fsync(dir), so a crash or
// power cut leaves either the old or the new file, never a torn one.
import { open, rename, mkdir } from 'node:fs/promises'
import { dirname, join, basename } from 'node:path'
import { randomBytes } from 'node:crypto'

export async function writeFileAtomic (path: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const dir = dirname(path)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  const fh = await open(tmp, 'w', mode)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, path)
  const dh = await open(dir, 'r')
  try { await dh.sync() } finally { await dh.close() }
}
