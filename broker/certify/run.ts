// One certification run against a live agent: the gateway, as a USP Controller of the tenant, runs
// the checklist's gateway-side checks in order, reports progress, and in `finally` puts back what
// it changed (the agent's credential, the tenant's canary, its own controller and probe logins), so
// no outcome (pass, fail, cancel, timeout) leaves the device revoked or the policy changed.
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { generateSecret, hashSecret } from '../core/index.ts'
import type { CredentialRecord } from '../store/index.ts'
import { encodeMsg, encodeRecord } from '../usp/index.ts'
import { UspController, UspErrorReply, NOT_SUPPORTED_CODES, uspErrorName, type RecordTrace } from '../usp/index.ts'
import type { Checklist, CheckId, CheckResult } from './checklist.ts'
import type { CertifyHost } from './host.ts'

export const CERTIFY_PROBE_TENANT = 'certify-probe'
export const CERTIFY_PROBE_ID = 'self::uspgate-probe'
/** MQTT 5 DISCONNECT 0x98 Administrative action: the forced disconnect of the reconnect check. */
const DISCONNECT_ADMINISTRATIVE = 0x98

export interface RunTimings {
  /** Whole run bound (default 10 min). */
  runTimeoutMs: number
  /** How long to wait for the agent to come (back) online. */
  onlineTimeoutMs: number
  /** One USP request. */
  requestTimeoutMs: number
  /** How long a revoked agent must stay out. */
  revocationHoldMs: number
  /** The lab provisioning command (USPGATE_CERTIFY_PROVISION_CMD). */
  provisionTimeoutMs: number
}

export const DEFAULT_TIMINGS: RunTimings = { runTimeoutMs: 600_000, onlineTimeoutMs: 60_000, requestTimeoutMs: 15_000, revocationHoldMs: 5_000, provisionTimeoutMs: 30_000 }

export interface CheckOutcome {
  id: CheckId
  title: string
  category: string
  result: CheckResult
  /** One line a lab engineer can act on. */
  summary: string
  details: Record<string, unknown>
  startedAt: string
  finishedAt: string
  durationMs: number
}

export interface ProgressLine { at: string, check?: string, message: string }

export interface RunRequest {
  tenant: string
  endpointId: string
  level: string
  workflows: string[]
  actor: string
  /** Overrides timings.onlineTimeoutMs for this run (the lab powers the device on while it waits). */
  onlineTimeoutMs?: number
}

export type RunState = 'running' | 'passed' | 'failed' | 'cancelled' | 'error' | 'interrupted'

/** The abort reason of a gateway shutdown: the run ends `interrupted` (resumable), not cancelled. */
export const SHUTDOWN_REASON = 'gateway shutting down'

/** One attempt of a run (a resumed run has several; the evidence lists them). */
export interface RunAttempt {
  startedAt: string
  endedAt?: string
  /** How the attempt ended: a run state, or 'interrupted' (restart). */
  ended?: string
  node: string
  actor: string
  /** Checks this attempt kept from earlier attempts (not re-run). */
  kept: string[]
}

/**
 * What is persisted of a run as it goes (`<data dir>/certify/runs/<id>.json`, written after each
 * check): enough to resume it after a restart, keeping the finished checks' results and records.
 */
export interface RunRecord {
  id: string
  req: RunRequest
  state: 'running' | 'interrupted'
  startedAt: string
  /** The check running when the record was written (the one a resume re-runs first). */
  currentCheck?: string
  outcomes: CheckOutcome[]
  progress: ProgressLine[]
  facts: Partial<DeviceFacts>
  traces: Array<{ direction: 'sent' | 'received', at: string, topic: string, replyTo?: string, raw: string, decoded: Record<string, unknown> }>
  attempts: RunAttempt[]
}

export interface DeviceFacts {
  vendor: string
  model: string
  productClass: string
  firmware: string
  serialNumber: string
  agent: string
  agentVersion: string
  uspVersion: string
  transport: string
}

/** What a run needs from the gateway beyond the host: the controller identity and knobs. */
export interface RunContext {
  host: CertifyHost
  checklist: Checklist
  timings: RunTimings
  controllerId: string
  provisionCommand: string | undefined
  /** The gateway's own logins (controller, cross-tenant probe), shared by concurrent runs. */
  credentials: RunCredentials
  /** Crash journal: what the run must put back (null when it ended), so a restart can restore it. */
  journal(runId: string, state: RestoreState | null): Promise<void>
  /** Persists the run's progress (after each check) so an interrupted run can be resumed. */
  persist(run: CertificationRun): Promise<void>
  /** The node running this attempt (evidence). */
  node: string
}

/**
 * Credentials of the gateway's own endpoints (its controller in a tenant, the cross-tenant probe):
 * issued when the first run needs one, held in memory only, revoked when the last run releases it.
 */
export interface RunCredentials {
  acquire(tenant: string, principal: string): Promise<string>
  release(tenant: string, principal: string): Promise<void>
}

/** Things the run changed that `finally` must put back (also journalled for a crash). */
export interface RestoreState {
  tenant: string
  endpointId: string
  /** The credential the device should hold when the run ends (updated when recovery succeeds). */
  baseline: CredentialRecord
  /** The canary revision this run started, if any. */
  canaryStarted?: string
  /** Policy assignment at the start (stable, canary), for the evidence and the final comparison. */
  policyAtStart: { stable: string, canary?: { revision: string, tenants: string[] } }
}

export class CertificationRun {
  readonly id: string
  state: RunState = 'running'
  /** How execute() ended; the service turns it into `state` once evidence and matrix are filed. */
  outcome: RunState = 'running'
  readonly startedAt: Date
  finishedAt: Date | undefined
  readonly outcomes: CheckOutcome[] = []
  readonly progress: ProgressLine[] = []
  /** This attempt and the earlier ones of a resumed run. */
  readonly attempts: RunAttempt[] = []
  /** Results of earlier attempts kept by a resume (not re-run). */
  private readonly kept = new Map<string, CheckOutcome>()
  /** The check running now (persisted: a resume re-runs it). */
  currentCheck: string | undefined
  levelReached = 'none'
  facts: Partial<DeviceFacts> = {}
  evidencePath = ''
  error: string | undefined
  readonly controller = { secret: '' }
  /** Secrets the run generated (never logged; checked absent from logs, scrubbed from evidence). */
  readonly secrets: string[] = []
  readonly traces: RecordTrace[] = []
  readonly abort = new AbortController()
  restore: RestoreState | undefined
  private ctl: UspController | undefined
  private readonly held: Array<[string, string]> = []
  private agentProtocol: 4 | 5 = 5
  private controllerConnections = 0

