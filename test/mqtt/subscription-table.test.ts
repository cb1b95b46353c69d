// broker/mqtt/patches/subscription-table.ts: aedes' per-client subscription table without
// Object.prototype, on plain aedes (the patch alone) with a real mqtt.js MQTT 5 client.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { once } from 'node:events'
import { Aedes } from 'aedes'
import mqtt from 'mqtt'
import { dictionarySubscriptions } from '../../broker/mqtt/patches/index.ts'

async function broker (patched: boolean): Promise<{ url: string, aedes: Aedes, server: Server }> {
  const aedes = await Aedes.createBroker()
  const server = createServer(socket => {
    const client = aedes.handle(socket)
    if (patched) dictionarySubscriptions(client)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`, aedes, server }
}

async function stop (b: { aedes: Aedes, server: Server }): Promise<void> {
  b.server.close()
  await new Promise<void>(resolve => b.aedes.close(() => resolve()))
}

/** Retained messages a Retain Handling 1 SUBSCRIBE to `topic` brings, and the UNSUBACK reason code of an unsubscribe before it. */
async function probe (patched: boolean, topic: string, unsubscribeFirst: boolean): Promise<{ retained: string[], unsubscribeBefore: number | undefined }> {
  const b = await broker(patched)
  const c = await mqtt.connectAsync(b.url, { protocolVersion: 5, clientId: `probe-${topic}`, reconnectPeriod: 0 })
  try {
    await c.publishAsync(topic, 'kept', { qos: 1, retain: true })
    let unsubscribeBefore: number | undefined
    if (unsubscribeFirst) {
      const unsuback = new Promise<{ granted?: number[] }>(resolve => {
        c.on('packetreceive', p => { if (p.cmd === 'unsuback') resolve(p as unknown as { granted?: number[] }) })
      })
      await c.unsubscribeAsync(topic)
      unsubscribeBefore = (await unsuback).granted?.[0]
    }
    const retained: string[] = []
    c.on('message', (_t, payload, packet) => { if (packet.retain) retained.push(payload.toString()) })
    await c.subscribeAsync(topic, { qos: 1, rh: 1 })
    await new Promise(resolve => setTimeout(resolve, 300))
    return { retained, unsubscribeBefore }
  } finally {
    await c.endAsync()
    await stop(b)
  }
}

test('a filter named like an Object member is a new subscription: its retained message is sent [MQTT-3.3.1-10] and an unsubscribe before it says 0x11 [MQTT-3.11.3]', async () => {
  for (const topic of ['toString', 'constructor', 'hasOwnProperty']) {
    const r = await probe(true, topic, true)
    assert.deepEqual(r.retained, ['kept'], `${topic}: Retain Handling 1 on a first SUBSCRIBE sends the retained message`)
    assert.equal(r.unsubscribeBefore, 0x11, `${topic}: UNSUBSCRIBE of a filter never subscribed → 0x11 No subscription existed`)
  }
  // Unpatched aedes 2.0.0-beta.1 cannot be probed the same way in this process: its SUBSCRIBE or
  // UNSUBSCRIBE of these names throws out of the packet handler (test/hardening/unsubscribe-names.test.ts
  // makes that attack on the gateway).
})

test('every client gets its own prototype-less table, and subscribe, deliver and unsubscribe work through it', async () => {
  const b = await broker(true)
  const agents = await Promise.all(['a1', 'a2'].map(async id => await mqtt.connectAsync(b.url, { protocolVersion: 5, clientId: id, reconnectPeriod: 0 })))
  try {
    await Promise.all(agents.map(async (a, i) => await a.subscribeAsync(`acme/usp/agent/a${i + 1}`, { qos: 1 })))
    const tables = ['a1', 'a2'].map(id => (b.aedes as unknown as { clients: Record<string, { subscriptions: object }> }).clients[id]!.subscriptions)
    for (const t of tables) assert.equal(Object.getPrototypeOf(t), null)
    assert.notEqual(tables[0], tables[1])
    assert.deepEqual(Object.keys(tables[0]!), ['acme/usp/agent/a1'])
    const got = once(agents[1]! as unknown as NodeJS.EventEmitter, 'message')
    await agents[0]!.publishAsync('acme/usp/agent/a2', 'hello', { qos: 1 })
    assert.equal((await got)[1].toString(), 'hello')
    await agents[1]!.unsubscribeAsync('acme/usp/agent/a2')
    assert.deepEqual(Object.keys(tables[1]!), [])
  } finally {
    await Promise.all(agents.map(async a => await a.endAsync()))
    await stop(b)
  }
})
