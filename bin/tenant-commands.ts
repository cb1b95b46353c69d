// `uspgate tenant ...` and `uspgate credential ...`: tenants (create, list, rename, USP settings,
// disable / enable) and password credentials, through the admin API.
import { call, CliError, table } from './cli-client.ts'
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