  constructor (id: string, readonly req: RunRequest, private readonly ctx: RunContext, resumeFrom?: RunRecord) {
    this.id = id
    if (req.onlineTimeoutMs !== undefined) ctx.timings = { ...ctx.timings, onlineTimeoutMs: req.onlineTimeoutMs }
    this.startedAt = resumeFrom ? new Date(resumeFrom.startedAt) : new Date()
    if (resumeFrom !== undefined) {
      // the finished checks stay in the run's results from the start (also if this attempt ends early)
      for (const o of resumeFrom.outcomes) this.kept.set(o.id, o)
      this.outcomes.push(...resumeFrom.outcomes)
      this.progress.push(...resumeFrom.progress)
      this.facts = { ...resumeFrom.facts }
      this.traces.push(...resumeFrom.traces.map(t => ({ direction: t.direction, at: t.at, topic: t.topic, ...(t.replyTo !== undefined ? { replyTo: t.replyTo } : {}), raw: Buffer.from(t.raw, 'base64'), decoded: t.decoded })))
      this.attempts.push(...resumeFrom.attempts)
    }
    this.attempts.push({ startedAt: new Date().toISOString(), node: ctx.node, actor: req.actor, kept: [...this.kept.keys()] })
  }

  /** True when a resume kept this check's result from an earlier attempt. */
  private isKept (id: CheckId): boolean { return this.kept.has(id) }

  /** What is persisted of the run (resume after a restart). */
  snapshot (state: RunRecord['state'] = 'running'): RunRecord {
    return {
      id: this.id,
      req: this.req,
      state,
      startedAt: this.startedAt.toISOString(),
      ...(this.currentCheck !== undefined ? { currentCheck: this.currentCheck } : {}),
      outcomes: [...this.outcomes],
      progress: [...this.progress],
      facts: { ...this.facts },
      traces: this.traces.map(t => ({ direction: t.direction, at: t.at, topic: t.topic, ...(t.replyTo !== undefined ? { replyTo: t.replyTo } : {}), raw: t.raw.toString('base64'), decoded: t.decoded as Record<string, unknown> })),
      attempts: this.attempts.map(a => ({ ...a }))
    }
  }

  /** Ends the run as `interrupted` (gateway shutdown): it puts back what it changed and can be resumed. */
  interrupt (): void {
    if (this.state === 'running') this.abort.abort(new Error(SHUTDOWN_REASON))
  }

  get interrupted (): boolean {
    return this.signal.aborted && (this.signal.reason as Error | undefined)?.message === SHUTDOWN_REASON
  }

  get signal (): AbortSignal { return this.abort.signal }

  say (message: string, check?: string): void {
    this.progress.push({ at: new Date().toISOString(), ...(check ? { check } : {}), message })
  }

  cancel (reason = 'cancelled by the operator'): void {
    if (this.state === 'running') this.abort.abort(new Error(reason))
  }

  private get h (): CertifyHost { return this.ctx.host }
  /** TP-469 11.17: an MQTTConnectRecord within 30 s of (re)connecting (less when the run's online wait is shorter). */
  private get connectRecordWaitMs (): number { return Math.min(30_000, this.ctx.timings.onlineTimeoutMs) }
  private get identity (): string { return `${this.req.tenant}:${this.req.endpointId}` }

  private online (): boolean { return this.h.sessions.ofIdentity(this.identity).length > 0 }

  private sessionState (): { protocol: number, listener: string, auth: string, connectedAt: string } | undefined {
    return this.h.sessions.ofIdentity(this.identity)[0]?.state
  }

  /** Waits for a condition, polling; false on timeout, throws when the run is aborted. */
  private async until (cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      this.signal.throwIfAborted()
      if (await cond()) return true
      if (Date.now() >= deadline) return false
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }

  private events (since: string, pred: (e: { code: string, principal?: string | undefined, tenant?: string | undefined, clientId?: string | undefined }) => boolean): Array<Record<string, unknown>> {
    return this.h.events.query({ since, limit: 100_000 }).filter(e => pred(e)) as unknown as Array<Record<string, unknown>>
  }

  private async check (id: CheckId, body: () => Promise<{ result: CheckResult, summary: string, details?: Record<string, unknown> }>): Promise<CheckOutcome> {
    const def = this.ctx.checklist.checks.find(c => c.id === id)
    const earlier = this.kept.get(id)
    if (earlier !== undefined) {
      this.say(`kept from an earlier attempt (finished ${earlier.finishedAt}): ${earlier.result}`, id)
      return earlier
    }
    const started = new Date()
    this.currentCheck = id
    this.say(`running: ${def?.title ?? id}`, id)
    await this.ctx.persist(this)
    let r: { result: CheckResult, summary: string, details?: Record<string, unknown> }
    try {
      this.signal.throwIfAborted()
      r = await body()
    } catch (err) {
      if (this.signal.aborted) throw err
      r = { result: 'error', summary: (err as Error).message.slice(0, 300) }
    }
    const finished = new Date()
    const o: CheckOutcome = {
      id,
      title: def?.title ?? id,
      category: def?.category ?? id.split('.')[0]!,
      result: r.result,
      summary: r.summary,
      details: r.details ?? {},
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      durationMs: finished.getTime() - started.getTime()
    }
    this.outcomes.push(o)
    this.currentCheck = undefined
    this.say(`${r.result}: ${r.summary}`, id)
    await this.ctx.persist(this)
    return o
  }

  private skip (id: CheckId, why: string): void {
    const earlier = this.kept.get(id)
    if (earlier !== undefined) return
    const def = this.ctx.checklist.checks.find(c => c.id === id)
    const now = new Date().toISOString()
    this.outcomes.push({ id, title: def?.title ?? id, category: def?.category ?? '', result: 'skipped', summary: why, details: {}, startedAt: now, finishedAt: now, durationMs: 0 })
    this.say(`skipped: ${why}`, id)
  }

