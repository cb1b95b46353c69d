// Wires the export sinks (syslog, webhook) to the security events, with their drop metric and the
// events.export_dropped event. Settings: eventExportFromEnv (config.ts).
import type { Logger } from 'pino'
import type { Counter } from 'prom-client'
import type { SecurityEvents, AuditFileSettings } from './security-events.ts'
import { SyslogSink, type SyslogSettings } from './syslog-sink.ts'
import { WebhookSink, type WebhookSettings } from './webhook-sink.ts'

export interface EventExportSettings {
  audit: AuditFileSettings
  syslog?: SyslogSettings
  webhook?: WebhookSettings
}

/** Where a sink's URL is shown: scheme, host and port only (a webhook URL may carry a secret in its path or query). */
function where (url: string): string {
  const u = new URL(url)
  return `${u.protocol}//${u.host}`
}

export function attachEventSinks (events: SecurityEvents, s: EventExportSettings, deps: { dropped: Counter, log: Logger }): void {
  const { dropped, log } = deps
  if (s.syslog !== undefined) {
    const target = where(s.syslog.url)
    events.addSink(new SyslogSink(s.syslog, n => dropped.labels('syslog').inc(n), err => log.warn({ err: err.message, sink: 'syslog', target }, 'syslog export failed')))
  }
  if (s.webhook !== undefined) {
    const w = s.webhook
    const target = where(w.url)
    events.addSink(new WebhookSink(w, {
      onDrop: n => dropped.labels('webhook').inc(n),
      onRecovered: n => {
        events.emit({ code: 'events.export_dropped', count: n, reason: `${n} event(s) dropped: the webhook ${target} failed while its buffer of ${w.buffer} was full` })
      },
      onError: err => log.warn({ err: err.message, sink: 'webhook', target }, 'webhook export failed; retrying with back-off')
    }))
  }
}
