// Certification runs of the gateway: start (one at a time per device), progress, cancel, the
// evidence bundle and the device-matrix row each run files, and the crash journal that lets a
// restarted gateway put back what an interrupted run changed.
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdir, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../store/index.ts'
import { loadChecklist, workflowsOf, type Checklist } from './checklist.ts'
import { toJsonText, writeEvidence } from './evidence.ts'
import { DeviceMatrix, matrixStatus, type MatrixRow } from './matrix.ts'
import { CertificationRun, CERTIFY_PROBE_ID, CERTIFY_PROBE_TENANT, DEFAULT_TIMINGS, type RestoreState, type RunCredentials, type RunRecord, type RunRequest, type RunTimings } from './run.ts'
import { generateSecret, hashSecret } from '../core/index.ts'
import type { CertifyHost } from './host.ts'

export const DEFAULT_CONTROLLER_ID = 'self::uspgate-certify'
const GATEWAY_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

/** Why a run cannot start: mapped to 400 / 404 / 409 by the control plane. */
export class CertifyError extends Error {
  constructor (readonly kind: 'invalid' | 'not_found' | 'conflict' | 'unavailable', message: string) { super(message) }
}

type NodeOp =
  | { op: 'start', input: Parameters<CertificationService['start']>[0], actor: string }
  | { op: 'get' | 'cancel', tenant: string, id: string }
  | { op: 'resume', tenant: string, id: string, actor: string }

export interface RunView {
  id: string
  tenant: string
  endpointId: string
  level: string
  workflows: string[]
  state: string
  levelReached: string
  startedAt: string
  finishedAt?: string
  error?: string
  progress: Array<{ at: string, check?: string, message: string }>
  checks: Array<{ id: string, title: string, category: string, result: string, summary: string, durationMs: number }>
  evidencePath?: string
  matrixStatus?: string
  /** Attempts of the run (more than one when it was resumed after a restart). */
  attempts?: number
  /** The node running it (cluster mode: the node holding the device's session). */
  node?: string
}

export interface CertifyOptions {
  controllerId?: string
  timings?: Partial<RunTimings>
  /** Lab provisioning step (executable); default USPGATE_CERTIFY_PROVISION_CMD, read at each run. */
  provisionCommand?: () => string | undefined
}

export class CertificationService {
  readonly checklist: Checklist
  readonly matrix: DeviceMatrix
  private readonly runs = new Map<string, CertificationRun>()
  private readonly active = new Map<string, string>()
  private readonly views = new Map<string, RunView>()
  private readonly controllerId: string
  private readonly timings: RunTimings
  private readonly journalDir: string
  /** Persisted run state (resume): `<data dir>/certify/runs/<id>.json` while a run is unfinished. */
  private readonly runsDir: string
  /** Runs interrupted by a restart, resumable (loaded at start). */
  private readonly interrupted = new Map<string, RunRecord>()
  private persistChain: Promise<void> = Promise.resolve()
  /** Cluster mode: runs this node forwarded to another node (run id → node). */
  private readonly remoteRuns = new Map<string, string>()
  /** The gateway's own logins shared by concurrent runs: secret (memory only) and how many runs hold it. */
  private readonly held = new Map<string, { secret: Promise<string>, count: number }>()
  private readonly credentials: RunCredentials = {
    acquire: async (tenant, principal) => {
      const key = `${tenant}:${principal}`
      let h = this.held.get(key)
      if (h === undefined) {
        h = { secret: this.issueOwnCredential(tenant, principal), count: 0 }
        this.held.set(key, h)
      }
      h.count++
      return await h.secret
    },
    release: async (tenant, principal) => {
      const key = `${tenant}:${principal}`
      const h = this.held.get(key)
      if (h === undefined || --h.count > 0) return
      this.held.delete(key)
      await this.host.store.revokeCredential(tenant, principal, new Date().toISOString()).catch(() => {})
    }
  }

