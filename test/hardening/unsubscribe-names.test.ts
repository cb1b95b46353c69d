// An UNSUBSCRIBE of a filter named like an Object.prototype member (`toString`, `constructor`,
// `__proto__` ...). On aedes 2.0.0-beta.1 alone it finds the inherited member as a subscription and
// hands `undefined` to mqemitter, whose assert throws out of the packet handler: one authenticated
// client stops the whole broker. broker/mqtt/patches/subscription-table.ts gives each client a
// prototype-less table. The attack is made here against the gateway with real MQTT 5 and 3.1.1 clients.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient } from 'mqtt'
import { startGateway, provision, connect, closeClient, removeDir, type TestGateway } from '../helpers/gateway.ts'

let g: TestGateway | undefined
after(async () => { if (g) { await g.close(); await removeDir(g.dataDir) } })

const NAMES = ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf', 'acme/../toString']

function unsuback (c: MqttClient): Promise<{ granted?: number[] }> {
  return new Promise(resolve => c.once('packetreceive', p => { if (p.cmd === 'unsuback') resolve(p as { granted?: number[] }) }))
}

test('UNSUBSCRIBE of Object member names: 0x11 No subscription existed [MQTT-3.11.3], the gateway keeps serving every client', async () => {
  g = await startGateway()
  const attacker = await provision(g, 'acme', 'os::00256D-UNSUB01')
  const agent = await provision(g, 'acme', 'os::00256D-UNSUB02')
  const ctl = await provision(g, 'acme', 'self::ctl-unsub', 'controller')
  const a5 = await connect(g, { username: attacker.username, password: attacker.secret, clientId: 'unsub-5', protocolVersion: 5 })
  const a4 = await connect(g, { username: attacker.username, password: attacker.secret, clientId: 'unsub-4', protocolVersion: 4 })
  const victim = await connect(g, { username: agent.username, password: agent.secret, clientId: 'unsub-victim', protocolVersion: 5 })
  const controller = await connect(g, { username: ctl.username, password: ctl.secret, clientId: 'unsub-ctl', protocolVersion: 5 })
  try {
    await controller.subscribeAsync('acme/bulkdata/#', { qos: 1 })
    for (const name of NAMES) {
      const ack = unsuback(a5)
      await a5.unsubscribeAsync(name)
      assert.deepEqual((await ack).granted, [0x11], `${name}: MQTT 5 UNSUBACK`)
      await a4.unsubscribeAsync(name) // 3.1.1 UNSUBACK has no reason code; it must arrive
    }
    // still one process, still delivering: an agent's report reaches the controller, the attacker is still connected
    const got = new Promise<string>(resolve => controller.once('message', (_t, p) => resolve(p.toString())))
    await victim.publishAsync('acme/bulkdata/os::00256D-UNSUB02/report', 'after', { qos: 1 })
    assert.equal(await got, 'after')
    assert.equal(a5.connected && a4.connected, true)
    assert.equal(g.gw.broker.connectedClients, 4)
  } finally {
    for (const c of [a5, a4, victim, controller]) await closeClient(c)
  }
})
