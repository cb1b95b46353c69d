// The device matrix: one row per (vendor, model, product class, agent, transport), updated by every
// certification run, firmware versions merged across runs. Status rules (checklist.json matrixRules):
//   green  - the requested level was reached and every check that ran passed (no limitations);
//   yellow - Integration Ready reached, with limitations (unsupported objects, manual steps, or
//            checks of a higher level that failed);
//   red    - Integration Ready not reached, or the run was cancelled / timed out.
// Kept in the state store (state.json embedded, the hash <p>state:device-matrix in cluster mode).
import type { StateStore } from '../store/index.ts'

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
  constructor (private readonly store: StateStore) {}

  list (): MatrixRow[] {
    return this.store.listMatrixRows() as unknown as MatrixRow[]
  }

  /** Adds or updates the row of one run; firmware versions and run ids accumulate. */
  async record (row: Omit<MatrixRow, 'key' | 'firmware' | 'firmwareRange' | 'runs'> & { firmwareVersion: string }): Promise<MatrixRow> {
    const key = [row.tenant, row.vendor, row.model, row.productClass, row.agent, row.transport].join('|')
    const prev = this.list().find(r => r.key === key)
    const firmware = [...new Set([...(prev?.firmware ?? []), ...(row.firmwareVersion ? [row.firmwareVersion] : [])])].sort(compareVersions)
    const { firmwareVersion: _fw, ...rest } = row
    const next: MatrixRow = {
      ...rest,
      key,
      firmware,
      firmwareRange: firmware.length === 0 ? 'unknown' : firmware.length === 1 ? firmware[0]! : `${firmware[0]!} – ${firmware.at(-1)!}`,
      runs: [...(prev?.runs ?? []), row.runId]
    }
    await this.store.putMatrixRow(next as unknown as { key: string })
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
