// A minimal reader for the gzip-compressed ustar archives `opa build` writes (Go archive/tar).
// Regular files only; directories are skipped, PAX and GNU long names are honoured. Written here
// rather than taken as a dependency because a bundle is three or four small files.
import { gunzipSync, gzipSync } from 'node:zlib'

const BLOCK = 512

/** Upper bound on the uncompressed archive: refuses gzip bombs in uploaded bundles. */
export const MAX_UNPACKED_BYTES = 64 * 1024 * 1024

export class TarError extends Error {}

/** Returns file path (leading "/" and "./" removed) → contents. Throws TarError on any defect. */
export function readTarGz (bytes: Uint8Array, maxBytes = MAX_UNPACKED_BYTES): Map<string, Buffer> {
  let tar: Buffer
  try {
    tar = gunzipSync(bytes, { maxOutputLength: maxBytes })
  } catch (err) {
    throw new TarError(`not a gzip stream (or larger than ${maxBytes} bytes unpacked): ${(err as Error).message}`)
  }
  return readTar(tar)
}

export function readTar (tar: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>()
  let offset = 0
  let longName: string | undefined
  let sawEnd = false
  while (offset + BLOCK <= tar.length) {
    const header = tar.subarray(offset, offset + BLOCK)
    if (header.every(b => b === 0)) { sawEnd = true; break }
    verifyChecksum(header, offset)
    const size = readOctal(header, 124, 12, offset)
    const type = String.fromCharCode(header[156] ?? 0)
    const dataStart = offset + BLOCK
    const dataEnd = dataStart + size
    if (dataEnd > tar.length) throw new TarError(`entry at byte ${offset} is truncated`)
    const data = tar.subarray(dataStart, dataEnd)
    offset = dataStart + Math.ceil(size / BLOCK) * BLOCK

    if (type === 'L') { longName = cString(data); continue } // GNU long name for the next entry
    if (type === 'x') { longName = paxPath(data) ?? longName; continue } // PAX header for the next entry
    if (type === 'g') continue // PAX global header
    const name = longName ?? ustarName(header)
    longName = undefined
    if (type === '5') continue // directory
    if (type !== '0' && type !== '\0') throw new TarError(`unsupported entry type '${type}' for ${name}`)
    files.set(normalize(name), Buffer.from(data))
  }
  if (!sawEnd && files.size === 0) throw new TarError('no tar entries found')
  return files
}

function ustarName (header: Buffer): string {
  const name = cString(header.subarray(0, 100))
  const magic = header.subarray(257, 262).toString('latin1')
  const prefix = magic === 'ustar' ? cString(header.subarray(345, 500)) : ''
  return prefix ? `${prefix}/${name}` : name
}

function normalize (name: string): string {
  return name.replace(/^(\.\/|\/)+/, '')
}

function cString (b: Buffer): string {
  const end = b.indexOf(0)
  return b.subarray(0, end < 0 ? b.length : end).toString('utf8')
}

function readOctal (header: Buffer, start: number, len: number, at: number): number {
  const text = cString(header.subarray(start, start + len)).trim()
  if (!/^[0-7]+$/.test(text)) throw new TarError(`bad size field in header at byte ${at}`)
  return parseInt(text, 8)
}

function verifyChecksum (header: Buffer, at: number): void {
  const stored = readOctal(header, 148, 8, at)
  let sum = 0
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!
  if (sum !== stored) throw new TarError(`bad header checksum at byte ${at}`)
}

/** PAX records are "<len> <key>=<value>\n". */
function paxPath (data: Buffer): string | undefined {
  for (const line of data.toString('utf8').split('\n')) {
    const m = /^\d+ path=(.*)$/.exec(line)
    if (m) return m[1]
  }
  return undefined
}

/**
 * Writes a gzip-compressed ustar archive of regular files (names up to 100 bytes), the shape
 * `opa build` produces and readTar reads: used to re-label a bundle's revision (a certification
 * canary with the stable rules).
 */
export function writeTarGz (files: Map<string, Buffer>): Buffer {
  const blocks: Buffer[] = []
  for (const [name, data] of files) {
    const header = Buffer.alloc(BLOCK)
    const path = `/${name}`
    if (Buffer.byteLength(path) > 100) throw new TarError(`name too long for ustar: ${name}`)
    header.write(path, 0, 'utf8')
    header.write('0000644\0', 100, 'latin1')
    header.write('0000000\0', 108, 'latin1')
    header.write('0000000\0', 116, 'latin1')
    header.write(data.length.toString(8).padStart(11, '0') + '\0', 124, 'latin1')
    header.write('00000000000\0', 136, 'latin1')
    header.write('0', 156, 'latin1')
    header.write('ustar\u000000', 257, 'latin1')
    let sum = 0
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!
    header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1')
    blocks.push(header, data, Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK))
  }
  blocks.push(Buffer.alloc(BLOCK * 2))
  return gzipSync(Buffer.concat(blocks))
}
