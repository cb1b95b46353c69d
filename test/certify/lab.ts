// A certification lab for the end-to-end tests: a real gateway, real obuspa agents aimed at it
// (configured for the gateway's certification controller), and the real CLI.
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { startGateway, removeDir, type TestGateway } from '../helpers/gateway.ts'
import { startObuspa, requireObuspa, type Obuspa } from '../helpers/obuspa.ts'
import { DEFAULT_CONTROLLER_ID } from '../../broker/certify/index.ts'

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'uspgate.js')

export interface Lab {
  /** Replaced by a test that restarts the gateway (same data dir). */
  t: TestGateway
  agent: (tenant: string, eid: string, o: { v: '5.0' | '3.1.1', username?: string, password: string, controllerTopic?: string, respawn?: boolean }) => Promise<Obuspa>
  cli: (...args: string[]) => Promise<{ code: number, stdout: string, stderr: string }>
  close: () => Promise<void>
}

export async function startLab (): Promise<Lab> {
  requireObuspa()
  const t = await startGateway()
  const agents: Obuspa[] = []
  const lab: Lab = {
    t,
    async agent (tenant, eid, o) {
      const a = await startObuspa({
        port: lab.t.mqttPort,
        endpointId: eid,
        username: o.username ?? `${tenant}:${eid}`,
        password: o.password,
        mqttVersion: o.v,
        agentTopic: `${tenant}/usp/agent/${eid}`,
        controllerId: DEFAULT_CONTROLLER_ID,
        controllerTopic: o.controllerTopic ?? `${tenant}/usp/controller/${DEFAULT_CONTROLLER_ID}`,
        ...(o.respawn !== undefined ? { respawn: o.respawn } : {})
      })
      agents.push(a)
      return a
    },
    cli: async (...args) => await new Promise(resolve => {
      execFile(process.execPath, [CLI, ...args], { env: { ...process.env, USPGATE_DATA_DIR: lab.t.dataDir, USPGATE_ADMIN_URL: lab.t.adminUrl, USPGATE_ADMIN_TOKEN: lab.t.token }, timeout: 100_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr })
      })
    }),
    async close () {
      for (const a of agents) await a.stop()
      await lab.t.close()
      await removeDir(lab.t.dataDir)
    }
  }
  return lab
}
