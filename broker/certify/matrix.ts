// The device matrix: one row per (vendor, model, product class, agent, transport), updated by every
// certification run, firmware versions merged across runs. Status rules (checklist.json matrixRules):
//   green  - the requested level was reached and every check that ran passed (no limitations);
//   yellow - Integration Ready reached, with limitations (unsupported objects, manual steps, or
//            checks of a higher level that failed);
//   red    - Integration Ready not reached, or the run was cancelled / timed out.
// Stored atomically in <data dir>/certify/device-matrix.json (embedded state store).
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../store/index.ts'

export type MatrixStatus = 'green' | 'yellow' | 'red'

export interface MatrixRow {
  key: string
  tenant: string
  vendor: string
  model: string
  productClass: string
  /** Every firmware version seen, sorted; `firmwareRange` is "first – last". */
  firmware: string[]
  firmwareRange: string
  agent: string
  agentVersion: string
  uspVersion: string
  /** e.g. "MQTT 5.0 / TCP", "MQTT 3.1.1 / TLS", "MQTT 5.0 / mTLS". */
  transport: string
  level: string
  workflows: string[]
  limitations: string[]
  status: MatrixStatus
  endpointId: string
  runId: string
  evidencePath: string
  updatedAt: string
  runs: string[]
}

const FIELDS: Array<keyof MatrixRow> = ['status', 'vendor', 'model', 'productClass', 'firmwareRange', 'agent', 'agentVersion', 'uspVersion', 'transport', 'level', 'workflows', 'limitations', 'tenant', 'endpointId', 'runId', 'evidencePath', 'updatedAt']

/** Status from the run outcome, per the documented rules. */
export function matrixStatus (o: { levelReached: string, levelRequested: string, limitations: string[], completed: boolean }): MatrixStatus {
  if (!o.completed || o.levelReached === 'none') return 'red'
  if (o.levelReached === o.levelRequested && o.limitations.length === 0) return 'green'
  return 'yellow'
}

/** Natural order of version strings ("1.10" after "1.9"). */
function compareVersions (a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true })
}

export class DeviceMatrix {
  private rows = new Map<string, MatrixRow>()
  private readonly path: string
  private writing: Promise<void> = Promise.resolve()

  constructor (dataDir: string) {
    this.path = join(dataDir, 'certify', 'device-matrix.json')
  }

  async load (): Promise<void> {
    try {
      const list = JSON.parse(await readFile(this.path, 'utf8')) as MatrixRow[]
      this.rows = new Map(list.map(r => [r.key, r]))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }

  list (): MatrixRow[] {
    return [...this.rows.values()].sort((a, b) => a.key.localeCompare(b.key))
  }

  /** Adds or updates the row of one run; firmware versions and run ids accumulate. */
  async record (row: Omit<MatrixRow, 'key' | 'firmware' | 'firmwareRange' | 'runs'> & { firmwareVersion: string }): Promise<MatrixRow> {
    const key = [row.tenant, row.vendor, row.model, row.productClass, row.agent, row.transport].join('|')
    const prev = this.rows.get(key)
    const firmware = [...new Set([...(prev?.firmware ?? []), ...(row.firmwareVersion ? [row.firmwareVersion] : [])])].sort(compareVersions)
    const { firmwareVersion: _fw, ...rest } = row
    const next: MatrixRow = {
      ...rest,
      key,
      firmware,
      firmwareRange: firmware.length === 0 ? 'unknown' : firmware.length === 1 ? firmware[0]! : `${firmware[0]!} – ${firmware.at(-1)!}`,
      runs: [...(prev?.runs ?? []), row.runId]
    }
    this.rows.set(key, next)
    const text = JSON.stringify(this.list(), null, 2) + '\n'
    this.writing = this.writing.catch(() => {}).then(async () => { await writeFileAtomic(this.path, text) })
    await this.writing
    return next
  }
}

function cell (v: unknown): string {
  return Array.isArray(v) ? v.join('; ') : String(v ?? '')
}

/** RFC 4180 CSV, one header line. */
export function matrixCsv (rows: MatrixRow[]): string {
  const q = (s: string): string => /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s
  return [FIELDS.join(','), ...rows.map(r => FIELDS.map(f => q(cell(r[f]))).join(','))].join('\r\n') + '\r\n'
}

/** A Markdown table (pipes and newlines in values escaped). */
export function matrixMarkdown (rows: MatrixRow[]): string {
  const esc = (s: string): string => s.replaceAll('|', '\\|').replace(/[\r\n]+/g, ' ')
  return [
    `| ${FIELDS.join(' | ')} |`,
    `| ${FIELDS.map(() => '---').join(' | ')} |`,
    ...rows.map(r => `| ${FIELDS.map(f => esc(cell(r[f]))).join(' | ')} |`)
  ].join('\n') + '\n'
}
