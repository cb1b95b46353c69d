// broker/mqtt/patches/whole-packet-writes.ts must serialize under the gateway's other wrappers of
// mqtt-packet's writeToStream (CONNACK steering, outbound limits): installed after one, it would hand
// that wrapper a collector instead of the connection, and the CONNACK would lose its subscribe-topic.
// So it refuses to install then, and a process that only loads the gateway's modules (the bench's
// plain-aedes peers) keeps mqtt-packet's own writes. Its own process: the install is once per process.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import mqttPacket from 'mqtt-packet'
import { installConnackSteering, installWholePacketWrites, wholePacketWritesInstalled } from '../../broker/mqtt/patches/index.ts'

test('loading the gateway installs nothing; whole-packet writes after another writeToStream wrapper are refused', () => {
  const genuine = (mqttPacket as unknown as { writeToStream: unknown }).writeToStream
  assert.equal(wholePacketWritesInstalled(), false, 'importing the patches does not install it')
  installConnackSteering()
  assert.notEqual((mqttPacket as unknown as { writeToStream: unknown }).writeToStream, genuine)
  assert.throws(() => { installWholePacketWrites() }, /must be installed before any other wrapper/)
  assert.equal(wholePacketWritesInstalled(), false)
})
