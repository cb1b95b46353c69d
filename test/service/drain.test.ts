// The drain of a closing gateway (what SIGTERM starts): from its first moment /readyz answers 503 and no
// new MQTT connection is accepted, MQTT 5 clients get DISCONNECT 0x8B, and a client whose socket stopped
// reading does not hold the close up: its connection is ended and the close completes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect as netConnect } from 'node:net'
import { startGateway, provision, connect } from '../helpers/gateway.ts'
import { rawConnect } from '../helpers/raw-mqtt.ts'

function refused (port: number): Promise<boolean> {
  return new Promise(resolve => {
    const s = netConnect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve(false) })
    s.once('error', () => resolve(true))
  })
}

test('drain: readiness 503 and no new connections at once, 0x8B to MQTT 5 clients, a frozen client does not hold the close', async () => {
  // drainSeconds 2 (test helper): clients get up to 1 s to go
  const t = await startGateway({ probe: true })
  const probe = `http://127.0.0.1:${t.gw.probePort}/readyz`
  const { username, secret } = await provision(t, 'acme', 'os::00256D-0001')
  const v5 = await connect(t, { username, password: secret, clientId: 'polite' })
  const told = new Promise<number | undefined>(resolve => v5.once('disconnect', p => resolve(p.reasonCode)))
  // an MQTT 3.1.1 client that stopped reading: it never answers the end of its connection
  const frozen = await rawConnect(t.mqttPort, username, secret, { clientId: 'frozen' })
  frozen.socket.pause()

  const closing = t.gw.close()
  assert.equal((await fetch(probe)).status, 503)
  assert.equal(await refused(t.mqttPort), true, 'the MQTT listener still accepts during the drain')
  assert.equal(await told, 0x8b)
  await closing
  await frozen.closed
  v5.end(true)
  await t.close()
})
