// Shared fixtures for the policies tests: identities, inputs, and bundles built with the real opa
// in a temp dir.
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after } from 'node:test'
import { POLICY_DIR, buildBundle, type PolicyClient, type PolicyInput } from '../../policies/index.ts'

export const AGENT_ID = 'os::00256D-0001'
export const CONTROLLER_ID = 'self::ctrl'

export const agent: PolicyClient = {
  tenant: 'acme', principal: AGENT_ID, role: 'agent', client_id: AGENT_ID, protocol: 5, auth: 'certificate', listener: 'mqtts'
}
export const agent311: PolicyClient = { ...agent, protocol: 4, auth: 'password', listener: 'mqtt' }
export const controller: PolicyClient = {
  tenant: 'acme', principal: CONTROLLER_ID, role: 'controller', client_id: 'ctrl-1', protocol: 5, auth: 'password', listener: 'mqtts'
}

export function req (action: PolicyInput['action'], client: PolicyClient, topic?: string, extra: Partial<PolicyInput> = {}): PolicyInput {
  return action === 'connect' ? { action, client, ...extra } : { action, client, topic, qos: 1, retain: false, ...extra }
}

const dirs: string[] = []
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }) })

export function tempDir (prefix = 'uspgate-policies-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix))
  dirs.push(d)
  return d
}

/** A copy of the policy sources (non-test .rego, data.json, golden.json) to edit. */
export function copyPolicySources (): string {
  const dir = tempDir()
  for (const name of readdirSync(POLICY_DIR)) {
    if ((name.endsWith('.rego') && !name.endsWith('_test.rego')) || name.endsWith('.json')) {
      copyFileSync(join(POLICY_DIR, name), join(dir, name))
    }
  }
  return dir
}

export interface TempBundleOptions {
  /** Replace or add source files (file name → text); otherwise the committed sources are used. */
  files?: Record<string, string>
  /** Only these files (plus data.json) — for policies written from scratch. */
  only?: boolean
  /** Edit a copied source file. */
  edit?: { file: string, from: string, to: string }
  entrypoint?: string
}

/** Builds a bundle with the real opa from (edited) sources; returns its bytes. */
export function buildTempBundle (opts: TempBundleOptions = {}): { bytes: Buffer, revision: string, sourceDir: string } {
  let sourceDir: string
  if (opts.only) {
    sourceDir = tempDir()
    writeFileSync(join(sourceDir, 'data.json'), '{}')
  } else {
    sourceDir = copyPolicySources()
  }
  for (const [name, text] of Object.entries(opts.files ?? {})) writeFileSync(join(sourceDir, name), text)
  if (opts.edit) {
    const path = join(sourceDir, opts.edit.file)
    const text = readFileSync(path, 'utf8')
    if (!text.includes(opts.edit.from)) throw new Error(`fixture: "${opts.edit.from}" not in ${opts.edit.file}`)
    writeFileSync(path, text.replace(opts.edit.from, opts.edit.to))
  }
  const outFile = join(tempDir(), 'bundle.tar.gz')
  const { revision } = buildBundle({ sourceDir, outFile, entrypoint: opts.entrypoint })
  return { bytes: readFileSync(outFile), revision, sourceDir }
}
