// The console's pages. Each one reads the admin API with the user's token and shows a button only
// when the token's role has the permission the call needs (the API still enforces it).
import { useState } from 'preact/hooks'
import { api, enc, qs } from './api.ts'
import { can, Confirm, ErrorBox, EventRows, fmtTime, html, type Json, type Me, unscoped, useEventStream, usePoll } from './ui.ts'

const sum = (codes: Record<string, number>, pick: (code: string) => boolean): number =>
  Object.entries(codes).filter(([c]) => pick(c)).reduce((n, [, v]) => n + v, 0)

// ---------------------------------------------------------------- Overview
export function Overview ({ me }: { me: Me }): Json {
  const [window, setWindow] = useState<'24h' | '7d'>('24h')
  const stats = usePoll(`/v1/security-stats?window=${window}`, 5000)
  const tenants = usePoll('/v1/tenants', 0)
  const policies = usePoll(unscoped(me) ? '/v1/policies' : null, 5000)
  const byTenant = new Map<string, Json>((stats.data?.tenants ?? []).map((t: Json) => [t.tenant, t]))
  // absent from every row while a cluster node cannot read the counts from Redis
  const connectsKnown = [...byTenant.values()].some(t => t.connectsOk !== undefined)
  const active = policies.data?.active
  const revisionFor = (t: string): string => active === undefined ? 'not visible to a tenant-scoped token'
    : active.canary !== undefined && active.canary.tenants.includes(t) ? `${active.canary.revision} (canary)` : `${active.stable} (stable)`
  return html`<section aria-labelledby="h-overview">
    <h2 id="h-overview">Security posture</h2>
    <div class="toolbar">
      <label>Window<select value=${window} onChange=${(e: Event) => setWindow((e.target as HTMLSelectElement).value as '24h' | '7d')}>
        <option value="24h">Last 24 hours</option><option value="7d">Last 7 days</option></select></label>
      ${active !== undefined ? html`<p class="notice" data-testid="policy-summary">Policy in force — stable <b>${active.stable}</b>${active.canary ? html`, canary <b>${active.canary.revision}</b> on ${active.canary.tenants.join(', ')}` : ''}${active.shadow ? html`, shadow <b>${active.shadow}</b>` : ''}</p>` : null}
    </div>
    <${ErrorBox} error=${stats.error ?? tenants.error} />
    <table aria-label="Security posture per tenant">
      <thead><tr><th scope="col">Tenant</th><th scope="col" class="num">Connects ok</th><th scope="col" class="num">Connects refused</th><th scope="col" class="num">Bare usernames</th><th scope="col" class="num">Bad credentials</th><th scope="col" class="num">Throttled</th><th scope="col" class="num">Cross-tenant by</th><th scope="col" class="num">Cross-tenant against</th><th scope="col" class="num">USP refusals</th><th scope="col" class="num">Revocations</th><th scope="col">Policy revision</th></tr></thead>
      <tbody>${(tenants.data?.tenants ?? []).map((t: Json) => {
        const s = byTenant.get(t.id) ?? { codes: {}, crossTenantBy: 0, crossTenantAgainst: 0, connectsOk: connectsKnown ? 0 : undefined }
        return html`<tr key=${t.id} data-tenant=${t.id}>
          <th scope="row">${t.name}${t.name !== t.id ? html` <span class="muted mono">${t.id}</span>` : null}</th>
          <td class="num" data-testid="connects-ok">${s.connectsOk ?? '—'}</td>
          <td class="num" data-testid="connects-refused">${sum(s.codes, c => c.startsWith('auth.') || c === 'cluster.connect_refused')}</td>
          <td class="num">${s.codes['auth.bare_username'] ?? 0}</td>
          <td class="num">${s.codes['auth.bad_credentials'] ?? 0}</td>
          <td class="num">${s.codes['auth.throttled'] ?? 0}</td>
          <td class="num" data-testid="cross-by">${s.crossTenantBy}</td>
          <td class="num" data-testid="cross-against">${s.crossTenantAgainst}</td>
          <td class="num">${sum(s.codes, c => c.startsWith('usp.'))}</td>
          <td class="num">${sum(s.codes, c => c === 'credential.revoked' || c === 'cert.revoked' || c === 'ca.revoked')}</td>
          <td>${revisionFor(t.id)}</td>
        </tr>`
      })}</tbody>
    </table>
    <p class="muted">Refusals and attempts come from the security events this node holds (the newest 100,000). Connects ok are sessions started, counted per tenant and whole hour (every node in a cluster; since the gateway started when it runs alone).</p>
  </section>`
}

