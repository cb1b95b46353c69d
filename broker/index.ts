// The gateway package's public surface, for bin/ (the CLI), tests and benchmarks.
// first: broker/mqtt's patches load before anything loads mqtt-packet (mqtt/patches/quiet-debug.ts)
import './mqtt/index.ts'
export { Gateway, type GatewayOptions } from './gateway.ts'
export { loadConfig, parseFlags, ConfigError, SETTING_FLAGS, defaultLimits, adminSettingsFromEnv, type GatewayConfig, type Limits } from './core/index.ts'
export { GatewayControlPlane, ControlError, type ControlPlane, type Actor } from './control/index.ts'
export { EVENT_CODES, type EventCode, type SecurityEvent } from './core/index.ts'
export { verifyEvidence, type VerifyResult } from './certify/index.ts'