  constructor (private readonly host: CertifyHost, private readonly opts: CertifyOptions = {}) {
    this.checklist = loadChecklist()
    this.matrix = new DeviceMatrix(host.store)
    this.controllerId = opts.controllerId ?? process.env.USPGATE_CERTIFY_CONTROLLER_ID ?? DEFAULT_CONTROLLER_ID
    this.timings = { ...DEFAULT_TIMINGS, ...opts.timings }
    this.journalDir = join(host.dataDir, 'certify', 'active')
    this.runsDir = join(host.dataDir, 'certify', 'runs')
    host.nodes?.handle('certify', async body => {
      const b = body as NodeOp
      switch (b.op) {
        case 'start': return this.start(b.input, b.actor)
        case 'get': return this.get(b.tenant, b.id)
        case 'cancel': return this.cancel(b.tenant, b.id)
        case 'resume': return this.resume(b.tenant, b.id, b.actor)
        default: throw new CertifyError('invalid', 'unknown certification request')
      }
    })
  }

  // ---- cluster mode: a run executes on the node that holds the device's session (its checks cut,
  // observe and time that session); the other nodes forward start / get / cancel / resume to it

  /** The other node holding the device's live session, if any (undefined: run here). */
  private async ownerNode (tenant: string, endpointId: string): Promise<string | undefined> {
    if (this.host.nodes === undefined || this.host.sessions.ofIdentity(`${tenant}:${endpointId}`).length > 0) return undefined
    const reg = await this.host.endpoints.get(tenant, endpointId).catch(() => undefined)
    return reg?.online === true && reg.node !== this.host.nodeId ? reg.node : undefined
  }

  private async onNode (node: string, op: NodeOp): Promise<RunView> {
    try {
      return await this.host.nodes!.request(node, 'certify', op) as RunView
    } catch (err) {
      const kind = (err as { kind?: unknown }).kind
      if (kind === 'invalid' || kind === 'not_found' || kind === 'conflict') throw new CertifyError(kind, (err as Error).message)
      throw new CertifyError('unavailable', `node ${node}, which runs it, did not answer: ${(err as Error).message}`)
    }
  }

  /** Starts a run on the node holding the device's session (this one when it is here, offline or not clustered). */
  async startRouted (input: Parameters<CertificationService['start']>[0], actor: string): Promise<RunView> {
    const node = await this.ownerNode(input.tenant, input.endpointId)
    if (node === undefined) return this.start(input, actor)
    const view = await this.onNode(node, { op: 'start', input, actor })
    this.remoteRuns.set(view.id, node)
    return view
  }

  async getRouted (tenant: string, id: string): Promise<RunView> {
    const node = this.remoteRuns.get(id)
    return node === undefined ? this.get(tenant, id) : await this.onNode(node, { op: 'get', tenant, id })
  }

  async listRouted (tenant: string): Promise<RunView[]> {
    const remote = await Promise.all([...this.remoteRuns.keys()].map(async id => await this.getRouted(tenant, id).catch(() => undefined)))
    return [...this.list(tenant), ...remote.filter((v): v is RunView => v !== undefined)]
  }

  async cancelRouted (tenant: string, id: string): Promise<RunView> {
    const node = this.remoteRuns.get(id)
    return node === undefined ? this.cancel(tenant, id) : await this.onNode(node, { op: 'cancel', tenant, id })
  }

  async resumeRouted (tenant: string, id: string, actor: string): Promise<RunView> {
    const node = this.remoteRuns.get(id)
    return node === undefined ? this.resume(tenant, id, actor) : await this.onNode(node, { op: 'resume', tenant, id, actor })
  }

  get evidenceRoot (): string { return join(this.host.dataDir, 'evidence') }

  /** A fresh secret for one of the gateway's own endpoints (role controller); only its hash is stored. */
  private async issueOwnCredential (tenant: string, principal: string): Promise<string> {
    if (tenant === CERTIFY_PROBE_TENANT && this.host.store.getTenant(tenant) === undefined) {
      await this.host.store.addTenant({ id: tenant, name: 'uspgate certification probe (cross-tenant checks)', createdAt: new Date().toISOString() })
    }
    const cur = this.host.store.getCredential(tenant, principal)
    if (cur !== undefined && cur.revokedAt === undefined) await this.host.store.revokeCredential(tenant, principal, new Date().toISOString())
    const secret = generateSecret()
    await this.host.store.putCredential({ tenant, principal, role: 'controller', secretHash: hashSecret(secret), createdAt: new Date().toISOString() })
    return secret
  }

