// [MQTT-3.2.2-2]: Session Present is 1 when the server holds a session for the client id, also a session
// without subscriptions. aedes 2.0.0-beta.1 (restoreSubs in lib/handlers/connect.js) derives it from the
// stored subscriptions (`sessionPresent = !!subs`), so a kept session with none (Clean Start 0, Session
// Expiry > 0, or 3.1.1 Clean Session 0) was reported absent. Mosquitto reports it; the Paho
// interoperability suite's session-expiry test checks it. Same area as the v5 tracking issue aedes #821.
// Sessions kept on this node are remembered with their expiry; the CONNACK of a resuming client (found
// when mqtt-packet serializes it) says Session Present when one is. Cluster mode: per node (a session
// without subscriptions resumed on another node is still reported absent).
import type { Aedes, Client } from 'aedes'
import mqttPacket from 'mqtt-packet'

const PRESENT = Symbol.for('uspgate.sessionPresent')
/** upper bound of remembered sessions per broker (aedes' pendingSessionsLimit is of the same order) */
const MAX_REMEMBERED = 200_000

type SessionClient = Client & { id: string, version?: number, _cleanStart?: boolean, clean?: boolean, sessionExpiryInterval?: number, [PRESENT]?: boolean }
type Writer = (packet: { cmd: string, sessionPresent?: boolean, reasonCode?: number, returnCode?: number }, stream: unknown, opts?: unknown) => boolean

const kept = new WeakMap<object, Map<string, number>>()
let installed = false

function install (): void {
  if (installed) return
  installed = true
  const mp = mqttPacket as unknown as { writeToStream: Writer }
  const original = mp.writeToStream
  mp.writeToStream = function writeToStream (packet, stream, opts) {
    if (packet.cmd === 'connack' && packet.sessionPresent !== true && (packet.reasonCode ?? packet.returnCode) === 0 &&
        (stream as { client?: SessionClient } | null)?.client?.[PRESENT] === true) {
      return original({ ...packet, sessionPresent: true }, stream, opts)
    }
    return original(packet, stream, opts)
  }
}

/** Remembers, per broker, which disconnected clients leave a session behind and until when. */
export function rememberKeptSessions (broker: Aedes): void {
  install()
  const sessions = new Map<string, number>()
  kept.set(broker, sessions)
  broker.on('clientDisconnect', (client: Client) => {
    const c = client as SessionClient
    const seconds = c.sessionExpiryInterval ?? 0
    if (seconds <= 0) { sessions.delete(c.id); return }
    if (sessions.size >= MAX_REMEMBERED) sessions.delete(sessions.keys().next().value!)
    sessions.set(c.id, seconds >= 0xFFFFFFFF ? Number.POSITIVE_INFINITY : Date.now() + seconds * 1000)
  })
}

/** At CONNECT (after aedes' init): marks a client that resumes a kept session; Clean Start forgets it. */
export function resumeSessionPresent (client: Client): void {
  const c = client as SessionClient
  const sessions = kept.get((client as unknown as { broker: object }).broker)
  if (sessions === undefined) return
  const until = sessions.get(c.id)
  sessions.delete(c.id)
  if (c._cleanStart === true || until === undefined) return
  if (until > Date.now()) c[PRESENT] = true
}
