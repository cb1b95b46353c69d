// CRLs for relying parties: served without a token (RFC 5280 §4.2.1.13 distribution points are fetched
// anonymously, e.g. `openssl verify -crl_download`), DER as application/pkix-crl (RFC 2585 §4.2).
// Rate-limited per address like every request of this listener (plugins/access.ts).
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ControlPlane } from '../../broker/control/index.ts'
import { problems } from '../plugins/problem.ts'

const DER_CRL_TYPE = 'application/pkix-crl'

/** PEM → DER (the one base64 body of an X509 CRL block). */
export function crlDer (pem: string): Buffer {
  return Buffer.from(pem.replace(/-----(BEGIN|END) X509 CRL-----/g, '').replace(/\s+/g, ''), 'base64')
}

export function registerCrlRoutes (app: FastifyInstance, control: ControlPlane): void {
  app.get('/crl/:file', {
    config: { openapi: { produces: { [DER_CRL_TYPE]: { type: 'string', format: 'binary' } } } },
    schema: {
      summary: 'A CRL for relying parties, no token: <tenant>.crl (the tenant issuing CA\'s) or root.crl (the root\'s: revoked tenant CAs); DER',
      params: { type: 'object', required: ['file'], additionalProperties: false, properties: { file: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,31}\\.crl$', examples: ['root.crl', 'acme.crl'] } } },
      response: { 200: { type: 'string' }, ...problems(404, 409) }
    }
  }, async (req: FastifyRequest<{ Params: { file: string } }>, reply) => {
    const name = req.params.file.slice(0, -'.crl'.length)
    const pem = name === 'root' ? await control.certificates.rootCrlPem() : await control.certificates.publishedCrlPem(name)
    // CRLs are public and change on revocation; caches may keep one for a minute
    return reply.type(DER_CRL_TYPE).header('cache-control', 'public, max-age=60').send(crlDer(pem))
  })
}
