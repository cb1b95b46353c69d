// §3.1 CONNECT / §3.2 CONNACK: properties the gateway advertises, keep-alive, client identifiers.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { conformanceGateway, rawConnectWith, rawAs, sleep, type Conformance } from './setup.ts'
import { waitForEvent } from '../helpers/gateway.ts'

let g: Conformance
const LIMITS = { maxPacketBytes: 64 * 1024, maxInflightQos2: 20, topicAliasMaximum: 8, maxKeepAliveSeconds: 120 }
before(async () => { g = await conformanceGateway(LIMITS) })
after(async () => { await g.close() })

test('[§3.2.2.3.3] [§3.2.2.3.6] [§3.2.2.3.8] [§3.2.2.3.13] MQTT 5 CONNACK advertises the limits the gateway enforces (Receive Maximum, Maximum Packet Size, Topic Alias Maximum, no shared subscriptions)', async () => {
  const { peer, connack } = await rawAs(g.t, g.agent, { v: 5 })
  const p = connack.properties
  assert.equal(p.receiveMaximum, 20)
  assert.equal(p.maximumPacketSize, 64 * 1024)
  assert.equal(p.topicAliasMaximum, 8)
  // Retain Available, Maximum QoS, Wildcard and Subscription Identifiers are absent: available, QoS 2 [§3.2.2.3.4-3.2.2.3.12]
  assert.equal(p.retainAvailable, undefined)
  assert.equal(p.maximumQoS, undefined)
  assert.equal(p.subscriptionIdentifiersAvailable, undefined)
  assert.equal(p.wildcardSubscriptionAvailable, undefined)
  peer.end()
})

for (const v of [4, 5] as const) {
  test(`[MQTT-3.1.2-23 context] v${v}: Keep Alive 0 ("no keep-alive") is accepted`, async () => {
    const { peer, connack } = await rawAs(g.t, g.agent, { v, keepalive: 0 })
    if (v === 5) {
      // [MQTT-3.2.2-21] MQTT 5 is told the server's limit as Server Keep Alive
      assert.equal(connack.properties?.serverKeepAlive, 120)
    } else {
      assert.equal(connack.returnCode, 0)
    }
    await sleep(300)
    assert.equal(peer.isClosed(), false)
    // No keep-alive timer watches a 3.1.1 Keep Alive 0 connection, so the kernel's TCP keep-alive
    // does; an MQTT 5 one is watched through its Server Keep Alive and needs none.
    assert.equal(serverSocketKeepAlive(g.t.mqttPort, peer.socket.localPort!), v === 4)
    peer.end()
  })
}

test('a connection with a Keep Alive (aedes\' timer watches it) gets no TCP keep-alive', async () => {
  for (const v of [4, 5] as const) {
    const { peer } = await rawAs(g.t, g.agent, { v, keepalive: 30 })
    assert.equal(serverSocketKeepAlive(g.t.mqttPort, peer.socket.localPort!), false)
    peer.end()
  }
})

/**
 * Whether the gateway's end of a loopback TCP connection has the kernel's keep-alive timer running,
 * read from /proc/net/tcp ("tr" 2: sk_timer, the keep-alive timer, pending).
 */
function serverSocketKeepAlive (serverPort: number, clientPort: number): boolean {
  const port = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0')
  const rows = readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1).map(l => l.trim().split(/\s+/))
  const row = rows.find(r => r[1]?.endsWith(':' + port(serverPort)) && r[2]?.endsWith(':' + port(clientPort)) && r[3] === '01')
  if (row === undefined) throw new Error(`no established connection ${serverPort} <- ${clientPort} in /proc/net/tcp`)
  return row[5]!.split(':')[0] === '02'
}

test('[MQTT-3.2.2-21] v5: a Keep Alive above the limit is replaced by Server Keep Alive; one inside it is kept', async () => {
  const above = await rawAs(g.t, g.agent, { v: 5, keepalive: 3600 })
  assert.equal(above.connack.properties?.serverKeepAlive, 120)
  above.peer.end()
  const inside = await rawAs(g.t, g.agent, { v: 5, keepalive: 30 })
  assert.equal(inside.connack.properties?.serverKeepAlive, undefined)
  inside.peer.end()
})

test('[MQTT-3.2.2-4] [MQTT-3.2.2-5] [§3.2.2.3] v3.1.1: a Keep Alive above the limit gets the defined return code 2 (as Mosquitto), never the reserved 6', async () => {
  const r = await rawConnectWith(g.t, { v: 4, keepalive: 3600, username: g.agent.username, password: g.agent.secret })
  assert.equal(r.code, 2)
  await r.peer.closed
  await waitForEvent(g.t, { code: 'limits.keepalive' })
})

test('[MQTT-3.1.2-24] the server closes a connection silent for 1.5 x Keep Alive', async () => {
  const { peer } = await rawAs(g.t, g.agent, { v: 4, keepalive: 1 })
  const started = Date.now()
  await peer.closed
  assert.ok(Date.now() - started >= 1000, 'not before the keep-alive')
})

test('[MQTT-3.1.3-8] v3.1.1: an empty client id with Clean Session 0 gets return code 2', async () => {
  const r = await rawConnectWith(g.t, { v: 4, clientId: '', clean: false, username: g.agent.username, password: g.agent.secret })
  assert.equal(r.code, 2)
  await r.peer.closed
})

test('[MQTT-3.1.3-7] v3.1.1: an empty client id with Clean Session 1 is accepted', async () => {
  const { peer, connack } = await rawAs(g.t, g.agent, { v: 4, clientId: '', clean: true })
  assert.equal(connack.sessionPresent, false)
  peer.end()
})

test('[MQTT-3.1.3-6] [MQTT-3.2.2-16] v5: an empty client id is assigned one, sent as Assigned Client Identifier', async () => {
  const { peer, connack } = await rawAs(g.t, g.agent, { v: 5, clientId: '', clean: false, properties: { sessionExpiryInterval: 60 } })
  assert.match(connack.properties.assignedClientIdentifier, /^uspgate-/)
  peer.end()
})

test('[§3.1.2.11.3] v5: Receive Maximum 0 in CONNECT is a Protocol Error (0x82)', async () => {
  const r = await rawConnectWith(g.t, { v: 5, username: g.agent.username, password: g.agent.secret, properties: { receiveMaximum: 0 } })
  assert.equal(r.code, 0x82)
})

test('[§3.2.2.3.2] v5: a Session Expiry Interval above the gateway limit is answered with the one applied', async () => {
  const { peer, connack } = await rawAs(g.t, g.agent, { v: 5, clean: true, properties: { sessionExpiryInterval: 0xFFFFFFFE } })
  assert.equal(connack.properties.sessionExpiryInterval, 7 * 24 * 3600)
  peer.end()
})

for (const v of [4, 5] as const) {
  test(`[MQTT-3.2.2-5] [§3.2.2.3 / §3.2.2.2] v${v}: bad credentials get the defined refusal code and the connection is closed`, async () => {
    const r = await rawConnectWith(g.t, { v, username: g.agent.username, password: 'wrong' })
    assert.equal(r.code, v === 5 ? 0x86 : 4)
    await r.peer.closed
  })
}
