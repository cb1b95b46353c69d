// The life of the gateway's certificate authority: created or loaded (<dataDir>/pki and its master
// key) on first use, shared through Redis in cluster mode (PkiSync), mutated under that lock,
// reloaded from a newer shared copy, and watched for expiry (metric + cert.expiring events).
import { join } from 'node:path'
import { Gauge } from 'prom-client'
import { CertificateAuthority, CertError, loadOrCreateMasterKey } from '../../certs/index.ts'
import { ConfigError, DEFAULT_SERVER_SANS, requireClusterMasterKey, type GatewayConfig, type Metrics, type SecurityEvents } from '../core/index.ts'

/** cert.expiring is raised when a CA or the server certificate has fewer days than this left. */
export const EXPIRY_WARNING_DAYS = 30
/** File in the data dir holding the generated PKI master key (when USPGATE_PKI_MASTER_KEY is not set). */
export const MASTER_KEY_FILE = 'pki-master-key'
const DAY_MS = 86_400_000

/** Cluster mode: how the pki directory is shared through Redis (broker/cluster/pki-mirror.ts). */
export interface PkiSync {
  /** Around the first load (init): download the shared PKI, or create and upload it, under the cluster lock. */
  initialize: (init: () => Promise<void>) => Promise<void>
  /** Around every CA mutation: newest shared copy first, upload after, under the cluster lock. */
  mutate: <T>(task: () => Promise<T>) => Promise<T>
  /** Cluster resync (start, reconnect): apply a newer shared copy. */
  resync: () => Promise<void>
}

export class AuthorityHolder {
  private ca: CertificateAuthority | undefined
  private initializing: Promise<CertificateAuthority> | undefined
  private masterKey: string | Buffer | undefined
  private untrack: (() => void) | undefined
  private readonly expiryWarned = new Map<string, number>()
  private expiryTimer: NodeJS.Timeout | undefined
  /** Cluster mode: the pki directory is shared through Redis; undefined when embedded. */
  pkiSync: PkiSync | undefined
  /** Called after every trust change (new / revoked tenant CA, imported / removed vendor CA, reload). */
  onTrustChange: (ca: CertificateAuthority) => void = () => {}

  constructor (private readonly config: GatewayConfig, private readonly events: SecurityEvents, metrics: Metrics) {
    const holder = this
    // Read at scrape time, so the gauge follows renewals, new tenant CAs and imports.
    new Gauge({
      name: 'uspgate_cert_expiry_timestamp_seconds',
      help: 'Expiry (notAfter, Unix seconds) of the root CA, the MQTTS server certificate and each tenant / imported CA',
      labelNames: ['name'],
      registers: [metrics.registry],
      collect () {
        this.reset()
        for (const e of holder.ca?.expiries() ?? []) this.labels(e.name).set(Math.floor(e.notAfter.getTime() / 1000))
      }
    })
  }

  /** The CA if it has been loaded. */
  get current (): CertificateAuthority | undefined { return this.ca }

  /**
   * The certificate authority, created or loaded on first use: at start when
   * the MQTTS listener is on, else on the first certificate API call (a
   * gateway without MQTTS pays nothing for the PKI until it is used).
   */
  async authority (): Promise<CertificateAuthority> {
    if (this.ca !== undefined) return this.ca
    this.initializing ??= this.createAuthority().catch((err: unknown) => {
      this.initializing = undefined
      throw err
    })
    return await this.initializing
  }

