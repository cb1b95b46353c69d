// broker/control: the control plane — what the admin API may do to the gateway (tenants, credentials,
// endpoints, sessions, events, policies, certificates, admin tokens). The admin API imports only this
// file of broker/.
export { GatewayControlPlane } from './control-plane.ts'
export type { ControlPlane, CertificateOperations, PolicyOperations, AdminOperations } from './api.ts'
export * from './cluster-view.ts'
export * from './admin-access.ts'
export * from './admin-roles.ts'
export * from './policy-versions.ts'
export { ControlError, type Actor, type AdminSettings, type AdminTlsMode, adminSettingsFromEnv, checkAdminSettings, DEFAULT_ADMIN_SETTINGS, TokenBucket, HandshakeDeadline } from '../core/index.ts'
export { ensureBootstrapToken, type BootstrapTokenOptions } from './bootstrap-token.ts'
export type { TenantUspSettings, TenantQuotas } from '../store/index.ts'
export { IMPORT_BATCH, MAX_IMPORT_ROWS, type ImportRow, type ImportRowResult, type ImportResult } from './credential-import.ts'
export type { GoldenCase, PolicyInput } from '../../policies/index.ts'
