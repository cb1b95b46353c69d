// broker/mqtt: the aedes boundary — the packet pipelines (connect, publish, subscribe, deliver), tenant
// invariants, live sessions, limits, reason codes, listeners and the named patches of aedes.
// The patches come first: quiet-debug must run before mqtt-packet (or aedes) is loaded.
export * from './patches/index.ts'
export { createHooks, type GatewayHooks } from './hooks.ts'
export type { HookDeps } from './context.ts'
export { isGatewayDenial, identityFromInternalId, INTERNAL_ID_SEPARATOR, type GatewayClient, type CertIdentity } from './client.ts'
export { SessionIndex, type ClientState, type SessionHandle, type SessionView, type OfflineSession } from './sessions.ts'
export { discardOfflineState, pendingClientIds } from './offline-state.ts'
export { Fairness, type FairnessDeps } from './fairness.ts'
export { AuthThrottle } from './limits.ts'
export { CONNACK, DISCONNECT } from './reason-codes.ts'
export { coalesceWrites } from './socket-writes.ts'
export { MqttListeners, WS_PATH, WS_SUBPROTOCOL, type Handoff, type OnConnection, type ListenerDeps } from './listeners.ts'
export { trackSessions, reportBrokerErrors, type SessionEvents } from './broker-events.ts'
export { ProxyProtocolGate, parseTrustedNetworks, frameProxyHeader, prefacedStream } from './proxy-protocol.ts'
export { SharedSubscriptions } from './shared-subscriptions.ts'
export { drainClients, type DrainableClient } from './drain.ts'
export { countMemoryStore, type StoreCounts } from './store-counts.ts'
