// What the gateway does with every inspected USP Record: count it, append it to the USP audit trail,
// and learn from MQTT Connect records which topic the endpoint subscribed to (endpoint registry).
import { isoNow } from '../core/index.ts'
import type { UspInspection } from './inspect.ts'
import type { UspAuditTrail } from './audit.ts'
import type { Endpoints } from './endpoints.ts'

/** The counter child of one label set (memoised by the caller: this runs per message). */
export type RecordCounter = (recordType: string, msgType: string, result: string) => { inc(): void }

export interface ObservedPublisher { tenant: string, principal: string }

export function uspRecordObserver (deps: { records: RecordCounter, audit: UspAuditTrail, endpoints: Endpoints }) {
  const count = (recordType: string, msgType: string, result: string): void => { deps.records(recordType, msgType, result).inc() }
  return function onUspRecord (st: ObservedPublisher, topic: string, inspection: UspInspection): void {
    const env = inspection.envelope
    const msg = inspection.message
    const result = inspection.verdict === 'refuse' ? 'refused' : 'delivered'
    count(env?.recordType ?? 'unparsed', msg?.msgType ?? 'none', result)
    // One object shape for every entry (absent fields undefined, left out of the JSON): per message.
    deps.audit.record({
      time: isoNow(),
      tenant: st.tenant,
      fromId: env === undefined ? st.principal : env.fromId,
      toId: env === undefined ? '' : env.toId,
      topic,
      recordType: env === undefined ? 'unparsed' : env.recordType,
      result,
      code: inspection.code,
      msgId: msg?.msgId,
      msgType: msg?.msgType,
      kind: msg?.kind
    })
    if (result === 'delivered' && env?.recordType === 'mqtt_connect' && env.mqttConnect) {
      deps.endpoints.sawConnectRecord(st.tenant, st.principal, env.mqttConnect.subscribedTopic)
    }
  }
}
