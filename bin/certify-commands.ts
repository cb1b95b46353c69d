// `uspgate certify | matrix | evidence verify`: certification runs through the admin API (progress
// printed as it comes), the device matrix, and the offline verification of an evidence bundle.
import { readFile } from 'node:fs/promises'
import { call, CliError, getText } from './cli-client.ts'
import { listFlag, type CommandSpec } from './cli-args.ts'

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

export const certifyCommands: CommandSpec[] = [
  {
    name: 'certify',
    args: ['<tenant>', '[endpoint-id]'],
    options: {
      resume: { type: 'string', value: 'RUN-ID', help: 'resume a run interrupted by a gateway restart (finished checks are kept; no endpoint id)' },
      level: { type: 'string', value: 'integration-ready|certified', help: 'the level to reach' },
      workflows: { type: 'string', value: 'set-preview,operate,reboot', help: 'the workflows to run' },
      'online-timeout': { type: 'string', value: 'SECONDS', help: 'how long to wait for the endpoint to come online' }
    },
    summary: 'Run a certification of one endpoint; progress is printed as it comes (Ctrl-C cancels the run).',
    run: async cmd => {
      const [tenant, endpointId] = cmd.args as [string, string | undefined]
      const resume = cmd.str('resume')
      const workflows = listFlag(cmd, 'workflows')
      const level = cmd.str('level')
      const timeout = cmd.str('online-timeout')
      if (resume !== undefined && (endpointId !== undefined || workflows !== undefined || level !== undefined || timeout !== undefined)) throw new CliError(`--resume takes the run's tenant and id only (the run keeps its endpoint, level and workflows)\n${cmd.usage}`)
      if (resume === undefined && endpointId === undefined) throw new CliError(`an endpoint id is required (or --resume RUN-ID)\n${cmd.usage}`)
      if (timeout !== undefined && !/^\d{1,6}$/.test(timeout)) throw new CliError(`--online-timeout must be a whole number of seconds\n${cmd.usage}`)
      const conn = await cmd.conn()
      const path = `/v1/tenants/${encodeURIComponent(tenant)}/certifications`
      let run = resume !== undefined
        ? await call(conn, 'POST', `${path}/${encodeURIComponent(resume)}/resume`) as RunView
        : await call(conn, 'POST', path, { endpointId, ...(level ? { level } : {}), ...(workflows ? { workflows } : {}), ...(timeout ? { onlineTimeoutSeconds: Number(timeout) } : {}) }) as RunView
      // a resumed run's view starts with the earlier attempts' progress: show this attempt's
      let shown = 0
      if (resume !== undefined) for (const [i, p] of run.progress.entries()) if (p.message.startsWith(`run ${run.id} resumed`)) shown = i
      const cancel = (): void => { void call(conn, 'DELETE', `${path}/${run.id}`).catch(() => {}) }
      process.once('SIGINT', cancel)
      for (;;) {
        if (!cmd.json) for (const p of run.progress.slice(shown)) process.stdout.write(`${p.at.slice(11, 19)} ${p.check ? `[${p.check}] ` : ''}${p.message}\n`)
        shown = run.progress.length
        if (run.state !== 'running') break
        await new Promise(resolve => setTimeout(resolve, 1000))
        run = await call(conn, 'GET', `${path}/${run.id}`) as RunView
      }
      process.off('SIGINT', cancel)
      if (cmd.json) process.stdout.write(JSON.stringify(run, null, 2) + '\n')
      else process.stdout.write(`\n${run.state.toUpperCase()}: level ${run.levelReached}${run.matrixStatus ? `, matrix ${run.matrixStatus}` : ''}\nevidence: ${run.evidencePath ?? '(none)'}\n`)
      if (run.state !== 'passed') process.exitCode = 1
    }
  },
  {
    name: 'matrix',
    options: { format: { type: 'string', value: 'table|json|csv|markdown', help: 'output format (default table)' } },
    summary: 'The device matrix.',
    run: async cmd => {
      const conn = await cmd.conn()
      const format = cmd.json ? 'json' : cmd.str('format') ?? 'table'
      if (!['table', 'json', 'csv', 'markdown'].includes(format)) throw new CliError(`--format must be table, json, csv or markdown\n${cmd.usage}`)
      process.stdout.write(await getText(conn, `/v1/certifications/matrix?format=${format === 'table' ? 'markdown' : format}`))
    }
  },
  {
    name: 'evidence verify',
    args: ['<path>'],
    options: { ca: { type: 'string', value: 'root.pem', help: 'the root to pin the signer to (default: the gateway root from the admin API, when reachable)' } },
    summary: 'Verify an evidence bundle offline.',
    run: async cmd => {
      const path = cmd.args[0]!
      const caFile = cmd.str('ca')
      let root: string | undefined
      let pinned = 'not pinned (no --ca and the admin API is not reachable): the signature is checked against the certificate in the bundle only'
      if (caFile !== undefined) {
        try { root = await readFile(caFile, 'utf8') } catch (err) { throw new CliError(`cannot read ${caFile}: ${(err as Error).message}`) }
        pinned = `pinned to ${caFile}`
      } else {
        try {
          root = await getText(await cmd.conn(), '/v1/ca')
          pinned = 'pinned to the gateway root CA (GET /v1/ca)'
        } catch { /* offline: signature only */ }
      }
      // loaded on use: the other CLI commands must not load the broker (uspgate --help answers in a fraction of a second)
      const { verifyEvidence } = await import('../broker/index.ts')
      const r = await verifyEvidence(path, root)
      if (cmd.json) process.stdout.write(JSON.stringify({ ...r, signer: pinned }, null, 2) + '\n')
      else {
        process.stdout.write(`${r.ok ? 'OK' : 'FAILED'}: ${path} (run ${r.runId ?? '?'}, ${r.files} file(s); signer ${r.signerFingerprint256 ?? '?'} ${pinned})\n`)
        for (const p of r.problems) process.stdout.write(`  - ${p}\n`)
      }
      if (!r.ok) process.exitCode = 1
    }
  }
]
