// `uspgate token ...`: admin tokens through the admin API (/v1/tokens). Needs an admin token that is
// not scoped to tenants. A new token is printed once; it cannot be shown again.
import { call, CliError, needArgs, table, type AdminCommand } from './cli-client.ts'

export const TOKEN_USAGE = `  uspgate token create <name> --role viewer|security|noc|admin [--tenants a,b]
  uspgate token list
  uspgate token revoke <id>`

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

export async function tokenCommand (cmd: AdminCommand): Promise<void> {
  const { conn, action, args, flags, out } = cmd
  const need = (n: number, what: string): void => { needArgs(cmd, 'token', n, what) }
  switch (action) {
    case 'create': {
      need(1, '<name> --role viewer|security|noc|admin [--tenants a,b]')
      if (!flags.role) throw new CliError('--role viewer|security|noc|admin is required')
      const tenants = flags.tenants === undefined ? undefined : flags.tenants.split(',').map(s => s.trim()).filter(Boolean)
      if (tenants !== undefined && tenants.length === 0) throw new CliError('--tenants needs at least one tenant id (leave it out for every tenant)')
      const t = await call(conn, 'POST', '/v1/tokens', { name: args[0], role: flags.role, ...(tenants !== undefined ? { tenants } : {}) }) as TokenView
      return out(t, () => [
        `token ${t.id} (${t.role}${t.tenants ? `, tenants ${t.tenants.join(',')}` : ', every tenant'}):`,
        `  ${t.token ?? ''}`,
        '(shown only this once; the gateway keeps only its hash)'
      ].join('\n'))
    }
    case 'list': {
      need(0, '')
      const r = await call(conn, 'GET', '/v1/tokens') as { tokens: TokenView[] }
      const rows = r.tokens.map(t => ({ ...t, tenants: t.tenants?.join(',') ?? '*', state: t.revoked ? `revoked ${t.revokedAt ?? ''}` : t.bootstrap ? 'bootstrap' : 'active' }))
      return out(r, () => table(rows, ['id', 'name', 'role', 'tenants', 'createdAt', 'state']))
    }
    case 'revoke': {
      need(1, '<id>')
      const t = await call(conn, 'DELETE', `/v1/tokens/${encodeURIComponent(args[0]!)}`) as TokenView
      return out(t, () => `revoked token ${t.id} (${t.name}); it is refused from now on`)
    }
    default:
      throw new CliError(`unknown command "uspgate token ${action ?? ''}"\nusage:\n${TOKEN_USAGE}`)
  }
}
