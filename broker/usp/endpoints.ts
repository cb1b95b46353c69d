// Endpoint registry and presence: which USP endpoints are online, their first
// contact and last sighting, MQTT version and the topic they said they listen
// on (MQTTConnectRecord). Kept in <data>/endpoints.json, written at most once
// a second so a reconnect storm does not become a storm of fsyncs; a crash can
// lose at most the last second of last-seen times. In cluster mode the registry
// lives in Redis instead (RedisEndpointRegistry, broker/endpoints-redis.ts).
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic, type EndpointRecord } from '../store/index.ts'

/** What the gateway and the control plane use: this file-backed registry or the Redis one. */
export interface Endpoints {
  load(): Promise<void>
  connected(tenant: string, endpointId: string, role: string, protocol: number): void
  disconnected(tenant: string, endpointId: string): void
  sawConnectRecord(tenant: string, endpointId: string, subscribedTopic: string): void
  list(tenant: string): Promise<EndpointRecord[]>
  get(tenant: string, endpointId: string): Promise<EndpointRecord | undefined>
  flush(): Promise<void>
}

export class EndpointRegistry implements Endpoints {
  private readonly endpoints = new Map<string, EndpointRecord>()
  private readonly path: string
  private timer: NodeJS.Timeout | undefined
  private writing: Promise<void> = Promise.resolve()

  constructor (dataDir: string, private readonly node: string) {
    this.path = join(dataDir, 'endpoints.json')
  }

  async load (): Promise<void> {
    try {
      const list = JSON.parse(await readFile(this.path, 'utf8')) as EndpointRecord[]
      // after a restart nothing is online until it connects again
      for (const e of list) this.endpoints.set(key(e.tenant, e.endpointId), { ...e, online: false })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }

  connected (tenant: string, endpointId: string, role: string, protocol: number): void {
    const now = new Date().toISOString()
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
    this.schedule()
  }

  disconnected (tenant: string, endpointId: string): void {
    const e = this.endpoints.get(key(tenant, endpointId))
    if (!e) return
    e.online = false
    e.lastSeen = new Date().toISOString()
    this.schedule()
  }

  sawConnectRecord (tenant: string, endpointId: string, subscribedTopic: string): void {
    const e = this.endpoints.get(key(tenant, endpointId))
    if (!e) return
    e.subscribedTopic = subscribedTopic
    e.lastSeen = new Date().toISOString()
    this.schedule()
  }

  async list (tenant: string): Promise<EndpointRecord[]> {
    return [...this.endpoints.values()].filter(e => e.tenant === tenant).sort((a, b) => a.endpointId.localeCompare(b.endpointId))
  }

  async get (tenant: string, endpointId: string): Promise<EndpointRecord | undefined> {
    return this.endpoints.get(key(tenant, endpointId))
  }

  private schedule (): void {
    if (this.timer) return
    this.timer = setTimeout(() => { this.timer = undefined; void this.flush() }, 1000)
    this.timer.unref()
  }

  async flush (): Promise<void> {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined }
    const text = JSON.stringify([...this.endpoints.values()])
    this.writing = this.writing.catch(() => {}).then(() => writeFileAtomic(this.path, text))
    await this.writing
  }
}

function key (tenant: string, endpointId: string): string {
  return `${tenant}\u0000${endpointId}`
}

/** The MQTT protocol level as TR-181 Device.MQTT.Client.{i}.ProtocolVersion names it. */
export function mqttVersion (protocol: number): string {
  return protocol === 5 ? '5.0' : protocol === 4 ? '3.1.1' : '3.1'
}
