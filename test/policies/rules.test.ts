// The default topic ACLs through the real engine and the committed wasm bundle: every rule allows
// and denies with its stable reason.
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import { PolicyEngine, loadBundle, loadDefaultBundle, type PolicyInput } from '../../policies/index.ts'
import { AGENT_ID, agent, agent311, buildTempBundle, controller, req } from './helpers.ts'

const engine = new PolicyEngine()
before(async () => { engine.activate(await loadDefaultBundle()) })

const RT_CONTROLLER = 'acme%2Fusp%2Fcontroller%2Fself::ctrl'
const RT_AGENT = 'acme%2Fusp%2Fagent%2Fos::00256D-0001'

function expectDecision (input: PolicyInput, allow: boolean, reason: string): void {
  const d = engine.decide(input)
  assert.deepEqual({ allow: d.allow, reason: d.reason }, { allow, reason }, `${input.action} ${input.topic ?? ''} as ${input.client.role}`)
  assert.equal(d.revision, engine.revision)
}

test('connect: agents and controllers allowed, other roles refused', () => {
  expectDecision(req('connect', agent), true, 'connect_allowed')
  expectDecision(req('connect', controller), true, 'connect_allowed')
  expectDecision(req('connect', { ...agent, role: 'admin' }), false, 'role_not_allowed')
})

test('guards: outside tenant, presence, QoS 2 and retained inbox messages', () => {
  expectDecision(req('publish', agent, 'other/usp/controller/self::ctrl'), false, 'topic_outside_tenant')
  expectDecision(req('publish', agent, `acme/usp/status/${AGENT_ID}`), false, 'status_is_gateway_only')
  expectDecision(req('publish', controller, `acme/usp/status/${AGENT_ID}`), false, 'status_is_gateway_only')
  expectDecision(req('publish', agent, 'acme/usp/controller/self::ctrl', { qos: 2 }), false, 'qos2_on_usp_topic')
  expectDecision(req('subscribe', agent, `acme/usp/agent/${AGENT_ID}`, { qos: 2 }), false, 'qos2_on_usp_topic')
  expectDecision(req('publish', controller, `acme/usp/agent/${AGENT_ID}`, { retain: true }), false, 'retain_on_usp_inbox')
  expectDecision(req('publish', agent, `acme/bulkdata/${AGENT_ID}/x`, { qos: 2, retain: true }), true, 'agent_own_bulkdata')
})

test('agent: subscribes only to its own inbox', () => {
  expectDecision(req('subscribe', agent, `acme/usp/agent/${AGENT_ID}`), true, 'agent_own_inbox')
  expectDecision(req('subscribe', agent311, `acme/usp/agent/${AGENT_ID}/#`), true, 'agent_own_inbox')
  expectDecision(req('subscribe', agent, 'acme/usp/agent/os::00256D-0002'), false, 'not_own_inbox')
  expectDecision(req('subscribe', agent, 'acme/usp/agent/+'), false, 'not_own_inbox')
  expectDecision(req('subscribe', agent, 'acme/usp/status/#'), false, 'agent_cannot_subscribe_here')
  expectDecision(req('subscribe', agent, 'acme/bulkdata/#'), false, 'agent_cannot_subscribe_here')
})

test('agent: publishes to controller inboxes (with or without reply-to) and its own bulkdata', () => {
  expectDecision(req('publish', agent, 'acme/usp/controller/self::ctrl'), true, 'agent_to_controller_inbox')
  expectDecision(req('publish', agent311, `acme/usp/controller/self::ctrl/reply-to=${RT_AGENT}`), true, 'agent_to_controller_inbox')
  expectDecision(req('publish', agent311, 'acme/usp/controller/self::ctrl/reply-to=acme/usp/agent/x'), false, 'bad_reply_to')
  expectDecision(req('publish', agent, 'acme/usp/agent/os::00256D-0002'), false, 'agent_cannot_publish_here')
  expectDecision(req('publish', agent, `acme/bulkdata/${AGENT_ID}/Device.WiFi`), true, 'agent_own_bulkdata')
  expectDecision(req('publish', agent, 'acme/bulkdata/os::00256D-0002/Device.WiFi'), false, 'not_own_bulkdata')
})