  /** Puts back what runs interrupted by a crash or restart had changed; lists them as interrupted (resumable). */
  async load (): Promise<void> {
    await this.restoreJournals()
    let names: string[] = []
    try { names = await readdir(this.runsDir) } catch { return }
    for (const name of names.filter(n => /^cr-[0-9]{14}-[0-9a-f]{8}\.json$/.test(n))) {
      try {
        const rec = JSON.parse(await readFile(join(this.runsDir, name), 'utf8')) as RunRecord
        if (rec.state === 'running') {
          // the process died in the middle of it: the journal above put back what it changed
          const last = rec.attempts.at(-1)
          if (last !== undefined && last.ended === undefined) Object.assign(last, { ended: 'interrupted', endedAt: new Date().toISOString() })
          rec.progress.push({ at: new Date().toISOString(), message: 'run interrupted by a gateway restart (crash): what it changed was put back; resume it to finish' })
          rec.state = 'interrupted'
          await writeFileAtomic(join(this.runsDir, name), JSON.stringify(rec))
        }
        this.interrupted.set(rec.id, rec)
      } catch (err) {
        this.host.events.emit({ code: 'certify.restored_after_restart', action: 'certify.restore', reason: `run state ${name} could not be read: ${(err as Error).message.slice(0, 200)}` })
      }
    }
  }

  private async restoreJournals (): Promise<void> {
    let names: string[] = []
    try { names = await readdir(this.journalDir) } catch { return }
    for (const name of names.filter(n => n.endsWith('.json'))) {
      try {
        const r = JSON.parse(await readFile(join(this.journalDir, name), 'utf8')) as RestoreState
        const cur = this.host.store.getCredential(r.tenant, r.endpointId)
        if (cur === undefined || cur.revokedAt !== undefined || cur.secretHash !== r.baseline.secretHash) {
          if (cur !== undefined && cur.revokedAt === undefined) await this.host.store.revokeCredential(r.tenant, r.endpointId, new Date().toISOString())
          const { revokedAt: _r, ...active } = r.baseline
          await this.host.store.putCredential(active)
        }
        if (r.canaryStarted !== undefined && this.host.policyAssignment().canary?.revision === r.canaryStarted) {
          await this.host.rollback('certify', `certification run ${name.slice(0, -5)} was interrupted`)
        }
        this.host.events.emit({ code: 'certify.restored_after_restart', tenant: r.tenant, principal: r.endpointId, action: 'certify.restore', reason: `run ${name.slice(0, -5)}: credential${r.canaryStarted ? ' and canary' : ''} put back` })
        await rm(join(this.journalDir, name), { force: true })
      } catch (err) {
        this.host.events.emit({ code: 'certify.restored_after_restart', action: 'certify.restore', reason: `run journal ${name} could not be applied: ${(err as Error).message.slice(0, 200)}` })
      }
    }
  }

  /** Validates and starts a run (in the background); returns its first view. */
  start (input: { tenant: string, endpointId: string, level?: string | undefined, workflows?: string[] | undefined, onlineTimeoutSeconds?: number | undefined }, actor: string): RunView {
    const online = input.onlineTimeoutSeconds
    if (online !== undefined && (!Number.isInteger(online) || online < 1 || online > 3600)) throw new CertifyError('invalid', 'onlineTimeoutSeconds must be an integer 1..3600')
    const level = input.level ?? 'integration-ready'
    if (!this.checklist.levels.some(l => l.id === level)) throw new CertifyError('invalid', `level must be one of ${this.checklist.levels.map(l => l.id).join(', ')}`)
    const known = workflowsOf(this.checklist)
    const workflows = [...new Set(input.workflows ?? [])]
    const unknown = workflows.filter(w => !known.includes(w))
    if (unknown.length > 0) throw new CertifyError('invalid', `unknown workflow(s) ${unknown.join(', ')}; known: ${known.join(', ')}`)
    if (this.host.store.getTenant(input.tenant) === undefined) throw new CertifyError('not_found', `no tenant "${input.tenant}"`)
    const cred = this.host.store.getCredential(input.tenant, input.endpointId)
    if (cred === undefined) throw new CertifyError('not_found', `no credential for "${input.endpointId}" in tenant "${input.tenant}" (provision the device under test first)`)
    if (cred.role !== 'agent') throw new CertifyError('invalid', `"${input.endpointId}" is a ${cred.role}, not an agent`)
    if (cred.revokedAt !== undefined) throw new CertifyError('conflict', `the credential of "${input.endpointId}" is revoked; issue a new one first`)
    if (input.endpointId === this.controllerId) throw new CertifyError('invalid', 'that is the gateway\'s own certification controller')
    const key = `${input.tenant}:${input.endpointId}`
    const running = this.active.get(key)
    if (running !== undefined) throw new CertifyError('conflict', `run ${running} is already certifying this device (one run per device at a time)`)
    this.host.requireWritable()

    const id = `cr-${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}-${randomUUID().slice(0, 8)}`
    const run = new CertificationRun(id, { tenant: input.tenant, endpointId: input.endpointId, level, workflows, actor, ...(online !== undefined ? { onlineTimeoutMs: online * 1000 } : {}) }, this.runDeps())
    this.runs.set(id, run)
    this.active.set(key, id)
    this.host.events.emit({ code: 'certify.run_started', tenant: input.tenant, principal: input.endpointId, actor, action: 'certify.start', reason: `run ${id}, level ${level}${workflows.length ? `, workflows ${workflows.join(',')}` : ''}` })
    run.say(`run ${id} started: ${input.tenant} ${input.endpointId}, level ${level}`)
    void this.execute(run).finally(() => { this.active.delete(key) })
    return this.view(run)
  }