// ---------------------------------------------------------------- Devices
const PAGE = 25

export function Devices ({ me }: { me: Me }): Json {
  const [q, setQ] = useState('')
  const [tenant, setTenant] = useState('')
  const [status, setStatus] = useState('')
  const [offset, setOffset] = useState(0)
  const tenants = usePoll('/v1/tenants', 0)
  const list = usePoll(`/v1/endpoints${qs({ q: q.trim(), tenant, status, offset, limit: PAGE })}`, 2000)
  const total: number = list.data?.total ?? 0
  const change = (set: (v: string) => void) => (e: Event) => { set((e.target as HTMLInputElement).value); setOffset(0) }
  return html`<section aria-labelledby="h-devices">
    <h2 id="h-devices">Devices</h2>
    <form class="filters" role="search" onSubmit=${(e: Event) => e.preventDefault()}>
      <label>Search devices<input type="search" name="q" value=${q} onInput=${change(setQ)} placeholder="Endpoint ID, tenant or role" /></label>
      ${(tenants.data?.tenants?.length ?? 0) > 1 || unscoped(me) ? html`<label>Tenant<select name="tenant" value=${tenant} onChange=${change(setTenant)}>
        <option value="">All tenants</option>${(tenants.data?.tenants ?? []).map((t: Json) => html`<option value=${t.id}>${t.name}</option>`)}</select></label>` : null}
      <label>Status<select name="status" value=${status} onChange=${change(setStatus)}><option value="">Any</option><option value="online">Online</option><option value="offline">Offline</option></select></label>
    </form>
    <${ErrorBox} error=${list.error} />
    <table aria-label="Devices">
      <thead><tr><th scope="col">Endpoint ID</th><th scope="col">Tenant</th><th scope="col">Role</th><th scope="col">Status</th><th scope="col">Last seen</th><th scope="col">Node</th><th scope="col">MQTT</th><th scope="col">Agent info (from USP)</th></tr></thead>
      <tbody>${(list.data?.endpoints ?? []).map((e: Json) => html`<tr key=${e.tenant + '/' + e.endpointId} data-endpoint=${e.endpointId}>
        <td class="mono"><a href=${`#/devices/${enc(e.tenant)}/${enc(e.endpointId)}`}>${e.endpointId}</a></td>
        <td>${e.tenant}</td><td>${e.role}</td>
        <td><span class=${`badge ${e.online ? 'online' : 'offline'}`} data-testid="presence">${e.online ? 'online' : 'offline'}</span></td>
        <td class="mono">${fmtTime(e.lastSeen)}</td><td>${e.node}</td><td>${e.mqttVersion}</td>
        <td class="mono">${e.subscribedTopic !== undefined ? `listens on ${e.subscribedTopic}` : html`<span class="muted">no MQTTConnect record seen</span>`}</td>
      </tr>`)}</tbody>
    </table>
    <div class="pager">
      <button type="button" disabled=${offset === 0} onClick=${() => setOffset(Math.max(0, offset - PAGE))}>Previous page</button>
      <span aria-live="polite">${total === 0 ? 'No devices' : `${offset + 1}–${Math.min(offset + PAGE, total)} of ${total}`}</span>
      <button type="button" disabled=${offset + PAGE >= total} onClick=${() => setOffset(offset + PAGE)}>Next page</button>
    </div>
  </section>`
}

// ---------------------------------------------------------------- Device detail
const REASONS: Record<string, string> = {
  disconnect: 'the device disconnected',
  revoked: 'cut: credential or certificate revoked',
  cut: 'cut by the gateway',
  keepalive: 'keep-alive timeout',
  error: 'connection error',
  closed: 'connection closed without DISCONNECT'
}

