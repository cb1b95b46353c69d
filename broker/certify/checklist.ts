// Loads and validates the certification checklist (checklist.json: levels, checks, matrix rules).
// The program changes the JSON; code only refers to check ids, which this loader checks exist.
import { readFileSync } from 'node:fs'

export type CheckCategory = 'security' | 'interoperability' | 'canary' | 'advanced'
export type CheckResult = 'pass' | 'fail' | 'unsupported' | 'manual' | 'skipped' | 'error'

export interface CheckDefinition { id: string, category: CheckCategory, title: string, workflow?: string, params?: Record<string, string> }
export interface LevelDefinition { id: string, title: string, requires: string[] }
export interface Checklist {
  version: string
  levels: LevelDefinition[]
  checks: CheckDefinition[]
  matrixRules: { green: string, yellow: string, red: string }
}

/** Every check id the run implements; the checklist may order, level and retitle them. */
export const IMPLEMENTED_CHECKS = [
  'interop.first_contact', 'interop.boot_notify', 'interop.online', 'security.tenant_username',
  'interop.supported_dm', 'interop.inventory', 'security.topics_in_tenant', 'security.cross_tenant_refused',
  'security.bad_credentials_logged', 'interop.reconnect', 'interop.offline_detection',
  'interop.credential_recovery', 'security.bare_username_refused', 'canary.revocation_cut',
  'canary.policy_rollback', 'security.no_secrets_logged', 'advanced.set_preview', 'advanced.operate', 'advanced.reboot'
] as const
export type CheckId = typeof IMPLEMENTED_CHECKS[number]

let cached: Checklist | undefined

export function loadChecklist (path: string | URL = new URL('./checklist.json', import.meta.url)): Checklist {
  if (cached !== undefined && path instanceof URL) return cached
  const c = JSON.parse(readFileSync(path, 'utf8')) as Checklist
  const ids = new Set(c.checks.map(x => x.id))
  for (const x of c.checks) {
    if (!(IMPLEMENTED_CHECKS as readonly string[]).includes(x.id)) throw new Error(`checklist: check ${x.id} is not implemented by this gateway`)
  }
  for (const l of c.levels) {
    for (const r of l.requires) if (!ids.has(r)) throw new Error(`checklist: level ${l.id} requires unknown check ${r}`)
  }
  if (path instanceof URL) cached = c
  return c
}

/** Workflow names the engineer may ask for (--workflows), from the checklist's advanced checks. */
export function workflowsOf (c: Checklist): string[] {
  return c.checks.flatMap(x => x.workflow !== undefined ? [x.workflow] : [])
}
