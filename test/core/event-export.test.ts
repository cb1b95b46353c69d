// Security events leaving the box: a real syslog receiver (UDP, TCP and TLS listeners in the test,
// parsing RFC 5424), a real HTTP webhook receiver that fails and recovers, audit file rotation by size,
// and logrotate + SIGHUP on a real `uspgate start` process, with no event lost.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createSocket } from 'node:dgram'
import { createServer as createTcpServer, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, renameSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { startGateway, provision, connect, closeClient, removeDir, waitFor, adminRequest, ADMIN_TOKEN } from '../helpers/gateway.ts'
import { DEFAULT_AUDIT_FILE, DEFAULT_WEBHOOK, type SecurityEvent } from '../../broker/core/index.ts'

const REPO = join(import.meta.dirname, '..', '..')

interface Syslog { pri: number, version: number, time: string, host: string, app: string, procid: string, msgid: string, sd: Record<string, Record<string, string>>, msg: string }

/** An RFC 5424 parser (§6): HEADER, STRUCTURED-DATA with escaped PARAM-VALUEs, then MSG. */
function parse5424 (line: string): Syslog {
  const m = /^<(\d{1,3})>(\d) (\S+) (\S+) (\S+) (\S+) (\S+) /.exec(line)
  assert.ok(m, `not RFC 5424: ${line.slice(0, 120)}`)
  let rest = line.slice(m[0].length)
  const sd: Record<string, Record<string, string>> = {}
  if (rest.startsWith('-')) rest = rest.slice(1)
  while (rest.startsWith('[')) {
    const id = /^\[([^ \]]+)/.exec(rest)![1]!
    rest = rest.slice(id.length + 1)
    const params: Record<string, string> = {}
    for (;;) {
      const p = /^ ([^=\s\]"]+)="((?:[^"\\\]]|\\["\\\]])*)"/.exec(rest)
      if (!p) break
      params[p[1]!] = p[2]!.replace(/\\(["\\\]])/g, '$1')
      rest = rest.slice(p[0].length)
    }
    assert.ok(rest.startsWith(']'), `unterminated SD-ELEMENT: ${rest.slice(0, 80)}`)
    sd[id] = params
    rest = rest.slice(1)
  }
  assert.ok(rest.startsWith(' \uFEFF'), 'MSG is UTF-8 with a BOM')
  return { pri: Number(m[1]), version: Number(m[2]), time: m[3]!, host: m[4]!, app: m[5]!, procid: m[6]!, msgid: m[7]!, sd, msg: rest.slice(2) }
}

/** Octet-counted frames (RFC 6587 §3.4.1) from a TCP/TLS stream. */
function frames (onFrame: (msg: string) => void): (chunk: Buffer) => void {
  let buf = Buffer.alloc(0)
  return chunk => {
    buf = Buffer.concat([buf, chunk])
    for (;;) {
      const sp = buf.indexOf(0x20)
      if (sp < 0) return
      const len = Number(buf.subarray(0, sp).toString())
      assert.ok(Number.isInteger(len) && len > 0, 'frame length')
      if (buf.length < sp + 1 + len) return
      onFrame(buf.subarray(sp + 1, sp + 1 + len).toString('utf8'))
      buf = buf.subarray(sp + 1 + len)
    }
  }
}

test('syslog over UDP: RFC 5424 with facility/severity, the code as MSGID, fields as structured data; critical events log at pino error', async () => {
  const udp = createSocket('udp4')
  const got: Syslog[] = []
  udp.on('message', m => got.push(parse5424(m.toString('utf8'))))
  await new Promise<void>(resolve => udp.bind(0, '127.0.0.1', resolve))
  const port = (udp.address() as AddressInfo).port
  const logLines: string[] = []
  const t = await startGateway({ logLines, eventExport: { audit: DEFAULT_AUDIT_FILE, syslog: { url: `udp://127.0.0.1:${port}`, facility: 4, queue: 100 } } })
  try {
    const cred = await provision(t, 'acme', 'os::00256D-0001', 'agent')
    const c = await connect(t, { v: 5, username: cred.username, password: cred.secret })
    await new Promise<void>(resolve => c.subscribe('globex/#', () => resolve())) // acl.cross_tenant: critical
    await closeClient(c)
    await t.api('PATCH', '/v1/tenants/acme', { name: 'Quote "q" and ] bracket' })
    const cross = await waitFor(() => got.find(s => s.msgid === 'acl.cross_tenant'), 5000, 'acl.cross_tenant over syslog')
    assert.equal(cross.version, 1)
    assert.equal(cross.pri, 4 * 8 + 2) // auth.crit
    assert.equal(cross.app, 'uspgate')
    assert.match(cross.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    const sd = cross.sd['uspgate@32473']!
    assert.deepEqual([sd.tenant, sd.principal, sd.action, sd.severity, sd.node], ['acme', 'os::00256D-0001', 'subscribe', 'critical', 'test-node'])
    const ev = JSON.parse(cross.msg) as SecurityEvent
    assert.equal(ev.code, 'acl.cross_tenant')
    assert.equal(ev.id, sd.id)
    const created = await waitFor(() => got.find(s => s.msgid === 'tenant.created'), 5000, 'tenant.created')
    assert.equal(created.pri, 4 * 8 + 6) // auth.info
    const updated = await waitFor(() => got.find(s => s.msgid === 'tenant.updated'), 5000, 'tenant.updated')
    assert.match(updated.sd['uspgate@32473']!.actor!, /^bootstrap$/)
    assert.equal(JSON.parse(updated.msg).reason, '{"name":"Quote \\"q\\" and ] bracket"}')
    // "level >= error" alerting sees critical events
    const logged = logLines.map(l => JSON.parse(l) as { level: number, securityEvent?: SecurityEvent }).find(l => l.securityEvent?.code === 'acl.cross_tenant')
    assert.equal(logged?.level, 50)
  } finally {
    await t.close()
    await removeDir(t.dataDir)
    udp.close()
  }
})

async function listen (server: Server, port = 0): Promise<number> {
  await new Promise<void>(resolve => server.listen(port, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

test('syslog over TCP survives the collector going away (queued, then delivered on reconnect) and TLS verifies the collector', async () => {
  const got: Syslog[] = []
  const sockets = new Set<Socket>()
  const onConn = (s: Socket): void => { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('data', frames(m => got.push(parse5424(m)))) }
  let tcp = createTcpServer(onConn)
  const port = await listen(tcp)
  const dir = await mkdtemp(join(tmpdir(), 'uspgate-syslog-tls-'))
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    '-days', '2', '-subj', '/CN=syslog.test', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  const cert = readFileSync(join(dir, 'cert.pem'), 'utf8')
  const tlsGot: Syslog[] = []
  const tls = createTlsServer({ key: readFileSync(join(dir, 'key.pem')), cert }, s => s.on('data', frames(m => tlsGot.push(parse5424(m)))))
  const tlsPort = await listen(tls as unknown as Server)

  const t = await startGateway({ eventExport: { audit: DEFAULT_AUDIT_FILE, syslog: { url: `tcp://127.0.0.1:${port}`, facility: 10, queue: 1000 } } })
  const t2 = await startGateway({ eventExport: { audit: DEFAULT_AUDIT_FILE, syslog: { url: `tls://127.0.0.1:${tlsPort}`, facility: 16, queue: 1000, ca: cert } } })
  try {
    const record = (n: number, phase: string): void => { for (let i = 0; i < n; i++) t.gw.events.record({ code: 'admin.action', actor: 'tok-syslog', action: 'test.syslog', reason: `${phase}-${i}` }) }
    record(20, 'up')
    await waitFor(() => got.filter(s => s.msgid === 'admin.action').length === 20, 10_000, '20 events over TCP')
    assert.equal(got[0]!.pri, 10 * 8 + 6)
    // the collector goes away: events wait in the queue, then arrive when it is back on the same port
    await new Promise<void>(resolve => { tcp.close(() => resolve()); for (const s of sockets) s.destroy() })
    await waitFor(() => sockets.size === 0, 5000, 'collector down')
    await new Promise(r => setTimeout(r, 200))
    record(30, 'down')
    tcp = createTcpServer(onConn)
    await listen(tcp, port)
    await waitFor(() => got.filter(s => s.msgid === 'admin.action').length === 50, 30_000, 'queued events after reconnect')
    assert.deepEqual(got.filter(s => s.msgid === 'admin.action').map(s => JSON.parse(s.msg).reason), [...Array.from({ length: 20 }, (_, i) => `up-${i}`), ...Array.from({ length: 30 }, (_, i) => `down-${i}`)])

    t2.gw.events.record({ code: 'admin.action', actor: 'tok-syslog-tls', action: 'test.syslog', reason: 'over tls' })
    const overTls = await waitFor(() => tlsGot.find(s => s.msgid === 'admin.action'), 10_000, 'event over TLS')
    assert.equal(overTls.pri, 16 * 8 + 6)
    assert.equal(JSON.parse(overTls.msg).reason, 'over tls')
  } finally {
    await t.close()
    await t2.close()
    await removeDir(t.dataDir)
    await removeDir(t2.dataDir)
    await removeDir(dir)
    for (const s of sockets) s.destroy()
    tcp.close()
    tls.close()
  }
})

test('webhook: batches, retries with back-off while the receiver fails, nothing lost up to the buffer; beyond it drops are counted (metric and event)', async () => {
  let failing = true
  const received: SecurityEvent[] = []
  const batches: number[] = []
  let failures = 0
  const server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    let body = ''
    req.on('data', d => { body += d })
    req.on('end', () => {
      assert.equal(req.headers.authorization, 'Bearer hook-secret')
      if (failing) { failures++; res.writeHead(503).end(); return }
      const events = (JSON.parse(body) as { events: SecurityEvent[] }).events
      batches.push(events.length)
      received.push(...events)
      res.writeHead(204).end()
    })
  })
  const port = await listen(server as unknown as Server)
  const t = await startGateway({
    eventExport: { audit: DEFAULT_AUDIT_FILE, webhook: { ...DEFAULT_WEBHOOK, url: `http://127.0.0.1:${port}/hook`, token: 'hook-secret', batch: 10, buffer: 50, retryMinMs: 50, retryMaxMs: 400, flushMs: 50 } }
  })
  const mine = (): SecurityEvent[] => received.filter(e => e.actor === 'tok-hook')
  const record = (n: number, phase: string): void => { for (let i = 0; i < n; i++) t.gw.events.record({ code: 'admin.action', actor: 'tok-hook', action: 'test.webhook', reason: `${phase}-${i}` }) }
  try {
    // receiver down, 40 events (under the bound of 50): all arrive, in order, once it recovers
    record(40, 'a')
    await waitFor(() => failures >= 3, 10_000, 'retries against the failing receiver')
    failing = false
    await waitFor(() => mine().length === 40, 10_000, '40 events after recovery')
    assert.deepEqual(mine().map(e => e.reason), Array.from({ length: 40 }, (_, i) => `a-${i}`))
    assert.ok(Math.max(...batches) <= 10, `batches of at most 10: ${batches.join(',')}`)

    // receiver down, 80 events: the buffer keeps 50 (less the last batch of phase 1 if its answer is still
    // being read: at most 10), the rest is dropped and counted; the drop is reported as an event
    failing = true
    const failuresBefore = failures
    record(80, 'b')
    await waitFor(() => failures > failuresBefore, 10_000, 'the receiver fails again')
    const metrics = await (await fetch(`${t.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text()
    const counted = Number(/uspgate_event_export_dropped_total\{[^}]*sink="webhook"[^}]*\} (\d+)/.exec(metrics)?.[1])
    assert.ok(counted >= 30 && counted <= 40, `dropped ${counted}`)
    failing = false
    const dropped = await waitFor(() => received.find(e => e.code === 'events.export_dropped'), 10_000, 'events.export_dropped')
    assert.equal(dropped.count, counted)
    assert.equal(dropped.severity, 'critical')
    const kept = 80 - counted
    await waitFor(() => mine().length === 40 + kept, 10_000, 'the buffered events')
    // exactly the events that fitted, in order: nothing below the bound was lost
    assert.deepEqual(mine().slice(40).map(e => e.reason), Array.from({ length: kept }, (_, i) => `b-${i}`))
    // the event is also in the audit trail of the gateway itself
    assert.equal((await adminRequest(t.adminUrl, 'GET', '/v1/security-events?code=events.export_dropped')).body.events[0].count, counted)
  } finally {
    await t.close()
    await removeDir(t.dataDir)
    server.close()
  }
})

test('the audit file rotates by size, keeping N files, and no event is lost across rotations', async () => {
  const t = await startGateway({ eventExport: { audit: { maxBytes: 8192, keep: 3 } } })
  try {
    for (let i = 0; i < 200; i++) t.gw.events.record({ code: 'admin.action', actor: 'tok-rotate', action: 'test.rotate', reason: `r-${i}` })
    await t.close()
    const dir = join(t.dataDir, 'audit')
    const files = readdirSync(dir).filter(f => f.startsWith('security-events.ndjson')).sort()
    assert.deepEqual(files, ['security-events.ndjson', 'security-events.ndjson.1', 'security-events.ndjson.2', 'security-events.ndjson.3'])
    const lines = ['.3', '.2', '.1', ''].flatMap(s => readFileSync(join(dir, `security-events.ndjson${s}`), 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l) as SecurityEvent))
    for (const s of ['.1', '.2', '.3']) {
      const size = readFileSync(join(dir, `security-events.ndjson${s}`)).length
      assert.ok(size >= 8192 && size < 8192 + 1024, `security-events.ndjson${s} is ${size} bytes`)
    }
    // the retained files hold one unbroken run of the newest events
    const reasons = lines.filter(e => e.actor === 'tok-rotate').map(e => Number(e.reason!.slice(2)))
    assert.ok(reasons.length > 50, `only ${reasons.length} events in the kept files`)
    assert.deepEqual(reasons, Array.from({ length: reasons.length }, (_, i) => 200 - reasons.length + i))
    assert.equal(reasons.at(-1), 199)
  } finally {
    await removeDir(t.dataDir)
  }
})

test('logrotate + SIGHUP on a running gateway: the file is reopened and no event is lost or doubled', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'uspgate-sighup-'))
  const token = 'sighup-test-admin-token-0123456789abcdef'
  const proc = spawn(process.execPath, [join(REPO, 'bin', 'uspgate.js'), 'start', '--mqtt-port', '0', '--admin-port', '0', '--mqtts-port', 'off', '--data-dir', dataDir], {
    cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, USPGATE_ADMIN_TOKEN: token, USPGATE_LOG_LEVEL: 'warn' }
  })
  let out = ''
  try {
    const adminUrl = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready within 60 s:\n${out}`)), 60_000)
      const onData = (d: Buffer): void => { out += d.toString(); const m = /admin API on (\S+)/.exec(out); if (m) { clearTimeout(timer); resolve(m[1]!) } }
      proc.stdout.on('data', onData)
      proc.stderr.on('data', onData)
      proc.once('exit', code => { clearTimeout(timer); reject(new Error(`exited ${String(code)}:\n${out}`)) })
    })
    const file = join(dataDir, 'audit', 'security-events.ndjson')
    const create = async (i: number): Promise<void> => {
      const r = await adminRequest(adminUrl, 'POST', '/v1/tenants', { token, body: { id: `t${i}` } })
      assert.equal(r.status, 201)
    }
    // tenants are created without pause while the file is moved and SIGHUP is sent
    const writer = (async () => { for (let i = 0; i < 60; i++) { await create(i); await new Promise(r => setTimeout(r, 30)) } })()
    await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').includes('"t20"'), 30_000, 'events before the rotation')
    renameSync(file, `${file}.1`)
    proc.kill('SIGHUP')
    await writer
    await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').includes('"t59"'), 30_000, 'events after the rotation')
    const tenantsIn = (f: string): string[] => readFileSync(f, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l) as SecurityEvent).filter(e => e.code === 'tenant.created').map(e => e.tenant!)
    const before = tenantsIn(`${file}.1`)
    const after = tenantsIn(file)
    assert.ok(before.length >= 20 && after.length >= 1, `${before.length} before, ${after.length} after`)
    assert.deepEqual([...before, ...after], Array.from({ length: 60 }, (_, i) => `t${i}`))
  } finally {
    const exited = new Promise(resolve => proc.once('exit', resolve))
    proc.kill('SIGTERM')
    await exited
    await removeDir(dataDir)
  }
})

test('the event API refuses a cursor it did not make', async () => {
  const t = await startGateway()
  try {
    const r = await t.api('GET', '/v1/security-events?cursor=bm9wZQ')
    assert.equal(r.status, 400)
    assert.equal(r.body.title, 'invalid cursor')
    assert.equal((await t.api('GET', '/v1/security-events?code=a,,b')).status, 400)
    assert.equal((await t.api('GET', '/v1/security-events?severity=loud')).status, 400)
  } finally {
    await t.close()
    await removeDir(t.dataDir)
  }
})
