// Agent presence: the gateway (only) publishes retained "1"/"0" on <tenant>/usp/status/<endpoint-id>
// when an Agent's first session starts and its last one ends on this node.
/** Publishes one retained QoS 1 message as the gateway (aedes' broker.publish in production). */
export type PublishRetained = (topic: string, payload: Buffer, done: (err?: Error | null) => void) => void

export function presenceTopic (tenant: string, endpointId: string): string {
  return `${tenant}/usp/status/${endpointId}`
}

export class Presence {
  constructor (private readonly publish: PublishRetained, private readonly onError: (err: Error, tenant: string, endpointId: string) => void) {}

  online (tenant: string, endpointId: string): void { this.set(tenant, endpointId, '1') }
  offline (tenant: string, endpointId: string): void { this.set(tenant, endpointId, '0') }

  private set (tenant: string, endpointId: string, value: '1' | '0'): void {
    this.publish(presenceTopic(tenant, endpointId), Buffer.from(value), err => {
      if (err) this.onError(err, tenant, endpointId)
    })
  }
}
