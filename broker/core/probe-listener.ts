// The probe + metrics listener (USPGATE_PROBE_PORT): GET /healthz, /readyz and /metrics over plain HTTP,
// without the admin API's bearer token or client certificate, so Kubernetes probes and Prometheus keep
// working when the admin API is on mutual TLS. It serves nothing else (no tenant data; metric labels are
// bounded), answers only GET/HEAD, and never reads a request body.
import { createServer, type Server } from 'node:http'
import type { Metrics } from './metrics.ts'

export interface ProbeSource {
  nodeId: string
  metrics: Metrics
  /** True while the gateway takes new MQTT connections (false before start and from the drain on). */
  ready: () => boolean
}

export class ProbeListener {
  private readonly server: Server
  port = 0

  constructor (private readonly source: ProbeSource, private readonly onError: (err: Error) => void) {
    this.server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0]
      const json = (status: number, body: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' })
        res.end(req.method === 'HEAD' ? undefined : JSON.stringify(body))
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end()
        return
      }
      if (path === '/healthz') return json(200, { status: 'ok' })
      if (path === '/readyz') {
        const ready = this.source.ready()
        return json(ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', node: this.source.nodeId })
      }
      if (path === '/metrics') {
        this.source.metrics.render().then((text: string) => {
          res.writeHead(200, { 'content-type': this.source.metrics.registry.contentType, 'cache-control': 'no-store' })
          res.end(req.method === 'HEAD' ? undefined : text)
        }, (err: Error) => {
          this.onError(err)
          res.writeHead(500).end()
        })
        return
      }
      json(404, { status: 'not found' })
    })
    // a listener error after start (EMFILE...) must not kill the process
    this.server.on('error', err => this.onError(err))
    this.server.headersTimeout = 10_000
    this.server.requestTimeout = 10_000
  }

  async listen (host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => { this.server.off('error', reject); resolve() })
    })
    const addr = this.server.address()
    this.port = typeof addr === 'object' && addr ? addr.port : port
    return this.port
  }

  async close (): Promise<void> {
    if (!this.server.listening) return
    this.server.closeAllConnections()
    await new Promise<void>(resolve => this.server.close(() => resolve()))
  }
}
