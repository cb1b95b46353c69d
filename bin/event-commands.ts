// `uspgate events`, `uspgate sessions`, `uspgate endpoints`: what the gateway saw, through the admin
// API. `events --follow` keeps polling and prints new events as they arrive (like tail -f).
import { setTimeout as sleep } from 'node:timers/promises'
import { call, CliError, table, type Admin } from './cli-client.ts'
import { listFlag, type CommandSpec, type Invocation } from './cli-args.ts'

interface Event { id: string, time: string, code: string, severity: string, node: string, [k: string]: unknown }
type Page = { events: Event[], next?: string }

const enc = encodeURIComponent
const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** An ISO time, or a duration before now (`15m`, `2h`, `7d`). */
function time (cmd: Invocation, name: string): string | undefined {
  const raw = cmd.str(name)
  if (raw === undefined) return undefined
  const rel = /^(\d{1,6})([smhd])$/.exec(raw)
  if (rel) return new Date(Date.now() - Number(rel[1]) * UNITS[rel[2]!]!).toISOString()
  const t = Date.parse(raw)
  if (Number.isNaN(t) || !/^\d{4}-\d{2}-\d{2}/.test(raw)) throw new CliError(`--${name} must be an ISO time (2026-01-31T12:00:00Z) or a duration before now (15m, 2h, 7d)\n${cmd.usage}`)
  return new Date(t).toISOString()
}

function line (e: Event): string {
  const extra = ['tenant', 'targetTenant', 'principal', 'clientId', 'remoteAddress', 'action', 'topic', 'actor', 'target', 'reason']
    .filter(k => e[k] !== undefined).map(k => `${k}=${JSON.stringify(e[k])}`)
  return [e.time, e.severity.padEnd(8), e.code, ...extra].join(' ')
}

/** Every page of the query (oldest events last), up to `max` events. */
async function fetchAll (conn: Admin, query: URLSearchParams, max: number): Promise<Event[]> {
  const out: Event[] = []
  let cursor: string | undefined
  do {
    const q = new URLSearchParams(query)
    q.set('limit', String(Math.min(1000, max - out.length)))
    if (cursor !== undefined) q.set('cursor', cursor)
    const page = await call(conn, 'GET', `/v1/security-events?${q.toString()}`) as Page
    out.push(...page.events)
    cursor = page.next
  } while (cursor !== undefined && out.length < max)
  return out
}

async function follow (cmd: Invocation, conn: Admin, query: URLSearchParams, first: Event[]): Promise<void> {
  const print = (e: Event): void => { process.stdout.write((cmd.json ? JSON.stringify(e) : line(e)) + '\n') }
  for (const e of [...first].reverse()) print(e)
  // events of the newest printed millisecond, so a poll from that time does not print them twice
  let since = first[0]?.time ?? new Date().toISOString()
  let seen = new Set(first.filter(e => e.time === since).map(e => e.id))
  let stop = false
  const quit = (): void => { stop = true }
  process.once('SIGINT', quit)
  process.once('SIGTERM', quit)
  while (!stop) {
    await sleep(1000)
    const q = new URLSearchParams(query)
    q.set('since', since)
    const fresh = (await fetchAll(conn, q, 100_000)).filter(e => !seen.has(e.id)).reverse()
    for (const e of fresh) print(e)
    if (fresh.length > 0) {
      const newest = fresh[fresh.length - 1]!.time
      if (newest !== since) seen = new Set()
      since = newest
      for (const e of fresh) if (e.time === since) seen.add(e.id)
    }
  }
}

