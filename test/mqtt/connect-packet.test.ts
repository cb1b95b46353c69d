// broker/mqtt/patches/connect-packet.ts: once a connection's CONNECT is parsed, its parser keeps the
// protocol version and bridge flag, not the packet (the client's password, username, will and CONNECT
// properties stayed referenced for as long as the connection lived). aedes still authenticates with
// the password, and later packets parse as before, MQTT 5 properties included. Plain aedes with and
// without the patch, then the gateway's own connections; real mqtt.js clients.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type AddressInfo } from 'node:net'
import { once } from 'node:events'
import { Aedes, type Client } from 'aedes'
import mqtt, { type MqttClient } from 'mqtt'
import { releaseConnectPacket } from '../../broker/mqtt/patches/index.ts'
import { startGateway, provision, connect, closeClient, removeDir, waitFor } from '../helpers/gateway.ts'

type ParserView = { _parser: { settings: Record<string, unknown> } }
const settingsOf = (c: Client | undefined): Record<string, unknown> => ({ ...(c as unknown as ParserView)._parser.settings })

test('the parser keeps the protocol version, not the CONNECT: the password is gone, aedes authenticated with it, MQTT 5 and 3.1.1 packets parse as before', async () => {
  const aedes = await Aedes.createBroker()
  const passwords: string[] = []
  aedes.authenticate = (_client, _username, password, done) => {
    passwords.push(password?.toString() ?? '')
    done(null, password?.toString() === 'router-secret-0123')
  }
  const clients = new Map<string, Client>()
  aedes.on('client', c => { clients.set(c.id, c) })
  const server = createServer(socket => {
    const c = aedes.handle(socket)
    releaseConnectPacket(c)
  })
  const plain = createServer(socket => { aedes.handle(socket) })
  server.listen(0, '127.0.0.1')
  plain.listen(0, '127.0.0.1')
  await Promise.all([once(server, 'listening'), once(plain, 'listening')])
  const port = (server.address() as AddressInfo).port
  const plainPort = (plain.address() as AddressInfo).port
  const opened: MqttClient[] = []
  const open = async (p: number, clientId: string, protocolVersion: 4 | 5, extra: mqtt.IClientOptions = {}): Promise<MqttClient> => {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${p}`, { protocolVersion, clientId, username: 'acme:os::00256D-S001', password: 'router-secret-0123', reconnectPeriod: 0, ...extra })
    opened.push(c)
    return c
  }
  try {
    const v5 = await open(port, 'agent-v5', 5, {
      properties: { sessionExpiryInterval: 0, userProperties: { 'usp-endpoint-id': 'os::00256D-S001' } },
      will: { topic: 'acme/presence/agent-v5', payload: Buffer.from('offline'), qos: 1, retain: false }
    })
    const v4 = await open(port, 'agent-v4', 4)
    const control = await open(plainPort, 'agent-plain', 5)
    await waitFor(() => clients.size === 3 || undefined, 5000, 'three connected clients')
    assert.deepEqual(passwords, ['router-secret-0123', 'router-secret-0123', 'router-secret-0123'], 'aedes authenticated each CONNECT with its password')

    // mqtt-packet alone keeps the whole CONNECT, password included: what the patch removes
    const kept = settingsOf(clients.get('agent-plain'))
    assert.equal(Buffer.isBuffer(kept.password) && kept.password.toString(), 'router-secret-0123')
    assert.equal(kept.username, 'acme:os::00256D-S001')
    // with the patch: only what the parser reads again
    assert.deepEqual(settingsOf(clients.get('agent-v5')), { protocolVersion: 5, bridgeMode: undefined })
    assert.deepEqual(settingsOf(clients.get('agent-v4')), { protocolVersion: 4, bridgeMode: undefined })

    // later packets parse with the kept version: MQTT 5 SUBSCRIBE and PUBLISH properties, and 3.1.1
    const got: Array<{ topic: string, payload: string, props?: mqtt.IPublishPacket['properties'] }> = []
    v5.on('message', (topic, payload, packet) => { got.push({ topic, payload: payload.toString(), props: packet.properties }) })
    await v5.subscribeAsync('acme/usp/agent/os::00256D-S001', { qos: 1, properties: { subscriptionIdentifier: 7 } })
    await v5.publishAsync('acme/usp/agent/os::00256D-S001', 'Get Device.DeviceInfo.', { qos: 1, properties: { responseTopic: 'acme/usp/controller/self::ctl', contentType: 'usp.msg', userProperties: { model: 'router-x' } } })
    await v4.publishAsync('acme/usp/agent/os::00256D-S001', 'from 3.1.1', { qos: 1 })
    await waitFor(() => got.length === 2 || undefined, 5000, 'both deliveries')
    const [first, second] = got
    assert.equal(first!.payload, 'Get Device.DeviceInfo.')
    assert.equal(first!.props?.responseTopic, 'acme/usp/controller/self::ctl')
    assert.equal(first!.props?.contentType, 'usp.msg')
    assert.deepEqual({ ...first!.props?.userProperties }, { model: 'router-x' })
    assert.deepEqual(first!.props?.subscriptionIdentifier, 7)
    assert.equal(second!.payload, 'from 3.1.1')
    assert.equal(control.connected, true)

    // a wrong password is still refused: the check runs on the packet aedes was handed
    await assert.rejects(mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, clientId: 'intruder', username: 'acme:os::00256D-S001', password: 'guess', reconnectPeriod: 0 }), /Bad User Name or Password|Not authorized/)
  } finally {
    for (const c of opened) await c.endAsync(true)
    server.close()
    plain.close()
    await new Promise<void>(resolve => aedes.close(() => resolve()))
  }
})

test('a connection to the gateway keeps no CONNECT packet, password or username', async () => {
  const t = await startGateway()
  let agent: MqttClient | undefined
  try {
    const cred = await provision(t, 'acme', 'os::00256D-S001', 'agent')
    agent = await connect(t, { v: 5, username: cred.username, password: cred.secret, clientId: 'os::00256D-S001' })
    const byId = (t.gw.broker as unknown as { clients: Record<string, Client> }).clients
    const c = Object.values(byId).find(x => x.id.endsWith('|os::00256D-S001'))
    assert.ok(c, 'the agent is connected')
    assert.deepEqual(settingsOf(c), { protocolVersion: 5, bridgeMode: undefined })
  } finally {
    await closeClient(agent)
    await t.close()
    await removeDir(t.dataDir)
  }
})
