// `uspgate cert ...`: device certificates, tenant CAs, CA trust and revocation, through the admin API
// of a running gateway. A private key leaves the gateway once: into a 0600 file (--out DIR, default the
// current directory), or to stdout only when --stdout asks for it.
import { chmod, mkdir, open, readFile, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { call, CliError, getText, table } from './cli-client.ts'
import type { CommandSpec } from './cli-args.ts'

/** A principal (USP Endpoint ID, e.g. os::00256D-0001) as a file name. */
function fileBase (principal: string): string {
  return principal.replace(/[^A-Za-z0-9._-]/g, '_')
}

async function exists (path: string): Promise<boolean> {
  try { await stat(path); return true } catch { return false }
}

/** Creates the file (never overwrites) with mode 0600. */
async function writePrivate (path: string, text: string | Buffer): Promise<void> {
  const fh = await open(path, 'wx', 0o600)
  try {
    await fh.writeFile(text)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await chmod(path, 0o600) // whatever the umask
}

const enc = encodeURIComponent

export const certCommands: CommandSpec[] = [
  {
    name: 'cert issue',
    args: ['<tenant>', '<principal>'],
    options: {
      role: { type: 'string', value: 'agent|controller', help: 'the identity\'s role', required: true },
      'valid-days': { type: 'string', value: 'N', help: 'validity in days (default: the gateway\'s)' },
      out: { type: 'string', value: 'DIR', help: 'directory for <principal>.key.pem, .crt.pem, .chain.pem, mode 0600 (default: current directory)' },
      stdout: { type: 'boolean', help: 'print certificate AND private key as JSON instead of writing files' },
      'p12-password-file': { type: 'string', value: 'FILE', help: 'also write <principal>.p12 (certificate + key + chain, PKCS#12) protected by the password in FILE (at least 8 characters)' }
    },
    summary: 'Issue a device certificate and key. The key is not kept by the gateway: it is written once, to a 0600 file.',
    run: async cmd => {
      const [tenant, principal] = cmd.args as [string, string]
      const days = cmd.str('valid-days')
      if (days !== undefined && !/^\d{1,5}$/.test(days)) throw new CliError(`--valid-days must be a whole number of days\n${cmd.usage}`)
      if (cmd.flags.stdout === true && cmd.str('out') !== undefined) throw new CliError(`--out and --stdout exclude each other\n${cmd.usage}`)
      // the password comes from a file, never from argv (which other users can read in ps)
      const pwFile = cmd.str('p12-password-file')
      let p12Password: string | undefined
      if (pwFile !== undefined) {
        if (cmd.flags.stdout === true) throw new CliError(`--p12-password-file writes a .p12 file; it does not go with --stdout\n${cmd.usage}`)
        try { p12Password = (await readFile(pwFile, 'utf8')).replace(/\r?\n$/, '') } catch (err) { throw new CliError(`cannot read ${pwFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`) }
        if (p12Password.length < 8) throw new CliError(`the PKCS#12 password in ${pwFile} must be at least 8 characters`)
      }
      let files: { cert: string, key: string, chain: string, p12?: string } | undefined
      if (cmd.flags.stdout !== true) {
        const dir = resolve(cmd.str('out') ?? '.')
        const base = fileBase(principal)
        files = { cert: join(dir, `${base}.crt.pem`), key: join(dir, `${base}.key.pem`), chain: join(dir, `${base}.chain.pem`), ...(p12Password !== undefined ? { p12: join(dir, `${base}.p12`) } : {}) }
        // Checked before issuing: a key that cannot be written would be lost.
        for (const f of Object.values(files)) if (await exists(f)) throw new CliError(`${f} already exists; not overwriting (choose another --out)`)
        await mkdir(dir, { recursive: true, mode: 0o700 })
      }
      const conn = await cmd.conn()
      const issued = await call(conn, 'POST', `/v1/tenants/${enc(tenant)}/certificates`, {
        principal, role: cmd.str('role'), ...(days !== undefined ? { validDays: Number(days) } : {}), ...(p12Password !== undefined ? { p12Password } : {})
      }) as { username: string, serial: string, notAfter: string, certPem: string, keyPem: string, chainPem: string, p12?: string }
      if (files === undefined) {
        // --stdout: the one place the key appears is this output.
        process.stdout.write(JSON.stringify(issued, null, 2) + '\n')
        return
      }
      await writePrivate(files.key, issued.keyPem)
      await writePrivate(files.cert, issued.certPem)
      await writePrivate(files.chain, issued.chainPem)
      if (files.p12 !== undefined && issued.p12 !== undefined) await writePrivate(files.p12, Buffer.from(issued.p12, 'base64'))
      const { keyPem: _key, certPem: _cert, chainPem: _chain, p12: _p12, ...summary } = issued
      const f = files
      cmd.out({ ...summary, files }, () => [
        `certificate ${issued.serial} for ${issued.username}, valid until ${issued.notAfter}`,
        `  certificate: ${f.cert}`,
        `  private key: ${f.key} (mode 0600; not stored by the gateway)`,
        `  CA chain:    ${f.chain}`,
        ...(f.p12 !== undefined ? [`  PKCS#12:     ${f.p12} (mode 0600, password from the file given)`] : [])
      ].join('\n'))
    }
  },
  {
    name: 'cert sign-csr',
    args: ['<tenant>', '<principal>'],
    options: {
      role: { type: 'string', value: 'agent|controller', help: 'the identity\'s role', required: true },
      csr: { type: 'string', value: 'FILE', help: 'the device\'s PKCS#10 request (PEM); the device keeps its key', required: true },
      'valid-days': { type: 'string', value: 'N', help: 'validity in days (default: the gateway\'s)' },
      out: { type: 'string', value: 'DIR', help: 'directory for <principal>.crt.pem and .chain.pem (default: current directory)' }
    },
    summary: 'Certify the public key of a device\'s CSR (the factory keeps the key); same identity rules as cert issue.',
    run: async cmd => {
      const [tenant, principal] = cmd.args as [string, string]
      const days = cmd.str('valid-days')
      if (days !== undefined && !/^\d{1,5}$/.test(days)) throw new CliError(`--valid-days must be a whole number of days\n${cmd.usage}`)
      const csrFile = cmd.str('csr')!
      let csr: string
      try { csr = await readFile(csrFile, 'utf8') } catch (err) { throw new CliError(`cannot read ${csrFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`) }
      const dir = resolve(cmd.str('out') ?? '.')
      const base = fileBase(principal)
      const files = { cert: join(dir, `${base}.crt.pem`), chain: join(dir, `${base}.chain.pem`) }
      for (const f of Object.values(files)) if (await exists(f)) throw new CliError(`${f} already exists; not overwriting (choose another --out)`)
      const signed = await call(await cmd.conn(), 'POST', `/v1/tenants/${enc(tenant)}/certificates/csr`, {
        principal, role: cmd.str('role'), csr, ...(days !== undefined ? { validDays: Number(days) } : {})
      }) as { username: string, serial: string, notAfter: string, certPem: string, chainPem: string, crlUrl?: string }
      await mkdir(dir, { recursive: true, mode: 0o700 })
      await writePrivate(files.cert, signed.certPem)
      await writePrivate(files.chain, signed.chainPem)
      const { certPem: _cert, chainPem: _chain, ...summary } = signed
      cmd.out({ ...summary, files }, () => [
        `certificate ${signed.serial} for ${signed.username}, valid until ${signed.notAfter}${signed.crlUrl ? `, CRL ${signed.crlUrl}` : ''}`,
        `  certificate: ${files.cert}`,
        `  CA chain:    ${files.chain}`
      ].join('\n'))
    }
  },
  {
    name: 'cert list',
    args: ['<tenant>'],
    summary: 'Certificates issued to a tenant\'s devices.',
    run: async cmd => {
      const r = await call(await cmd.conn(), 'GET', `/v1/tenants/${enc(cmd.args[0]!)}/certificates`) as { certificates: Array<Record<string, unknown>> }
      cmd.out(r, () => table(r.certificates, ['serial', 'principal', 'role', 'notAfter', 'revoked', 'revokedAt']))
    }
  },
  {
    name: 'cert revoke',
    args: ['<tenant>', '<serial>'],
    options: { reason: { type: 'string', value: 'keyCompromise|superseded|...', help: 'CRL reason' } },
    summary: 'Revoke a device certificate and disconnect its live sessions.',
    run: async cmd => {
      const reason = cmd.str('reason')
      const q = reason !== undefined ? `?reason=${enc(reason)}` : ''
      const r = await call(await cmd.conn(), 'DELETE', `/v1/tenants/${enc(cmd.args[0]!)}/certificates/${enc(cmd.args[1]!)}${q}`) as Record<string, unknown>
      cmd.out(r, () => `revoked certificate ${String(r.serial)} of tenant ${String(r.tenant)} (${String(r.reason)}); ${String(r.disconnected)} live session(s) disconnected`)
    }
  },
  {
    name: 'cert ca',
    args: ['<tenant>'],
    summary: 'The tenant\'s issuing CA and the root, PEM.',
    run: async cmd => { process.stdout.write(await getText(await cmd.conn(), `/v1/tenants/${enc(cmd.args[0]!)}/ca`)) }
  },
  {
    name: 'cert crl',
    args: ['<tenant>'],
    summary: 'The tenant CA\'s CRL, PEM.',
    run: async cmd => { process.stdout.write(await getText(await cmd.conn(), `/v1/tenants/${enc(cmd.args[0]!)}/crl`)) }
  },
  {
    name: 'cert import-ca',
    args: ['<tenant>', '<pem-file>'],
    summary: 'Trust a vendor CA for this tenant.',
    run: async cmd => {
      let pem: string
      try { pem = await readFile(cmd.args[1]!, 'utf8') } catch (err) { throw new CliError(`cannot read ${cmd.args[1]!}: ${(err as Error).message}`) }
      const r = await call(await cmd.conn(), 'POST', `/v1/tenants/${enc(cmd.args[0]!)}/ca/import`, { pem }) as Record<string, unknown>
      cmd.out(r, () => `tenant ${String(r.tenant)} now trusts CA "${String(r.subject)}" (SHA-256 ${String(r.fingerprint)}, valid until ${String(r.notAfter)})`)
    }
  },
  {
    name: 'cert revoke-ca',
    args: ['<tenant>'],
    options: { reason: { type: 'string', value: 'R', help: 'CRL reason' } },
    summary: 'Refuse every certificate of the tenant\'s issuing CA (the next "cert issue" creates a new CA).',
    run: async cmd => {
      const reason = cmd.str('reason')
      const r = await call(await cmd.conn(), 'POST', `/v1/tenants/${enc(cmd.args[0]!)}/ca/revoke`, reason !== undefined ? { reason } : {}) as Record<string, unknown>
      cmd.out(r, () => `revoked the issuing CA ${String(r.serial)} of tenant ${String(r.tenant)}; ${String(r.disconnected)} live session(s) disconnected (the next "cert issue" creates a new CA)`)
    }
  },
  {
    name: 'cert trust-bundle',
    options: { scope: { type: 'string', value: 'server|clients', help: 'server: what devices verify the gateway with (default); clients: the CAs client certificates are checked against' } },
    summary: 'CA certificates, PEM.',
    run: async cmd => {
      const scope = cmd.str('scope') ?? 'server'
      if (scope !== 'server' && scope !== 'clients') throw new CliError(`--scope must be server or clients\n${cmd.usage}`)
      process.stdout.write(await getText(await cmd.conn(), `/v1/ca?scope=${scope}`))
    }
  }
]
