// `uspgate policy ...`: versions, upload, shadow, canary, promote, rollback and diff, through the
// admin API (/v1/policies).
import { readFile } from 'node:fs/promises'
import { call, callRaw, CliError, table } from './cli-client.ts'
import { listFlag, type CommandSpec } from './cli-args.ts'

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

const enc = encodeURIComponent

export const policyCommands: CommandSpec[] = [
  {
    name: 'policy list',
    summary: 'Stored policy versions and which one decides (stable, canary, shadow).',
    run: async cmd => {
      const v = await call(await cmd.conn(), 'GET', '/v1/policies') as View
      const a = v.active
      const rows = v.versions.map(x => ({
        ...x,
        active: [x.revision === a.stable ? 'stable' : '', x.revision === a.canary?.revision ? 'canary' : '', x.revision === a.shadow ? 'shadow' : ''].filter(Boolean).join(',')
      }))
      cmd.out(v, () => table(rows, ['revision', 'active', 'uploadedAt', 'uploadedBy', 'size', 'notes']) + '\n\n' + describeActive(v))
    }
  },
  {
    name: 'policy upload',
    args: ['<bundle.tar.gz>'],
    options: { notes: { type: 'string', value: 'TEXT', help: 'what changed' } },
    summary: 'Upload a policy bundle; it decides nothing until shadow, canary or promote.',
    run: async cmd => {
      let bytes: Buffer
      try { bytes = await readFile(cmd.args[0]!) } catch (err) { throw new CliError(`cannot read ${cmd.args[0]!}: ${(err as Error).message}`) }
      const notes = cmd.str('notes')
      const v = await callRaw(await cmd.conn(), 'POST', `/v1/policies${notes ? `?notes=${enc(notes)}` : ''}`, bytes) as { revision: string, sha256: string }
      cmd.out(v, () => `uploaded ${v.revision} (sha256 ${v.sha256}); it decides nothing until shadow, canary or promote`)
    }
  },
  {
    name: 'policy shadow',
    args: ['<revision>'],
    summary: 'Evaluate a revision beside the stable one without letting it decide.',
    run: async cmd => {
      const v = await call(await cmd.conn(), 'POST', `/v1/policies/${enc(cmd.args[0]!)}/shadow`, {}) as View
      cmd.out(v, () => describeActive(v))
    }
  },
  {
    name: 'policy canary',
    args: ['<revision>'],
    options: { tenants: { type: 'string', value: 'a,b', help: 'the tenants the canary decides for', required: true } },
    summary: 'Let a revision decide for some tenants.',
    run: async cmd => {
      const v = await call(await cmd.conn(), 'POST', `/v1/policies/${enc(cmd.args[0]!)}/canary`, { tenants: listFlag(cmd, 'tenants') }) as View
      cmd.out(v, () => describeActive(v))
    }
  },
  {
    name: 'policy promote',
    args: ['<revision>'],
    summary: 'Make a revision the stable one for every tenant.',
    run: async cmd => {
      const v = await call(await cmd.conn(), 'POST', `/v1/policies/${enc(cmd.args[0]!)}/promote`, {}) as View
      cmd.out(v, () => describeActive(v))
    }
  },
  {
    name: 'policy rollback',
    options: { reason: { type: 'string', value: 'TEXT', help: 'why (kept in the policy history)' } },
    summary: 'Go back to the previous stable revision.',
    run: async cmd => {
      const reason = cmd.str('reason')
      const v = await call(await cmd.conn(), 'POST', '/v1/policies/rollback', reason ? { reason } : {}) as View
      cmd.out(v, () => describeActive(v))
    }
  },
  {
    name: 'policy diff',
    args: ['<revision>'],
    summary: 'Decisions where the shadow revision disagrees with the stable one.',
    run: async cmd => {
      const d = await call(await cmd.conn(), 'GET', `/v1/policies/${enc(cmd.args[0]!)}/diff`) as {
        revision: string, stable: string, compared: number, disagreements: number,
        counts: Array<Record<string, unknown>>, sample: Array<{ tenant: string, principal: string, action: string, topic?: string, stable: { allow: boolean, reason: string }, shadow: { allow: boolean, reason: string } }>
      }
      cmd.out(d, () => [
        `shadow ${d.revision} vs stable ${d.stable}: ${d.disagreements} disagreement(s) in ${d.compared} distinct decision(s)`,
        table(d.counts, ['action', 'stable', 'shadow', 'count']),
        '',
        'sample:',
        table(d.sample.map(s => ({ identity: `${s.tenant}:${s.principal}`, action: s.action, topic: s.topic ?? '', stable: `${s.stable.allow ? 'allow' : 'deny'}/${s.stable.reason}`, shadow: `${s.shadow.allow ? 'allow' : 'deny'}/${s.shadow.reason}` })), ['identity', 'action', 'topic', 'stable', 'shadow'])
      ].join('\n'))
    }
  }
]
