// What the gateway does with every inspected USP Record: count it, append it to the USP audit trail,
// and learn from MQTT Connect records which topic the endpoint subscribed to (endpoint registry).
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
    const result = inspection.verdict === 'refuse' ? 'refused' : 'delivered'
    count(env?.recordType ?? 'unparsed', inspection.message?.msgType ?? 'none', result)
    if (env === undefined) {
      deps.audit.record({ time: new Date().toISOString(), tenant: st.tenant, fromId: st.principal, toId: '', topic, recordType: 'unparsed', result, ...(inspection.code ? { code: inspection.code } : {}) })
      return
    }
    deps.audit.record({
      time: new Date().toISOString(),
      tenant: st.tenant,
      fromId: env.fromId,
      toId: env.toId,
      topic,
      recordType: env.recordType,
      result,
      ...(inspection.code ? { code: inspection.code } : {}),
      ...(inspection.message ? { msgId: inspection.message.msgId, msgType: inspection.message.msgType, kind: inspection.message.kind } : {})
    })
    if (result === 'delivered' && env.recordType === 'mqtt_connect' && env.mqttConnect) {
      deps.endpoints.sawConnectRecord(st.tenant, st.principal, env.mqttConnect.subscribedTopic)
    }
  }
}