  /** What a run (a new one, or a resumed attempt) works with. */
  private runDeps (): ConstructorParameters<typeof CertificationRun>[2] {
    return {
      host: this.host,
      checklist: this.checklist,
      timings: { ...this.timings },
      credentials: this.credentials,
      controllerId: this.controllerId,
      provisionCommand: (this.opts.provisionCommand ?? (() => process.env.USPGATE_CERTIFY_PROVISION_CMD || undefined))(),
      journal: async (runId, state) => { await this.journal(runId, state) },
      persist: async r => { await this.persist(r, 'running') },
      node: this.host.nodeId
    }
  }

  /**
   * Resumes a run interrupted by a restart: a new attempt keeps the finished checks' results and
   * records and re-runs from the first unfinished check; the run files one evidence bundle.
   */
  resume (tenant: string, id: string, actor: string, cancelled?: string): RunView {
    const rec = this.interrupted.get(id)
    if (rec === undefined || rec.req.tenant !== tenant) {
      if (this.runs.get(id)?.req.tenant === tenant) throw new CertifyError('conflict', `run ${id} was not interrupted (${this.runs.get(id)!.state}); only an interrupted run can be resumed`)
      throw new CertifyError('not_found', `no interrupted certification run "${id}" in tenant "${tenant}"`)
    }
    const cred = this.host.store.getCredential(tenant, rec.req.endpointId)
    if (cancelled === undefined) {
      if (cred === undefined) throw new CertifyError('not_found', `no credential for "${rec.req.endpointId}" in tenant "${tenant}"`)
      if (cred.revokedAt !== undefined) throw new CertifyError('conflict', `the credential of "${rec.req.endpointId}" is revoked; issue a new one first`)
    }
    const key = `${tenant}:${rec.req.endpointId}`
    const running = this.active.get(key)
    if (running !== undefined) throw new CertifyError('conflict', `run ${running} is already certifying this device (one run per device at a time)`)
    this.host.requireWritable()
    const req: RunRequest = { ...rec.req, actor }
    const run = new CertificationRun(id, req, this.runDeps(), rec)
    // cancelling an interrupted run: the attempt ends before it touches anything; evidence is filed
    if (cancelled !== undefined) run.cancel(cancelled)
    this.interrupted.delete(id)
    this.views.delete(id)
    this.runs.set(id, run)
    this.active.set(key, id)
    if (cancelled === undefined) {
      this.host.events.emit({ code: 'certify.run_started', tenant, principal: rec.req.endpointId, actor, action: 'certify.resume', reason: `run ${id} resumed (attempt ${run.attempts.length}), level ${rec.req.level}; ${rec.outcomes.length} finished check(s) kept` })
      run.say(`run ${id} resumed by ${actor} (attempt ${run.attempts.length}): ${rec.outcomes.length} finished check(s) kept${rec.currentCheck ? `, re-running from ${rec.currentCheck}` : ''}`)
    } else {
      run.say(`interrupted run ${id} cancelled by ${actor}: its evidence is filed with the ${rec.outcomes.length} check(s) it finished`)
    }
    void this.execute(run).finally(() => { this.active.delete(key) })
    return this.view(run)
  }

