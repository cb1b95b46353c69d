// Listening sockets: the one way a listener binds and learns the port it got (port 0 = any free port).
import type { Server } from 'node:net'

export function listen (server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      const addr = server.address()
      resolve(typeof addr === 'object' && addr !== null ? addr.port : port)
    })
  })
}