export const eventCommands: CommandSpec[] = [
  {
    name: 'events',
    options: {
      tenant: { type: 'string', value: 'ID', help: 'one tenant\'s events (and cross-tenant attempts aimed at it)' },
      principal: { type: 'string', value: 'P', help: 'one principal\'s events' },
      code: { type: 'string', value: 'a,b', help: 'these codes; "auth." matches every auth.* code' },
      severity: { type: 'string', value: 'a,b', help: 'these severities (info, warning, critical)' },
      'min-severity': { type: 'string', value: 'info|warning|critical', help: 'this severity or higher' },
      since: { type: 'string', value: 'TIME', help: 'at or after: ISO time or a duration before now (15m, 2h, 7d)' },
      until: { type: 'string', value: 'TIME', help: 'before: ISO time or a duration before now' },
      actor: { type: 'string', value: 'TOKEN-ID', help: 'admin actions of this token' },
      action: { type: 'string', value: 'A', help: 'this action ("tenant." matches every tenant.* action)' },
      limit: { type: 'string', value: 'N', help: 'at most N events, newest (default 100; above 1000 pages through the API)' },
      follow: { type: 'boolean', help: 'keep printing new events as they arrive (Ctrl-C stops)' }
    },
    summary: 'Security events and the admin audit trail, oldest first.',
    run: async cmd => {
      const query = new URLSearchParams()
      const tenant = cmd.str('tenant')
      if (tenant !== undefined) query.set('tenant', tenant)
      const codes = listFlag(cmd, 'code')
      if (codes !== undefined) query.set('code', codes.join(','))
      const levels = ['info', 'warning', 'critical']
      const severities = listFlag(cmd, 'severity')
      if (severities?.some(s => !levels.includes(s)) === true) throw new CliError(`--severity takes info, warning and critical\n${cmd.usage}`)
      if (severities !== undefined) query.set('severity', severities.join(','))
      const min = cmd.str('min-severity')
      if (min !== undefined && !levels.includes(min)) throw new CliError(`--min-severity must be info, warning or critical\n${cmd.usage}`)
      if (min !== undefined) query.set('minSeverity', min)
      for (const k of ['since', 'until'] as const) { const t = time(cmd, k); if (t !== undefined) query.set(k, t) }
      for (const k of ['actor', 'action', 'principal'] as const) { const v = cmd.str(k); if (v !== undefined) query.set(k, v) }
      const rawLimit = cmd.str('limit') ?? '100'
      if (!/^\d{1,7}$/.test(rawLimit) || Number(rawLimit) < 1) throw new CliError(`--limit must be a whole number of at least 1\n${cmd.usage}`)
      if (cmd.flags.follow === true && query.has('until')) throw new CliError(`--follow and --until exclude each other\n${cmd.usage}`)
      const conn = await cmd.conn()
      const events = await fetchAll(conn, query, Number(rawLimit))
      if (cmd.flags.follow === true) return await follow(cmd, conn, query, events)
      cmd.out({ events }, () => events.length === 0 ? '(none)' : [...events].reverse().map(line).join('\n'))
    }
  },
  {
    name: 'sessions',
    options: { tenant: { type: 'string', value: 'ID', help: 'one tenant\'s sessions' } },
    summary: 'Live MQTT sessions on the node the admin API belongs to.',
    run: async cmd => {
      const tenant = cmd.str('tenant')
      const r = await call(await cmd.conn(), 'GET', `/v1/sessions${tenant !== undefined ? `?tenant=${enc(tenant)}` : ''}`) as { sessions: Array<Record<string, unknown>> }
      cmd.out(r, () => table(r.sessions, ['tenant', 'principal', 'role', 'clientId', 'protocol', 'listener', 'auth', 'remoteAddress', 'connectedAt']))
    }
  },
  {
    name: 'endpoints',
    args: ['<tenant>', '[endpoint-id]'],
    summary: 'USP endpoints seen for a tenant (one, with its endpoint id).',
    run: async cmd => {
      const [tenant, id] = cmd.args as [string, string | undefined]
      const conn = await cmd.conn()
      if (id !== undefined) {
        const e = await call(conn, 'GET', `/v1/tenants/${enc(tenant)}/endpoints/${enc(id)}`) as Record<string, unknown>
        cmd.out(e, () => Object.entries(e).map(([k, v]) => `${k.padEnd(16)} ${String(v)}`).join('\n'))
        return
      }
      const r = await call(conn, 'GET', `/v1/tenants/${enc(tenant)}/endpoints`) as { endpoints: Array<Record<string, unknown>> }
      cmd.out(r, () => table(r.endpoints, ['endpointId', 'role', 'online', 'mqttVersion', 'firstContact', 'lastSeen', 'node']))
    }
  }
]