test('controller: publishes to agent inboxes only', () => {
  expectDecision(req('publish', controller, `acme/usp/agent/${AGENT_ID}`), true, 'controller_to_agent_inbox')
  expectDecision(req('publish', controller, `acme/usp/agent/${AGENT_ID}/reply-to=${RT_CONTROLLER}`), true, 'controller_to_agent_inbox')
  expectDecision(req('publish', controller, 'acme/usp/controller/other::ctrl'), false, 'controller_cannot_publish_here')
})

test('controller: subscribes to its inbox, bulkdata and presence', () => {
  expectDecision(req('subscribe', controller, 'acme/usp/controller/self::ctrl/#'), true, 'controller_own_inbox')
  expectDecision(req('subscribe', controller, 'acme/usp/controller/other::ctrl'), false, 'not_own_inbox')
  expectDecision(req('subscribe', controller, 'acme/bulkdata/#'), true, 'controller_bulkdata')
  expectDecision(req('subscribe', controller, 'acme/bulkdata/+/wifi'), true, 'controller_bulkdata')
  expectDecision(req('subscribe', controller, 'acme/usp/status/#'), true, 'controller_status')
  expectDecision(req('subscribe', controller, 'acme/usp/status/+'), true, 'controller_status')
  expectDecision(req('subscribe', controller, `acme/usp/status/${AGENT_ID}`), true, 'controller_status')
  expectDecision(req('subscribe', controller, `acme/usp/agent/${AGENT_ID}`), false, 'controller_cannot_subscribe_here')
})

test('deliver: a subscriber receives only topics it may read', () => {
  expectDecision(req('deliver', agent311, `acme/usp/agent/${AGENT_ID}/reply-to=${RT_CONTROLLER}`), true, 'agent_own_inbox')
  expectDecision(req('deliver', agent, 'acme/usp/agent/os::00256D-0002'), false, 'cannot_read_topic')
  expectDecision(req('deliver', controller, `acme/bulkdata/${AGENT_ID}/x`), true, 'controller_bulkdata')
  expectDecision(req('deliver', controller, `acme/usp/status/${AGENT_ID}`), true, 'controller_status')
  expectDecision(req('deliver', controller, 'acme/usp/controller/other::ctrl'), false, 'cannot_read_topic')
})

test('policy data: disabled tenant and per-tenant extras reach the wasm through data.json', async () => {
  const data = {
    tenants: {
      acme: { extra_publish: { agent: ['vendor/{principal}/events/#'] }, extra_subscribe: { controller: ['vendor/+/events/#'] } },
      closed: { disabled: true }
    }
  }
  const { bytes } = buildTempBundle({ files: { 'data.json': JSON.stringify(data) } })
  const local = new PolicyEngine()
  local.activate(await loadBundle(bytes))
  const closedAgent = { ...agent, tenant: 'closed' }
  assert.deepEqual(pick(local.decide(req('connect', closedAgent))), { allow: false, reason: 'tenant_disabled' })
  assert.deepEqual(pick(local.decide(req('publish', agent, `acme/vendor/${AGENT_ID}/events/boot`))), { allow: true, reason: 'tenant_extra_publish' })
  assert.deepEqual(pick(local.decide(req('publish', agent, 'acme/vendor/os::00256D-0002/events/boot'))), { allow: false, reason: 'agent_cannot_publish_here' })
  assert.deepEqual(pick(local.decide(req('subscribe', controller, 'acme/vendor/+/events/#'))), { allow: true, reason: 'tenant_extra_subscribe' })
  assert.deepEqual(pick(local.decide(req('subscribe', controller, 'acme/vendor/#'))), { allow: false, reason: 'controller_cannot_subscribe_here' })
})

function pick (d: { allow: boolean, reason: string }): { allow: boolean, reason: string } {
  return { allow: d.allow, reason: d.reason }
}
