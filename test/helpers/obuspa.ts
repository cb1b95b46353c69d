// The Broadband Forum's reference USP agent (obuspa 11.0.4) as a real peer: built by
// .ci/install-deps.sh into .peers/obuspa, started detached in its own process group with a
// factory-reset file aimed at a test gateway, killed (whole group) on stop.
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, writeFile, chmod } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const OBUSPA_BIN = process.env.OBUSPA_BIN ?? join(import.meta.dirname, '..', '..', '.peers', 'obuspa', 'obuspa-11.0.4', 'obuspa')

export interface ObuspaOptions {
  port: number
  endpointId: string
  username: string
  password: string
  /** '5.0' or '3.1.1' */
  mqttVersion: '5.0' | '3.1.1'
  /** The agent's own topic (ResponseTopicConfigured). */
  agentTopic: string
  controllerId: string
  controllerTopic: string
  /** Manufacturer etc. cannot be set through the reset file; obuspa reports its vendor defaults. */
  /**
   * Restart the agent when it exits, as a device's init does: obuspa's Device.Reboot() (and
   * FactoryReset()) stops the process with exit(0) (dm_exec.c DM_EXEC_HandleScheduledExit; the
   * vendor reboot hook is not set in this build), so without this a reboot is a power-off. The same
   * database file is kept, so the agent comes back with its configuration and reboot cause.
   */
  respawn?: boolean
}

export interface Obuspa {
  dir: string
  cliSocket: string
  proc: ChildProcess
  log: () => Promise<string>
  /** How many times the respawn loop restarted the agent (respawn: true). */
  respawns: () => Promise<number>
  /** `obuspa -c <args>` against the running agent (through its CLI socket). */
  cli: (...args: string[]) => Promise<string>
  /** A provisioning script for USPGATE_CERTIFY_PROVISION_CMD that sets the new password in this agent. */
  provisionScript: () => Promise<string>
  stop: () => Promise<void>
}

export function requireObuspa (): string {
  if (!existsSync(OBUSPA_BIN)) {
    throw new Error(`obuspa is not built (${OBUSPA_BIN}); run: bash .ci/install-deps.sh (builds it from ../shared/peers into .peers/obuspa)`)
  }
  return OBUSPA_BIN
}

