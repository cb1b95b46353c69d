// uspgate command line: `start` runs the gateway; the other commands call the admin API of a running
// gateway. Every command parses its flags strictly (bin/cli-args.ts) and has --help. Only `start` loads
// the broker (aedes, fastify, OPA...), through a dynamic import of broker/index.ts: the admin commands are
// small HTTP clients and answer in a fraction of the broker's load time.
import { CliError } from './cli-client.ts'
import { helpText, runCommand, usageLine, type CommandSpec, type OptionSpec } from './cli-args.ts'
import { certCommands } from './cert-commands.ts'
import { policyCommands } from './policy-commands.ts'
import { tokenCommands } from './token-commands.ts'
import { tenantCommands, credentialCommands } from './tenant-commands.ts'
import { eventCommands } from './event-commands.ts'
import { certifyCommands } from './certify-commands.ts'

/** `uspgate start`, its flags taken from the settings (broker/core/config.ts) once the broker is loaded. */
async function startCommand (): Promise<CommandSpec> {
  const { Gateway, loadConfig, adminSettingsFromEnv, ConfigError, SETTING_FLAGS } = await import('../broker/index.ts')
  const options: Record<string, OptionSpec> = Object.fromEntries(Object.entries(SETTING_FLAGS).map(([flag, env]) => [flag, { type: 'string', value: 'V', help: `overrides ${env}` }]))
  return {
    name: 'start',
    options,
    admin: false,
    summary: 'Run the gateway (settings: USPGATE_* variables, overridden by these flags; see README "Settings").',
    run: async cmd => {
      const flags: Record<string, string> = {}
      for (const k of Object.keys(SETTING_FLAGS)) { const v = cmd.str(k); if (v !== undefined) flags[k] = v }
      let config: ReturnType<typeof loadConfig>
      let gateway: InstanceType<typeof Gateway>
      try {
        config = loadConfig(flags)
        // USPGATE_ADMIN_TLS / _CLIENT_CA / rate limits / event export: checked before anything starts
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
      // logrotate moved the audit file: continue in a new one (no event lost)
      process.on('SIGHUP', () => { gateway.events.reopen() })
      try {
        await gateway.start()
      } catch (err) {
        if (err instanceof ConfigError) throw new CliError(err.message)
        throw err
      }
      const mqtts = config.mqtts ? `, MQTTS on ${config.mqtts.host}:${gateway.certificates.mqttsPort}` : ''
      process.stdout.write(`uspgate ready: MQTT on ${config.mqttHost}:${gateway.mqttPort}${mqtts}, admin API on ${gateway.adminUrl}\n`)
    }
  }
}

const COMMANDS: CommandSpec[] = [...tenantCommands, ...credentialCommands, ...certCommands, ...policyCommands, ...tokenCommands, ...eventCommands, ...certifyCommands]

const START_USAGE = `uspgate start [--data-dir DIR] [--mqtt-host H] [--mqtt-port P] [--admin-host H] [--admin-port P] [--node-id ID] [--log-level L] ...
                (every flag: uspgate start --help)`

function usage (commands: CommandSpec[]): string {
  return ['usage:', ...(commands === COMMANDS ? [`  ${START_USAGE}`] : []), ...commands.map(c => `  ${usageLine(c)}`), '',
    'admin commands find the API from --admin-url/--token, USPGATE_ADMIN_URL/USPGATE_ADMIN_TOKEN,',
    'or the data dir (--data-dir, USPGATE_DATA_DIR, default ./data). Add --json for JSON output;',
    '--help after any command explains it.'].join('\n')
}

/** The command the first words name ('cert issue', then 'events'), and what follows them. */
function find (argv: string[]): { spec: CommandSpec, rest: string[] } | undefined {
  const two = COMMANDS.find(c => c.name === `${argv[0]} ${argv[1]}`)
  if (two) return { spec: two, rest: argv.slice(2) }
  const one = COMMANDS.find(c => c.name === argv[0])
  return one ? { spec: one, rest: argv.slice(1) } : undefined
}

async function main (argv: string[]): Promise<void> {
  if (argv[0] === 'start') return await runCommand(await startCommand(), argv.slice(1))
  const helpWanted = (a: string | undefined): boolean => a === undefined || a === 'help' || a === '--help' || a === '-h'
  if (helpWanted(argv[0])) {
    // `uspgate help cert issue` is `uspgate cert issue --help`
    const found = argv[0] === 'help' && argv[1] === 'start' ? { spec: await startCommand() } : argv[0] === 'help' && argv.length > 1 ? find(argv.slice(1)) : undefined
    process.stdout.write((found ? helpText(found.spec) : usage(COMMANDS)) + '\n')
    return
  }
  const found = find(argv)
  if (found) return await runCommand(found.spec, found.rest)
  const group = COMMANDS.filter(c => c.name.startsWith(`${argv[0]} `))
  if (group.length > 0 && helpWanted(argv[1])) {
    process.stdout.write(usage(group) + '\n')
    return
  }
  const words = group.length > 0 ? `${argv[0]!} ${argv[1] ?? ''}` : argv[0]!
  throw new CliError(`unknown command "uspgate ${words.trim()}"\n${usage(group.length > 0 ? group : COMMANDS)}`)
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof CliError) {
    process.stderr.write(`uspgate: ${err.message}\n`)
    process.exit(2)
  }
  process.stderr.write(`uspgate: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
