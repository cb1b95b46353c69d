// Certificates and CA trust: device certificates per tenant, revocation
// (CRL), the tenant issuing CA, imported vendor CAs and the gateway root.
// Registered inside the authenticated /v1 scope; errors are ControlErrors →
// problem+json. PEM documents are served as text, everything else as JSON.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ControlPlane } from '../../../broker/control/index.ts'
import { MAX_DEVICE_VALIDITY_DAYS, MIN_P12_PASSWORD_LENGTH, REVOCATION_REASONS, type RevocationReason } from '../../../certs/index.ts'
import { problems } from '../../plugins/problem.ts'
import * as S from '../../schemas.ts'
import type { RouteAccess } from '../../plugins/access.ts'

/** PEM text (RFC 7468); DER CRLs use application/pkix-crl (RFC 5280 §4.2.1.13 / RFC 2585). */
const PEM_TYPE = 'application/x-pem-file'
const DER_CRL_TYPE = 'application/pkix-crl'

const serial = { type: 'string', pattern: '^[0-9A-Fa-f:]{1,128}$' } as const
const fingerprint = { type: 'string', pattern: '^[0-9A-Fa-f:]{64,95}$' } as const
const reason = { type: 'string', enum: [...REVOCATION_REASONS] } as const
const tenantParams = S.tenantParams
const access = (permission: RouteAccess['permission'], action: string): { access: RouteAccess } => ({ access: { permission, scope: 'tenant-param', action } })
const pem = { [PEM_TYPE]: S.pemText }

const certificate = {
  type: 'object',
  required: ['serial', 'principal', 'role', 'notBefore', 'notAfter', 'revoked'],
  additionalProperties: false,
  properties: {
    serial: { type: 'string' },
    principal: { type: 'string' },
    role: { type: 'string' },
    notBefore: { type: 'string' },
    notAfter: { type: 'string' },
    revoked: { type: 'boolean' },
    revokedAt: { type: 'string' },
    revocationReason: { type: 'string' }
  }
} as const

const issuedCertificate = {
  type: 'object',
  required: ['tenant', 'principal', 'role', 'username', 'serial', 'notAfter', 'certPem', 'chainPem'],
  additionalProperties: false,
  properties: {
    tenant: { type: 'string' },
    principal: { type: 'string' },
    role: { type: 'string' },
    username: { type: 'string' },
    serial: { type: 'string' },
    notAfter: { type: 'string' },
    certPem: { type: 'string' },
    keyPem: { type: 'string' },
    chainPem: { type: 'string' },
    crlUrl: { type: 'string' },
    p12: { type: 'string', contentEncoding: 'base64' }
  }
} as const

const revokedCertificate = {
  type: 'object',
  additionalProperties: false,
  properties: {
    tenant: { type: 'string' },
    serial: { type: 'string' },
    revokedAt: { type: 'string' },
    reason: { type: 'string' },
    issuedByGateway: { type: 'boolean' },
    disconnected: { type: 'integer' }
  }
} as const

const importedCa = {
  type: 'object',
  additionalProperties: false,
  properties: { tenant: { type: 'string' }, fingerprint: { type: 'string' }, subject: { type: 'string' }, notAfter: { type: 'string' } }
} as const

function sendPem (reply: FastifyReply, pem: string): FastifyReply {
  return reply.type(PEM_TYPE).send(pem)
}

