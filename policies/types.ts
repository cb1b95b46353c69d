// The policy engine contract (DESIGN.md "Policy engine contract"): what the gateway asks, and what
// the compiled Rego at entry point uspgate/authz/decision answers.

export type PolicyAction = 'connect' | 'publish' | 'subscribe' | 'deliver'

export interface PolicyClient {
  tenant: string
  /** The Endpoint ID for USP endpoints, e.g. "os::00256D-0001". */
  principal: string
  role: string
  client_id: string
  /** MQTT protocol level: 4 (3.1.1) or 5. */
  protocol: number
  auth: string
  listener: string
}

export interface PolicyInput {
  action: PolicyAction
  client: PolicyClient
  /** Topic name (publish, deliver) or topic filter (subscribe); absent for connect. */
  topic?: string
  qos?: number
  retain?: boolean
  /** The other party, when the gateway knows it (not used by the default Rego yet). */
  target?: { tenant: string, principal: string, role: string }
}

/** What the Rego returns. */
export interface PolicyResult {
  allow: boolean
  reason: string
}

/** A decision as the engine returns it (a frozen object: cached ones are shared). */
export interface Decision extends PolicyResult {
  /** Revision of the bundle that made the decision (DESIGN.md: every decision carries it). */
  revision: string
  /** true when answered from the decision cache, without evaluating wasm. */
  cached: boolean
  /** Set when reason is 'policy_error' or 'no_policy': what went wrong, for logs. */
  error?: string
}

/** One golden decision: activation refuses a bundle unless each case decides as expected. */
export interface GoldenCase {
  name?: string
  input: PolicyInput
  expect: { allow: boolean, reason?: string }
}

/** The entry point every bundle must provide. */
export const ENTRYPOINT = 'uspgate/authz/decision'
