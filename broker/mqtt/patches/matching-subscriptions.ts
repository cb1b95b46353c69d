// What one delivered copy carries when several of a client's subscriptions match a message.
// aedes 2.0.0-beta.1 delivers one de-duplicated copy through whichever subscription matched first and
//  - for retained messages sent on SUBSCRIBE, and for a wildcard subscription, keeps the PUBLISH QoS
//    (its downgrade looks up `client.subscriptions[topic]`, an exact filter only): a QoS 0 subscriber
//    got retained QoS 1 messages. [MQTT-3.8.4-8] / §3.3.5: delivered QoS = min(publish QoS, granted QoS);
//    with overlapping subscriptions the maximum granted QoS of those that match [MQTT-3.3.4-2 / 3.3.5-1]
//    (upstream: aedes #208 and #288 fixed the exact-filter case only; #1074 open for overlapping ones);
//  - echoes only that subscription's identifier, where [MQTT-3.3.4-3/4/5] require every matching
//    subscription's identifier (aedes' own KNOWN LIMITATION comment, tracked on aedes #821 / #828).
// The fix wraps a client's two delivery functions before any subscription captures them.
import type { Client } from 'aedes'

type DeliverFn = (packet: Delivery, cb: () => void) => void
interface Delivery { topic: string, qos: number, retain: boolean, brokerId?: string | null, properties?: Record<string, unknown> }
interface Sub { qos: number, si?: number }
type DeliveringClient = { version?: number, subscriptions: Record<string, Sub>, deliver0: DeliverFn, deliverQoS: DeliverFn }

/**
 * MQTT topic filter matching (§4.7), for filters aedes has already validated; `$share/<group>/` is not
 * part of the filter. Walks both strings level by level without allocating (it runs per delivery).
 */
export function topicMatches (filter: string, topic: string): boolean {
  let fi = filter.startsWith('$share/') ? filter.indexOf('/', 7) + 1 : 0
  // [MQTT-4.7.2-1] wildcards at the first level never match "$" topics
  const first = filter.charCodeAt(fi)
  if (topic.charCodeAt(0) === 36 && (first === 43 || first === 35)) return false
  let ti = 0
  for (;;) {
    const fe = filter.indexOf('/', fi)
    const fEnd = fe < 0 ? filter.length : fe
    if (fEnd - fi === 1 && filter.charCodeAt(fi) === 35) return true // '#': this level and all below
    const te = topic.indexOf('/', ti)
    const tEnd = te < 0 ? topic.length : te
    if (!(fEnd - fi === 1 && filter.charCodeAt(fi) === 43)) { // not '+': the level must be equal
      if (fEnd - fi !== tEnd - ti) return false
      for (let k = 0; k < fEnd - fi; k++) if (filter.charCodeAt(fi + k) !== topic.charCodeAt(ti + k)) return false
    }
    if (fe < 0) return te < 0
    // the topic ended: only a trailing "/#" still matches (it includes the parent level)
    if (te < 0) return filter.length - fe === 2 && filter.charCodeAt(fe + 1) === 35
    fi = fe + 1
    ti = te + 1
  }
}

export function deliverPerMatchingSubscriptions (client: Client): void {
  const c = client as unknown as DeliveringClient
  const qos0 = c.deliver0
  const qos12 = c.deliverQoS
  const deliver = (packet: Delivery, cb: () => void): void => {
    let granted = -1
    let ids: number[] | undefined
    let count = 0
    let only: Sub | undefined
    for (const filter in c.subscriptions) {
      if (++count > 1) break
      only = c.subscriptions[filter]
    }
    if (count === 1) {
      // the usual case: aedes calls this only for a subscription that matched, so it is that one
      granted = only!.qos
    } else {
      for (const filter in c.subscriptions) {
        const sub = c.subscriptions[filter]!
        if (!topicMatches(filter, packet.topic)) continue
        if (sub.qos > granted) granted = sub.qos
        if (sub.si !== undefined) (ids ??= []).push(sub.si)
      }
    }
    if (granted >= 0 && packet.qos > granted) packet.qos = granted
    // a retained message sent on SUBSCRIBE (brokerId null) already carries that subscription's identifier
    const onSubscribe = packet.retain && packet.brokerId === null
    if (ids !== undefined && ids.length > 1 && c.version === 5 && !onSubscribe) {
      // a new object: the properties object is shared by every subscriber's copy
      packet.properties = { ...packet.properties, subscriptionIdentifier: ids }
    }
    if (packet.qos === 0) qos0(packet, cb)
    else qos12(packet, cb)
  }
  c.deliver0 = deliver
  c.deliverQoS = deliver
}
