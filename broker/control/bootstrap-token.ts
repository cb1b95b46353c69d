// The bootstrap admin token: USPGATE_ADMIN_TOKEN if set, else the one in <data>/admin-token, else a
// new one written there (0600) and printed once. Only its hash is kept in the state store.
import { chmod, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { generateSecret, hashSecret } from '../core/index.ts'
import type { StateStore } from '../store/index.ts'
import { BOOTSTRAP_TOKEN_ID } from './admin-access.ts'

export interface BootstrapTokenOptions {
  dataDir: string
  /** USPGATE_ADMIN_TOKEN */
  configured: string | undefined
  store: StateStore
  /** Cluster mode: the shared store may already hold another node's bootstrap token. */
  shared: boolean
  print: boolean
  log: Logger
}

export async function ensureBootstrapToken (o: BootstrapTokenOptions): Promise<void> {
  const file = join(o.dataDir, 'admin-token')
  let token = o.configured
  let generated = false
  const existing = o.store.listAdminTokens().find(t => t.id === BOOTSTRAP_TOKEN_ID)
  if (token === undefined) {
    try {
      token = (await readFile(file, 'utf8')).trim()
      await chmod(file, 0o600)
    } catch {
      if (existing !== undefined && o.shared) {
        // A cluster store already holds the bootstrap token (set by another node): never
        // replace it with a new local one, which would lock every other node's admins out.
        o.log.info('admin bootstrap token is held by the shared store; set USPGATE_ADMIN_TOKEN to use the CLI on this node')
        return
      }
      token = generateSecret('usa')
      await writeFile(file, token + '\n', { mode: 0o600, flag: 'wx' })
      generated = true
    }
  }
  const hash = hashSecret(token)
  if (existing?.tokenHash !== hash) {
    await o.store.putAdminToken({ id: BOOTSTRAP_TOKEN_ID, name: BOOTSTRAP_TOKEN_ID, role: 'admin', tokenHash: hash, createdAt: new Date().toISOString() })
  }
  if (generated && o.print) {
    // Shown once on the console, never through the logger.
    process.stdout.write(`\nAdmin token (shown once; also stored 0600 in ${file}):\n  ${token}\n\n`)
  }
}
