// `uspgate policy ...`: versions, upload, shadow, canary, promote, rollback and diff, through the
// admin API (/v1/policies).
import { readFile } from 'node:fs/promises'
import { call, callRaw, CliError, needArgs, table, type AdminCommand } from './cli-client.ts'

export const POLICY_USAGE = `  uspgate policy list
  uspgate policy upload <bundle.tar.gz> [--notes TEXT]
  uspgate policy shadow <revision>
  uspgate policy canary <revision> --tenants a,b
  uspgate policy promote <revision>
  uspgate policy rollback [--reason TEXT]
  uspgate policy diff <revision>`

interface View {
  versions: Array<{ revision: string, uploadedAt: string, uploadedBy: string, size: number, notes?: string }>
  active: { stable: string, previous: string[], canary?: { revision: string, tenants: string[] }, shadow?: string }
}

function describeActive (v: View): string {
  const a = v.active
  return [
    `stable:  ${a.stable}${a.previous.length ? ` (previous: ${a.previous.join(', ')})` : ''}`,
    `canary:  ${a.canary ? `${a.canary.revision} for ${a.canary.tenants.join(', ')}` : '-'}`,
    `shadow:  ${a.shadow ?? '-'}`
  ].join('\n')
}

export async function policyCommand (cmd: AdminCommand): Promise<void> {
  const { conn, action, args, flags, out } = cmd
  const need = (n: number, what: string): void => { needArgs(cmd, 'policy', n, what) }
  const enc = encodeURIComponent
  switch (action) {
    case 'list': {
      need(0, '')
      const v = await call(conn, 'GET', '/v1/policies') as View
      const a = v.active
      const rows = v.versions.map(x => ({
        ...x,
        active: [x.revision === a.stable ? 'stable' : '', x.revision === a.canary?.revision ? 'canary' : '', x.revision === a.shadow ? 'shadow' : ''].filter(Boolean).join(',')
      }))
      return out(v, () => table(rows, ['revision', 'active', 'uploadedAt', 'uploadedBy', 'size', 'notes']) + '\n\n' + describeActive(v))
    }
    case 'upload': {
      need(1, '<bundle.tar.gz> [--notes TEXT]')
      let bytes: Buffer
      try { bytes = await readFile(args[0]!) } catch (err) { throw new CliError(`cannot read ${args[0]!}: ${(err as Error).message}`) }
      const q = flags.notes ? `?notes=${enc(flags.notes)}` : ''
      const v = await callRaw(conn, 'POST', `/v1/policies${q}`, bytes) as { revision: string, sha256: string }
      return out(v, () => `uploaded ${v.revision} (sha256 ${v.sha256}); it decides nothing until shadow, canary or promote`)
    }
    case 'shadow': {
      need(1, '<revision>')
      const v = await call(conn, 'POST', `/v1/policies/${enc(args[0]!)}/shadow`, {}) as View
      return out(v, () => describeActive(v))
    }
    case 'canary': {
      need(1, '<revision> --tenants a,b')
      const tenants = (flags.tenants ?? '').split(',').map(s => s.trim()).filter(Boolean)
      if (tenants.length === 0) throw new CliError('--tenants a,b is required')
      const v = await call(conn, 'POST', `/v1/policies/${enc(args[0]!)}/canary`, { tenants }) as View
      return out(v, () => describeActive(v))
    }
    case 'promote': {
      need(1, '<revision>')
      const v = await call(conn, 'POST', `/v1/policies/${enc(args[0]!)}/promote`, {}) as View
      return out(v, () => describeActive(v))
    }
    case 'rollback': {
      need(0, '[--reason TEXT]')
      const v = await call(conn, 'POST', '/v1/policies/rollback', flags.reason ? { reason: flags.reason } : {}) as View
      return out(v, () => describeActive(v))
    }
    case 'diff': {
      need(1, '<revision>')
      const d = await call(conn, 'GET', `/v1/policies/${enc(args[0]!)}/diff`) as {
        revision: string, stable: string, compared: number, disagreements: number,
        counts: Array<Record<string, unknown>>, sample: Array<{ tenant: string, principal: string, action: string, topic?: string, stable: { allow: boolean, reason: string }, shadow: { allow: boolean, reason: string } }>
      }
      return out(d, () => [
        `shadow ${d.revision} vs stable ${d.stable}: ${d.disagreements} disagreement(s) in ${d.compared} distinct decision(s)`,
        table(d.counts, ['action', 'stable', 'shadow', 'count']),
        '',
        'sample:',
        table(d.sample.map(s => ({ identity: `${s.tenant}:${s.principal}`, action: s.action, topic: s.topic ?? '', stable: `${s.stable.allow ? 'allow' : 'deny'}/${s.stable.reason}`, shadow: `${s.shadow.allow ? 'allow' : 'deny'}/${s.shadow.reason}` })), ['identity', 'action', 'topic', 'stable', 'shadow'])
      ].join('\n'))
    }
    default:
      throw new CliError(`unknown command "uspgate policy ${action ?? ''}"\nusage:\n${POLICY_USAGE}`)
  }
}
