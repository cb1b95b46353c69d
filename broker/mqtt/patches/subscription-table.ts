// aedes 2.0.0-beta.1 keeps each client's subscriptions in a plain object, `client.subscriptions = {}`
// (lib/client.js), keyed by topic filter. Two faults follow, one of cost and one of correctness; no
// upstream issue names either (the same fault, fixed the same way: amqp-node/amqplib#656).
//
// Cost that grows with the fleet: V8 gives every object a hidden class per set of property names, so a
// fleet of agents each subscribed to its own inbox (`acme/usp/agent/<id>`) makes one hidden class per
// agent. Every megamorphic property access in the process shares one global inline-cache table, and
// 10,000 distinct classes keep evicting the entries of the hot sites: mqtt-packet's property parser
// alone went from 1.3 to 7.6 µs of CPU per USP round trip between 1,000 and 10,000 connected agents
// (bench --fleet --cpu-prof), and the gateway's CPU per round trip from ~175 to ~225 µs.
//
// Correctness and availability: the object inherits Object.prototype, so a filter named like one of
// its members (`toString`, `constructor`, `__proto__` ...) is found before it was ever subscribed. A
// SUBSCRIBE or UNSUBSCRIBE of it hands the member's missing `func` to mqemitter, whose assert throws
// out of the packet handler. The gateway refuses such a SUBSCRIBE before aedes (no tenant prefix) but
// not an UNSUBSCRIBE: any authenticated client stopped the whole process (test/hardening/
// unsubscribe-names.test.ts). Where it does not throw, an MQTT 5 SUBSCRIBE with Retain Handling 1 is
// taken for a re-subscription (no retained messages [MQTT-3.3.1-10]) and `__proto__` replaces the
// object's prototype instead of adding a key.
//
// The fix: a prototype-less dictionary, installed before the client can subscribe (or a persistent
// session's subscriptions are restored). aedes only reads, writes, deletes and Object.keys() it.
import type { Client } from 'aedes'

export function dictionarySubscriptions (client: Client): void {
  const c = client as unknown as { subscriptions: Record<string, unknown> }
  c.subscriptions = Object.assign(Object.create(null) as Record<string, unknown>, c.subscriptions)
}
