// Endpoint registry and presence: which USP endpoints are online, their first
// contact and last sighting, MQTT version and the topic they said they listen
// on (MQTTConnectRecord). Kept in <data>/endpoints.json (a snapshot) plus
// <data>/endpoints.log (the change log of broker/store): the endpoints that
// changed are appended at most once a second, so a reconnect storm is neither a
// storm of fsyncs nor a rewrite of the whole registry per second (which cost
// O(fleet) each time); the log is folded into the snapshot when it holds more
// changes than half the registry, and at start. A crash can lose at most the
// last second of last-seen times. In cluster mode the registry lives in Redis
// instead (RedisEndpointRegistry, broker/cluster/endpoints-redis.ts).
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isoNow } from '../core/index.ts'
import { ChangeLog, writeFileAtomic, type EndpointRecord, type OfflineReason, type PresenceTransition } from '../store/index.ts'

/** Presence transitions kept per endpoint (the newest). */
export const PRESENCE_HISTORY = 50

/** Why a session ended, as the registry records it. */
export interface OfflineCause { reason: OfflineReason, detail?: string | undefined }

/** The log is folded into the snapshot once it holds more lines than this and than half the registry. */
const MIN_COMPACT_CHANGES = 1000

/** What the gateway and the control plane use: this file-backed registry or the Redis one. */
export interface Endpoints {
  load(): Promise<void>
  connected(tenant: string, endpointId: string, role: string, protocol: number): void
  disconnected(tenant: string, endpointId: string, cause?: OfflineCause, protocol?: number): void
  sawConnectRecord(tenant: string, endpointId: string, subscribedTopic: string): void
  list(tenant: string): Promise<EndpointRecord[]>
  get(tenant: string, endpointId: string): Promise<EndpointRecord | undefined>
  /** The endpoint's last PRESENCE_HISTORY online/offline transitions, newest first. */
  presence(tenant: string, endpointId: string): Promise<PresenceTransition[]>
  flush(): Promise<void>
}

export class EndpointRegistry implements Endpoints {
  private readonly endpoints = new Map<string, EndpointRecord>()
  /** Presence transitions since this process started, oldest first, at most PRESENCE_HISTORY each (not persisted). */
  private readonly history = new Map<string, PresenceTransition[]>()
  private readonly path: string
  private readonly log: ChangeLog<EndpointRecord>
  /** Keys of the endpoints changed since the last flush. */
  private readonly dirty = new Set<string>()
  private timer: NodeJS.Timeout | undefined
  private compacting: Promise<void> | undefined

  constructor (dataDir: string, private readonly node: string) {
    this.path = join(dataDir, 'endpoints.json')
    this.log = new ChangeLog(join(dataDir, 'endpoints.log'))
  }

  async load (): Promise<void> {
    try {
      const list = JSON.parse(await readFile(this.path, 'utf8')) as EndpointRecord[]
      for (const e of list) this.endpoints.set(key(e.tenant, e.endpointId), e)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    const changes = await this.log.read()
    for (const e of changes) this.endpoints.set(key(e.tenant, e.endpointId), e)
    // after a restart nothing is online until it connects again
    for (const e of this.endpoints.values()) e.online = false
    if (changes.length > 0) await this.compact()
  }

  connected (tenant: string, endpointId: string, role: string, protocol: number): void {
    const now = isoNow()
    const k = key(tenant, endpointId)
    const prev = this.endpoints.get(k)
    this.endpoints.set(k, {
      ...prev,
      tenant,
      endpointId,
      role,
      online: true,
      firstContact: prev?.firstContact ?? now,
      lastSeen: now,
      mqttVersion: mqttVersion(protocol),
      node: this.node
    })
    this.remember(k, { state: 'online', time: now, node: this.node, mqttVersion: mqttVersion(protocol) })
    this.changed(k)
  }

  disconnected (tenant: string, endpointId: string, cause?: OfflineCause, protocol?: number): void {
    const k = key(tenant, endpointId)
    const e = this.endpoints.get(k)
    if (!e) return
    e.online = false
    e.lastSeen = isoNow()
    this.remember(k, offlineTransition(e.lastSeen, this.node, protocol !== undefined ? mqttVersion(protocol) : e.mqttVersion, cause))
    this.changed(k)
  }

  async presence (tenant: string, endpointId: string): Promise<PresenceTransition[]> {
    return [...(this.history.get(key(tenant, endpointId)) ?? [])].reverse()
  }

  private remember (k: string, t: PresenceTransition): void {
    let h = this.history.get(k)
    if (h === undefined) { h = []; this.history.set(k, h) }
    h.push(t)
    if (h.length > PRESENCE_HISTORY) h.shift()
  }

  sawConnectRecord (tenant: string, endpointId: string, subscribedTopic: string): void {
    const k = key(tenant, endpointId)
    const e = this.endpoints.get(k)
    if (!e) return
    e.subscribedTopic = subscribedTopic
    e.lastSeen = isoNow()
    this.changed(k)
  }

  async list (tenant: string): Promise<EndpointRecord[]> {
    return [...this.endpoints.values()].filter(e => e.tenant === tenant).sort((a, b) => a.endpointId.localeCompare(b.endpointId))
  }

  async get (tenant: string, endpointId: string): Promise<EndpointRecord | undefined> {
    return this.endpoints.get(key(tenant, endpointId))
  }

  private changed (k: string): void {
    this.dirty.add(k)
    if (this.timer) return
    this.timer = setTimeout(() => { this.timer = undefined; void this.flush() }, 1000)
    this.timer.unref()
  }

  /** Appends the endpoints changed since the last flush (copies: later changes must not alter them). */
  async flush (): Promise<void> {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined }
    const changes: EndpointRecord[] = []
    for (const k of this.dirty) {
      const e = this.endpoints.get(k)
      if (e !== undefined) changes.push({ ...e })
    }
    this.dirty.clear()
    const written = this.log.append(changes)
    if (this.compacting === undefined && this.log.lines > Math.max(MIN_COMPACT_CHANGES, this.endpoints.size / 2)) {
      this.compacting = this.compact().catch(() => {}).finally(() => { this.compacting = undefined })
    }
    await written
    await this.log.idle()
  }

  /** A new snapshot of the whole registry, in order with the log, which it then empties. */
  private compact (): Promise<void> {
    const text = JSON.stringify([...this.endpoints.values()])
    return this.log.checkpoint(() => writeFileAtomic(this.path, text))
  }
}

function key (tenant: string, endpointId: string): string {
  return `${tenant}\u0000${endpointId}`
}

export function offlineTransition (time: string, node: string, version: string, cause?: OfflineCause): PresenceTransition {
  const t: PresenceTransition = { state: 'offline', time, node, mqttVersion: version }
  if (cause !== undefined) {
    t.reason = cause.reason
    if (cause.detail !== undefined) t.detail = cause.detail
  }
  return t
}

/** The MQTT protocol level as TR-181 Device.MQTT.Client.{i}.ProtocolVersion names it. */
export function mqttVersion (protocol: number): string {
  return protocol === 5 ? '5.0' : protocol === 4 ? '3.1.1' : '3.1'
}
