// §3.3.2.3 PUBLISH properties: forwarded unaltered, Message Expiry. (No Local [MQTT-3.8.3-3] needs a client
// that may both publish and subscribe to one topic, which the default policy grants no role.)
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { conformanceGateway, rawAs, collect, sleep, type Conformance } from './setup.ts'

let g: Conformance
before(async () => { g = await conformanceGateway() })
after(async () => { await g.close() })

test('[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] v5: Payload Format Indicator, Content Type, Response Topic, Correlation Data and User Properties reach the subscriber unaltered', async () => {
  const { peer: sub } = await rawAs(g.t, g.controller, { v: 5 })
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${g.data}/props`, qos: 1 }] })
  await sub.next('suback')
  const { peer } = await rawAs(g.t, g.agent, { v: 5 })
  const properties = {
    payloadFormatIndicator: true,
    contentType: 'application/json',
    responseTopic: `${g.data}/reply`,
    correlationData: Buffer.from('c0ffee'),
    userProperties: { a: '1', b: ['2', '3'] }
  }
  peer.send({ cmd: 'publish', topic: `${g.data}/props`, payload: '{}', qos: 1, messageId: 1, retain: false, dup: false, properties })
  await peer.next('puback')
  const m = await sub.next('publish', 3000)
  assert.equal(m.properties.payloadFormatIndicator, true)
  assert.equal(m.properties.contentType, 'application/json')
  assert.equal(m.properties.responseTopic, `${g.data}/reply`)
  assert.equal(m.properties.correlationData.toString(), 'c0ffee')
  assert.deepEqual({ ...m.properties.userProperties }, { a: '1', b: ['2', '3'] }) // order kept [MQTT-3.3.2-18]
  sub.end(); peer.end()
})

test('[MQTT-3.3.2-5] [MQTT-3.3.2-6] v5: a queued message whose Message Expiry Interval passed is not delivered; one still alive arrives with the remaining interval', async () => {
  const clientId = 'expiry-sub'
  const first = await rawAs(g.t, g.controller, { v: 5, clientId, clean: true, properties: { sessionExpiryInterval: 60 } })
  first.peer.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${g.data}/exp`, qos: 1 }] })
  await first.peer.next('suback')
  first.peer.end()
  await first.peer.closed
  const { peer } = await rawAs(g.t, g.agent, { v: 5 })
  peer.send({ cmd: 'publish', topic: `${g.data}/exp`, payload: 'short', qos: 1, messageId: 1, retain: false, dup: false, properties: { messageExpiryInterval: 1 } })
  await peer.next('puback')
  peer.send({ cmd: 'publish', topic: `${g.data}/exp`, payload: 'long', qos: 1, messageId: 2, retain: false, dup: false, properties: { messageExpiryInterval: 60 } })
  await peer.next('puback')
  peer.end()
  await sleep(2100)
  const again = await rawAs(g.t, g.controller, { v: 5, clientId, clean: false, properties: { sessionExpiryInterval: 60 } })
  const got = await collect(again.peer, 'publish', 1000)
  assert.deepEqual(got.map(p => p.payload.toString()), ['long'])
  assert.ok(got[0].properties.messageExpiryInterval <= 58, `remaining interval, got ${got[0].properties.messageExpiryInterval}`)
  again.peer.send({ cmd: 'puback', messageId: got[0].messageId })
  again.peer.end()
})
