// `uspgate tenant ...` and `uspgate credential ...`: tenants (create, list, rename, USP settings,
// disable / enable) and password credentials, through the admin API.
import { open, readFile, unlink } from 'node:fs/promises'
import { resolve } from 'node:path'
import { call, callRaw, CliError, table } from './cli-client.ts'
import type { CommandSpec, Invocation } from './cli-args.ts'

const enc = encodeURIComponent

type Tenant = { id: string, name: string, createdAt: string, disabled?: boolean, usp?: { inspection: string, audit: string } }

async function patchTenant (cmd: Invocation, body: Record<string, unknown>): Promise<Tenant> {
  return await call(await cmd.conn(), 'PATCH', `/v1/tenants/${enc(cmd.args[0]!)}`, body) as Tenant
}

function oneOf (cmd: Invocation, name: string, allowed: string[]): string | undefined {
  const v = cmd.str(name)
  if (v !== undefined && !allowed.includes(v)) throw new CliError(`--${name} must be one of ${allowed.join(', ')}\n${cmd.usage}`)
  return v
}

export const tenantCommands: CommandSpec[] = [
  {
    name: 'tenant add',
    args: ['<id>'],
    options: { name: { type: 'string', value: 'NAME', help: 'display name (default: the id)' } },
    summary: 'Create a tenant.',
    run: async cmd => {
      const name = cmd.str('name')
      const t = await call(await cmd.conn(), 'POST', '/v1/tenants', { id: cmd.args[0], ...(name ? { name } : {}) }) as Tenant
      cmd.out(t, () => `tenant ${t.id} created`)
    }
  },
  {
    name: 'tenant list',
    summary: 'Tenants (a tenant-scoped token sees its own).',
    run: async cmd => {
      const r = await call(await cmd.conn(), 'GET', '/v1/tenants') as { tenants: Tenant[] }
      cmd.out(r, () => table(r.tenants.map(t => ({ ...t, state: t.disabled === true ? 'disabled' : 'enabled' })), ['id', 'name', 'state', 'createdAt']))
    }
  },
  {
    name: 'tenant update',
    args: ['<id>'],
    options: {
      name: { type: 'string', value: 'NAME', help: 'new display name' },
      inspection: { type: 'string', value: 'enforce|observe|off', help: 'USP Record checks on inbox PUBLISHes' },
      audit: { type: 'string', value: 'envelope|message', help: 'USP audit depth (message decodes msg_id/msg_type)' }
    },
    summary: 'Change a tenant\'s name or USP settings.',
    run: async cmd => {
      const name = cmd.str('name')
      const inspection = oneOf(cmd, 'inspection', ['enforce', 'observe', 'off'])
      const audit = oneOf(cmd, 'audit', ['envelope', 'message'])
      const usp = { ...(inspection !== undefined ? { inspection } : {}), ...(audit !== undefined ? { audit } : {}) }
      const body = { ...(name !== undefined ? { name } : {}), ...(Object.keys(usp).length ? { usp } : {}) }
      if (Object.keys(body).length === 0) throw new CliError(`nothing to change: give --name, --inspection or --audit\n${cmd.usage}`)
      const t = await patchTenant(cmd, body)
      cmd.out(t, () => `tenant ${t.id} updated: name "${t.name}", inspection ${t.usp?.inspection ?? 'enforce'}, audit ${t.usp?.audit ?? 'envelope'}`)
    }
  },
  {
    name: 'tenant disable',
    args: ['<id>'],
    summary: 'Disconnect every session of the tenant and refuse its CONNECTs until "tenant enable" (on every node).',
    run: async cmd => {
      const t = await patchTenant(cmd, { disabled: true }) as Tenant & { disconnected?: number }
      cmd.out(t, () => `tenant ${t.id} disabled; ${String(t.disconnected ?? 0)} live session(s) disconnected, new CONNECTs are refused`)
    }
  },
  {
    name: 'tenant enable',
    args: ['<id>'],
    summary: 'Accept the tenant\'s CONNECTs again.',
    run: async cmd => {
      const t = await patchTenant(cmd, { disabled: false })
      cmd.out(t, () => `tenant ${t.id} enabled`)
    }
  }
]

