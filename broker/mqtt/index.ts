// broker/mqtt: the aedes boundary — the packet pipelines (connect, publish, subscribe, deliver), tenant
// invariants, live sessions, limits, reason codes, listeners and the named patches of aedes.
export { createHooks, type GatewayHooks } from './hooks.ts'
export type { HookDeps } from './context.ts'
export { isGatewayDenial, identityFromInternalId, INTERNAL_ID_SEPARATOR, type GatewayClient, type CertIdentity } from './client.ts'
export { SessionIndex, type ClientState, type SessionHandle, type SessionView } from './sessions.ts'
export { AuthThrottle } from './limits.ts'
export { CONNACK, DISCONNECT } from './reason-codes.ts'
export { coalesceWrites } from './socket-writes.ts'
export * from './patches/index.ts'
export { MqttListeners, WS_PATH, WS_SUBPROTOCOL, type Handoff, type OnConnection, type ListenerDeps } from './listeners.ts'
export { trackSessions, reportBrokerErrors, type SessionEvents } from './broker-events.ts'
export { ProxyProtocolGate, parseTrustedNetworks, frameProxyHeader, prefacedStream } from './proxy-protocol.ts'
export { SharedSubscriptions } from './shared-subscriptions.ts'
