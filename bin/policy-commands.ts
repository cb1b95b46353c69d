// `uspgate policy ...`: versions, upload, shadow, canary, promote, rollback and diff, through the
// admin API (/v1/policies).
import { readFile, writeFile } from 'node:fs/promises'
import { call, callRaw, CliError, getBytes, table } from './cli-client.ts'
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

async function readJson (file: string): Promise<unknown> {
  let text: string
  try { text = await readFile(file, 'utf8') } catch (err) { throw new CliError(`cannot read ${file}: ${(err as Error).message}`) }
  try { return JSON.parse(text) } catch (err) { throw new CliError(`${file} is not JSON: ${(err as Error).message}`) }
}

interface HistoryEntry { time: string, action: string, actor: string, revision?: string, stable: string, tenants?: string[], reason?: string }

export const policyCommands: CommandSpec[] = [
  {
    name: 'policy history',
    options: { limit: { type: 'string', value: 'N', help: 'at most N entries (default 100)' } },
    summary: 'Who changed which revision decides, when and why (uploads, shadow, canary, promote, rollback, guard rollbacks, golden decisions).',
    run: async cmd => {
      const limit = cmd.str('limit')
      if (limit !== undefined && !/^\d{1,4}$/.test(limit)) throw new CliError(`--limit must be a whole number\n${cmd.usage}`)
      const r = await call(await cmd.conn(), 'GET', `/v1/policies/history${limit ? `?limit=${limit}` : ''}`) as { history: HistoryEntry[] }
      cmd.out(r, () => table(r.history.map(e => ({ ...e, revision: e.revision ?? '', tenants: e.tenants?.join(',') ?? '' })), ['time', 'action', 'revision', 'stable', 'actor', 'tenants', 'reason']))
    }
  },
  {
    name: 'policy get',
    options: {
      revision: { type: 'string', value: 'REV', help: 'a stored revision (default: the running stable one)' },
      out: { type: 'string', value: 'FILE', help: 'where to write the bundle.tar.gz (default: <revision>.tar.gz)', }
    },
    summary: 'Download a policy bundle (the running one by default).',
    run: async cmd => {
      const rev = cmd.str('revision')
      const bytes = await getBytes(await cmd.conn(), `/v1/policies/bundle${rev ? `?revision=${enc(rev)}` : ''}`)
      const revision = rev ?? (await call(await cmd.conn(), 'GET', '/v1/policies') as View).active.stable
      const file = cmd.str('out') ?? `${revision}.tar.gz`
      try { await writeFile(file, bytes, { flag: 'wx' }) } catch (err) { throw new CliError(`cannot write ${file}: ${(err as Error).message}`) }
      cmd.out({ revision, file, size: bytes.length }, () => `wrote ${file} (${bytes.length} bytes)`)
    }
  },
  {
    name: 'policy compare',
    args: ['<from-revision>', '<to-revision>'],
    summary: 'What changed between two stored revisions: Rego sources (unified diff) and data.json values.',
    run: async cmd => {
      const c = await call(await cmd.conn(), 'GET', `/v1/policies/compare?from=${enc(cmd.args[0]!)}&to=${enc(cmd.args[1]!)}`) as {
        sources: Array<{ path: string, status: string, diff: string }>, data: Array<{ path: string, before?: unknown, after?: unknown }>
      }
      cmd.out(c, () => [
        ...(c.sources.length === 0 ? ['Rego sources: identical'] : c.sources.map(s => s.diff.trimEnd())),
        c.data.length === 0 ? 'data.json: identical' : ['data.json:', ...c.data.map(d => `  ${d.path}: ${d.before === undefined ? '(absent)' : JSON.stringify(d.before)} → ${d.after === undefined ? '(absent)' : JSON.stringify(d.after)}`)].join('\n')
      ].join('\n'))
    }
  },
  {
    name: 'policy evaluate',
    args: ['<input.json>'],
    options: { revision: { type: 'string', value: 'REV', help: 'the revision to ask (default: stable)' } },
    summary: 'Dry run: what a revision decides for one policy input ({action, client, topic, qos, retain}); changes nothing.',
    run: async cmd => {
      const input = await readJson(cmd.args[0]!)
      const rev = cmd.str('revision')
      const d = await call(await cmd.conn(), 'POST', '/v1/policies/evaluate', { input, ...(rev ? { revision: rev } : {}) }) as { revision: string, allow: boolean, reason: string, error?: string }
      cmd.out(d, () => `${d.allow ? 'allow' : 'deny'} (${d.reason}) by ${d.revision}${d.error ? `: ${d.error}` : ''}`)
    }
  },
  {
    name: 'policy golden',
    options: {
      set: { type: 'string', value: 'FILE', help: 'replace the deployment\'s golden decisions with this JSON list (or {"golden": [...]})' },
      reset: { type: 'boolean', help: 'go back to the shipped golden decisions' },
      reason: { type: 'string', value: 'TEXT', help: 'why (kept in the policy history)' }
    },
    summary: 'The golden decisions every uploaded bundle must reproduce: show, replace (--set) or reset.',
    run: async cmd => {
      const file = cmd.str('set')
      if (file !== undefined && cmd.flags.reset === true) throw new CliError(`--set and --reset exclude each other\n${cmd.usage}`)
      const conn = await cmd.conn()
      let r: { source: string, golden: Array<{ name?: string, input: { action: string, client: { tenant: string, principal: string }, topic?: string }, expect: { allow: boolean, reason?: string } }> }
      if (file !== undefined) {
        const doc = await readJson(file) as unknown[] | { golden?: unknown[] }
        const golden = Array.isArray(doc) ? doc : doc.golden
        if (!Array.isArray(golden)) throw new CliError(`${file}: expected a list of golden cases or {"golden": [...]}`)
        const reason = cmd.str('reason')
        r = await call(conn, 'PUT', '/v1/policies/golden', { golden, ...(reason ? { reason } : {}) }) as typeof r
      } else if (cmd.flags.reset === true) {
        r = await call(conn, 'DELETE', '/v1/policies/golden') as typeof r
      } else {
        r = await call(conn, 'GET', '/v1/policies/golden') as typeof r
      }
      cmd.out(r, () => `${r.golden.length} ${r.source} golden decision(s)\n` + table(r.golden.map(c => ({
        name: c.name ?? '', action: c.input.action, identity: `${c.input.client.tenant}:${c.input.client.principal}`, topic: c.input.topic ?? '', expect: `${c.expect.allow ? 'allow' : 'deny'}${c.expect.reason ? `/${c.expect.reason}` : ''}`
      })), ['name', 'action', 'identity', 'topic', 'expect']))
    }
  },
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
