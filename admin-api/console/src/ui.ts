// Shared pieces of the console: htm bound to Preact, a polling hook, the confirm dialog, time
// formatting and the event table (cross-tenant attempts shown as blocked, naming both tenants).
import type { ComponentChildren } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import { html } from 'htm/preact'
import { api, ApiError, readEventStream } from './api.ts'

export { html }

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any

export interface Me { id: string, name: string, role: string, tenants?: string[], permissions: string[] }

export const can = (me: Me, permission: string): boolean => me.permissions.includes(permission)
export const unscoped = (me: Me): boolean => me.tenants === undefined

/** Loads `path` now and every `everyMs` (0: once); re-runs when `path` changes. */
export function usePoll (path: string | null, everyMs: number): { data: Json, error: string | null, reload: () => void } {
  const [data, setData] = useState<Json>(undefined)
  const [error, setError] = useState<string | null>(null)
  const [tick, setTick] = useState(0)
  useEffect(() => {
    if (path === null) return
    let live = true
    const load = (): void => {
      api('GET', path).then(d => { if (live) { setData(d); setError(null) } }, (e: Error) => { if (live) setError(e.message) })
    }
    load()
    const timer = everyMs > 0 ? setInterval(load, everyMs) : undefined
    return () => { live = false; if (timer !== undefined) clearInterval(timer) }
  }, [path, everyMs, tick])
  return { data, error, reload: () => setTick(t => t + 1) }
}

/**
 * The live tail of a Server-Sent Events path (null: off): the JSON events received since it started,
 * newest first (at most `keep`). It starts after `afterId` (Last-Event-ID), reconnects after an end or
 * a network error with the last id it saw, and stops on an HTTP error, which it reports.
 */
export function useEventStream (path: string | null, afterId: string | undefined, keep = 200): { events: Json[], error: string | null, connected: boolean } {
  const [events, setEvents] = useState<Json[]>([])
  const [error, setError] = useState<string | null>(null)
  const [connected, setConnected] = useState(false)
  useEffect(() => {
    setEvents([])
    setError(null)
    if (path === null) return
    const abort = new AbortController()
    let last = afterId
    let retry: ReturnType<typeof setTimeout> | undefined
    const run = (): void => {
      readEventStream(path, last, (id, data) => {
        if (id !== undefined) last = id
        let ev: Json
        try { ev = JSON.parse(data) } catch { return }
        setEvents(list => [ev, ...list.filter((e: Json) => e.id !== ev.id)].slice(0, keep))
      }, abort.signal, () => setConnected(true)).then(() => {
        setConnected(false)
        if (!abort.signal.aborted) retry = setTimeout(run, 1000)
      }, (err: Error) => {
        setConnected(false)
        if (abort.signal.aborted) return
        if (err instanceof ApiError) { setError(err.message); return }
        retry = setTimeout(run, 3000)
      })
    }
    run()
    return () => { abort.abort(); if (retry !== undefined) clearTimeout(retry) }
  }, [path, afterId])
  return { events, error, connected }
}

export function fmtTime (iso: string | undefined): string {
  if (iso === undefined || iso === '') return '—'
  const d = new Date(iso)
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z')
}

export function ErrorBox ({ error }: { error: string | null }): Json {
  return error !== null ? html`<p class="error" role="alert">${error}</p>` : null
}

/** A modal confirm (native <dialog>: focus is trapped, Escape cancels). */
export function Confirm ({ title, children, confirmLabel, onConfirm, onCancel }: { title: string, children: ComponentChildren, confirmLabel: string, onConfirm: () => void, onCancel: () => void }): Json {
  const ref = useRef<HTMLDialogElement>(null)
  useEffect(() => {
    const d = ref.current
    if (d !== null && !d.open) d.showModal()
    const cancel = (e: Event): void => { e.preventDefault(); onCancel() }
    d?.addEventListener('cancel', cancel)
    return () => d?.removeEventListener('cancel', cancel)
  }, [])
  return html`<dialog ref=${ref} aria-labelledby="confirm-title">
    <h3 id="confirm-title">${title}</h3>
    <div>${children}</div>
    <div class="actions">
      <button type="button" onClick=${onCancel}>Cancel</button>
      <button type="button" class="danger" onClick=${onConfirm}>${confirmLabel}</button>
    </div>
  </dialog>`
}

const CROSS = new Set(['acl.cross_tenant', 'usp.reply_to_cross_tenant'])

export function EventRows ({ events }: { events: Json[] }): Json {
  if (events.length === 0) return html`<p class="muted">No events match.</p>`
  return html`<table aria-label="Security events">
    <thead><tr><th scope="col">Time</th><th scope="col">Severity</th><th scope="col">Code</th><th scope="col">Tenant</th><th scope="col">Principal</th><th scope="col">Action</th><th scope="col">Topic / target</th><th scope="col">Reason</th></tr></thead>
    <tbody>${events.map(ev => html`<tr key=${ev.id} data-code=${ev.code}>
      <td class="mono">${fmtTime(ev.time)}</td>
      <td><span class=${`badge sev-${ev.severity}`}>${ev.severity}</span></td>
      <td class="mono">${ev.code}${CROSS.has(ev.code) ? html` <span class="badge blocked" data-testid="blocked">blocked: ${ev.tenant ?? '?'} → ${ev.targetTenant ?? 'another tenant'}</span>` : null}</td>
      <td>${ev.tenant ?? ''}</td>
      <td class="mono">${ev.principal ?? ev.actor ?? ''}</td>
      <td>${ev.action ?? ''}</td>
      <td class="mono">${ev.topic ?? ev.target ?? ''}</td>
      <td>${ev.reason ?? ''}</td>
    </tr>`)}</tbody>
  </table>`
}
