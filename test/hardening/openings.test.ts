// Hole 4 of issue 14: sockets that connect and never finish their opening (no ClientHello, no
// CONNECT, no HTTP request) are closed on every listener — MQTT, MQTTS, admin over HTTP and HTTPS —
// each with an event, so an unauthenticated peer cannot exhaust file descriptors.
import { test, after } from 'node:test'
import { connect as netConnect, type Socket } from 'node:net'
import { startGateway, removeDir, waitFor, type TestGateway } from '../helpers/gateway.ts'

const cleanup: Array<() => Promise<void>> = []
after(async () => { for (const f of cleanup.reverse()) await f().catch(() => {}) })

const SILENT = 20

/** Opens `n` sockets that send nothing; resolves when all are open, returns a promise of all closed. */
async function silentSockets (port: number, n: number): Promise<{ allClosed: Promise<number> }> {
  const sockets = await Promise.all(Array.from({ length: n }, () => new Promise<Socket>((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1', () => resolve(s))
    s.once('error', reject)
  })))
  const allClosed = Promise.all(sockets.map(s => new Promise<number>(resolve => {
    const opened = Date.now()
    s.on('error', () => {})
    s.once('close', () => resolve(Date.now() - opened))
  }))).then(times => Math.max(...times))
  for (const s of sockets) cleanup.push(async () => { s.destroy() })
  return { allClosed }
}

const eventsOf = (t: TestGateway, code: string, action: string | undefined): number => t.gw.events.query({ code, limit: 1000 }).filter(e => e.action === action && e.remoteAddress === '127.0.0.1').length

for (const adminTls of [false, true]) {
  test(`silent sockets on MQTT, MQTTS and the admin API (${adminTls ? 'HTTPS' : 'HTTP'}) are closed after the opening timeout, each with an event`, async () => {
    const t = await startGateway({
      mtls: true,
      limits: { connectTimeoutSeconds: 1 },
      adminSettings: { openingTimeoutSeconds: 1, tokenRate: 0, addressRate: 0, ...(adminTls ? { tls: 'on' as const } : {}) },
      serverSans: ['localhost', '127.0.0.1']
    })
    cleanup.push(async () => { await t.close(); await removeDir(t.dataDir) })
    const adminPort = Number(new URL(t.adminUrl).port)
    // generous for a loaded machine; without the deadline none of these closes for minutes
    const limit = 8000
    const within = <T>(p: Promise<T>, what: string): Promise<T> => Promise.race([p, new Promise<T>((_r, reject) => setTimeout(() => reject(new Error(`${what}: silent sockets still open after ${limit} ms`)), limit).unref())])
    // one listener after the other: flood control keys these pre-authentication events by address
    for (const [what, port, code, action] of [['MQTT', t.mqttPort, 'limits.connect_timeout', undefined], ['MQTTS', t.mqttsPort, 'limits.handshake_timeout', 'mqtts'], ['admin', adminPort, 'limits.handshake_timeout', 'admin']] as const) {
      const { allClosed } = await silentSockets(port, SILENT)
      await within(allClosed, what)
      await waitFor(() => eventsOf(t, code, action) === SILENT, 3000, `one ${code} per ${what} socket`)
      await new Promise(resolve => setTimeout(resolve, 1100)) // next flood-control window
    }
  })
}
