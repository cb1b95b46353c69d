// The web console's static assets (built by admin-api/console/build.ts into admin-api/console/dist)
// served at /console/ on the admin listener, behind a strict Content-Security-Policy: scripts and
// styles only from this origin (no inline script, no eval), API calls only to this origin, no frames.
// The console itself is a client of the public /v1 API; this plugin serves files only.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'
import { sendProblem } from './problem.ts'

export const CONSOLE_DIST = join(import.meta.dirname, '..', 'console', 'dist')

/** No inline script or style, nothing from another origin, no plugins, no framing, no <base> games. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "object-src 'none'"
].join('; ')

export async function consolePlugin (app: FastifyInstance<any, any, any, any>, opts: { root?: string }): Promise<void> {
  const root = opts.root ?? CONSOLE_DIST
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('content-security-policy', CONSOLE_CSP)
    reply.header('x-frame-options', 'DENY')
    reply.header('referrer-policy', 'no-referrer')
    reply.header('cross-origin-opener-policy', 'same-origin')
    reply.header('cross-origin-resource-policy', 'same-origin')
    // revalidated on every load (ETag), so a new build is picked up at once
    if (reply.getHeader('cache-control') === undefined) reply.header('cache-control', 'no-cache')
    return payload
  })
  if (!existsSync(join(root, 'index.html'))) {
    // A checkout that never ran the build: say so instead of a bare 404.
    app.get('/*', { schema: { hide: true } }, async (_req, reply) =>
      await sendProblem(reply, 503, 'console not built', 'the console assets are missing: run `npm run build:console`'))
    return
  }
  await app.register(fastifyStatic, { root, prefix: '/', index: ['index.html'], cacheControl: false, dotfiles: 'deny', decorateReply: false })
}
