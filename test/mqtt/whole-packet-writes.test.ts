// broker/mqtt/patches/whole-packet-writes.ts: aedes writes every packet to a connection as one buffer
// (a PUBLISH larger than a pooled buffer as its fields, then its payload), the same bytes mqtt-packet
// writes field by field; an invalid packet still destroys the connection with mqtt-packet's error,
// and backpressure still reaches aedes as before. Plain aedes with the patch, a real TCP socket as the
// client, every byte it receives parsed by mqtt-packet.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { Aedes } from 'aedes'
import mqttPacket from 'mqtt-packet'
import { installWholePacketWrites, wholePacketWritesInstalled } from '../../broker/mqtt/patches/index.ts'
import { encode } from '../helpers/raw-mqtt.ts'
import { waitFor } from '../helpers/gateway.ts'

const until = (what: string, ok: () => boolean): Promise<true> => waitFor(() => ok() || undefined, 5000, what)

test('each packet aedes sends is one socket write (a large PUBLISH two), and the client reads the same packets', async () => {
  installWholePacketWrites()
  assert.equal(wholePacketWritesInstalled(), true)
  const aedes = await Aedes.createBroker()
  const writes: Buffer[] = []
  const server = createServer(socket => {
    const write = socket.write.bind(socket) as (chunk: Buffer | string, ...rest: unknown[]) => boolean
    socket.write = ((chunk: Buffer | string, ...rest: unknown[]) => {
      writes.push(Buffer.from(chunk))
      return write(chunk, ...rest)
    }) as Socket['write']
    aedes.handle(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1')
  await once(client, 'connect')
  const received: Buffer[] = []
  const packets: mqttPacket.Packet[] = []
  const parser = mqttPacket.parser({ protocolVersion: 5 })
  parser.on('packet', p => { packets.push(p) })
  client.on('data', d => { received.push(d); parser.parse(d) })
  try {
    const large = Buffer.alloc(10_000, 0x61)
    const small = Buffer.from('GetResp: Device.DeviceInfo.')
    client.write(encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'agent-1', clean: true, keepalive: 0, properties: { sessionExpiryInterval: 0 } }, 5))
    client.write(encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'acme/usp/controller/+', qos: 1 }], properties: {} }, 5))
    await until('SUBACK', () => packets.some(p => p.cmd === 'suback'))
    client.write(encode({ cmd: 'publish', topic: 'acme/usp/controller/c1', payload: small, qos: 1, messageId: 2, properties: { responseTopic: 'acme/usp/agent/a1', contentType: 'usp.msg', userProperties: { model: 'ü-router' } } }, 5))
    client.write(encode({ cmd: 'publish', topic: 'acme/usp/controller/c1', payload: large, qos: 1, messageId: 3 }, 5))
    await until('two PUBACKs and two deliveries', () => packets.filter(p => p.cmd === 'publish').length === 2 && packets.filter(p => p.cmd === 'puback').length === 2)
    await sleep(100)

    assert.deepEqual(packets.map(p => p.cmd).sort(), ['connack', 'puback', 'puback', 'publish', 'publish', 'suback'])
    const [first, second] = packets.filter(p => p.cmd === 'publish') as mqttPacket.IPublishPacket[]
    assert.deepEqual(first!.payload, small)
    assert.deepEqual({ ...first!.properties?.userProperties }, { model: 'ü-router' })
    assert.equal(first!.properties?.responseTopic, 'acme/usp/agent/a1')
    assert.equal(first!.properties?.contentType, 'usp.msg')
    assert.deepEqual(second!.payload, large)
    // mqtt-packet alone writes field by field (a PUBACK in 5 writes): here, one write per packet,
    // and the 10 kB PUBLISH as its fields plus its payload, uncopied
    assert.equal(writes.length, packets.length + 1, `socket writes: ${writes.map(w => w.length).join(', ')}`)
    assert.deepEqual(Buffer.concat(writes), Buffer.concat(received), 'the socket carried exactly what was written')
    const at = writes.findIndex(w => w.equals(large))
    assert.ok(at > 0, 'the large payload is written as it is, after its own write of the fields')
    const packetsIn = (bytes: Buffer): number => {
      const one = mqttPacket.parser({ protocolVersion: 5 })
      let n = 0
      one.on('packet', () => { n++ })
      one.parse(bytes)
      return n
    }
    assert.equal(packetsIn(Buffer.concat([writes[at - 1]!, writes[at]!])), 1, 'fields and payload make one PUBLISH')
    writes.forEach((w, i) => {
      if (i !== at - 1 && i !== at) assert.equal(packetsIn(w), 1, `write ${i} is one whole packet (first byte 0x${w[0]!.toString(16)})`)
    })
  } finally {
    client.destroy()
    server.close()
    await new Promise<void>(resolve => aedes.close(() => resolve()))
  }
})

test('a packet mqtt-packet refuses destroys the connection with its error; backpressure is reported as mqtt-packet reports it', async () => {
  installWholePacketWrites()
  const accepted: Socket[] = []
  const server = createServer(socket => { socket.pause(); accepted.push(socket) }) // reads nothing: the client's writes back up
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  const opened: Socket[] = []
  const open = async (): Promise<Socket & { client: object }> => {
    const s = connect(port, '127.0.0.1') as Socket & { client: object }
    opened.push(s)
    s.client = {} // what aedes sets on its connections
    await once(s, 'connect')
    return s
  }
  try {
    const bad = await open()
    const errors: Error[] = []
    bad.on('error', e => { errors.push(e) })
    const before = bad.bytesWritten
    // [MQTT-2.2.1-2] a QoS 1 PUBLISH needs a Packet Identifier
    const ok = mqttPacket.writeToStream({ cmd: 'publish', topic: 'acme/x', payload: Buffer.from('x'), qos: 1, retain: false, dup: false } as unknown as mqttPacket.Packet, bad)
    assert.equal(ok, false)
    await until('the socket error', () => errors.length > 0)
    assert.ok(bad.destroyed)
    assert.deepEqual(errors.map(e => e.message), ['Invalid messageId'])
    assert.equal(bad.bytesWritten, before, 'nothing of the invalid packet was sent')

    const slow = await open()
    const big = Buffer.alloc(64 * 1024)
    let publishResult = true
    for (let i = 0; i < 200 && publishResult; i++) {
      publishResult = mqttPacket.writeToStream({ cmd: 'publish', topic: 'acme/x', payload: big, qos: 0, retain: false, dup: false } as mqttPacket.Packet, slow) as boolean
    }
    assert.equal(publishResult, false, 'a PUBLISH to a socket above its high-water mark returns false, so aedes waits for drain')
    // mqtt-packet returns true for an acknowledgement whatever the socket says; so does the patch
    assert.equal(mqttPacket.writeToStream({ cmd: 'puback', messageId: 7 } as mqttPacket.Packet, slow, { protocolVersion: 5 }), true)
  } finally {
    for (const s of [...opened, ...accepted]) s.destroy()
    server.close()
  }
})