  /** Writes the run's persisted state (serialised: the last write wins); secrets are scrubbed. */
  private async persist (run: CertificationRun, state: RunRecord['state']): Promise<void> {
    const text = run.secrets.reduce((acc, s) => acc.replaceAll(s, '[redacted]'), JSON.stringify(run.snapshot(state)))
    const write = this.persistChain.then(async () => {
      await mkdir(this.runsDir, { recursive: true, mode: 0o700 })
      await writeFileAtomic(join(this.runsDir, `${run.id}.json`), text)
    })
    this.persistChain = write.catch(() => {})
    await write
  }

  private async execute (run: CertificationRun): Promise<void> {
    try {
      await this.finish(run)
    } catch (err) {
      // never leave a run without a final view (settled() and the API wait for it)
      run.error ??= (err as Error).message
      run.state = 'error'
      this.views.set(run.id, this.view(run))
    }
  }

  private async finish (run: CertificationRun): Promise<void> {
    await run.execute()
    const attempt = run.attempts.at(-1)!
    attempt.endedAt = new Date().toISOString()
    attempt.ended = run.outcome
    if (run.outcome === 'interrupted') {
      // a shutdown: what the run changed is put back (clean-up); its state is kept for a resume
      run.say('run interrupted by a gateway shutdown: what it changed was put back; resume it to finish')
      await this.persist(run, 'interrupted')
      await this.journal(run.id, null)
      run.state = 'interrupted'
      this.host.events.emit({ code: 'certify.run_finished', tenant: run.req.tenant, principal: run.req.endpointId, actor: run.req.actor, action: 'certify.interrupt', reason: `run ${run.id} interrupted by a gateway shutdown (resumable); ${run.outcomes.length} check(s) finished` })
      this.views.set(run.id, this.view(run))
      return
    }
    run.finishedAt = new Date()
    run.outcome = run.outcome === 'passed' && this.levelReached(run, 'passed') !== run.req.level ? 'failed' : run.outcome
    const reached = this.levelReached(run, run.outcome)
    run.levelReached = reached
    let status: string | undefined
    try {
      run.evidencePath = await this.fileEvidence(run)
      status = (await this.fileMatrixRow(run)).status
    } catch (err) {
      run.say(`evidence / matrix could not be written: ${(err as Error).message}`)
      run.error ??= (err as Error).message
      // no evidence, no certification: the checks' results stay in the view, the run does not pass
      if (run.evidencePath === '' || run.evidencePath === undefined) {
        run.outcome = 'error'
        run.levelReached = 'none'
      }
    }
    await this.journal(run.id, null)
    await this.persistChain
    await rm(join(this.runsDir, `${run.id}.json`), { force: true })
    run.state = run.outcome
    run.say(`run ${run.state}: level reached ${run.levelReached}${status ? `, matrix ${status}` : ''}${run.evidencePath ? `, evidence ${run.evidencePath}` : ''}`)
    this.host.events.emit({ code: 'certify.run_finished', tenant: run.req.tenant, principal: run.req.endpointId, actor: run.req.actor, action: 'certify.finish', reason: `run ${run.id} ${run.state}; level ${run.levelReached}${status ? `; matrix ${status}` : ''}` })
    const v = this.view(run)
    if (status !== undefined) v.matrixStatus = status
    this.views.set(run.id, v)
  }

  /** The highest level whose required checks all passed ('none' if none). */
  private levelReached (run: CertificationRun, outcome: string): string {
    if (outcome === 'cancelled' || outcome === 'error' || outcome === 'interrupted') return 'none'
    let reached = 'none'
    for (const l of this.checklist.levels) {
      if (l.requires.every(id => run.outcomes.some(o => o.id === id && o.result === 'pass'))) reached = l.id
      if (l.id === run.req.level) break
    }
    return reached
  }

