// aedes 2.0.0-beta.1 announces every connect, disconnect, SUBSCRIBE and UNSUBSCRIBE as a $SYS message
// ($SYS/<broker id>/new/clients, /disconnect/clients, /new/subscribes, /new/unsubscribes), each one a
// whole broker.publish: a Packet, the offline-queue lookup among all sessions' subscriptions, and the
// emitter's match. In the gateway nobody can read them: no client may subscribe to a `$` topic
// (invariants.ts, [MQTT-4.7.2-1]), and aedes' one internal listener, closeSameClients on
// `$SYS/+/new/clients`, only acts on other brokers' announcements (a client id taken over on another
// node [MQTT-3.1.4-2]). So they are not published; in cluster mode new/clients still is, for that.
// Not an aedes bug (a broker whose clients read $SYS wants them): a cost the gateway does not need.
// Fleet bench, 10,000 agents, connect profile: the two per agent (connect, subscribe) took ~2 % of
// the broker's CPU per connect, their synchronous part alone ~18 of ~1,000 µs.
import type { Aedes, PublishPacket } from 'aedes'

type Publish = (packet: PublishPacket, client?: unknown, done?: unknown) => void

/** Stops `broker` from publishing the $SYS announcements no one in the gateway can receive. */
export function skipUnreadSysAnnouncements (broker: Aedes, opts: { cluster: boolean }): void {
  const prefix = `$SYS/${broker.id}/`
  const unread = new Set(['new/subscribes', 'new/unsubscribes', 'disconnect/clients', ...(opts.cluster ? [] : ['new/clients'])].map(t => prefix + t))
  const b = broker as unknown as { publish: Publish }
  const publish = b.publish
  b.publish = function (packet, client, done) {
    if (!unread.has(packet.topic)) return publish.call(this, packet, client, done)
    // aedes' own signature: publish(packet, done) or publish(packet, client, done)
    const cb = typeof client === 'function' ? client : done
    if (typeof cb === 'function') process.nextTick(cb as () => void, null)
  }
}
