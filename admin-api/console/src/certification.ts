// The console's certification page: the device matrix (status per the documented rules, level,
// limitations by check id) and, per row, the evidence of its last run verified on demand.
import { useState } from 'preact/hooks'
import { api, enc } from './api.ts'
import { ErrorBox, fmtTime, html, type Json, usePoll } from './ui.ts'

const STATUS_CLASS: Record<string, string> = { green: 'online', yellow: 'sev-warning', red: 'blocked' }

export function Certification (): Json {
  const m = usePoll('/v1/certifications/matrix', 5000)
  const [open, setOpen] = useState<string | null>(null)
  const [evidence, setEvidence] = useState<Json>(null)
  const [error, setError] = useState<string | null>(null)
  const show = async (row: Json): Promise<void> => {
    setOpen(row.key); setEvidence(null); setError(null)
    try {
      setEvidence(await api('GET', `/v1/tenants/${enc(row.tenant)}/certifications/${enc(row.runId)}/evidence`))
    } catch (err) { setError((err as Error).message) }
  }
  const rules = m.data?.rules ?? {}
  return html`<section aria-labelledby="h-cert">
    <h2 id="h-cert">Device certification matrix</h2>
    <${ErrorBox} error=${m.error} />
    <p class="muted">green: ${rules.green ?? ''}; yellow: ${rules.yellow ?? ''}; red: ${rules.red ?? ''}.</p>
    ${(m.data?.rows ?? []).length === 0 ? html`<p class="muted">No certification run has filed a row yet (<code>uspgate certify &lt;tenant&gt; &lt;endpoint-id&gt;</code>).</p>` : null}
    <table aria-label="Device matrix"><thead><tr><th scope="col">Status</th><th scope="col">Vendor / model</th><th scope="col">Product class</th><th scope="col">Firmware</th><th scope="col">Agent</th><th scope="col">USP</th><th scope="col">Transport</th><th scope="col">Level</th><th scope="col">Workflows</th><th scope="col">Limitations</th><th scope="col">Last run</th></tr></thead>
    <tbody>${(m.data?.rows ?? []).map((r: Json) => html`<tr key=${r.key} data-endpoint=${r.endpointId} data-status=${r.status}>
      <td><span class=${`badge ${STATUS_CLASS[r.status] ?? ''}`}>${r.status}</span></td>
      <th scope="row">${r.vendor} ${r.model}<div class="muted mono">${r.tenant} · ${r.endpointId}</div></th>
      <td>${r.productClass}</td><td>${r.firmwareRange}</td><td>${r.agent} ${r.agentVersion}</td><td>${r.uspVersion}</td><td>${r.transport}</td>
      <td>${r.level}</td><td>${(r.workflows ?? []).join(', ')}</td>
      <td>${(r.limitations ?? []).length === 0 ? 'none' : html`<ul class="plain">${r.limitations.map((l: string) => html`<li key=${l}>${l}</li>`)}</ul>`}</td>
      <td>${fmtTime(r.updatedAt)}<br /><button type="button" onClick=${() => void show(r)}>Evidence</button></td>
    </tr>`)}</tbody></table>
    ${open !== null ? html`<div class="card" data-testid="evidence"><h3>Evidence ${evidence?.manifest?.runId ?? ''}</h3>
      <${ErrorBox} error=${error} />
      ${evidence !== null ? html`<p data-testid="evidence-verdict" class=${evidence.verification.ok ? 'notice' : 'error'}>${evidence.verification.ok ? 'Verified: every file matches its SHA-256 and the manifest signature by the gateway root CA holds.' : `NOT verified: ${evidence.verification.problems.join('; ')}`}</p>
      <table aria-label="Checks"><thead><tr><th scope="col">Check</th><th scope="col">Result</th><th scope="col">Summary</th><th scope="col" class="num">ms</th></tr></thead>
      <tbody>${(evidence.manifest.checks ?? []).map((c: Json) => html`<tr key=${c.id} data-check=${c.id}><td class="mono">${c.id}</td><td>${c.result}</td><td>${c.summary}</td><td class="num">${c.durationMs}</td></tr>`)}</tbody></table>` : html`<p class="loading">Loading…</p>`}
    </div>` : null}
  </section>`
}