export const credentialCommands: CommandSpec[] = [
  {
    name: 'credential issue',
    args: ['<tenant>', '<principal>'],
    options: { role: { type: 'string', value: 'agent|controller', help: 'the identity\'s role', required: true } },
    summary: 'Issue a password credential; the secret is printed once.',
    run: async cmd => {
      const c = await call(await cmd.conn(), 'POST', `/v1/tenants/${enc(cmd.args[0]!)}/credentials`, { principal: cmd.args[1], role: cmd.str('role') }) as Record<string, unknown>
      cmd.out(c, () => `username: ${String(c.username)}\nsecret:   ${String(c.secret)}\n(the secret is shown only this once; store it in the router now)`)
    }
  },
  {
    name: 'credential import',
    args: ['<tenant>', '<file>'],
    options: {
      out: { type: 'string', value: 'FILE', help: 'where the per-row results go, WITH the generated secrets (created mode 0600, never overwritten)', required: true }
    },
    summary: 'Import credentials in bulk from an NDJSON file (one {"principal","role"[,"secretHash"]} per line) or a JSON array; idempotent per principal.',
    run: async cmd => {
      const [tenant, file] = cmd.args as [string, string]
      const out = resolve(cmd.str('out')!)
      let text: string
      try { text = await readFile(file, 'utf8') } catch (err) { throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`) }
      // results hold secrets: the file is created before the import, so a result can never be lost
      let fh
      try { fh = await open(out, 'wx', 0o600) } catch (err) { throw new CliError(`cannot create ${out}: ${(err as NodeJS.ErrnoException).code ?? String(err)} (it must not exist yet)`) }
      try {
        const json = text.trimStart().startsWith('[')
        const conn = await cmd.conn()
        const path = `/v1/tenants/${enc(tenant)}/credentials:import`
        let rows: unknown
        if (json) { try { rows = JSON.parse(text) } catch { throw new CliError(`${file} starts like a JSON array but is not valid JSON`) } }
        const r = (json ? await call(conn, 'POST', path, rows) : await callRaw(conn, 'POST', path, Buffer.from(text), 'application/x-ndjson')) as { total: number, success: number, skipped: number, failed: number, results: Array<Record<string, unknown>> }
        await fh.writeFile(r.results.map(x => JSON.stringify(x)).join('\n') + '\n')
        await fh.sync()
        const { results: _results, ...summary } = r
        cmd.out({ ...summary, results: out }, () => [
          `${r.total} rows: ${r.success} created, ${r.skipped} skipped, ${r.failed} failed`,
          `results (with the generated secrets, shown only this once): ${out} (mode 0600)`,
          ...r.results.filter(x => x.status === 'failed').slice(0, 20).map(x => `  row ${String(x.row)}: ${String(x.reason)}`)
        ].join('\n'))
      } catch (err) {
        await fh.close()
        await unlink(out).catch(() => {}) // nothing was imported: no empty results file left behind
        throw err
      }
      await fh.close()
    }
  },
  {
    name: 'credential list',
    args: ['<tenant>'],
    summary: 'Credentials of a tenant (never their secrets).',
    run: async cmd => {
      const r = await call(await cmd.conn(), 'GET', `/v1/tenants/${enc(cmd.args[0]!)}/credentials`) as { credentials: Array<Record<string, unknown>> }
      cmd.out(r, () => table(r.credentials, ['username', 'role', 'createdAt', 'revoked', 'revokedAt']))
    }
  },
  {
    name: 'credential revoke',
    args: ['<tenant>', '<principal>'],
    summary: 'Revoke a credential and disconnect its live sessions.',
    run: async cmd => {
      const r = await call(await cmd.conn(), 'DELETE', `/v1/tenants/${enc(cmd.args[0]!)}/credentials/${enc(cmd.args[1]!)}`) as Record<string, unknown>
      cmd.out(r, () => `revoked ${String(r.username)}; ${String(r.disconnected)} live session(s) disconnected`)
    }
  }
]
