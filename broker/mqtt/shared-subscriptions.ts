// Shared subscriptions [MQTT-4.8.2]: `$share/<group>/<filter>` for MQTT 5 and 3.1.1 clients (as Mosquitto
// allows both). aedes 2.0.0-beta.1 has none (it answers 0x9E and advertises them unavailable; upstream
// tracking issue aedes #821), so the gateway rewrites the SUBSCRIBE / UNSUBSCRIBE before aedes reads it:
// aedes, the tenant invariants and the policy then see the plain filter `<tenant>/...` (a filter outside the
// tenant is refused as any other), and delivery lets exactly one connected member of the group take each
// message. The group is keyed by the member's authenticated tenant, so two tenants' groups of the same
// name never mix. Deliberate limits (README): members must be connected (no queueing for an offline group;
// a queued copy is dropped at reconnect, a retained message is not sent on SUBSCRIBE (§4.8.2));
// in cluster mode shared subscriptions are unavailable (the choice would be per node, not per cluster).
import type { PublishPacket } from 'aedes'
import type { GatewayClient } from './client.ts'
import { topicMatches } from './patches/index.ts'

const SHARE = '$share/'

interface Member { client: GatewayClient & { subscriptions: Record<string, unknown>, connected?: boolean }, joined: number }

export class SharedSubscriptions {
  /** "<tenant>\0<group>\0<filter>" → members in join order */
  private readonly groups = new Map<string, Map<GatewayClient, Member>>()
  private joins = 0

  constructor (readonly available: boolean) {}

  /** Rewrites the `$share/` filters of a SUBSCRIBE in place (before aedes handles it). */
  subscribing (client: GatewayClient, subs: Array<{ topic: string, rh?: number, nl?: boolean }>): void {
    const st = client.gw
    if (st === undefined) return
    for (const s of subs) {
      const share = this.available ? parseShare(s.topic) : undefined
      if (share === undefined) {
        // a plain subscription to a filter replaces a shared one of the same filter
        this.leave(client, s.topic)
        continue
      }
      // [MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error: left to aedes' refusal
      if (s.nl === true) continue
      s.topic = share.filter
      s.rh = 2 // no retained messages on SUBSCRIBE for a shared subscription [§4.8.2]
      this.leave(client, share.filter)
      const key = `${st.tenant}\0${share.group}\0${share.filter}`
      let members = this.groups.get(key)
      if (members === undefined) this.groups.set(key, members = new Map())
      members.set(client, { client: client as Member['client'], joined: this.joins++ })
      ;(client.gwShared ??= new Map()).set(share.filter, key)
      if (client.gwShared.size === 1) (client.conn as NodeJS.EventEmitter).once('close', () => { this.leaveAll(client) })
    }
  }

  /** Rewrites the `$share/` filters of an UNSUBSCRIBE in place and leaves those groups. */
  unsubscribing (client: GatewayClient, filters: string[]): void {
    for (let i = 0; i < filters.length; i++) {
      const share = parseShare(filters[i]!)
      if (share === undefined || client.gwShared?.has(share.filter) !== true) continue
      filters[i] = share.filter
      this.leave(client, share.filter)
    }
  }

  /**
   * Whether this client takes this message. A plain subscription that matches always delivers; if only
   * shared ones match, the message goes to one connected member per group, the same one for every
   * member's decision (chosen by the message's broker counter).
   */
  delivers (client: GatewayClient, packet: PublishPacket): boolean {
    const shared = client.gwShared
    if (shared === undefined || shared.size === 0) return true
    const subs = (client as Member['client']).subscriptions
    let anyShared = false
    for (const filter in subs) {
      if (!topicMatches(filter, packet.topic)) continue
      const key = shared.get(filter)
      if (key === undefined) return true
      anyShared = true
      if (this.turnOf(key, filter, packet) === client) return true
    }
    return !anyShared
  }

  private turnOf (key: string, filter: string, packet: PublishPacket): GatewayClient | undefined {
    const p = packet as PublishPacket & { brokerId?: string | null, brokerCounter?: number, messageId?: number }
    // a retained message on SUBSCRIBE, or a copy queued for an offline member: not for a group
    if (p.brokerId === null || typeof p.messageId === 'number') return undefined
    const live: GatewayClient[] = []
    for (const m of this.groups.get(key)?.values() ?? []) {
      if (m.client.connected === true && m.client.subscriptions[filter] !== undefined) live.push(m.client)
    }
    if (live.length === 0) return undefined
    return live[(p.brokerCounter ?? 0) % live.length]
  }

  private leave (client: GatewayClient, filter: string): void {
    const key = client.gwShared?.get(filter)
    if (key === undefined) return
    client.gwShared!.delete(filter)
    const members = this.groups.get(key)
    members?.delete(client)
    if (members?.size === 0) this.groups.delete(key)
  }

  private leaveAll (client: GatewayClient): void {
    for (const filter of [...client.gwShared?.keys() ?? []]) this.leave(client, filter)
  }
}

/** `$share/<ShareName>/<filter>`; undefined when malformed [MQTT-4.8.2-1/2] (then refused as a `$` filter). */
function parseShare (topic: string): { group: string, filter: string } | undefined {
  if (!topic.startsWith(SHARE)) return undefined
  const slash = topic.indexOf('/', SHARE.length)
  if (slash < 0) return undefined
  const group = topic.slice(SHARE.length, slash)
  const filter = topic.slice(slash + 1)
  if (group.length === 0 || group.includes('+') || group.includes('#') || filter.length === 0) return undefined
  return { group, filter }
}
