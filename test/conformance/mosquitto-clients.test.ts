// A real non-Node client: Debian's mosquitto-clients (libmosquitto, the MQTT library inside the Broadband
// Forum's TR-369 agent) publishing and subscribing through the gateway over MQTT 5 and 3.1.1,
// including Keep Alive 0 (a TR-369 agent with KeepAliveTime=0). Installed by .ci/install-deps.sh.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { conformanceGateway, sleep, type Conformance } from './setup.ts'
import { waitFor } from '../helpers/gateway.ts'

let g: Conformance
before(async () => { g = await conformanceGateway() })
after(async () => { await g.close() })

interface Run { code: number | null, out: string, err: string }
interface Running { done: Promise<Run>, out: () => string }


/** Runs a client process, collecting its output; `kill` ends it at once (no DISCONNECT). */
function spawnClient (cmd: string, args: string[]): Running & { kill: () => void } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', d => { out += d })
  child.stderr.on('data', d => { err += d })
  const done = new Promise<Run>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', code => resolve({ code, out, err }))
  })
  return { done, out: () => out, kill: () => { child.kill('SIGKILL') } }
}

function run (cmd: 'mosquitto_pub' | 'mosquitto_sub', args: string[]): Running {
  return spawnClient(cmd, args)
}

const V = { 5: 'mqttv5', 4: 'mqttv311' } as const

const PEER = new URL('./libmosquitto-peer.py', import.meta.url).pathname

function libArgs (who: { username: string, secret: string }, v: 4 | 5, keepAlive: number): string[] {
  return ['127.0.0.1', String(g.t.mqttPort), who.username, who.secret, String(v), String(keepAlive)]
}

/** The libmosquitto peer (python3 + ctypes); `kill` ends it without DISCONNECT. */
function peer (args: string[]): Running & { kill: () => void } {
  return spawnClient('python3', [PEER, ...args])
}

function common (who: { username: string, secret: string }, v: 4 | 5, keepAlive: number): string[] {
  return ['-h', '127.0.0.1', '-p', String(g.t.mqttPort), '-u', who.username, '-P', who.secret, '-V', V[v], '-k', String(keepAlive)]
}

for (const v of [5, 4] as const) {
  test(`mosquitto_pub / mosquitto_sub, ${V[v]}: QoS 0/1/2 messages pass through the gateway`, async () => {
    const topic = `${g.data}/mosq-${v}`
    const sub = run('mosquitto_sub', [...common(g.controller, v, 30), '-t', topic, '-q', '2', '-C', '3', '-W', '20', '-v', '-i', `sub-${v}`])
    await waitFor(() => g.t.gw.sessions.size >= 1, 5000, 'subscriber connected')
    await sleep(500)
    for (const qos of [0, 1, 2]) {
      const pub = await run('mosquitto_pub', [...common(g.agent, v, 30), '-t', topic, '-q', String(qos), '-m', `hello-q${qos}`, '-i', `pub-${v}-${qos}`]).done
      assert.equal(pub.code, 0, pub.err)
    }
    const r = await sub.done
    assert.equal(r.code, 0, r.err)
    assert.deepEqual(r.out.trim().split('\n'), [0, 1, 2].map(q => `${topic} hello-q${q}`))
  })

  test(`[MQTT-3.1.2-23 context] libmosquitto, ${V[v]}, Keep Alive 0 (a TR-369 agent with KeepAliveTime=0): connects, stays connected while idle, publishes and receives`, async () => {
    const topic = `${g.data}/ka0-${v}`
    const sub = peer(['sub', ...libArgs(g.controller, v, 0), topic, '1', '1'])
    await waitFor(() => sub.out().includes('READY'), 10_000, 'libmosquitto subscriber ready')
    assert.match(sub.out(), /^CONNACK 0$/m)
    await sleep(2500) // idle longer than a short keep-alive would allow
    const pub = await peer(['pub', ...libArgs(g.agent, v, 0), topic, '1', 'no-keepalive']).done
    assert.equal(pub.code, 0, pub.out + pub.err)
    assert.match(pub.out, /^CONNACK 0$/m)
    const r = await sub.done
    assert.equal(r.code, 0, r.out + r.err)
    assert.match(r.out, new RegExp(`^${topic} no-keepalive 1$`, 'm'))
  })

  test(`mosquitto_pub -r / mosquitto_sub, ${V[v]}: a retained message reaches a later subscriber`, async () => {
    const topic = `${g.data}/mosq-retained-${v}`
    const pub = await run('mosquitto_pub', [...common(g.agent, v, 60), '-t', topic, '-q', '1', '-r', '-m', 'kept']).done
    assert.equal(pub.code, 0, pub.err)
    const sub = await run('mosquitto_sub', [...common(g.controller, v, 60), '-t', topic, '-C', '1', '-W', '10', '-v']).done
    assert.equal(sub.code, 0, sub.err)
    assert.equal(sub.out.trim(), `${topic} kept`)
  })

  test(`mosquitto_sub -c (persistent session), ${V[v]}: QoS 1 messages published while it was away arrive when it comes back`, async () => {
    const topic = `${g.data}/mosq-session-${v}`
    const id = `mosq-persist-${v}`
    const session = v === 5 ? ['-x', '300'] : []
    const first = run('mosquitto_sub', [...common(g.controller, v, 60), '-t', topic, '-q', '1', '-c', ...session, '-i', id, '-W', '2'])
    await first.done // subscribed, then gone after 2 s
    const pub = await run('mosquitto_pub', [...common(g.agent, v, 60), '-t', topic, '-q', '1', '-m', 'while-away']).done
    assert.equal(pub.code, 0, pub.err)
    const again = await run('mosquitto_sub', [...common(g.controller, v, 60), '-t', topic, '-q', '1', '-c', ...session, '-i', id, '-C', '1', '-W', '10']).done
    assert.equal(again.code, 0, again.err)
    assert.equal(again.out.trim(), 'while-away')
  })
}

test('[MQTT-3.1.2-8] libmosquitto, mqttv311, Keep Alive 0: its will is published when it is killed', async () => {
  const topic = `${g.data}/lib-will`
  const watcher = run('mosquitto_sub', [...common(g.controller, 5, 60), '-t', `${topic}/will`, '-C', '1', '-W', '15', '-v'])
  const agent = peer(['will', ...libArgs(g.agent, 4, 0), topic, '0', 'agent-gone'])
  await waitFor(() => agent.out().includes('READY'), 10_000, 'libmosquitto agent connected')
  await sleep(500)
  agent.kill()
  const r = await watcher.done
  assert.equal(r.code, 0, r.err)
  assert.equal(r.out.trim(), `${topic}/will agent-gone`)
})