export function DeviceDetail ({ me, tenant, endpointId }: { me: Me, tenant: string, endpointId: string }): Json {
  const base = `/v1/tenants/${enc(tenant)}`
  const ep = usePoll(`${base}/endpoints/${enc(endpointId)}`, 2000)
  const timeline = usePoll(`${base}/endpoints/${enc(endpointId)}/presence`, 2000)
  const creds = usePoll(`${base}/credentials`, 3000)
  const certs = usePoll(`${base}/certificates`, 5000)
  const usp = usePoll(`${base}/usp-audit${qs({ endpoint: endpointId, limit: 50 })}`, 3000)
  const events = usePoll(`/v1/security-events${qs({ tenant, principal: endpointId, limit: 50 })}`, 3000)
  const [confirm, setConfirm] = useState<{ kind: 'credential' } | { kind: 'certificate', serial: string } | null>(null)
  const [message, setMessage] = useState<string | null>(null)
  const [error, setError] = useState<string | null>(null)
  const credential = (creds.data?.credentials ?? []).find((c: Json) => c.principal === endpointId)
  const myCerts = (certs.data?.certificates ?? []).filter((c: Json) => c.principal === endpointId)
  const e = ep.data
  const revoke = async (): Promise<void> => {
    const c = confirm
    setConfirm(null)
    try {
      if (c?.kind === 'credential') {
        const r = await api('DELETE', `${base}/credentials/${enc(endpointId)}`)
        setMessage(`Credential ${r.username} revoked; ${r.disconnected} live session(s) disconnected.`)
        creds.reload()
      } else if (c?.kind === 'certificate') {
        await api('DELETE', `${base}/certificates/${enc(c.serial)}`)
        setMessage(`Certificate ${c.serial} revoked.`)
        certs.reload()
      }
      setError(null)
    } catch (err) { setError((err as Error).message) }
  }
  const recordTypes = new Map<string, number>()
  for (const r of usp.data?.records ?? []) recordTypes.set(r.msgType ?? r.recordType, (recordTypes.get(r.msgType ?? r.recordType) ?? 0) + 1)
  return html`<section aria-labelledby="h-device">
    <p><a href="#/devices">← Devices</a></p>
    <h2 id="h-device"><span class="mono">${endpointId}</span> <span class="muted">in ${tenant}</span></h2>
    <${ErrorBox} error=${ep.error ?? error} />
    ${message !== null ? html`<p class="notice" role="status">${message}</p>` : null}
    <div class="grid2">
      <div class="card"><h3>Presence</h3>
        ${e !== undefined ? html`<dl class="kv">
          <dt>Status</dt><dd><span class=${`badge ${e.online ? 'online' : 'offline'}`} data-testid="presence">${e.online ? 'online' : 'offline'}</span></dd>
          <dt>Role</dt><dd>${e.role}</dd><dt>First contact</dt><dd>${fmtTime(e.firstContact)}</dd><dt>Last seen</dt><dd>${fmtTime(e.lastSeen)}</dd>
          <dt>Node</dt><dd>${e.node}</dd><dt>MQTT version</dt><dd>${e.mqttVersion}</dd>
          <dt>Agent info</dt><dd class="mono">${e.subscribedTopic ?? '—'}</dd></dl>` : html`<p class="muted">Loading…</p>`}
      </div>
      <div class="card"><h3>Credentials and certificates</h3>
        <p class="muted">Secrets and private keys are never shown: the gateway keeps only hashes.</p>
        ${credential !== undefined ? html`<dl class="kv"><dt>Username</dt><dd class="mono">${credential.username}</dd><dt>Created</dt><dd>${fmtTime(credential.createdAt)}</dd>
          <dt>Credential</dt><dd data-testid="credential-state">${credential.revoked ? `revoked ${fmtTime(credential.revokedAt)}` : 'active'}</dd></dl>
          ${!credential.revoked && can(me, 'credential.revoke') ? html`<p><button type="button" class="danger" onClick=${() => setConfirm({ kind: 'credential' })}>Revoke credential</button></p>` : null}`
          : html`<p class="muted">No password credential.</p>`}
        ${myCerts.length > 0 ? html`<table aria-label="Certificates"><thead><tr><th scope="col">Serial</th><th scope="col">Valid until</th><th scope="col">State</th><th scope="col"><span class="muted">Action</span></th></tr></thead><tbody>
          ${myCerts.map((c: Json) => html`<tr key=${c.serial}><td class="mono">${c.serial}</td><td>${fmtTime(c.notAfter)}</td><td>${c.revoked ? `revoked (${c.revocationReason ?? ''})` : 'valid'}</td>
            <td>${!c.revoked && can(me, 'cert.revoke') ? html`<button type="button" class="danger" onClick=${() => setConfirm({ kind: 'certificate', serial: c.serial })}>Revoke certificate</button>` : null}</td></tr>`)}
        </tbody></table>` : html`<p class="muted">No certificates.</p>`}
      </div>
    </div>
    <div class="card"><h3>Presence timeline</h3>
      <${ErrorBox} error=${timeline.error} />
      ${(timeline.data?.transitions ?? []).length === 0 ? html`<p class="muted">No presence changes recorded.</p>` : html`<table aria-label="Presence timeline" data-testid="presence-timeline">
        <thead><tr><th scope="col">Time</th><th scope="col">State</th><th scope="col">Node</th><th scope="col">MQTT</th><th scope="col">Why it went offline</th></tr></thead>
        <tbody>${timeline.data.transitions.map((x: Json, i: number) => html`<tr key=${i} data-state=${x.state} data-reason=${x.reason ?? ''}>
          <td class="mono">${fmtTime(x.time)}</td><td><span class=${`badge ${x.state}`}>${x.state}</span></td><td>${x.node}</td><td>${x.mqttVersion}</td>
          <td>${x.state === 'offline' ? `${REASONS[x.reason] ?? 'not known'}${x.detail ? ` (${x.detail})` : ''}` : ''}</td></tr>`)}</tbody></table>
        <p class="muted">The newest ${timeline.data.transitions.length} change(s), newest first (at most 50 are kept).</p>`}
    </div>
    <div class="card"><h3>Data model</h3>
      <p data-testid="data-model">Not recorded: the USP audit keeps Record and Msg headers only (TR-369 R-SEC.4c), never GetSupportedDM or Get answers, so the objects and parameters this device reported are not stored.
      ${recordTypes.size > 0 ? ` Messages seen: ${[...recordTypes].map(([t, n]) => `${t} × ${n}`).join(', ')}.` : ''}</p>
    </div>
    <div class="card"><h3>Recent USP records</h3>
      <${ErrorBox} error=${usp.error} />
      ${(usp.data?.records ?? []).length === 0 ? html`<p class="muted">No USP records for this endpoint.</p>` : html`<table aria-label="USP records">
        <thead><tr><th scope="col">Time</th><th scope="col">From → to</th><th scope="col">Record</th><th scope="col">Msg</th><th scope="col">Result</th></tr></thead>
        <tbody>${usp.data.records.map((r: Json, i: number) => html`<tr key=${i}><td class="mono">${fmtTime(r.time)}</td><td class="mono">${r.fromId} → ${r.toId}</td><td>${r.recordType}</td><td>${r.msgType ?? '—'}</td><td>${r.result}${r.code ? html` <span class="badge sev-warning">${r.code}</span>` : null}</td></tr>`)}</tbody></table>`}
    </div>
    <div class="card"><h3>Recent security events</h3><${EventRows} events=${events.data?.events ?? []} /></div>
    ${confirm !== null ? html`<${Confirm} title=${confirm.kind === 'credential' ? 'Revoke this credential?' : 'Revoke this certificate?'} confirmLabel="Revoke" onConfirm=${() => { void revoke() }} onCancel=${() => setConfirm(null)}>
      <p>${endpointId} in ${tenant} will be refused from now on and its live sessions cut. This cannot be undone here.</p></${Confirm}>` : null}
  </section>`
}

