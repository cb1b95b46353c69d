// `uspgate cert ...`: device certificates, tenant CAs, CA trust and
// revocation, through the admin API of a running gateway (like the other
// admin commands). A private key is shown once: printed as JSON, or written
// to a 0600 file with --out.
import { chmod, mkdir, open, readFile, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { call, CliError, getText, resolveAdmin, table } from './cli-client.ts'

export const CERT_USAGE = `  uspgate cert issue <tenant> <principal> --role agent|controller [--valid-days N] [--out DIR]
  uspgate cert list <tenant>
  uspgate cert revoke <tenant> <serial> [--reason keyCompromise|superseded|...]
  uspgate cert ca <tenant>                      (issuing CA + root, PEM)
  uspgate cert crl <tenant>                     (the tenant CA's CRL, PEM)
  uspgate cert import-ca <tenant> <pem-file>    (trust a vendor CA for this tenant)
  uspgate cert revoke-ca <tenant> [--reason R]  (refuse every certificate of the tenant's issuing CA)
  uspgate cert trust-bundle [--scope server|clients]`

/** A principal (USP Endpoint ID, e.g. os::00256D-0001) as a file name. */
function fileBase (principal: string): string {
  return principal.replace(/[^A-Za-z0-9._-]/g, '_')
}

async function exists (path: string): Promise<boolean> {
  try { await stat(path); return true } catch { return false }
}

/** Creates the file (never overwrites) with mode 0600. */
async function writePrivate (path: string, text: string): Promise<void> {
  const fh = await open(path, 'wx', 0o600)
  try {
    await fh.writeFile(text)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await chmod(path, 0o600) // whatever the umask
}

export async function certCommand (action: string | undefined, args: string[], flags: Record<string, string>, json: boolean): Promise<void> {
  const conn = await resolveAdmin({ adminUrl: flags['admin-url'], token: flags.token, dataDir: flags['data-dir'] })
  const need = (n: number, what: string): void => { if (args.length !== n) throw new CliError(`usage: uspgate cert ${action ?? ''} ${what}`) }
  const out = (value: unknown, human: () => string): void => { process.stdout.write((json ? JSON.stringify(value, null, 2) : human()) + '\n') }
  const enc = encodeURIComponent
  switch (action) {
    case 'issue': {
      need(2, '<tenant> <principal> --role agent|controller [--valid-days N] [--out DIR]')
      if (!flags.role) throw new CliError('--role agent|controller is required')
      let validDays: number | undefined
      if (flags['valid-days'] !== undefined) {
        if (!/^\d{1,5}$/.test(flags['valid-days'])) throw new CliError('--valid-days must be a whole number of days')
        validDays = Number(flags['valid-days'])
      }
      const [tenant, principal] = args as [string, string]
      let files: { cert: string, key: string, chain: string } | undefined
      if (flags.out !== undefined) {
        const dir = resolve(flags.out)
        const base = fileBase(principal)
        files = { cert: join(dir, `${base}.crt.pem`), key: join(dir, `${base}.key.pem`), chain: join(dir, `${base}.chain.pem`) }
        // Checked before issuing: a key that cannot be written would be lost.
        for (const f of Object.values(files)) if (await exists(f)) throw new CliError(`${f} already exists; not overwriting (choose another --out)`)
        await mkdir(dir, { recursive: true, mode: 0o700 })
      }
      const issued = await call(conn, 'POST', `/v1/tenants/${enc(tenant)}/certificates`, {
        principal, role: flags.role, ...(validDays !== undefined ? { validDays } : {})
      }) as { username: string, serial: string, notAfter: string, certPem: string, keyPem: string, chainPem: string }
      if (files === undefined) {
        // No files: the one place the key appears is this output.
        process.stdout.write(JSON.stringify(issued, null, 2) + '\n')
        return
      }
      await writePrivate(files.key, issued.keyPem)
      await writePrivate(files.cert, issued.certPem)
      await writePrivate(files.chain, issued.chainPem)
      const { keyPem: _key, certPem: _cert, chainPem: _chain, ...summary } = issued
      return out({ ...summary, files }, () => [
        `certificate ${issued.serial} for ${issued.username}, valid until ${issued.notAfter}`,
        `  certificate: ${files.cert}`,
        `  private key: ${files.key} (mode 0600; not stored by the gateway)`,
        `  CA chain:    ${files.chain}`
      ].join('\n'))
    }
    case 'list': {
      need(1, '<tenant>')
      const r = await call(conn, 'GET', `/v1/tenants/${enc(args[0]!)}/certificates`) as { certificates: Array<Record<string, unknown>> }
      return out(r, () => table(r.certificates, ['serial', 'principal', 'role', 'notAfter', 'revoked', 'revokedAt']))
    }
    case 'revoke': {
      need(2, '<tenant> <serial> [--reason R]')
      const q = flags.reason !== undefined ? `?reason=${enc(flags.reason)}` : ''
      const r = await call(conn, 'DELETE', `/v1/tenants/${enc(args[0]!)}/certificates/${enc(args[1]!)}${q}`) as Record<string, unknown>
      return out(r, () => `revoked certificate ${String(r.serial)} of tenant ${String(r.tenant)} (${String(r.reason)}); ${String(r.disconnected)} live session(s) disconnected`)
    }
    case 'ca': {
      need(1, '<tenant>')
      process.stdout.write(await getText(conn, `/v1/tenants/${enc(args[0]!)}/ca`))
      return
    }
    case 'crl': {
      need(1, '<tenant>')
      process.stdout.write(await getText(conn, `/v1/tenants/${enc(args[0]!)}/crl`))
      return
    }
    case 'import-ca': {
      need(2, '<tenant> <pem-file>')
      let pem: string
      try { pem = await readFile(args[1]!, 'utf8') } catch (err) { throw new CliError(`cannot read ${args[1]!}: ${(err as Error).message}`) }
      const r = await call(conn, 'POST', `/v1/tenants/${enc(args[0]!)}/ca/import`, { pem }) as Record<string, unknown>
      return out(r, () => `tenant ${String(r.tenant)} now trusts CA "${String(r.subject)}" (SHA-256 ${String(r.fingerprint)}, valid until ${String(r.notAfter)})`)
    }
    case 'revoke-ca': {
      need(1, '<tenant> [--reason R]')
      const r = await call(conn, 'POST', `/v1/tenants/${enc(args[0]!)}/ca/revoke`, flags.reason !== undefined ? { reason: flags.reason } : {}) as Record<string, unknown>
      return out(r, () => `revoked the issuing CA ${String(r.serial)} of tenant ${String(r.tenant)}; ${String(r.disconnected)} live session(s) disconnected (the next "cert issue" creates a new CA)`)
    }
    case 'trust-bundle': {
      need(0, '[--scope server|clients]')
      const scope = flags.scope ?? 'server'
      if (scope !== 'server' && scope !== 'clients') throw new CliError('--scope must be server or clients')
      process.stdout.write(await getText(conn, `/v1/ca?scope=${scope}`))
      return
    }
    default:
      throw new CliError(`unknown command "uspgate cert ${action ?? ''}"\nusage:\n${CERT_USAGE}`)
  }
}
