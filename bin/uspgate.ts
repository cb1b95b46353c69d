// uspgate command line: `start` runs the gateway; the other commands call the
// admin API of a running gateway.
// Only `start` loads the broker (aedes, fastify, OPA...), through a dynamic import of broker/index.ts:
// the admin commands are small HTTP clients and answer in a fraction of the broker's load time.
import { call, CliError, resolveAdmin, table } from './cli-client.ts'
import { certCommand, CERT_USAGE } from './cert-commands.ts'
import { policyCommand, POLICY_USAGE } from './policy-commands.ts'
import { tokenCommand, TOKEN_USAGE } from './token-commands.ts'
import { certifyCommand, CERTIFY_USAGE } from './certify-commands.ts'

const USAGE = `usage:
  uspgate start [--data-dir DIR] [--mqtt-host H] [--mqtt-port P] [--admin-host H] [--admin-port P] [--node-id ID] [--log-level L]
                [--mqtts-host H] [--mqtts-port P|off] [--mqtts-client-cert optional|required] [--server-sans NAME,IP,...]
  uspgate tenant add <id> [--name NAME]
  uspgate tenant list
  uspgate credential issue <tenant> <principal> --role agent|controller
  uspgate credential list <tenant>
  uspgate credential revoke <tenant> <principal>
${CERT_USAGE}
${POLICY_USAGE}
${TOKEN_USAGE}
${CERTIFY_USAGE}

admin commands find the API from --admin-url/--token, USPGATE_ADMIN_URL/USPGATE_ADMIN_TOKEN,
or the data dir (--data-dir, USPGATE_DATA_DIR, default ./data). Add --json for JSON output.`

/** Admin command arguments: positionals, `--name value` / `--name=value` flags, and --json. */
function splitArgs (argv: string[]): { positional: string[], flags: Record<string, string>, json: boolean } {
  const positional: string[] = []
  const flags: Record<string, string> = {}
  let json = false
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--json') { json = true; continue }
    if (!a.startsWith('--')) { positional.push(a); continue }
    const eq = a.indexOf('=')
    if (eq > 0) { flags[a.slice(2, eq)] = a.slice(eq + 1); continue }
    const value = argv[i + 1]
    if (value === undefined || value.startsWith('--')) throw new CliError(`invalid setting ${a}: needs a value`)
    flags[a.slice(2)] = value
    i++
  }
  return { positional, flags, json }
}

async function start (argv: string[]): Promise<void> {
  const { Gateway, loadConfig, parseFlags, adminSettingsFromEnv, ConfigError } = await import('../broker/index.ts')
  let config: ReturnType<typeof loadConfig>
  let gateway: InstanceType<typeof Gateway>
  try {
    config = loadConfig(parseFlags(argv))
    // USPGATE_ADMIN_TLS / _CLIENT_CA / rate limits: checked before anything starts
    gateway = new Gateway(config, { adminSettings: adminSettingsFromEnv() })
  } catch (err) {
    // a bad setting: one line naming it, exit code 2 (as for a bad admin command)
    if (err instanceof ConfigError) throw new CliError(err.message)
    throw err
  }
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    gateway.log.info({ signal, drainSeconds: config.drainSeconds }, 'stopping')
    // the drain is bounded: whatever still hangs after USPGATE_DRAIN_SECONDS, the process ends
    setTimeout(() => {
      gateway.log.error({ drainSeconds: config.drainSeconds }, 'drain did not finish in time; exiting')
      process.exit(1)
    }, (config.drainSeconds ?? 10) * 1000).unref()
    gateway.close().then(() => process.exit(0), err => {
      gateway.log.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  try {
    await gateway.start()
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message)
    throw err
  }
  const mqtts = config.mqtts ? `, MQTTS on ${config.mqtts.host}:${gateway.certificates.mqttsPort}` : ''
  process.stdout.write(`uspgate ready: MQTT on ${config.mqttHost}:${gateway.mqttPort}${mqtts}, admin API on ${gateway.adminUrl}\n`)
}

async function admin (group: string, action: string | undefined, args: string[], flags: Record<string, string>, json: boolean): Promise<void> {
  const conn = await resolveAdmin({ adminUrl: flags['admin-url'], token: flags.token, dataDir: flags['data-dir'] })
  const need = (n: number, what: string): void => { if (args.length !== n) throw new CliError(`usage: uspgate ${group} ${action ?? ''} ${what}`) }
  const out = (value: unknown, human: () => string): void => { process.stdout.write((json ? JSON.stringify(value, null, 2) : human()) + '\n') }
  const enc = encodeURIComponent
  if (group === 'policy') return await policyCommand({ conn, action, args, flags, out })
  if (group === 'token') return await tokenCommand({ conn, action, args, flags, out })
  const key = `${group} ${action ?? ''}`
  switch (key) {
    case 'tenant add': {
      need(1, '<id> [--name NAME]')
      const t = await call(conn, 'POST', '/v1/tenants', { id: args[0], ...(flags.name ? { name: flags.name } : {}) }) as Record<string, unknown>
      return out(t, () => `tenant ${String(t.id)} created`)
    }
    case 'tenant list': {
      need(0, '')
      const r = await call(conn, 'GET', '/v1/tenants') as { tenants: Array<Record<string, unknown>> }
      return out(r, () => table(r.tenants, ['id', 'name', 'createdAt']))
    }
    case 'credential issue': {
      need(2, '<tenant> <principal> --role agent|controller')
      if (!flags.role) throw new CliError('--role agent|controller is required')
      const c = await call(conn, 'POST', `/v1/tenants/${enc(args[0]!)}/credentials`, { principal: args[1], role: flags.role }) as Record<string, unknown>
      return out(c, () => `username: ${String(c.username)}\nsecret:   ${String(c.secret)}\n(the secret is shown only this once; store it in the router now)`)
    }
    case 'credential list': {
      need(1, '<tenant>')
      const r = await call(conn, 'GET', `/v1/tenants/${enc(args[0]!)}/credentials`) as { credentials: Array<Record<string, unknown>> }
      return out(r, () => table(r.credentials, ['username', 'role', 'createdAt', 'revoked', 'revokedAt']))
    }
    case 'credential revoke': {
      need(2, '<tenant> <principal>')
      const r = await call(conn, 'DELETE', `/v1/tenants/${enc(args[0]!)}/credentials/${enc(args[1]!)}`) as Record<string, unknown>
      return out(r, () => `revoked ${String(r.username)}; ${String(r.disconnected)} live session(s) disconnected`)
    }
    default:
      throw new CliError(`unknown command "uspgate ${key.trim()}"\n${USAGE}`)
  }
}

async function main (argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(USAGE + '\n')
    return
  }
  if (cmd === 'start') return await start(rest)
  if (cmd === 'certify' || cmd === 'matrix' || cmd === 'evidence') {
    const { positional, flags, json } = splitArgs(rest)
    return await certifyCommand(cmd, positional, flags, json)
  }
  const [action, ...more] = rest
  const { positional, flags, json } = splitArgs(more)
  if (cmd === 'cert') return await certCommand(action, positional, flags, json)
  await admin(cmd, action, positional, flags, json)
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof CliError) {
    process.stderr.write(`uspgate: ${err.message}\n`)
    process.exit(2)
  }
  process.stderr.write(`uspgate: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