  /** Each failed / unsupported / manual / skipped check is a limitation, named by its id. */
  private limitations (run: CertificationRun): string[] {
    const out = run.outcomes.filter(o => o.result !== 'pass').map(o => `${o.id}: ${o.result} - ${o.summary}`)
    // objects a passing check found missing are limitations too (recorded as unsupported, not failures)
    for (const o of run.outcomes.filter(x => x.result === 'pass')) {
      for (const u of (o.details.unsupported as string[] | undefined) ?? []) out.push(`${o.id}: unsupported - ${u}`)
    }
    if (run.outcome === 'cancelled' || run.outcome === 'error') out.unshift(`run ${run.outcome}: ${run.error ?? ''}`)
    return out
  }

  private async fileEvidence (run: CertificationRun): Promise<string> {
    const scrub = (text: string): string => run.secrets.reduce((acc, s) => acc.replaceAll(s, '[redacted]'), text)
    const since = run.startedAt.toISOString()
    const related = this.host.events.query({ since, limit: 100_000 })
      .filter(e => e.time <= (run.finishedAt ?? new Date()).toISOString())
      // the device's own events (incl. bare-username ones, which carry no tenant), the run's controller
      // and cross-tenant probe, and policy changes (the canary check)
      .filter(e => [run.req.endpointId, `${run.req.tenant}:${run.req.endpointId}`, this.controllerId, CERTIFY_PROBE_ID].includes(e.principal ?? '') || e.code.startsWith('policy.'))
      .reverse()
    const records = run.traces.map((t, seq) => ({ seq, direction: t.direction, at: t.at, topic: t.topic, ...(t.replyTo !== undefined ? { replyTo: t.replyTo } : {}), raw: t.raw.toString('base64'), decoded: t.decoded }))
    const manifest = {
      runId: run.id,
      tenant: run.req.tenant,
      endpointId: run.req.endpointId,
      levelRequested: run.req.level,
      levelReached: run.levelReached,
      state: run.outcome,
      ...(run.error !== undefined ? { error: run.error } : {}),
      workflows: run.req.workflows,
      startedAt: since,
      finishedAt: (run.finishedAt ?? new Date()).toISOString(),
      durationMs: (run.finishedAt ?? new Date()).getTime() - run.startedAt.getTime(),
      checklistVersion: this.checklist.version,
      gateway: { product: 'uspgate', version: GATEWAY_VERSION, node: this.host.nodeId, controllerEndpointId: this.controllerId },
      policy: { atStart: run.restore?.policyAtStart, atEnd: this.host.policyAssignment(), tenantRevisionAtEnd: this.host.revisionFor(run.req.tenant) },
      device: run.facts,
      checks: run.outcomes,
      attempts: run.attempts,
      limitations: this.limitations(run),
      progress: run.progress,
      recordCount: records.length,
      securityEventCount: related.length
    }
    const dir = join(this.evidenceRoot, run.id)
    await writeEvidence(dir, {
      'records.ndjson': scrub(records.map(r => toJsonText(r)).join('\n') + (records.length ? '\n' : '')),
      'security-events.ndjson': scrub(related.map(e => JSON.stringify(e)).join('\n') + (related.length ? '\n' : ''))
    }, JSON.parse(scrub(toJsonText(manifest))) as Record<string, unknown>, async data => await this.host.sign(data))
    return dir
  }

  private async fileMatrixRow (run: CertificationRun): Promise<MatrixRow> {
    const f = run.facts
    const st = this.host.sessions.ofIdentity(`${run.req.tenant}:${run.req.endpointId}`)[0]?.state
    const reg = await this.host.endpoints.get(run.req.tenant, run.req.endpointId).catch(() => undefined)
    const mqtt = st ? (st.protocol === 5 ? 'MQTT 5.0' : 'MQTT 3.1.1') : reg?.mqttVersion ? `MQTT ${reg.mqttVersion}` : 'MQTT ?'
    const tls = st === undefined ? '?' : st.auth === 'certificate' ? 'mTLS' : st.listener === 'mqtts' ? 'TLS' : 'TCP'
    const limitations = this.limitations(run)
    return await this.matrix.record({
      tenant: run.req.tenant,
      vendor: f.vendor ?? '',
      model: f.model ?? '',
      productClass: f.productClass ?? '',
      firmwareVersion: f.firmware ?? '',
      agent: f.agent ?? '',
      agentVersion: f.agentVersion ?? '',
      uspVersion: f.uspVersion ?? '',
      transport: `${mqtt} / ${tls}`,
      level: run.levelReached,
      workflows: ['inventory', ...run.outcomes.filter(o => o.category === 'advanced' && o.result === 'pass').map(o => o.id.replace('advanced.', '').replace('_', '-'))],
      limitations,
      status: matrixStatus({ levelReached: run.levelReached, levelRequested: run.req.level, limitations, completed: run.outcome === 'passed' || run.outcome === 'failed' }),
      endpointId: run.req.endpointId,
      runId: run.id,
      evidencePath: run.evidencePath,
      updatedAt: new Date().toISOString()
    })
  }