// ---------------------------------------------------------------- Security events
const SEVERITIES = ['info', 'warning', 'critical'] as const

function toCsv (events: Json[]): string {
  const cols = ['time', 'severity', 'code', 'tenant', 'targetTenant', 'principal', 'clientId', 'remoteAddress', 'action', 'topic', 'reason', 'policyRevision', 'actor', 'node', 'id']
  // RFC 4180 quoting; a leading = + - @ is prefixed so a spreadsheet never runs it as a formula
  const cell = (v: unknown): string => {
    let s = v === undefined ? '' : String(v)
    if (/^[=+\-@]/.test(s)) s = `'${s}`
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
  }
  return [cols.join(','), ...events.map(ev => cols.map(c => cell(ev[c])).join(','))].join('\r\n') + '\r\n'
}

function download (name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }))
  const a = document.createElement('a')
  a.href = url
  a.download = name
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10_000)
}

export function Events ({ me }: { me: Me }): Json {
  const tenants = usePoll('/v1/tenants', 0)
  const [form, setForm] = useState({ code: '', tenant: '', since: '', until: '', severity: [] as string[] })
  const [applied, setApplied] = useState(form)
  const [live, setLive] = useState(true)
  const iso = (local: string): string | undefined => local === '' ? undefined : new Date(local).toISOString()
  const filter = { code: applied.code.replace(/\s+/g, ''), tenant: applied.tenant, severity: applied.severity.join(',') }
  const path = `/v1/security-events${qs({ ...filter, since: iso(applied.since), until: iso(applied.until), limit: 200 })}`
  const events = usePoll(path, 0)
  // Live tail (Server-Sent Events, read with fetch so the token stays in a header): started after the
  // newest event of the first page; off when the range has an end.
  const tailing = live && applied.until === '' && events.data !== undefined
  const tail = useEventStream(tailing ? `/v1/security-events/stream${qs(filter)}` : null, events.data?.events?.[0]?.id)
  const set = (k: 'code' | 'tenant' | 'since' | 'until') => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value })
  const toggleSeverity = (s: string) => () => setForm({ ...form, severity: form.severity.includes(s) ? form.severity.filter(x => x !== s) : [...form.severity, s] })
  const first: Json[] = events.data?.events ?? []
  const tailIds = new Set(tail.events.map((e: Json) => e.id))
  const list: Json[] = [...tail.events, ...first.filter(e => !tailIds.has(e.id))].slice(0, 200)
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  return html`<section aria-labelledby="h-events">
    <h2 id="h-events">Security events</h2>
    ${me.tenants !== undefined ? html`<p class="muted">This token sees tenant(s) ${me.tenants.join(', ')}, including cross-tenant attempts aimed at them.</p>` : null}
    <form class="filters" onSubmit=${(e: Event) => { e.preventDefault(); setApplied(form) }}>
      <label>Codes (comma-separated; "auth." for a family)<input type="text" name="code" value=${form.code} onInput=${set('code')} placeholder="acl.cross_tenant,auth." /></label>
      <fieldset><legend>Severity</legend>${SEVERITIES.map(s => html`<label class="inline"><input type="checkbox" name="severity" value=${s} checked=${form.severity.includes(s)} onChange=${toggleSeverity(s)} />${s}</label>`)}</fieldset>
      <label>Tenant<select name="tenant" value=${form.tenant} onChange=${set('tenant')}><option value="">All visible</option>${(tenants.data?.tenants ?? []).map((t: Json) => html`<option value=${t.id}>${t.name}</option>`)}</select></label>
      <label>From<input type="datetime-local" name="since" step="1" value=${form.since} onInput=${set('since')} /></label>
      <label>To<input type="datetime-local" name="until" step="1" value=${form.until} onInput=${set('until')} /></label>
      <button type="submit" class="primary">Apply filters</button>
      <label class="inline"><input type="checkbox" name="live" checked=${live} onChange=${() => setLive(!live)} />Live tail</label>
      ${tailing ? html`<span class="muted" data-testid="tail-state">${tail.connected ? 'live' : 'reconnecting…'}</span>` : null}
      <button type="button" onClick=${() => download(`security-events-${stamp}.ndjson`, 'application/x-ndjson', list.map(ev => JSON.stringify(ev)).join('\n') + '\n')}>Export NDJSON</button>
      <button type="button" onClick=${() => download(`security-events-${stamp}.csv`, 'text/csv', toCsv(list))}>Export CSV</button>
    </form>
    <${ErrorBox} error=${events.error ?? tail.error} />
    <p class="muted" aria-live="polite">${list.length} event(s), newest first${list.length === 200 ? ' (the newest 200: narrow the filter or the time range for older ones)' : ''}.</p>
    <${EventRows} events=${list} />
  </section>`
}

