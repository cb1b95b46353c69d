// Test helpers for certs/: the real openssl CLI (to check what we publish and
// to forge certificates independently of our own code) and a real mutual-TLS
// server whose handler runs identifyPeer on the client's certificate.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tls from 'node:tls'
import type { AddressInfo } from 'node:net'
import type { CertificateAuthority, PeerIdentity } from '../../certs/index.ts'

const tempDirs: string[] = []

export function tempDir (prefix = 'uspgate-certs-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  tempDirs.push(dir)
  return dir
}

export function removeTempDirs (): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true })
}

export interface OpensslResult { status: number, stdout: string, stderr: string }

export function openssl (args: string[], input?: string): OpensslResult {
  const r = spawnSync('openssl', args, { encoding: 'utf8', input, timeout: 20_000 })
  if (r.error !== undefined) throw r.error
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

export function opensslOk (args: string[], input?: string): string {
  const r = openssl(args, input)
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed (${r.status}): ${r.stderr}`)
  return r.stdout
}

/** Writes text to a file in dir and returns its path. */
export function writeTemp (dir: string, name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

/** A self-signed CA made by openssl: a vendor CA, or an attacker's. */
export function opensslCa (dir: string, name: string, subject: string, days = 365): { certFile: string, keyFile: string } {
  const keyFile = join(dir, `${name}.key.pem`)
  const certFile = join(dir, `${name}.crt.pem`)
  opensslOk(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', String(days),
    '-subj', subject, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
  return { certFile, keyFile }
}

/** A self-signed end-entity certificate (not a CA). */
export function opensslSelfSigned (dir: string, name: string, subject: string, sanUri?: string): { certFile: string, keyFile: string } {
  const keyFile = join(dir, `${name}.key.pem`)
  const certFile = join(dir, `${name}.crt.pem`)
  opensslOk(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '30', '-subj', subject,
    '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'extendedKeyUsage=clientAuth',
    ...(sanUri !== undefined ? ['-addext', `subjectAltName=URI:${sanUri}`] : [])])
  return { certFile, keyFile }
}

/**
 * A client certificate signed with any CA key by openssl, with arbitrary
 * subject/SAN. `caKeyPass` opens an encrypted CA key (e.g. one of the
 * gateway's, read from disk with the master key, as a thief would).
 */
export function opensslIssue (dir: string, name: string, options: {
  caCertFile: string
  caKeyFile: string
  caKeyPass?: string
  subject: string
  sanUri?: string
  days?: number
}): { certFile: string, keyFile: string } {
  const keyFile = join(dir, `${name}.key.pem`)
  const csrFile = join(dir, `${name}.csr.pem`)
  const certFile = join(dir, `${name}.crt.pem`)
  const extFile = writeTemp(dir, `${name}.ext`, [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=clientAuth',
    ...(options.sanUri !== undefined ? [`subjectAltName=URI:${options.sanUri}`] : [])
  ].join('\n') + '\n')
  opensslOk(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', csrFile, '-subj', options.subject])
  opensslOk(['x509', '-req', '-in', csrFile, '-CA', options.caCertFile, '-CAkey', options.caKeyFile,
    ...(options.caKeyPass !== undefined ? ['-passin', `pass:${options.caKeyPass}`] : []),
    '-set_serial', '0x' + Math.floor(Math.random() * 2 ** 48).toString(16), '-days', String(options.days ?? 30), '-extfile', extFile, '-out', certFile])
  return { certFile, keyFile }
}

/**
 * A real MQTTS-style listener: TLS >= 1.2 [TR-369 R-MQTT.48], client
 * certificate requested but judged by identifyPeer (not by OpenSSL), the
 * verdict written back to the client as JSON. Follows trust changes through
 * setSecureContext, as the gateway will.
 */
export async function startIdentifyServer (ca: CertificateAuthority): Promise<{ port: number, close: () => Promise<void> }> {
  const server = tls.createServer({ ...ca.serverTlsMaterial(), requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, (socket) => {
    const identity = ca.identifyPeer(socket.getPeerCertificate(true))
    socket.end(JSON.stringify(identity))
  })
  const unsubscribe = ca.onTrustChange(() => server.setSecureContext({ ...ca.serverTlsMaterial() }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      unsubscribe()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

export type WireIdentity = Omit<Extract<PeerIdentity, { ok: true }>, 'notAfter'> & { notAfter: string } | Extract<PeerIdentity, { ok: false }>

/** Connects with a client certificate, verifying the server against the gateway root for "localhost". */
export async function connectAndIdentify (port: number, rootPem: string, client: { cert: string, key: string }): Promise<WireIdentity> {
  return await new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: rootPem, cert: client.cert, key: client.key, minVersion: 'TLSv1.2' })
    let data = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => { data += chunk })
    socket.on('end', () => {
      try { resolve(JSON.parse(data) as WireIdentity) } catch (err) { reject(err) }
    })
    socket.on('error', reject)
  })
}