  /** A controller login of this tenant (MQTT version of the agent, so each side uses its own reply-to convention). */
  private async connectController (): Promise<UspController> {
    // the new connection is subscribed before the old one closes, so no record falls in between
    const previous = this.ctl
    const addr = this.h.mqttAddress()
    const ctl = await UspController.connect({
      host: addr.host,
      port: addr.port,
      tenant: this.req.tenant,
      endpointId: this.ctx.controllerId,
      secret: this.controller.secret,
      mqttVersion: this.agentProtocol,
      requestTimeoutMs: this.ctx.timings.requestTimeoutMs,
      msgIdPrefix: this.id,
      clientId: `uspgate-certify-${this.id}-${++this.controllerConnections}`,
      presenceOf: [this.req.endpointId]
    })
    ctl.on('record', (t: RecordTrace) => this.traces.push(t))
    if (previous !== undefined) {
      // what the previous connection saw (first contact) still counts
      ctl.connectRecords.unshift(...previous.connectRecords)
      ctl.notifications.unshift(...previous.notifications)
      ctl.presence.unshift(...previous.presence)
      previous.removeAllListeners('record')
      await previous.close()
      ctl.connectRecords.splice(0, 0, ...previous.connectRecords.filter(r => !ctl.connectRecords.includes(r)))
      ctl.notifications.splice(0, 0, ...previous.notifications.filter(n => !ctl.notifications.includes(n)))
    }
    this.ctl = ctl
    return ctl
  }

  /** Cuts the agent's live sessions without revoking anything (MQTT 5: DISCONNECT 0x98). */
  private cutSessions (): number {
    const handles = this.h.sessions.ofIdentity(this.identity)
    for (const hd of handles) hd.disconnect(DISCONNECT_ADMINISTRATIVE)
    return handles.length
  }

  /** Puts a credential record back as the device's active credential. */
  private async putBack (record: CredentialRecord, why: string): Promise<void> {
    const cur = this.h.store.getCredential(this.req.tenant, this.req.endpointId)
    if (cur !== undefined && cur.revokedAt === undefined && cur.secretHash === record.secretHash) return
    if (cur !== undefined && cur.revokedAt === undefined) await this.h.store.revokeCredential(this.req.tenant, this.req.endpointId, new Date().toISOString())
    const { revokedAt: _r, ...active } = record
    await this.h.store.putCredential({ ...active })
    this.h.events.emit({ code: 'credential.restored', tenant: this.req.tenant, principal: this.req.endpointId, actor: this.req.actor, action: 'certify.restore', reason: `${why} (run ${this.id})` })
  }

  /** Revokes (so the live session is cut) and sets a new secret; returns it. */
  private async rotate (): Promise<string> {
    const secret = generateSecret()
    this.secrets.push(secret)
    const t = this.req.tenant
    const p = this.req.endpointId
    const cur = this.h.store.getCredential(t, p)!
    await this.h.store.revokeCredential(t, p, new Date().toISOString())
    this.h.disconnectIdentity(t, p)
    await this.h.store.putCredential({ tenant: t, principal: p, role: cur.role, secretHash: hashSecret(secret), createdAt: new Date().toISOString() })
    this.h.events.emit({ code: 'credential.rotated', tenant: t, principal: p, actor: this.req.actor, action: 'certify.rotate', reason: `run ${this.id}: recovery-from-bad-credentials check` })
    return secret
  }

  /** A login attempt; resolves with the CONNACK code (0 = accepted, then closed at once). */
  private async tryLogin (username: string, password: string, v: 4 | 5 = 5): Promise<number | string> {
    const addr = this.h.mqttAddress()
    return await new Promise(resolve => {
      const c = mqtt.connect({ host: addr.host, port: addr.port, protocolVersion: v, username, password, clientId: `uspgate-certify-login-${this.id}`, reconnectPeriod: 0, connectTimeout: 10_000, clean: true })
      const done = (code: number | string): void => { c.end(true); resolve(code) }
      c.once('connect', () => done(0))
      c.once('error', err => done((err as { code?: number | string }).code ?? err.message))
      c.once('close', () => done('closed'))
    })
  }