// ---------------------------------------------------------------- Policy
export function Policy ({ me }: { me: Me }): Json {
  const view = usePoll('/v1/policies', 3000)
  const history = usePoll('/v1/security-events?code=policy.&limit=50', 3000)
  const tenants = usePoll('/v1/tenants', 0)
  const active = view.data?.active
  const diff = usePoll(active?.shadow ? `/v1/policies/${enc(active.shadow)}/diff` : null, 5000)
  const [confirm, setConfirm] = useState<{ title: string, label: string, run: () => Promise<unknown> } | null>(null)
  const [canaryTenant, setCanaryTenant] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [message, setMessage] = useState<string | null>(null)
  const writer = can(me, 'policy.write')
  const run = async (what: string, f: () => Promise<unknown>): Promise<void> => {
    try { await f(); setMessage(what); setError(null); view.reload(); history.reload() } catch (e) { setError((e as Error).message) }
  }
  return html`<section aria-labelledby="h-policy">
    <h2 id="h-policy">Policy</h2>
    <${ErrorBox} error=${view.error ?? error} />
    ${message !== null ? html`<p class="notice" role="status">${message}</p>` : null}
    ${active !== undefined ? html`<div class="card"><h3>In force</h3><dl class="kv">
      <dt>Stable</dt><dd class="mono" data-testid="stable">${active.stable}</dd>
      <dt>Canary</dt><dd class="mono" data-testid="canary">${active.canary ? `${active.canary.revision} on ${active.canary.tenants.join(', ')} since ${fmtTime(active.canary.startedAt)}` : 'none'}</dd>
      <dt>Shadow</dt><dd class="mono">${active.shadow ?? 'none'}</dd>
      <dt>Previous stable</dt><dd class="mono">${(active.previous ?? []).join(', ') || 'none'}</dd></dl>
      ${writer ? html`<p><button type="button" class="danger" onClick=${() => setConfirm({ title: active.canary ? `Roll back canary ${active.canary.revision}?` : `Roll back stable ${active.stable}?`, label: 'Roll back', run: async () => await run('Rolled back.', async () => await api('POST', '/v1/policies/rollback', { reason: 'rollback from the console' })) })}>Roll back</button>
        <span class="muted"> ${active.canary ? 'ends the canary: its tenants return to stable' : 'restores the previous stable revision on every node'}</span></p>` : null}
    </div>` : null}
    ${active?.shadow ? html`<div class="card"><h3>Shadow diff (${active.shadow} vs ${active.stable})</h3>
      ${diff.data ? html`<p>${diff.data.disagreements} disagreement(s) in ${diff.data.compared} decision(s) since ${fmtTime(diff.data.since)}.</p>
        <table aria-label="Shadow disagreements"><thead><tr><th scope="col">Action</th><th scope="col">Stable said</th><th scope="col">Shadow said</th><th scope="col" class="num">Count</th></tr></thead>
        <tbody>${(diff.data.counts ?? []).map((c: Json, i: number) => html`<tr key=${i}><td>${c.action}</td><td>${c.stable}</td><td>${c.shadow}</td><td class="num">${c.count}</td></tr>`)}</tbody></table>` : html`<${ErrorBox} error=${diff.error} />`}
    </div>` : null}
    <div class="card"><h3>Versions</h3>
      ${writer ? html`<div class="toolbar"><label>Canary tenant<select name="canary-tenant" value=${canaryTenant} onChange=${(e: Event) => setCanaryTenant((e.target as HTMLSelectElement).value)}>
        <option value="">Choose a tenant</option>${(tenants.data?.tenants ?? []).map((t: Json) => html`<option value=${t.id}>${t.name}</option>`)}</select></label></div>` : null}
      <table aria-label="Policy versions"><thead><tr><th scope="col">Revision</th><th scope="col">Uploaded</th><th scope="col">By</th><th scope="col">Notes</th><th scope="col">SHA-256</th>${writer ? html`<th scope="col">Actions</th>` : null}</tr></thead>
      <tbody>${(view.data?.versions ?? []).map((v: Json) => html`<tr key=${v.revision} data-revision=${v.revision}>
        <td class="mono">${v.revision}${v.revision === active?.stable ? html` <span class="badge online">stable</span>` : null}${v.revision === active?.canary?.revision ? html` <span class="badge sev-warning">canary</span>` : null}${v.revision === active?.shadow ? html` <span class="badge sev-info">shadow</span>` : null}</td>
        <td>${fmtTime(v.uploadedAt)}</td><td>${v.uploadedBy ?? ''}</td><td>${v.notes ?? ''}</td><td class="mono">${(v.sha256 ?? '').slice(0, 12)}</td>
        ${writer ? html`<td>${v.revision !== active?.stable ? html`
          <button type="button" onClick=${() => void run(`Shadow of ${v.revision} started.`, async () => await api('POST', `/v1/policies/${enc(v.revision)}/shadow`))}>Shadow</button>
          <button type="button" disabled=${canaryTenant === ''} onClick=${() => void run(`Canary of ${v.revision} started on ${canaryTenant}.`, async () => await api('POST', `/v1/policies/${enc(v.revision)}/canary`, { tenants: [canaryTenant] }))}>Canary</button>
          <button type="button" onClick=${() => setConfirm({ title: `Promote ${v.revision} to stable for every tenant?`, label: 'Promote', run: async () => await run(`${v.revision} promoted.`, async () => await api('POST', `/v1/policies/${enc(v.revision)}/promote`)) })}>Promote</button>` : null}</td>` : null}
      </tr>`)}</tbody></table>
    </div>
    <div class="card"><h3>History</h3><${EventRows} events=${history.data?.events ?? []} /></div>
    ${confirm !== null ? html`<${Confirm} title=${confirm.title} confirmLabel=${confirm.label} onConfirm=${() => { const c = confirm; setConfirm(null); void c.run() }} onCancel=${() => setConfirm(null)}>
      <p>Takes effect on every node at once and is recorded in the audit trail.</p></${Confirm}>` : null}
  </section>`
}

