// [MQTT-3.2.2-2] / [MQTT-4.1.0-1]: an MQTT 5 client that resumes a session (Clean Start 0) without a
// Session Expiry Interval gets "Session Present" and must also get the messages queued in it.
//
// aedes 2.0.0-beta.1 (lib/handlers/connect.js) sets `client.clean = (sessionExpiryInterval === 0)`;
// fetchSubs restores the old session from the Clean Start flag (so CONNACK says Session Present), but
// emptyQueueFilter then discards every queued QoS 1/2 message because `client.clean` is true. Same gap
// as the v5 tracking issue aedes #821 (Session Expiry and Clean Start are separate axes since MQTT 5).
// The fix: while the queue is flushed, the session counts as persistent; once connected (or when the
// connect fails), `clean` is restored so the session still ends with the connection [MQTT-3.1.2-11...].
import type { Client } from 'aedes'

type ResumingClient = Client & { version?: number, clean?: boolean, _cleanStart?: boolean, sessionExpiryInterval?: number }

export function resumeQueuedMessages (client: Client): void {
  const c = client as ResumingClient
  if (c.version !== 5 || c._cleanStart !== false || c.sessionExpiryInterval !== 0 || c.clean !== true) return
  c.clean = false
  const restore = (): void => { c.clean = true }
  ;(client as unknown as NodeJS.EventEmitter).once('connected', restore)
  ;(client as unknown as { conn: NodeJS.EventEmitter }).conn.once('close', restore)
}
