// `uspgate token ...`: admin tokens through the admin API (/v1/tokens). Needs an admin token that is
// not scoped to tenants. A new token is printed once; it cannot be shown again.
import { call, table } from './cli-client.ts'
import { listFlag, type CommandSpec } from './cli-args.ts'

interface TokenView {
  id: string
  name: string
  role: string
  tenants?: string[]
  createdAt: string
  revoked: boolean
  revokedAt?: string
  bootstrap: boolean
  token?: string
}

export const tokenCommands: CommandSpec[] = [
  {
    name: 'token create',
    args: ['<name>'],
    options: {
      role: { type: 'string', value: 'viewer|security|noc|admin', help: 'what the token may do', required: true },
      tenants: { type: 'string', value: 'a,b', help: 'limit the token to these tenants (default: every tenant)' }
    },
    summary: 'Create an admin token; it is printed once (the gateway keeps only its hash).',
    run: async cmd => {
      const tenants = listFlag(cmd, 'tenants')
      const t = await call(await cmd.conn(), 'POST', '/v1/tokens', { name: cmd.args[0], role: cmd.str('role'), ...(tenants !== undefined ? { tenants } : {}) }) as TokenView
      cmd.out(t, () => [
        `token ${t.id} (${t.role}${t.tenants ? `, tenants ${t.tenants.join(',')}` : ', every tenant'}):`,
        `  ${t.token ?? ''}`,
        '(shown only this once; the gateway keeps only its hash)'
      ].join('\n'))
    }
  },
  {
    name: 'token list',
    summary: 'Admin tokens (never their secrets).',
    run: async cmd => {
      const r = await call(await cmd.conn(), 'GET', '/v1/tokens') as { tokens: TokenView[] }
      const rows = r.tokens.map(t => ({ ...t, tenants: t.tenants?.join(',') ?? '*', state: t.revoked ? `revoked ${t.revokedAt ?? ''}` : t.bootstrap ? 'bootstrap' : 'active' }))
      cmd.out(r, () => table(rows, ['id', 'name', 'role', 'tenants', 'createdAt', 'state']))
    }
  },
  {
    name: 'token revoke',
    args: ['<id>'],
    summary: 'Revoke an admin token; it is refused from then on.',
    run: async cmd => {
      const t = await call(await cmd.conn(), 'DELETE', `/v1/tokens/${encodeURIComponent(cmd.args[0]!)}`) as TokenView
      cmd.out(t, () => `revoked token ${t.id} (${t.name}); it is refused from now on`)
    }
  }
]