  private async journal (runId: string, state: RestoreState | null): Promise<void> {
    const file = join(this.journalDir, `${runId}.json`)
    if (state === null) { await rm(file, { force: true }); return }
    await mkdir(this.journalDir, { recursive: true, mode: 0o700 })
    await writeFileAtomic(file, JSON.stringify(state))
  }

  get (tenant: string, id: string): RunView {
    const rec = this.interrupted.get(id)
    if (rec !== undefined && rec.req.tenant === tenant) return this.recordView(rec)
    const run = this.runs.get(id)
    if (run === undefined || run.req.tenant !== tenant) throw new CertifyError('not_found', `no certification run "${id}" in tenant "${tenant}"`)
    return this.views.get(id) ?? this.view(run)
  }

  list (tenant: string): RunView[] {
    return [
      ...[...this.interrupted.values()].filter(r => r.req.tenant === tenant).map(r => this.recordView(r)),
      ...[...this.runs.values()].filter(r => r.req.tenant === tenant && !this.interrupted.has(r.id)).map(r => this.views.get(r.id) ?? this.view(r))
    ]
  }

  private recordView (rec: RunRecord): RunView {
    return {
      id: rec.id,
      tenant: rec.req.tenant,
      endpointId: rec.req.endpointId,
      level: rec.req.level,
      workflows: rec.req.workflows,
      state: 'interrupted',
      levelReached: 'none',
      startedAt: rec.startedAt,
      progress: [...rec.progress],
      checks: rec.outcomes.map(o => ({ id: o.id, title: o.title, category: o.category, result: o.result, summary: o.summary, durationMs: o.durationMs })),
      attempts: rec.attempts.length,
      node: this.host.nodeId
    }
  }

  cancel (tenant: string, id: string, actor = 'operator'): RunView {
    // an interrupted run ends cancelled at once (nothing to put back: that was done at the restart)
    if (this.interrupted.get(id)?.req.tenant === tenant) return this.resume(tenant, id, actor, 'cancelled by the operator (the run was interrupted)')
    const run = this.runs.get(id)
    if (run === undefined || run.req.tenant !== tenant) throw new CertifyError('not_found', `no certification run "${id}" in tenant "${tenant}"`)
    if (run.state !== 'running') throw new CertifyError('conflict', `run ${id} already ended (${run.state})`)
    run.cancel()
    return this.view(run)
  }

  /** Resolves when the run has ended and its evidence is filed (tests, CLI --wait). */
  async settled (id: string): Promise<RunView | undefined> {
    while (this.runs.has(id) && !this.views.has(id)) await new Promise(resolve => setTimeout(resolve, 100))
    return this.views.get(id)
  }

  /** Interrupts running runs and waits for their clean-up (gateway shutdown); they can be resumed after the restart. */
  async close (): Promise<void> {
    const running = [...this.runs.values()].filter(r => !this.views.has(r.id))
    for (const r of running) r.interrupt()
    await Promise.all(running.map(async r => await this.settled(r.id)))
  }

  private view (run: CertificationRun): RunView {
    return {
      id: run.id,
      tenant: run.req.tenant,
      endpointId: run.req.endpointId,
      level: run.req.level,
      workflows: run.req.workflows,
      state: run.state,
      levelReached: run.levelReached,
      startedAt: run.startedAt.toISOString(),
      ...(run.finishedAt ? { finishedAt: run.finishedAt.toISOString() } : {}),
      ...(run.error !== undefined ? { error: run.error } : {}),
      progress: [...run.progress],
      checks: run.outcomes.map(o => ({ id: o.id, title: o.title, category: o.category, result: o.result, summary: o.summary, durationMs: o.durationMs })),
      ...(run.evidencePath ? { evidencePath: run.evidencePath } : {}),
      attempts: run.attempts.length,
      node: this.host.nodeId
    }
  }
}
