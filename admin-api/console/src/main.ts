// Entry of the uspgate web console: login with an admin token, then pages chosen by the hash route
// (#/overview, #/devices, #/devices/<tenant>/<endpoint>, #/events, #/policy, #/certification, #/cluster). What the
// navigation offers follows GET /v1/me: pages the token cannot read are not shown.
import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { api, clearToken, currentToken, setToken, whenUnauthorized } from './api.ts'
import { html, type Json, type Me, unscoped } from './ui.ts'
import { Cluster, DeviceDetail, Devices, Events, Overview, Policy } from './pages.ts'
import { Certification } from './certification.ts'

interface Page { path: string, label: string, show: (me: Me) => boolean }
const PAGES: Page[] = [
  { path: 'overview', label: 'Overview', show: () => true },
  { path: 'devices', label: 'Devices', show: () => true },
  { path: 'events', label: 'Security events', show: () => true },
  // policy versions and the cluster span every tenant: the API refuses them to tenant-scoped tokens
  { path: 'policy', label: 'Policy', show: unscoped },
  // the matrix is filtered to a scoped token's tenants by the API
  { path: 'certification', label: 'Certification', show: () => true },
  { path: 'cluster', label: 'Cluster', show: unscoped }
]

function useHash (): string {
  const [hash, setHash] = useState(location.hash)
  useEffect(() => {
    const f = (): void => setHash(location.hash)
    addEventListener('hashchange', f)
    return () => removeEventListener('hashchange', f)
  }, [])
  return hash
}

function Login ({ onLogin, notice }: { onLogin: (me: Me) => void, notice: string | null }): Json {
  const [value, setValue] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault()
    setBusy(true)
    try {
      const me = await api<Me>('GET', '/v1/me', undefined, value.trim())
      setToken(value.trim())
      setValue('')
      onLogin(me)
    } catch (err) {
      setError((err as { status?: number }).status === 401 ? 'That token is not valid (unknown or revoked).' : (err as Error).message)
    } finally { setBusy(false) }
  }
  return html`<main class="login"><div class="card">
    <h1>uspgate console</h1>
    ${notice !== null ? html`<p class="notice" role="status">${notice}</p>` : null}
    <form onSubmit=${submit}>
      <label>Admin token<input type="password" name="token" autocomplete="off" spellcheck="false" required value=${value} onInput=${(e: Event) => setValue((e.target as HTMLInputElement).value)} /></label>
      <button type="submit" class="primary" disabled=${busy}>Sign in</button>
      ${error !== null ? html`<p class="error" role="alert">${error}</p>` : null}
    </form>
    <p class="muted">The token stays in this tab only (session storage) and is sent as a bearer header, never in a URL.</p>
  </div></main>`
}

function App (): Json {
  const [me, setMe] = useState<Me | null>(null)
  const [checking, setChecking] = useState(currentToken() !== null)
  const [notice, setNotice] = useState<string | null>(null)
  const hash = useHash()
  const logout = (why: string | null): void => { clearToken(); setMe(null); setNotice(why) }
  useEffect(() => {
    whenUnauthorized(() => logout('Your token is no longer accepted; sign in again.'))
    if (currentToken() === null) return
    api<Me>('GET', '/v1/me').then(setMe, () => logout(null)).finally(() => setChecking(false))
  }, [])
  if (checking) return html`<p class="loading">Loading…</p>`
  if (me === null) return html`<${Login} notice=${notice} onLogin=${(m: Me) => { setNotice(null); setMe(m) }} />`
  const parts = hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent)
  const visible = PAGES.filter(p => p.show(me))
  const current = visible.find(p => p.path === parts[0]) ?? visible[0]!
  let page: Json
  if (current.path === 'devices' && parts.length >= 3) page = html`<${DeviceDetail} me=${me} tenant=${parts[1]} endpointId=${parts.slice(2).join('/')} key=${parts.join('/')} />`
  else if (current.path === 'devices') page = html`<${Devices} me=${me} />`
  else if (current.path === 'events') page = html`<${Events} me=${me} />`
  else if (current.path === 'policy') page = html`<${Policy} me=${me} />`
  else if (current.path === 'cluster') page = html`<${Cluster} />`
  else if (current.path === 'certification') page = html`<${Certification} />`
  else page = html`<${Overview} me=${me} />`
  return html`<a class="skip" href="#main">Skip to content</a>
    <header class="top">
      <h1>uspgate</h1>
      <nav aria-label="Console pages"><ul>${visible.map(p => html`<li key=${p.path}><a href=${`#/${p.path}`} aria-current=${p === current ? 'page' : undefined}>${p.label}</a></li>`)}</ul></nav>
      <div class="who"><span data-testid="whoami">${me.name} · ${me.role}${me.tenants !== undefined ? ` · ${me.tenants.join(', ')}` : ' · all tenants'}</span>
        <button type="button" onClick=${() => logout('Signed out.')}>Sign out</button></div>
    </header>
    <main id="main" tabindex="-1">${page}</main>`
}

const root = document.getElementById('app')!
root.replaceChildren() // the static "Loading…" line
render(html`<${App} />`, root)
