// How every uspgate command reads its command line: node:util parseArgs in strict mode, so an unknown
// flag (`--valid-day 30`) or a flag without its value is an error that shows the command's usage line,
// never silently ignored; `--help` on any command prints its usage and options.
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { closest } from 'fastest-levenshtein'
import { CliError, resolveAdmin, type Admin } from './cli-client.ts'

export interface OptionSpec {
  type: 'string' | 'boolean'
  /** Placeholder in the usage line (`--role agent|controller`). */
  value?: string
  help: string
  required?: boolean
}

export interface CommandSpec {
  /** The words that select it: 'cert issue', 'events'. */
  name: string
  /** Positional arguments: '<tenant>' is required, '[endpoint-id]' optional. */
  args?: string[]
  options?: Record<string, OptionSpec>
  summary: string
  /** false: does not call the admin API (start). */
  admin?: boolean
  run: (cmd: Invocation) => Promise<void>
}

export interface Invocation {
  args: string[]
  /** Option values; booleans are true or absent. */
  flags: Record<string, string | boolean | undefined>
  str: (name: string) => string | undefined
  json: boolean
  /** The admin API (flags, then the environment, then the data dir). */
  conn: () => Promise<Admin>
  /** Prints `value` as JSON with --json, else the human text. */
  out: (value: unknown, human: () => string) => void
  usage: string
}

/** Options every admin command takes. */
const ADMIN_OPTIONS: Record<string, OptionSpec> = {
  'admin-url': { type: 'string', value: 'URL', help: 'admin API URL (default: USPGATE_ADMIN_URL, then <data-dir>/admin.json)' },
  token: { type: 'string', value: 'TOKEN', help: 'admin token (default: USPGATE_ADMIN_TOKEN, then <data-dir>/admin-token)' },
  'data-dir': { type: 'string', value: 'DIR', help: 'data dir of a local gateway (default: USPGATE_DATA_DIR, then ./data)' },
  json: { type: 'boolean', help: 'print JSON instead of text' }
}

function flagText (name: string, o: OptionSpec): string {
  return o.type === 'boolean' ? `--${name}` : `--${name} ${o.value ?? 'VALUE'}`
}

export function usageLine (spec: CommandSpec): string {
  const opts = Object.entries(spec.options ?? {}).map(([n, o]) => o.required ? flagText(n, o) : `[${flagText(n, o)}]`)
  return ['uspgate', spec.name, ...(spec.args ?? []), ...opts].join(' ')
}

export function helpText (spec: CommandSpec): string {
  const all = { ...(spec.options ?? {}), ...(spec.admin === false ? {} : ADMIN_OPTIONS) }
  const rows = Object.entries(all).map(([n, o]) => [flagText(n, o), o.help + (o.required ? ' (required)' : '')] as const)
  const width = Math.max(0, ...rows.map(r => r[0].length))
  return [`usage: ${usageLine(spec)}`, '', spec.summary, ...(rows.length ? ['', 'options:', ...rows.map(([f, h]) => `  ${f.padEnd(width)}  ${h}`)] : [])].join('\n')
}

/** Turns parseArgs' messages into one short line naming the flag (and the likely intended one). */
function parseError (err: Error & { code?: string }, known: string[]): string {
  const unknown = /^Unknown option '([^']+)'/.exec(err.message)
  if (unknown) {
    const flag = unknown[1]!
    const guess = flag.startsWith('--') && known.length > 0 ? closest(flag.slice(2), known) : undefined
    return `unknown flag ${flag}${guess !== undefined ? ` (did you mean --${guess}?)` : ''}`
  }
  const missing = /^Option '(-[^' ]+)/.exec(err.message)
  if (missing && err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return `${missing[1]!} needs a value${/ambiguous/.test(err.message) ? ` (for a value that starts with "-", write ${missing[1]!}=VALUE)` : ''}`
  return err.message.split('\n')[0]!
}

/** Parses `argv` (what follows the command's words) and runs the command; `--help` prints its help. */
export async function runCommand (spec: CommandSpec, argv: string[]): Promise<void> {
  const specOptions = { ...(spec.options ?? {}), ...(spec.admin === false ? {} : ADMIN_OPTIONS) }
  const options: ParseArgsConfig['options'] = { help: { type: 'boolean', short: 'h' } }
  for (const [n, o] of Object.entries(specOptions)) options[n] = { type: o.type }
  const usage = `usage: ${usageLine(spec)}`
  let parsed: { values: Record<string, string | boolean | undefined>, positionals: string[] }
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true }) as typeof parsed
  } catch (err) {
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) throw new CliError(`${parseError(err as Error, Object.keys(options))}\n${usage}`)
    throw err
  }
  const { values, positionals } = parsed
  if (values.help === true) {
    process.stdout.write(helpText(spec) + '\n')
    return
  }
  const names = spec.args ?? []
  const required = names.filter(a => !a.startsWith('[')).length
  if (positionals.length < required || positionals.length > names.length) {
    const what = positionals.length < required ? `missing ${names.slice(positionals.length, required).join(' ')}` : `unexpected argument "${positionals[names.length]!}"`
    throw new CliError(`${what}\n${usage}`)
  }
  for (const [n, o] of Object.entries(spec.options ?? {})) {
    if (o.required === true && values[n] === undefined) throw new CliError(`${flagText(n, o)} is required\n${usage}`)
  }
  const json = values.json === true
  const str = (name: string): string | undefined => typeof values[name] === 'string' ? values[name] : undefined
  await spec.run({
    args: positionals,
    flags: values,
    str,
    json,
    usage,
    conn: async () => await resolveAdmin({ adminUrl: str('admin-url'), token: str('token'), dataDir: str('data-dir') }),
    out: (value, human) => { process.stdout.write((json ? JSON.stringify(value, null, 2) : human()) + '\n') }
  })
}

/** A comma-separated list flag (`--tenants a,b`); undefined when the flag is absent, an error when it is empty. */
export function listFlag (cmd: Invocation, name: string): string[] | undefined {
  const raw = cmd.str(name)
  if (raw === undefined) return undefined
  const items = raw.split(',').map(s => s.trim()).filter(Boolean)
  if (items.length === 0) throw new CliError(`--${name} needs at least one value (a,b)\n${cmd.usage}`)
  return items
}