  /** The whole run. Never throws: the outcome is in state / outcomes / error. */
  async execute (): Promise<void> {
    const t = this.req.tenant
    const eid = this.req.endpointId
    const timer = setTimeout(() => this.abort.abort(new Error(`run exceeded its time bound of ${Math.round(this.ctx.timings.runTimeoutMs / 1000)} s`)), this.ctx.timings.runTimeoutMs)
    try {
      // cancelled before it began (an interrupted run that is cancelled): touch nothing
      this.signal.throwIfAborted()
      this.restore = {
        tenant: t,
        endpointId: eid,
        baseline: { ...this.h.store.getCredential(t, eid)! },
        policyAtStart: this.h.policyAssignment()
      }
      await this.ctx.journal(this.id, this.restore)
      this.controller.secret = await this.ctx.credentials.acquire(t, this.ctx.controllerId)
      this.held.push([t, this.ctx.controllerId])
      this.secrets.push(this.controller.secret)
      const st0 = this.sessionState()
      this.agentProtocol = st0?.protocol === 4 || st0?.protocol === 3 ? 4 : 5
      let ctl = await this.connectController()
      this.say(`controller ${this.ctx.controllerId} connected (MQTT ${this.agentProtocol === 5 ? '5' : '3.1.1'}) on ${ctl.inbox}`)

      // ---- first contact: a fresh connection of the agent while the controller listens
      let firstContactFrom = Date.now()
      if (this.isKept('interop.first_contact')) {
        this.say(`run resumed: ${this.kept.size} finished check(s) kept from the earlier attempt; waiting for the agent to be online`)
      } else if (this.online()) {
        this.say('agent is online: forcing a reconnect to observe its first contact')
        firstContactFrom = Date.now()
        this.cutSessions()
      } else {
        this.say(`agent is offline: waiting up to ${Math.round(this.ctx.timings.onlineTimeoutMs / 1000)} s for it to connect (power it on now)`)
      }
      const cameOnline = await this.until(() => this.online(), this.ctx.timings.onlineTimeoutMs)
      if (cameOnline) {
        const proto = this.sessionState()!.protocol === 5 ? 5 : 4
        if (proto !== this.agentProtocol) {
          // the agent speaks the other MQTT version: talk to it in its own (records seen so far are kept)
          this.agentProtocol = proto
          ctl = await this.connectController()
        }
      }
      const connectSince = new Date(firstContactFrom).toISOString()
      await this.check('interop.first_contact', async () => {
        if (!cameOnline) {
          const ev = this.events(connectSince, e => e.principal === eid || e.principal === this.identity)
          return { result: 'fail', summary: `the agent did not connect within ${Math.round(this.ctx.timings.onlineTimeoutMs / 1000)} s${ev.length ? `; refusals: ${[...new Set(ev.map(e => e.code))].join(', ')}` : ''}`, details: { events: ev.slice(0, 20) } }
        }
        const rec = await ctl.waitFor(() => ctl.connectRecords.find(r => r.fromId === eid && r.at >= connectSince), this.connectRecordWaitMs, this.signal)
        if (rec === undefined) {
          const ev = this.events(connectSince, e => e.principal === eid && /^(acl|usp)\./.test(e.code))
          return { result: 'fail', summary: `no MQTTConnectRecord reached ${ctl.inbox} within ${Math.round(this.connectRecordWaitMs / 1000)} s (TP-469 11.17)${ev.length ? `; refused: ${[...new Set(ev.map(e => `${String(e.code)} on ${String(e.topic)}`))].join(', ')}` : ''}`, details: { events: ev.slice(0, 20) } }
        }
        const want = this.agentProtocol === 5 ? 'V5' : 'V3_1_1'
        const inTenant = rec.subscribedTopic.startsWith(`${t}/`)
        const ok = rec.version === want && inTenant
        return {
          result: ok ? 'pass' : 'fail',
          summary: ok ? `MQTTConnectRecord ${rec.version}, subscribed topic ${rec.subscribedTopic}` : `MQTTConnectRecord version ${rec.version} (expected ${want}), subscribed topic ${rec.subscribedTopic}${inTenant ? '' : ' outside the tenant'}`,
          details: { mqttConnect: rec }
        }
      })
      if (!cameOnline) this.skip('interop.boot_notify', 'the agent is not connected')
      else await this.check('interop.boot_notify', async () => {
        // obuspa and most agents send Boot! once per boot (only to controllers subscribed to Device.Boot!)
        const seen = await ctl.waitFor(() => ctl.notifications.find(n => n.fromId === eid && (isBoot(n.notify) || n.notify.onBoardReq !== undefined)), cameOnline ? 5000 : 0, this.signal)
        if (seen === undefined) return { result: 'unsupported', summary: 'no Boot! event or OnBoardRequest seen (the agent must boot while the run waits, with a Device.Boot! subscription for this controller)' }
        return { result: 'pass', summary: isBoot(seen.notify) ? `Boot! (Cause ${String((seen.notify.event as { params?: Record<string, string> }).params?.Cause ?? '?')})` : 'OnBoardRequest', details: { notify: seen.notify } }
      })
      await this.check('interop.online', async () => {
        if (!cameOnline) return { result: 'fail', summary: 'the agent is not connected' }
        const reg = await this.h.endpoints.get(t, eid)
        const presence = await ctl.waitFor(() => ctl.presence.find(p => p.endpointId === eid && p.value === '1'), 3000, this.signal)
        const ok = reg?.online === true && presence !== undefined
        return { result: ok ? 'pass' : 'fail', summary: ok ? `online since ${this.sessionState()?.connectedAt ?? '?'}, presence 1` : `registry online=${String(reg?.online)}, presence 1 ${presence ? 'seen' : 'not seen'}`, details: { registry: reg } }
      })
      await this.check('security.tenant_username', async () => {
        const st = this.sessionState()
        const refused = this.events(connectSince, e => (e.principal === eid && e.tenant === undefined) || e.principal === this.identity)
        if (st !== undefined && refused.length === 0) return { result: 'pass', summary: `logged in as ${this.identity} (${st.auth}, listener ${st.listener})` }
        const codes = [...new Set(refused.map(e => String(e.code)))]
        return { result: st ? 'pass' : 'fail', summary: st ? `logged in as ${this.identity}; also refused: ${codes.join(', ')}` : `no login as ${this.identity}${codes.length ? `; refused logins: ${codes.join(', ')}` : ''}`, details: { events: refused.slice(0, 20) } }
      })
      if (!cameOnline) {
        for (const id of ['interop.supported_dm', 'interop.inventory'] as const) this.skip(id, 'the agent is not connected')
      } else {
        await this.discovery(ctl)
      }
      await this.check('security.topics_in_tenant', async () => {
        const since = this.sessionState()?.connectedAt ?? connectSince
        const from = since < connectSince ? since : connectSince
        const bad = this.events(from, e => (e.principal === eid && e.tenant === t) && ['acl.cross_tenant', 'acl.reserved_topic', 'acl.denied', 'acl.invalid_topic', 'usp.reply_to_cross_tenant', 'usp.misrouted', 'usp.from_id_spoofed'].includes(e.code))
        const observed = (await this.h.uspAuditOf(t)).filter(a => a.fromId === eid && a.time >= from).map(a => a.topic)
        const outside = observed.filter(x => !x.startsWith(`${t}/`))
        const rec = ctl.connectRecords.find(r => r.fromId === eid)
        if (bad.length > 0 || outside.length > 0 || (rec !== undefined && !rec.subscribedTopic.startsWith(`${t}/`))) {
          return { result: 'fail', summary: `refused outside its tenant: ${[...new Set(bad.map(e => `${String(e.code)} ${String(e.action ?? '')} ${String(e.topic ?? '')}`.trim()))].join('; ') || outside.join(', ')}`, details: { events: bad.slice(0, 20), observedTopics: [...new Set(observed)] } }
        }
        if (!cameOnline) return { result: 'fail', summary: 'nothing observed: the agent never connected' }
        return { result: 'pass', summary: `${new Set(observed).size} topic(s) observed, all under ${t}/; no refusals`, details: { observedTopics: [...new Set(observed)], subscribedTopic: rec?.subscribedTopic } }
      })
      await this.check('security.cross_tenant_refused', async () => await this.crossTenantProbe())
      await this.check('security.bad_credentials_logged', async () => {
        const at = new Date().toISOString()
        const code = await this.tryLogin(this.identity, generateSecret(), 5)
        // an agent that keeps failing from the same address puts the username in back-off: then the
        // attempt is refused and logged as auth.throttled, which is just as good
        const logged = (): string | undefined => this.events(at, e => (e.code === 'auth.bad_credentials' || e.code === 'auth.throttled') && (e.principal === eid || e.principal === this.identity) && String(e.clientId ?? '').startsWith('uspgate-certify-login'))[0]?.code as string | undefined
        const ev = await this.until(() => logged() !== undefined, 3000)
        // in back-off the refusal is 0x9F Connection rate exceeded (distinct from a wrong password)
        const ok = (code === 0x86 || (code === 0x9f && logged() === 'auth.throttled')) && ev
        return { result: ok ? 'pass' : 'fail', summary: ok ? `wrong secret refused (CONNACK 0x${(code as number).toString(16)}) and logged as ${logged() ?? ''}` : `wrong secret: CONNACK ${String(code)}, event ${ev ? 'logged' : 'missing'}` }
      })
      if (cameOnline) {
        await this.reconnectChecks(ctl)
      } else {
        for (const id of ['interop.reconnect', 'interop.offline_detection'] as const) this.skip(id, 'the agent is not connected')
      }
      const certified = this.req.level === 'certified'
      if (certified && cameOnline) {
        await this.recoveryChecks()
      } else {
        await this.check('security.bare_username_refused', async () => await this.bareUsernameProbe(generateSecret()))
        if (certified) this.skip('interop.credential_recovery', 'the agent is not connected')
      }
      if (certified && cameOnline && this.online()) {
        await this.revocationCheck()
        await this.canaryCheck()
      } else if (certified) {
        for (const id of ['canary.revocation_cut', 'canary.policy_rollback'] as const) this.skip(id, 'the agent is not connected')
      }
      for (const w of this.req.workflows) {
        if (!this.online()) { this.say(`advanced workflow ${w} skipped: the agent is not connected`); continue }
        if (w === 'set-preview') await this.check('advanced.set_preview', async () => await this.setPreview())
        if (w === 'operate') await this.check('advanced.operate', async () => await this.operate())
        if (w === 'reboot') await this.check('advanced.reboot', async () => await this.reboot())
      }
      await this.check('security.no_secrets_logged', async () => await this.secretScan())
      this.outcome = 'passed'
    } catch (err) {
      const reason = this.signal.aborted ? (this.signal.reason as Error | undefined)?.message ?? 'aborted' : (err as Error).message
      this.error = reason
      this.outcome = this.interrupted ? 'interrupted' : this.signal.aborted && !/time bound/.test(reason) ? 'cancelled' : 'error'
      this.say(`run stopped: ${reason}`)
    } finally {
      clearTimeout(timer)
      await this.cleanUp()
    }
  }

