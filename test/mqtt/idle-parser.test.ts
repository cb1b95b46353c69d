// broker/mqtt/patches/idle-parser.ts: between packets a connection's parser holds no placeholder Packet
// (an idle agent's would outlive two young-generation collections and die in the old generation), and
// packets that arrive split across reads, several to a read, or malformed are handled as before. Plain
// aedes with the patch alone, a raw socket for the publisher and a real mqtt.js MQTT 5 subscriber.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { Aedes, type Client } from 'aedes'
import mqtt from 'mqtt'
import { releaseIdleParserPacket } from '../../broker/mqtt/patches/index.ts'
import { encode, rawPeer } from '../helpers/raw-mqtt.ts'

type ParserView = { _parser: { packet: unknown } }

async function broker (): Promise<{ port: number, aedes: Aedes, server: Server, clients: Map<string, Client> }> {
  const aedes = await Aedes.createBroker()
  const clients = new Map<string, Client>()
  aedes.on('client', c => { clients.set(c.id, c) })
  const server = createServer(socket => { releaseIdleParserPacket(aedes.handle(socket)) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { port: (server.address() as AddressInfo).port, aedes, server, clients }
}

async function stop (b: { aedes: Aedes, server: Server }): Promise<void> {
  b.server.close()
  await new Promise<void>(resolve => b.aedes.close(() => resolve()))
}

test('an idle connection holds no placeholder packet; a PUBLISH split over three reads, and two in one read, are delivered intact', async () => {
  const b = await broker()
  const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.port}`, { protocolVersion: 5, clientId: 'sub', reconnectPeriod: 0 })
  const pub = await rawPeer(b.port, 5)
  try {
    await sub.subscribeAsync('acme/usp/agent/#', { qos: 1 })
    const got: string[] = []
    sub.on('message', (topic, payload) => { got.push(`${topic} ${payload.toString()}`) })
    pub.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'pub', clean: true, keepalive: 0 })
    await pub.next('connack')
    await sleep(50)
    const parser = (b.clients.get('pub') as unknown as ParserView)._parser
    assert.equal(parser.packet, null, 'after CONNECT, with nothing more to read, the parser keeps no Packet')

    const one = encode({ cmd: 'publish', topic: 'acme/usp/agent/a1', payload: Buffer.from('split'), qos: 1, messageId: 1, properties: { responseTopic: 'acme/usp/controller/c1' } }, 5)
    pub.sendRaw(one.subarray(0, 1))
    await sleep(30)
    assert.notEqual(parser.packet, null, 'a packet begun is kept until it is complete')
    pub.sendRaw(one.subarray(1, 6))
    await sleep(30)
    pub.sendRaw(one.subarray(6))
    await pub.next('puback')
    const two = Buffer.concat([
      encode({ cmd: 'publish', topic: 'acme/usp/agent/a2', payload: Buffer.from('first'), qos: 1, messageId: 2 }, 5),
      encode({ cmd: 'publish', topic: 'acme/usp/agent/a3', payload: Buffer.from('second'), qos: 1, messageId: 3 }, 5)
    ])
    pub.sendRaw(two)
    await pub.next('puback')
    await pub.next('puback')
    for (let i = 0; i < 50 && got.length < 3; i++) await sleep(20)
    assert.deepEqual(got, ['acme/usp/agent/a1 split', 'acme/usp/agent/a2 first', 'acme/usp/agent/a3 second'])
    assert.equal(parser.packet, null, 'idle again after the last complete packet')
  } finally {
    pub.end()
    await sub.endAsync()
    await stop(b)
  }
})

test('a malformed packet still ends the connection with the parser error, and the broker serves the next client', async () => {
  const b = await broker()
  const bad = await rawPeer(b.port, 5)
  try {
    bad.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'bad', clean: true, keepalive: 0 })
    await bad.next('connack')
    const errors: string[] = []
    b.aedes.on('clientError', (_c, err) => { errors.push(err.message) })
    bad.sendRaw(Buffer.from([0x30, 0x02, 0xff, 0xff])) // PUBLISH whose topic length runs past the packet
    await Promise.race([bad.closed, sleep(5000)])
    assert.equal(bad.isClosed(), true, 'the connection is closed')
    assert.ok(errors.length > 0, 'aedes reported the parse error')
    const ok = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.port}`, { protocolVersion: 5, clientId: 'next', reconnectPeriod: 0 })
    await ok.publishAsync('acme/x', 'y', { qos: 1 })
    await ok.endAsync()
  } finally {
    bad.end()
    await stop(b)
  }
})