export function registerCertRoutes (v1: FastifyInstance<any, any, any, any>, control: ControlPlane): void {
  const certs = (): ControlPlane['certificates'] => control.certificates

  v1.post('/tenants/:tenant/certificates', {
    config: access('cert.issue', 'cert.issue'),
    schema: {
      summary: 'Issue a device certificate from the tenant CA (the key is in this reply only)',
      params: tenantParams,
      body: {
        type: 'object',
        required: ['principal', 'role'],
        additionalProperties: false,
        properties: {
          principal: S.principal,
          role: { type: 'string', enum: ['agent', 'controller'] },
          validDays: { type: 'integer', minimum: 1, maximum: MAX_DEVICE_VALIDITY_DAYS },
          // also return the certificate, key and chain as a password-protected PKCS#12 bundle (base64)
          p12Password: { type: 'string', minLength: MIN_P12_PASSWORD_LENGTH, maxLength: 128 }
        }
      },
      response: { 201: issuedCertificate, ...problems(409) }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string }, Body: { principal: string, role: string, validDays?: number, p12Password?: string } }>, reply) => {
    const issued = await certs().issue(req.params.tenant, req.body, req.actor!)
    // The private key is in this response only: never cached anywhere.
    return reply.code(201).header('cache-control', 'no-store').send(issued)
  })

  v1.post('/tenants/:tenant/certificates/csr', {
    config: access('cert.issue', 'cert.sign_csr'),
    schema: {
      summary: 'Certify the public key of a device\'s PKCS#10 request (the device keeps its key); same identity rules as issued certificates',
      params: tenantParams,
      body: {
        type: 'object',
        required: ['principal', 'role', 'csr'],
        additionalProperties: false,
        properties: {
          principal: S.principal,
          role: { type: 'string', enum: ['agent', 'controller'] },
          csr: { type: 'string', pattern: '^-----BEGIN CERTIFICATE REQUEST-----', maxLength: 16384 },
          validDays: { type: 'integer', minimum: 1, maximum: MAX_DEVICE_VALIDITY_DAYS }
        }
      },
      response: { 201: issuedCertificate, ...problems(409) }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string }, Body: { principal: string, role: string, csr: string, validDays?: number } }>, reply) =>
    reply.code(201).header('cache-control', 'no-store').send(await certs().signCsr(req.params.tenant, req.body, req.actor!)))

  v1.get('/tenants/:tenant/certificates', {
    config: access('read', 'cert.list'),
    schema: { summary: 'Device certificates of a tenant', params: tenantParams, response: { 200: S.listOf('certificates', certificate) } }
  }, async (req: FastifyRequest<{ Params: { tenant: string } }>) => ({ certificates: await certs().list(req.params.tenant) }))

  v1.delete('/tenants/:tenant/certificates/:serial', {
    config: access('cert.revoke', 'cert.revoke'),
    schema: {
      summary: 'Revoke a device certificate; its live sessions are cut',
      params: { type: 'object', required: ['tenant', 'serial'], additionalProperties: false, properties: { tenant: S.tenantId, serial } },
      querystring: { type: 'object', additionalProperties: false, properties: { reason } },
      response: { 200: revokedCertificate, ...problems(409) }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string, serial: string }, Querystring: { reason?: RevocationReason } }>) =>
    await certs().revoke(req.params.tenant, req.params.serial, req.query.reason, req.actor!))

  v1.get('/tenants/:tenant/crl', {
    config: { ...access('read', 'crl.get'), openapi: { produces: { ...pem, [DER_CRL_TYPE]: { type: 'string', format: 'binary' } } } },
    schema: {
      summary: 'The tenant CA\'s CRL (PEM, or DER with ?format=der)',
      params: tenantParams,
      querystring: { type: 'object', additionalProperties: false, properties: { format: { type: 'string', enum: ['pem', 'der'] } } },
      response: { 200: { type: 'string' }, ...problems(409) }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string }, Querystring: { format?: 'pem' | 'der' } }>, reply) => {
    const pem = await certs().crlPem(req.params.tenant)
    if (req.query.format === 'der') {
      const base64 = pem.replace(/-----(BEGIN|END) X509 CRL-----/g, '').replace(/\s+/g, '')
      return reply.type(DER_CRL_TYPE).send(Buffer.from(base64, 'base64'))
    }
    return sendPem(reply, pem)
  })

  v1.get('/tenants/:tenant/ca', {
    config: { ...access('read', 'ca.get'), openapi: { produces: pem } },
    schema: { summary: 'The tenant issuing CA then the root (PEM)', params: tenantParams, response: { 200: S.pemText, ...problems(409) } }
  },
    async (req: FastifyRequest<{ Params: { tenant: string } }>, reply) => sendPem(reply, await certs().caChainPem(req.params.tenant)))

  v1.post('/tenants/:tenant/ca/import', {
    config: access('ca.manage', 'ca.import'),
    // Room for any pem its schema admits, even written as JSON escapes (12 bytes per character at worst):
    // an over-long pem is a 400 from the schema, not a 413.
    bodyLimit: 256 * 1024,
    schema: {
      summary: 'Trust a vendor CA for this tenant only',
      params: tenantParams,
      body: { type: 'object', required: ['pem'], additionalProperties: false, properties: { pem: { type: 'string', minLength: 1, maxLength: 16 * 1024 } } },
      response: { 201: importedCa, ...problems(409) }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string }, Body: { pem: string } }>, reply) =>
    reply.code(201).send(await certs().importCa(req.params.tenant, req.body.pem, req.actor!)))

  v1.get('/tenants/:tenant/ca/imported', {
    config: access('read', 'ca.list_imported'),
    schema: { summary: 'Vendor CAs imported for a tenant', params: tenantParams, response: { 200: S.listOf('imported', importedCa) } }
  }, async (req: FastifyRequest<{ Params: { tenant: string } }>) => ({ imported: await certs().listImportedCas(req.params.tenant) }))

  v1.delete('/tenants/:tenant/ca/imported/:fingerprint', {
    config: access('ca.manage', 'ca.remove'),
    schema: {
      summary: 'Stop trusting an imported vendor CA; its live sessions are cut',
      params: { type: 'object', required: ['tenant', 'fingerprint'], additionalProperties: false, properties: { tenant: S.tenantId, fingerprint } },
      response: { 200: { type: 'object', required: ['tenant', 'fingerprint', 'disconnected'], additionalProperties: false, properties: { tenant: { type: 'string' }, fingerprint: { type: 'string' }, disconnected: { type: 'integer' } } } }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string, fingerprint: string } }>) =>
    await certs().removeImportedCa(req.params.tenant, req.params.fingerprint, req.actor!))

  v1.post('/tenants/:tenant/ca/revoke', {
    config: { ...access('ca.manage', 'ca.revoke'), openapi: { bodyOptional: true } },
    // The body is optional (a bare POST revokes with reason cACompromise).
    preValidation: async (req) => { if (req.body === undefined) req.body = {} },
    schema: {
      summary: 'Revoke the tenant issuing CA (root CRL); the next certificate comes from a new CA',
      params: tenantParams,
      body: { type: 'object', additionalProperties: false, properties: { reason } },
      response: {
        200: { type: 'object', required: ['tenant', 'serial', 'revokedAt', 'disconnected'], additionalProperties: false, properties: { tenant: { type: 'string' }, serial: { type: 'string' }, revokedAt: { type: 'string' }, disconnected: { type: 'integer' } } },
        ...problems(409)
      }
    }
  }, async (req: FastifyRequest<{ Params: { tenant: string }, Body: { reason?: RevocationReason } | undefined }>) =>
    await certs().revokeCa(req.params.tenant, req.body?.reason, req.actor!))

  // The root CA devices trust for the MQTTS server; ?scope=clients lists every CA whose client certificates are accepted.
  v1.get('/ca', {
    // scope=clients lists every tenant's CAs and imported vendor CAs: tenant-unscoped tokens only.
    config: {
      access: { permission: 'read', scope: req => (req.query as { scope?: string }).scope === 'clients' ? 'unscoped' : 'any', action: 'ca.trust_bundle' },
      openapi: { produces: pem }
    },
    schema: {
      summary: 'The root CA devices trust for the MQTTS server; ?scope=clients: every CA whose client certificates are accepted',
      querystring: { type: 'object', additionalProperties: false, properties: { scope: { type: 'string', enum: ['server', 'clients'] } } },
      response: { 200: S.pemText }
    }
  }, async (req: FastifyRequest<{ Querystring: { scope?: 'server' | 'clients' } }>, reply) =>
    sendPem(reply, await certs().trustBundlePem({ clientCas: req.query.scope === 'clients' })))
}