  private async discovery (ctl: UspController): Promise<void> {
    const eid = this.req.endpointId
    await this.check('interop.supported_dm', async () => {
      const proto = await ctl.request(eid, { getSupportedProtocol: { controllerSupportedProtocolVersions: '1.0,1.1,1.2,1.3,1.4' } })
      const versions = String((proto.response.getSupportedProtocolResp as { agentSupportedProtocolVersions?: string } | undefined)?.agentSupportedProtocolVersions ?? '')
      this.facts.uspVersion = versions.split(',').map(s => s.trim()).filter(Boolean).sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).at(-1) ?? ''
      const dm = await ctl.request(eid, { getSupportedDm: { objPaths: ['Device.'], firstLevelOnly: true, returnCommands: false, returnEvents: false, returnParams: false } })
      const results = ((dm.response.getSupportedDmResp as { reqObjResults?: Array<{ reqObjPath?: string, errCode?: number, supportedObjs?: Array<{ supportedObjPath?: string }> }> } | undefined)?.reqObjResults) ?? []
      const objs = results.flatMap(r => (r.supportedObjs ?? []).map(o => o.supportedObjPath ?? ''))
      const err = results.find(r => (r.errCode ?? 0) !== 0)
      if (objs.length === 0) return { result: 'fail', summary: `GetSupportedDM of Device. returned no objects${err ? ` (${uspErrorName(err.errCode!)})` : ''}` }
      return { result: 'pass', summary: `${objs.length} objects under Device.; USP versions ${versions}`, details: { agentSupportedProtocolVersions: versions, objects: objs, elapsedMs: dm.elapsedMs } }
    })
    await this.check('interop.inventory', async () => {
      const info = await this.getParams(ctl, 'Device.DeviceInfo.')
      if (info.error !== undefined) return { result: 'fail', summary: `Get Device.DeviceInfo.: ${info.error}` }
      const p = (name: string): string => info.params[`Device.DeviceInfo.${name}`] ?? ''
      this.facts.vendor = p('Manufacturer')
      this.facts.model = p('ModelName')
      this.facts.productClass = p('ProductClass')
      this.facts.firmware = p('SoftwareVersion')
      this.facts.serialNumber = p('SerialNumber')
      const agent = await this.getParams(ctl, 'Device.LocalAgent.SoftwareVersion')
      this.facts.agent = agent.params['Device.LocalAgent.SoftwareVersion'] !== undefined ? 'USP agent' : ''
      this.facts.agentVersion = agent.params['Device.LocalAgent.SoftwareVersion'] ?? ''
      const optional = ['Device.Ethernet.Interface.', 'Device.IP.Interface.', 'Device.WiFi.Radio.']
      const unsupported: string[] = []
      const supported: Record<string, number> = {}
      for (const path of optional) {
        const r = await this.getParams(ctl, path)
        if (r.unsupported) unsupported.push(path)
        else if (r.error !== undefined) unsupported.push(`${path} (${r.error})`)
        else supported[path] = Object.keys(r.params).length
      }
      const missing = ['Manufacturer', 'ModelName'].filter(n => p(n) === '')
      if (missing.length > 0) return { result: 'fail', summary: `Device.DeviceInfo. lacks ${missing.join(', ')}`, details: { deviceInfo: info.params } }
      // an agent without the vendor hook (stock obuspa) reports an empty firmware version: a gap, not a failure
      for (const n of ['SoftwareVersion', 'ProductClass', 'SerialNumber']) if (p(n) === '') unsupported.push(`Device.DeviceInfo.${n} (empty)`)
      return {
        result: 'pass',
        summary: `${this.facts.vendor} ${this.facts.model} (${this.facts.productClass}) firmware ${this.facts.firmware}${unsupported.length ? `; unsupported: ${unsupported.join(', ')}` : ''}`,
        details: { deviceInfo: info.params, supported, unsupported }
      }
    })
  }

  /** Get of one path: the flat parameter map, or why it failed (unsupported = not in the agent's data model). */
  private async getParams (ctl: UspController, path: string): Promise<{ params: Record<string, string>, error?: string, unsupported?: boolean }> {
    try {
      const r = await ctl.request(this.req.endpointId, { get: { paramPaths: [path], maxDepth: 0 } })
      const results = (r.response.getResp as { reqPathResults?: Array<{ errCode?: number, errMsg?: string, resolvedPathResults?: Array<{ resolvedPath?: string, resultParams?: Record<string, string> }> }> } | undefined)?.reqPathResults ?? []
      const params: Record<string, string> = {}
      for (const res of results) {
        if ((res.errCode ?? 0) !== 0) return { params, error: `${uspErrorName(res.errCode!)}${res.errMsg ? `: ${res.errMsg}` : ''}`, unsupported: NOT_SUPPORTED_CODES.has(res.errCode!) }
        for (const rp of res.resolvedPathResults ?? []) {
          for (const [k, v] of Object.entries(rp.resultParams ?? {})) params[`${rp.resolvedPath ?? ''}${k}`] = v
        }
      }
      const none = results.every(x => (x.resolvedPathResults ?? []).length === 0)
      if (none && path.endsWith('.')) return { params, unsupported: true, error: 'no instances' }
      return { params }
    } catch (err) {
      if (err instanceof UspErrorReply) return { params: {}, error: err.message, unsupported: NOT_SUPPORTED_CODES.has(err.errCode) || err.paramErrs.some(p => NOT_SUPPORTED_CODES.has(p.errCode)) }
      throw err
    }
  }

  private async crossTenantProbe (): Promise<{ result: CheckResult, summary: string, details?: Record<string, unknown> }> {
    const t = this.req.tenant
    const secret = await this.ctx.credentials.acquire(CERTIFY_PROBE_TENANT, CERTIFY_PROBE_ID)
    this.secrets.push(secret)
    const addr = this.h.mqttAddress()
    const topic = `${t}/usp/agent/${this.req.endpointId}`
    const at = new Date().toISOString()
    try {
      const client = await mqtt.connectAsync({ host: addr.host, port: addr.port, protocolVersion: 5, username: `${CERTIFY_PROBE_TENANT}:${CERTIFY_PROBE_ID}`, password: secret, clientId: `uspgate-certify-probe-${this.id}`, reconnectPeriod: 0, connectTimeout: 10_000 })
      const record = encodeRecord({ toId: this.req.endpointId, fromId: CERTIFY_PROBE_ID, noSessionContext: { payload: encodeMsg({ msgId: `${this.id}-probe`, body: { request: { get: { paramPaths: ['Device.DeviceInfo.'] } } } }) } })
      let code: number | string = 0
      try {
        const pkt = await client.publishAsync(topic, record, { qos: 1, properties: { responseTopic: `${CERTIFY_PROBE_TENANT}/usp/controller/${CERTIFY_PROBE_ID}`, contentType: 'usp.msg' } })
        code = (pkt as { reasonCode?: number } | undefined)?.reasonCode ?? 0
      } catch (err) {
        code = (err as { code?: number }).code ?? (err as Error).message
      }
      await client.endAsync(true)
      const logged = await this.until(() => this.events(at, e => e.code === 'acl.cross_tenant' && e.principal === CERTIFY_PROBE_ID).length > 0, 3000)
      const refused = typeof code === 'number' && code >= 0x80
      return {
        result: refused && logged ? 'pass' : 'fail',
        summary: `publish from tenant ${CERTIFY_PROBE_TENANT} to ${topic}: ${refused ? `refused (PUBACK 0x${(code as number).toString(16)})` : `NOT refused (${String(code)})`}, ${logged ? 'logged as acl.cross_tenant' : 'no acl.cross_tenant event'}`
      }
    } finally {
      await this.ctx.credentials.release(CERTIFY_PROBE_TENANT, CERTIFY_PROBE_ID)
    }
  }

  private async bareUsernameProbe (secret: string): Promise<{ result: CheckResult, summary: string }> {
    const eid = this.req.endpointId
    const at = new Date().toISOString()
    const code = await this.tryLogin(eid, secret, 5)
    const logged = await this.until(() => this.events(at, e => e.code === 'auth.bare_username' && e.principal === eid).length > 0, 3000)
    const ok = code === 0x86 && logged
    return { result: ok ? 'pass' : 'fail', summary: `login as bare "${eid}": ${code === 0 ? 'ACCEPTED' : `refused (CONNACK ${String(code)})`}, ${logged ? 'logged as auth.bare_username' : 'no auth.bare_username event'}` }
  }

  private async reconnectChecks (ctl: UspController): Promise<void> {
    const eid = this.req.endpointId
    const t = this.req.tenant
    const cutAt = Date.now()
    const cutIso = new Date(cutAt).toISOString()
    const presenceBefore = ctl.presence.length
    // a resume that kept both results does not cut the agent again
    if (!(this.isKept('interop.offline_detection') && this.isKept('interop.reconnect'))) this.cutSessions()
    await this.check('interop.offline_detection', async () => {
      const zero = await ctl.waitFor(() => ctl.presence.slice(presenceBefore).find(p => p.endpointId === eid && p.value === '0'), 3000, this.signal)
      const reg = await this.h.endpoints.get(t, eid)
      const ms = zero ? zero.at - cutAt : undefined
      const ok = ms !== undefined && ms <= 1000
      return { result: ok ? 'pass' : 'fail', summary: ms !== undefined ? `presence 0 ${ms} ms after the session ended${reg?.online === false ? ', registry offline' : ''}` : 'no presence 0 within 3 s', details: { presenceZeroMs: ms } }
    })
    await this.check('interop.reconnect', async () => {
      const back = await this.until(() => this.online(), this.ctx.timings.onlineTimeoutMs)
      if (!back) return { result: 'fail', summary: `not back within ${Math.round(this.ctx.timings.onlineTimeoutMs / 1000)} s of a forced disconnect` }
      const reconnectMs = Date.now() - cutAt
      const rec = await ctl.waitFor(() => ctl.connectRecords.find(r => r.fromId === eid && r.at >= cutIso), this.connectRecordWaitMs, this.signal)
      return {
        result: rec ? 'pass' : 'fail',
        summary: rec ? `back after ${reconnectMs} ms, MQTTConnectRecord ${Date.parse(rec.at) - cutAt} ms after the cut` : `back after ${reconnectMs} ms but no MQTTConnectRecord within ${Math.round(this.connectRecordWaitMs / 1000)} s (TP-469 11.17)`,
        details: { reconnectMs, connectRecordMs: rec ? Date.parse(rec.at) - cutAt : undefined }
      }
    })
  }

  private async recoveryChecks (): Promise<void> {
    const eid = this.req.endpointId
    const t = this.req.tenant
    const rotatedAt = new Date().toISOString()
    // a resume that kept the recovery result does not rotate the credential again
    const rerun = !this.isKept('interop.credential_recovery')
    const secret = rerun ? await this.rotate() : ''
    if (rerun) this.say('credential rotated: the agent must now fail to log in with its old secret')
    await this.check('security.bare_username_refused', async () => await this.bareUsernameProbe(secret))
    await this.check('interop.credential_recovery', async () => {
      const tried = await this.until(() => this.events(rotatedAt, e => e.code === 'auth.bad_credentials' && e.principal === eid && e.tenant === t && !String(e.clientId ?? '').startsWith('uspgate-certify')).length > 0, this.ctx.timings.onlineTimeoutMs)
      const failed = tried ? 'its logins with the old secret were refused and logged (auth.bad_credentials)' : 'the agent made no login attempt with the old secret'
      const cmd = this.ctx.provisionCommand
      if (cmd === undefined) {
        await this.putBack(this.restore!.baseline, 'no provisioning step configured: previous secret restored')
        const back = await this.until(() => this.online(), this.ctx.timings.onlineTimeoutMs)
        return { result: 'manual', summary: `${failed}; no provisioning step is configured (USPGATE_CERTIFY_PROVISION_CMD): recovery needs manual action; previous secret restored, agent ${back ? 'back online' : 'NOT back online'}` }
      }
      const provisioned = await this.provision(cmd, secret)
      if (!provisioned.ok) {
        await this.putBack(this.restore!.baseline, 'provisioning step failed: previous secret restored')
        await this.until(() => this.online(), this.ctx.timings.onlineTimeoutMs)
        return { result: 'fail', summary: `${failed}; the provisioning step failed (${provisioned.error}); previous secret restored` }
      }
      const back = await this.until(() => this.online(), this.ctx.timings.onlineTimeoutMs)
      if (!back) {
        await this.putBack(this.restore!.baseline, 'agent did not come back with the new secret: previous secret restored')
        await this.until(() => this.online(), this.ctx.timings.onlineTimeoutMs)
        return { result: 'fail', summary: `${failed}; the provisioning step ran but the agent did not log in with the new secret within ${Math.round(this.ctx.timings.onlineTimeoutMs / 1000)} s; previous secret restored` }
      }
      // the device now holds the new secret: that is what "restored" means from here on
      this.restore!.baseline = { ...this.h.store.getCredential(t, eid)! }
      await this.ctx.journal(this.id, this.restore!)
      return { result: tried ? 'pass' : 'fail', summary: `${failed}; provisioning delivered the new secret and the agent is back online`, details: { rotatedAt } }
    })
  }

  private async provision (cmd: string, secret: string): Promise<{ ok: boolean, error?: string }> {
    return await new Promise(resolve => {
      execFile(cmd, [this.req.tenant, this.req.endpointId], {
        timeout: this.ctx.timings.provisionTimeoutMs,
        // the secret travels in the environment, never on a command line (visible in ps)
        env: { ...process.env, USPGATE_CERTIFY_USERNAME: this.identity, USPGATE_CERTIFY_SECRET: secret }
      }, (err) => { resolve(err ? { ok: false, error: `exit ${String((err as { code?: unknown }).code ?? err.message)}` } : { ok: true }) })
    })
  }

  private async revocationCheck (): Promise<void> {
    const t = this.req.tenant
    const eid = this.req.endpointId
    await this.check('canary.revocation_cut', async () => {
      const at = Date.now()
      const atIso = new Date(at).toISOString()
      await this.h.store.revokeCredential(t, eid, atIso)
      this.h.disconnectIdentity(t, eid)
      this.h.events.emit({ code: 'credential.revoked', tenant: t, principal: eid, actor: this.req.actor, action: 'certify.revoke', reason: `run ${this.id}: revocation check (restored after ${Math.round(this.ctx.timings.revocationHoldMs / 1000)} s)` })
      const cut = await this.until(() => !this.online(), 1000)
      const cutMs = Date.now() - at
      let cameBack = false
      const holdUntil = Date.now() + this.ctx.timings.revocationHoldMs
      while (Date.now() < holdUntil) {
        this.signal.throwIfAborted()
        if (this.online()) cameBack = true
        await new Promise(resolve => setTimeout(resolve, 50))
      }
      const refusals = this.events(atIso, e => e.principal === eid && e.tenant === t && (e.code === 'auth.revoked' || e.code === 'auth.throttled')).length
      await this.putBack(this.restore!.baseline, 'revocation check finished')
      const back = await this.until(() => this.online(), this.ctx.timings.onlineTimeoutMs)
      const ok = cut && cutMs <= 1000 && !cameBack
      return {
        result: ok ? 'pass' : 'fail',
        summary: `${cut ? `cut ${cutMs} ms after revocation` : 'NOT cut within 1 s'}, ${cameBack ? 'got back in while revoked' : `stayed out for ${Math.round(this.ctx.timings.revocationHoldMs / 1000)} s (${refusals} refused login(s))`}; credential restored, agent ${back ? 'back online' : 'NOT back online'}`,
        details: { cutMs, refusals, backOnline: back }
      }
    })
  }

  private async canaryCheck (): Promise<void> {
    const t = this.req.tenant
    await this.check('canary.policy_rollback', async () => {
      const before = this.h.policyAssignment()
      if (before.canary !== undefined) return { result: 'skipped', summary: `a canary (${before.canary.revision}) is already active; the run does not touch it` }
      const revision = await this.h.ensureCanaryRevision(before.stable)
      await this.h.startCanary(revision, [t], this.req.actor)
      this.restore!.canaryStarted = revision
      await this.ctx.journal(this.id, this.restore!)
      const under = this.h.revisionFor(t)
      const getUnder = await this.getParams(this.ctl!, 'Device.DeviceInfo.Manufacturer')
      await this.h.rollback(this.req.actor, `certification run ${this.id}: canary check`)
      delete this.restore!.canaryStarted
      await this.ctx.journal(this.id, this.restore!)
      const after = this.h.revisionFor(t)
      const getAfter = await this.getParams(this.ctl!, 'Device.DeviceInfo.Manufacturer')
      const ok = under === revision && after === before.stable && getUnder.error === undefined && getAfter.error === undefined
      return {
        result: ok ? 'pass' : 'fail',
        summary: `canary ${revision}: decided ${under === revision ? 'the tenant' : 'NOT the tenant'} (Get ${getUnder.error ?? 'answered'}); rolled back: tenant on ${after} (Get ${getAfter.error ?? 'answered'})`,
        details: { canary: revision, stable: before.stable, revisionUnderCanary: under, revisionAfterRollback: after }
      }
    })
  }

  private workflowParam (workflow: string, name: string, fallback: string): string {
    return this.ctx.checklist.checks.find(c => c.workflow === workflow)?.params?.[name] ?? fallback
  }

  private async setPreview (): Promise<{ result: CheckResult, summary: string, details?: Record<string, unknown> }> {
    const path = this.workflowParam('set-preview', 'path', 'Device.LocalAgent.Controller.1.PeriodicNotifInterval')
    const value = this.workflowParam('set-preview', 'value', '86399')
    const obj = path.slice(0, path.lastIndexOf('.') + 1)
    const param = path.slice(path.lastIndexOf('.') + 1)
    const before = await this.getParams(this.ctl!, path)
    if (before.error !== undefined) return { result: before.unsupported ? 'unsupported' : 'fail', summary: `preview Get ${path}: ${before.error}` }
    const previous = before.params[path] ?? ''
    const set = async (v: string): Promise<void> => {
      await this.ctl!.request(this.req.endpointId, { set: { allowPartial: false, updateObjs: [{ objPath: obj, paramSettings: [{ param, value: v, required: true }] }] } })
    }
    await set(value)
    const applied = (await this.getParams(this.ctl!, path)).params[path]
    await set(previous)
    const restored = (await this.getParams(this.ctl!, path)).params[path]
    const ok = applied === value && restored === previous
    return { result: ok ? 'pass' : 'fail', summary: `${path}: ${previous} → ${String(applied)} → rolled back to ${String(restored)}`, details: { path, previous, applied, restored } }
  }

  private async operate (): Promise<{ result: CheckResult, summary: string, details?: Record<string, unknown> }> {
    const command = this.workflowParam('operate', 'command', 'Device.LocalAgent.Controller.1.SendOnBoardRequest()')
    try {
      const r = await this.ctl!.request(this.req.endpointId, { operate: { command, commandKey: `certify-${this.id}`, sendResp: true } })
      return { result: 'pass', summary: `Operate ${command} answered`, details: { response: r.response } }
    } catch (err) {
      if (err instanceof UspErrorReply) return { result: NOT_SUPPORTED_CODES.has(err.errCode) ? 'unsupported' : 'fail', summary: `Operate ${command}: ${err.message}` }
      throw err
    }
  }

  private async reboot (): Promise<{ result: CheckResult, summary: string, details?: Record<string, unknown> }> {
    const eid = this.req.endpointId
    const ctl = this.ctl!
    const at = Date.now()
    const atIso = new Date(at).toISOString()
    const commandKey = `certify-${this.id}`
    try {
      await ctl.request(eid, { operate: { command: 'Device.Reboot()', commandKey, sendResp: true } })
    } catch (err) {
      if (err instanceof UspErrorReply) return { result: NOT_SUPPORTED_CODES.has(err.errCode) ? 'unsupported' : 'fail', summary: `Operate Device.Reboot(): ${err.message}` }
      throw err
    }
    const answeredMs = Date.now() - at
    const down = await this.until(() => !this.online(), this.ctx.timings.onlineTimeoutMs)
    const downMs = down ? Date.now() - at : undefined
    const back = down && await this.until(() => this.online(), this.ctx.timings.onlineTimeoutMs * 3)
    const reconnectMs = back ? Date.now() - at : undefined
    const rec = back ? await ctl.waitFor(() => ctl.connectRecords.find(r => r.fromId === eid && r.at >= atIso), this.connectRecordWaitMs, this.signal) : undefined
    const boot = back ? await ctl.waitFor(() => ctl.notifications.find(n => n.fromId === eid && n.at >= atIso && isBoot(n.notify)), this.connectRecordWaitMs, this.signal) : undefined
    const params = (boot?.notify.event as { params?: Record<string, string> } | undefined)?.params ?? {}
    const cause = params.Cause
    const details = {
      command: 'Device.Reboot()',
      commandKey,
      rebootRequestedAt: atIso,
      answeredMs,
      downMs,
      reconnectMs,
      connectRecordMs: rec ? Date.parse(rec.at) - at : undefined,
      bootMs: boot ? Date.parse(boot.at) - at : undefined,
      bootCause: cause,
      bootCommandKey: params.CommandKey
    }
    const parts = [
      `answered in ${answeredMs} ms`,
      down ? `went down after ${downMs!} ms` : `did not go down within ${Math.round(this.ctx.timings.onlineTimeoutMs / 1000)} s`,
      ...(down ? [back ? `back online after ${reconnectMs!} ms` : `not back within ${Math.round(this.ctx.timings.onlineTimeoutMs * 3 / 1000)} s`] : []),
      ...(back ? [rec ? `MQTTConnectRecord after ${details.connectRecordMs!} ms` : 'no MQTTConnectRecord'] : []),
      ...(back ? [boot ? `Boot! (Cause ${cause ?? '?'}) after ${details.bootMs!} ms` : 'no Boot! seen'] : [])
    ]
    return { result: down && back ? 'pass' : 'fail', summary: `Reboot(): ${parts.join(', ')}`, details }
  }

  private async secretScan (): Promise<{ result: CheckResult, summary: string }> {
    const needles = this.secrets.flatMap(s => [s, hashSecret(s)])
    const files = [this.h.events.path, join(this.h.dataDir, 'audit', 'usp-records.ndjson')]
    const found: string[] = []
    for (const f of files) {
      let text = ''
      try { text = await readFile(f, 'utf8') } catch { continue }
      if (needles.some(n => text.includes(n))) found.push(f)
    }
    return found.length === 0
      ? { result: 'pass', summary: `none of the ${this.secrets.length} secret(s) used by the run (or their hashes) in the security events or the USP audit trail` }
      : { result: 'fail', summary: `a secret or its hash appears in ${found.join(', ')}` }
  }

  /** Puts everything back; each step is independent so one failure does not stop the others. */
  private async cleanUp (): Promise<void> {
    const steps: Array<[string, () => Promise<void>]> = [
      ['controller connection', async () => { await this.ctl?.close() }],
      ['agent credential', async () => { if (this.restore) await this.putBack(this.restore.baseline, 'run ended') }],
      ['canary', async () => {
        const c = this.restore?.canaryStarted
        if (c !== undefined && this.h.policyAssignment().canary?.revision === c) await this.h.rollback(this.req.actor, `certification run ${this.id} ended`)
      }],
      ['controller credential', async () => { for (const [tn, p] of this.held.splice(0)) await this.ctx.credentials.release(tn, p) }]
    ]
    for (const [what, step] of steps) {
      try { await step() } catch (err) { this.say(`clean-up of ${what} failed: ${(err as Error).message}`) }
    }
    // the agent comes back on its own after a restore; give it a moment so the run ends with it online
    if (this.restore && !this.online()) {
      const deadline = Date.now() + Math.min(this.ctx.timings.onlineTimeoutMs, 30_000)
      while (!this.online() && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 100))
    }
  }
}

function isBoot (notify: Record<string, unknown>): boolean {
  return (notify.event as { eventName?: string } | undefined)?.eventName === 'Boot!'
}
