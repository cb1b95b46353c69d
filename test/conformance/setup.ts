// Shared set-up of the conformance suite: one gateway per file, a tenant with an Agent (publishes
// "<tenant>/bulkdata/<agent>/...") and a Controller (reads "<tenant>/bulkdata/#"), and raw-packet
// peers (mqtt-packet) that send exactly the CONNECT a clause needs.
import { startGateway, provision, removeDir, type TestGateway } from '../helpers/gateway.ts'
import { rawPeer, encode, type RawPeer } from '../helpers/raw-mqtt.ts'
import type { Limits } from '../../broker/index.ts'

export interface Conformance {
  t: TestGateway
  agent: { username: string, secret: string }
  controller: { username: string, secret: string }
  /** topic the Agent may publish (and retain) under */
  data: string
  close: () => Promise<void>
}

export const TENANT = 'conf'
export const AGENT = 'os::00256D-C0F'

export async function conformanceGateway (limits: Partial<Limits> = {}): Promise<Conformance> {
  const t = await startGateway({ limits })
  const agent = await provision(t, TENANT, AGENT, 'agent')
  const controller = await provision(t, TENANT, 'self::ctl', 'controller')
  return {
    t,
    agent,
    controller,
    data: `${TENANT}/bulkdata/${AGENT}`,
    close: async () => { await t.close(); await removeDir(t.dataDir) }
  }
}

export interface RawConnect {
  v: 4 | 5
  username?: string
  password?: string
  clientId?: string
  clean?: boolean
  keepalive?: number
  properties?: Record<string, unknown>
  will?: Record<string, unknown>
}

/** Sends one CONNECT and returns the peer with its CONNACK (refusals included). */
export async function rawConnectWith (t: TestGateway, c: RawConnect): Promise<{ peer: RawPeer, connack: any, code: number }> {
  const peer = await rawPeer(t.mqttPort, c.v)
  const emptyIdKeptSession = c.clientId === '' && c.clean === false
  const bytes = encode({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: c.v,
    // mqtt-packet refuses to encode an empty id with Clean Session 0; the flag is cleared below
    clean: emptyIdKeptSession ? true : c.clean ?? true,
    clientId: c.clientId ?? `cf-${Math.random().toString(16).slice(2, 10)}`,
    keepalive: c.keepalive ?? 60,
    ...(c.username !== undefined ? { username: c.username } : {}),
    ...(c.password !== undefined ? { password: Buffer.from(c.password) } : {}),
    ...(c.properties !== undefined ? { properties: c.properties } : {}),
    ...(c.will !== undefined ? { will: c.will } : {})
  }, c.v)
  if (emptyIdKeptSession) {
    // flags byte: fixed header (1 + remaining-length bytes), protocol name (6), level (1)
    let i = 1
    while ((bytes[i]! & 0x80) !== 0) i++
    bytes[i + 1 + 7] = bytes[i + 1 + 7]! & ~0x02
  }
  peer.sendRaw(bytes)
  const connack = await peer.next('connack', 5000)
  return { peer, connack, code: c.v === 5 ? connack.reasonCode : connack.returnCode }
}

/** A connected raw peer as the given identity (throws on a refused CONNECT). */
export async function rawAs (t: TestGateway, who: { username: string, secret: string }, c: Omit<RawConnect, 'username' | 'password'>): Promise<{ peer: RawPeer, connack: any }> {
  const r = await rawConnectWith(t, { ...c, username: who.username, password: who.secret })
  if (r.code !== 0) throw new Error(`CONNECT refused with ${r.code}`)
  return r
}

/** Packets of one kind received within `ms` (for "nothing more arrives" checks). */
export async function collect (peer: RawPeer, cmd: string, ms: number): Promise<any[]> {
  const out: any[] = []
  const deadline = Date.now() + ms
  for (;;) {
    const left = deadline - Date.now()
    if (left <= 0) return out
    try { out.push(await peer.next(cmd, left)) } catch { return out }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
