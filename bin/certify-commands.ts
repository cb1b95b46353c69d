// `uspgate certify | matrix | evidence verify`: certification runs through the admin API (progress
// printed as it comes), the device matrix, and the offline verification of an evidence bundle.
import { readFile } from 'node:fs/promises'
import { call, CliError, getText, resolveAdmin } from './cli-client.ts'

export const CERTIFY_USAGE = `  uspgate certify <tenant> <endpoint-id> [--level integration-ready|certified] [--workflows set-preview,operate,reboot] [--online-timeout SECONDS]
  uspgate matrix [--format table|json|csv|markdown]
  uspgate evidence verify <path> [--ca root.pem]   (default: the gateway root from the admin API, when reachable)`

interface RunView {
  id: string
  state: string
  levelReached: string
  progress: Array<{ at: string, check?: string, message: string }>
  checks: Array<{ id: string, result: string, summary: string }>
  evidencePath?: string
  matrixStatus?: string
  finishedAt?: string
  error?: string
}

export async function certifyCommand (cmd: string, positional: string[], flags: Record<string, string>, json: boolean): Promise<void> {
  if (cmd === 'evidence') return await evidenceVerify(positional, flags, json)
  const conn = await resolveAdmin({ adminUrl: flags['admin-url'], token: flags.token, dataDir: flags['data-dir'] })
  if (cmd === 'matrix') {
    if (positional.length !== 0) throw new CliError(`usage:\n${CERTIFY_USAGE}`)
    const format = json ? 'json' : flags.format ?? 'table'
    if (!['table', 'json', 'csv', 'markdown'].includes(format)) throw new CliError('--format must be table, json, csv or markdown')
    if (format !== 'table') { process.stdout.write(await getText(conn, `/v1/certifications/matrix?format=${format}`)); return }
    process.stdout.write(await getText(conn, '/v1/certifications/matrix?format=markdown'))
    return
  }
  if (positional.length !== 2) throw new CliError(`usage:\n${CERTIFY_USAGE}`)
  const [tenant, endpointId] = positional as [string, string]
  const workflows = flags.workflows === undefined ? undefined : flags.workflows.split(',').map(s => s.trim()).filter(Boolean)
  const path = `/v1/tenants/${encodeURIComponent(tenant)}/certifications`
  let run = await call(conn, 'POST', path, { endpointId, ...(flags.level ? { level: flags.level } : {}), ...(workflows ? { workflows } : {}), ...(flags['online-timeout'] ? { onlineTimeoutSeconds: Number(flags['online-timeout']) } : {}) }) as RunView
  let shown = 0
  const cancel = (): void => { void call(conn, 'DELETE', `${path}/${run.id}`).catch(() => {}) }
  process.once('SIGINT', cancel)
  for (;;) {
    if (!json) for (const p of run.progress.slice(shown)) process.stdout.write(`${p.at.slice(11, 19)} ${p.check ? `[${p.check}] ` : ''}${p.message}\n`)
    shown = run.progress.length
    if (run.state !== 'running') break
    await new Promise(resolve => setTimeout(resolve, 1000))
    run = await call(conn, 'GET', `${path}/${run.id}`) as RunView
  }
  process.off('SIGINT', cancel)
  if (json) process.stdout.write(JSON.stringify(run, null, 2) + '\n')
  else process.stdout.write(`\n${run.state.toUpperCase()}: level ${run.levelReached}${run.matrixStatus ? `, matrix ${run.matrixStatus}` : ''}\nevidence: ${run.evidencePath ?? '(none)'}\n`)
  if (run.state !== 'passed') process.exitCode = 1
}

async function evidenceVerify (positional: string[], flags: Record<string, string>, json: boolean): Promise<void> {
  if (positional[0] !== 'verify' || positional.length !== 2) throw new CliError(`usage:\n${CERTIFY_USAGE}`)
  let root: string | undefined
  let pinned = 'not pinned (no --ca and the admin API is not reachable): the signature is checked against the certificate in the bundle only'
  if (flags.ca !== undefined) {
    root = await readFile(flags.ca, 'utf8')
    pinned = `pinned to ${flags.ca}`
  } else {
    try {
      const conn = await resolveAdmin({ adminUrl: flags['admin-url'], token: flags.token, dataDir: flags['data-dir'] })
      root = await getText(conn, '/v1/ca')
      pinned = 'pinned to the gateway root CA (GET /v1/ca)'
    } catch { /* offline: signature only */ }
  }
  // loaded on use: the other CLI commands must not load the broker (uspgate --help answers in a fraction of a second)
  const { verifyEvidence } = await import('../broker/index.ts')
  const r = await verifyEvidence(positional[1]!, root)
  if (json) process.stdout.write(JSON.stringify({ ...r, signer: pinned }, null, 2) + '\n')
  else {
    process.stdout.write(`${r.ok ? 'OK' : 'FAILED'}: ${positional[1]!} (run ${r.runId ?? '?'}, ${r.files} file(s); signer ${r.signerFingerprint256 ?? '?'} ${pinned})\n`)
    for (const p of r.problems) process.stdout.write(`  - ${p}\n`)
  }
  if (!r.ok) process.exitCode = 1
}