export async function startObuspa (o: ObuspaOptions): Promise<Obuspa> {
  const bin = requireObuspa()
  const dir = await mkdtemp(join(tmpdir(), 'obuspa-'))
  const reset = [
    `Device.LocalAgent.EndpointID "${o.endpointId}"`,
    `Device.MQTT.Client.1.Alias "cpe-1"`,
    `Device.MQTT.Client.1.Enable true`,
    `Device.MQTT.Client.1.BrokerAddress "127.0.0.1"`,
    `Device.MQTT.Client.1.BrokerPort "${o.port}"`,
    `Device.MQTT.Client.1.TransportProtocol "TCP/IP"`,
    `Device.MQTT.Client.1.Username "${o.username}"`,
    `Device.MQTT.Client.1.Password "${o.password}"`,
    `Device.MQTT.Client.1.ProtocolVersion "${o.mqttVersion}"`,
    `Device.MQTT.Client.1.ClientID "cpe-${o.endpointId.replace(/[^A-Za-z0-9]/g, '')}"`,
    // non-zero keep-alive: today's gateway refuses an MQTT 3.1.1 CONNECT with Keep Alive 0
    `Device.MQTT.Client.1.KeepAliveTime "30"`,
    `Device.MQTT.Client.1.ConnectRetryTime "1"`,
    `Device.MQTT.Client.1.ConnectRetryIntervalMultiplier "1000"`,
    `Device.MQTT.Client.1.ConnectRetryMaxInterval "2"`,
    `Device.MQTT.Client.1.RequestResponseInfo true`,
    `Device.LocalAgent.MTP.1.Alias "cpe-1"`,
    `Device.LocalAgent.MTP.1.Enable true`,
    `Device.LocalAgent.MTP.1.Protocol "MQTT"`,
    `Device.LocalAgent.MTP.1.MQTT.ResponseTopicConfigured "${o.agentTopic}"`,
    `Device.LocalAgent.MTP.1.MQTT.Reference "Device.MQTT.Client.1"`,
    `Device.LocalAgent.Controller.1.Alias "cpe-1"`,
    `Device.LocalAgent.Controller.1.Enable true`,
    `Device.LocalAgent.Controller.1.EndpointID "${o.controllerId}"`,
    `Device.LocalAgent.Controller.1.AssignedRole "Device.LocalAgent.ControllerTrust.Role.1"`,
    `Device.LocalAgent.Controller.1.PeriodicNotifInterval "86400"`,
    `Device.LocalAgent.Controller.1.MTP.1.Alias "cpe-1"`,
    `Device.LocalAgent.Controller.1.MTP.1.Enable true`,
    `Device.LocalAgent.Controller.1.MTP.1.Protocol "MQTT"`,
    `Device.LocalAgent.Controller.1.MTP.1.MQTT.Reference "Device.MQTT.Client.1"`,
    `Device.LocalAgent.Controller.1.MTP.1.MQTT.Topic "${o.controllerTopic}"`,
    // Boot! goes only to controllers subscribed to it (usp-tr369-facts.md §4)
    `Device.LocalAgent.Subscription.1.Alias "boot"`,
    `Device.LocalAgent.Subscription.1.Enable true`,
    `Device.LocalAgent.Subscription.1.ID "boot"`,
    `Device.LocalAgent.Subscription.1.Recipient "Device.LocalAgent.Controller.1"`,
    `Device.LocalAgent.Subscription.1.NotifType "Event"`,
    `Device.LocalAgent.Subscription.1.ReferenceList "Device.Boot!"`,
    `Device.LocalAgent.Subscription.1.Persistent true`,
    `Internal.Reboot.Cause "LocalFactoryReset"`
  ].join('\n') + '\n'
  await writeFile(join(dir, 'reset.txt'), reset, { mode: 0o600 })
  const cliSocket = join(dir, 'cli.sock')
  const logFile = join(dir, 'obuspa.log')
  const args = ['-p', '-v', '3', '-r', join(dir, 'reset.txt'), '-f', join(dir, 'usp.db'), '-s', cliSocket, '-l', logFile, '-i', 'lo']
  // respawn: a shell loop in the same process group (stop() kills the group: the loop and the agent)
  const [cmd, argv]: [string, string[]] = o.respawn === true
    ? ['/bin/sh', ['-c', 'while :; do "$@"; echo "obuspa exited ($?): restarting" >>"$OBUSPA_RESPAWN_LOG"; sleep 0.2; done', 'obuspa-respawn', bin, ...args]]
    : [bin, args]
  const proc = spawn(cmd, argv, {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, USP_ENDPOINT_ID: o.endpointId, OBUSPA_RESPAWN_LOG: join(dir, 'respawn.log') }
  })
  const cli = async (...args: string[]): Promise<string> => await new Promise((resolve, reject) => {
    execFile(bin, ['-s', cliSocket, '-c', ...args], { timeout: 20_000 }, (err, stdout, stderr) => err ? reject(new Error(`obuspa -c ${args[0]}: ${err.message} ${stderr}`)) : resolve(stdout))
  })
  return {
    dir,
    cliSocket,
    proc,
    log: async () => await readFile(logFile, 'utf8').catch(() => ''),
    respawns: async () => (await readFile(join(dir, 'respawn.log'), 'utf8').catch(() => '')).split('\n').filter(Boolean).length,
    cli,
    async provisionScript () {
      const script = join(dir, 'provision.sh')
      // the lab's provisioning step: the new secret arrives in the environment, is set in the agent
      await writeFile(script, `#!/bin/sh\nexec "${bin}" -s "${cliSocket}" -c set Device.MQTT.Client.1.Password "$USPGATE_CERTIFY_SECRET" >/dev/null\n`)
      await chmod(script, 0o700)
      return script
    },
    async stop () {
      if (proc.pid === undefined) return
      // obuspa does not stop on SIGTERM; the whole process group goes, whatever it started
      const exited = proc.exitCode !== null || proc.signalCode !== null ? Promise.resolve() : new Promise(resolve => proc.once('exit', resolve))
      try { process.kill(-proc.pid, 'SIGKILL') } catch { /* gone */ }
      await exited
    }
  }
}