  private async createAuthority (): Promise<CertificateAuthority> {
    const config = this.config
    const keySetting = config.pkiMasterKey !== undefined ? 'USPGATE_PKI_MASTER_KEY' : `USPGATE_PKI_MASTER_KEY (unset, so the key in ${join(config.dataDir, MASTER_KEY_FILE)})`
    let ca: CertificateAuthority
    try {
      if (this.pkiSync !== undefined) requireClusterMasterKey(config) // never a per-node generated key
      const masterKey = config.pkiMasterKey ?? await loadOrCreateMasterKey(join(config.dataDir, MASTER_KEY_FILE))
      const created = ca = new CertificateAuthority({ dir: join(config.dataDir, 'pki'), masterKey })
      const init = async (): Promise<void> => { await created.init({ serverSans: config.serverSans ?? DEFAULT_SERVER_SANS }) }
      // cluster mode: download the shared PKI, or create and upload it, under the Redis lock
      await (this.pkiSync !== undefined ? this.pkiSync.initialize(init) : init())
      this.masterKey = masterKey
    } catch (err) {
      // A wrong key or bad SAN is a settings problem: one clear line at start-up.
      if (err instanceof CertError && (err.code === 'cert.bad_master_key' || err.code === 'cert.weak_master_key')) throw new ConfigError(keySetting, err.message)
      if (err instanceof CertError && err.code === 'cert.invalid_san') throw new ConfigError('USPGATE_SERVER_SANS', err.message)
      throw err
    }
    this.adopt(ca)
    return ca
  }

  private adopt (ca: CertificateAuthority): void {
    this.untrack?.()
    this.untrack = ca.onTrustChange(() => { this.onTrustChange(ca); this.checkExpiry() })
    this.ca = ca
    this.checkExpiry()
  }

  /**
   * Cluster mode: the pki directory now holds a newer shared copy. Loads it into a fresh
   * authority and swaps it in; returns it (undefined when nothing was loaded yet: the next use
   * reads the new files).
   */
  async reload (): Promise<CertificateAuthority | undefined> {
    const old = this.ca
    if (old === undefined || this.masterKey === undefined) return undefined
    const ca = new CertificateAuthority({ dir: old.dir, masterKey: this.masterKey })
    try {
      await ca.init({ serverSans: this.config.serverSans ?? DEFAULT_SERVER_SANS })
    } catch (err) {
      if (err instanceof CertError && err.code === 'cert.bad_master_key') throw new ConfigError('USPGATE_PKI_MASTER_KEY', `${err.message} (the shared PKI was written with another key: every node needs the same one)`)
      throw err
    }
    this.adopt(ca)
    return ca
  }

  /** Runs a CA mutation; in cluster mode on the newest shared copy, under the PKI lock, uploaded after. */
  async mutating<T> (task: (ca: CertificateAuthority) => Promise<T>): Promise<T> {
    await this.authority()
    if (this.pkiSync === undefined) return await task(this.ca!)
    return await this.pkiSync.mutate(async () => await task(this.ca!))
  }

  startExpiryChecks (): void {
    this.expiryTimer = setInterval(() => { if (this.ca !== undefined) this.checkExpiry() }, DAY_MS)
    this.expiryTimer.unref()
  }

  stop (): void {
    if (this.expiryTimer !== undefined) clearInterval(this.expiryTimer)
  }

  /** cert.expiring for each CA / server certificate within 30 days of expiry; at most once a day per certificate. */
  private checkExpiry (): void {
    const ca = this.ca
    if (ca === undefined) return
    const now = Date.now()
    for (const e of ca.expiries()) {
      const left = e.notAfter.getTime() - now
      if (left > EXPIRY_WARNING_DAYS * DAY_MS) continue
      const key = `${e.name}|${e.notAfter.toISOString()}`
      const last = this.expiryWarned.get(key)
      if (last !== undefined && now - last < DAY_MS - 3_600_000) continue
      this.expiryWarned.set(key, now)
      const tenant = /^tenant:([^:]+)/.exec(e.name)?.[1]
      const days = Math.floor(left / DAY_MS)
      this.events.emit({
        code: 'cert.expiring',
        tenant,
        action: 'expiry-check',
        reason: `${e.name} certificate ${left <= 0 ? 'expired' : 'expires'} at ${e.notAfter.toISOString()} (${days} day(s) left)`
      })
    }
  }
}
