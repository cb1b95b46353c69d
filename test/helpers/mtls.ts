// Mutual-TLS helpers: certificates issued through the real admin API, real
// mqtt.js clients over mqtts:// verifying the gateway against its root CA,
// and plain promises around publish/subscribe/close.
import type { MqttClient } from 'mqtt'
import { connect, refusedWith, type ConnectOptions, type TestGateway } from './gateway.ts'
import type { IssuedCertificateView } from '../../broker/pki/index.ts'

/** What POST /v1/tenants/:tenant/certificates returns (the key only this once). */
export type IssuedCert = IssuedCertificateView & { keyPem: string }

export async function issueCert (t: TestGateway, tenant: string, principal: string, role: 'agent' | 'controller' = 'agent', validDays?: number): Promise<IssuedCert> {
  const r = await t.api('POST', `/v1/tenants/${tenant}/certificates`, { principal, role, ...(validDays !== undefined ? { validDays } : {}) })
  if (r.status !== 201) throw new Error(`certificate issue failed: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body as IssuedCert
}

export async function ensureTenant (t: TestGateway, tenant: string): Promise<void> {
  const r = await t.api('POST', '/v1/tenants', { id: tenant })
  if (r.status !== 201 && r.status !== 409) throw new Error(`tenant create failed: ${r.status} ${JSON.stringify(r.body)}`)
}

/** The gateway root CA (what devices trust for the MQTTS server), from GET /v1/ca. */
export async function rootCaPem (t: TestGateway): Promise<string> {
  const r = await t.api('GET', '/v1/ca')
  if (r.status !== 200) throw new Error(`GET /v1/ca failed: ${r.status}`)
  return r.body as string
}

export interface TlsClientOptions extends ConnectOptions {
  /** The device certificate (PEM) and key; omitted for a password login over TLS. */
  identity?: { certPem: string, keyPem: string } | { cert: string, key: string }
  root: string
}

function tlsOptions (t: TestGateway, opts: TlsClientOptions): ConnectOptions {
  const { identity, root, ...rest } = opts
  const pair = identity === undefined ? {} : 'certPem' in identity ? { cert: identity.certPem, key: identity.keyPem } : identity
  return {
    protocol: 'mqtts',
    host: '127.0.0.1',
    port: t.mqttsPort,
    servername: 'localhost',
    ca: root,
    rejectUnauthorized: true, // the gateway's server certificate is verified against its root
    ...pair,
    ...rest
  }
}

export async function connectTls (t: TestGateway, opts: TlsClientOptions): Promise<MqttClient> {
  return await connect(t, tlsOptions(t, opts))
}

/** Resolves with the CONNACK code of a refused connect, or 'closed' / the socket error code when the gateway closed the TLS connection. */
export async function refusedTls (t: TestGateway, opts: TlsClientOptions): Promise<number | string> {
  return await refusedWith(t, tlsOptions(t, opts))
}

export function publishAsync (c: MqttClient, topic: string, payload: string, qos: 0 | 1 | 2 = 1): Promise<(Error & { code?: number }) | undefined> {
  return new Promise(resolve => c.publish(topic, payload, { qos }, err => resolve((err as Error & { code?: number }) ?? undefined)))
}

export function subscribeAsync (c: MqttClient, filter: string): Promise<number> {
  return new Promise((resolve, reject) => c.subscribe(filter, { qos: 1 }, (err, granted) => {
    const suback = (err as (Error & { packet?: { granted: number[] } }) | null)?.packet
    if (suback) resolve(suback.granted[0]!)
    else if (err) reject(err)
    else resolve(granted![0]!.qos)
  }))
}

/** Resolves with the time the client's connection closed. */
export function closedAt (c: MqttClient): Promise<number> {
  return new Promise(resolve => c.once('close', () => resolve(Date.now())))
}