// ---------------------------------------------------------------- Cluster
export function Cluster (): Json {
  const c = usePoll('/v1/cluster', 3000)
  const d = c.data
  return html`<section aria-labelledby="h-cluster">
    <h2 id="h-cluster">Cluster</h2>
    <${ErrorBox} error=${c.error} />
    ${d !== undefined ? html`<div class="card"><dl class="kv">
      <dt>Mode</dt><dd>${d.mode}</dd><dt>This node</dt><dd>${d.node}</dd>
      ${d.redis ? html`<dt>Redis</dt><dd>${d.redis.url} (prefix ${d.redis.prefix}) — ${d.redis.up ? 'up' : 'DOWN'}${d.redis.trusted ? ', state in sync' : ', resynchronising'}</dd>` : html`<dt>Redis</dt><dd>not used (embedded mode)</dd>`}
      ${d.storeRevision ? html`<dt>Stored stable revision</dt><dd class="mono">${d.storeRevision}</dd>` : null}
      ${d.majorityRevision ? html`<dt>Majority revision</dt><dd class="mono">${d.majorityRevision}</dd>` : null}</dl></div>
    <table aria-label="Nodes"><thead><tr><th scope="col">Node</th><th scope="col">Stable</th><th scope="col">Canary</th><th scope="col">Shadow</th><th scope="col" class="num">Sessions</th><th scope="col">Heartbeat</th><th scope="col">Divergence</th></tr></thead>
    <tbody>${(d.nodes ?? []).map((n: Json) => html`<tr key=${n.node}><th scope="row">${n.node}${n.self ? ' (this node)' : ''}</th><td class="mono">${n.revisions?.stable ?? ''}</td><td class="mono">${n.revisions?.canary ?? ''}</td><td class="mono">${n.revisions?.shadow ?? ''}</td>
      <td class="num">${n.sessions}</td><td>${fmtTime(n.heartbeat)} (${Math.round((n.ageMs ?? 0) / 1000)} s ago)</td><td>${n.diverged ? html`<span class="badge blocked">diverged</span>` : 'in step'}</td></tr>`)}</tbody></table>` : null}
  </section>`
}
