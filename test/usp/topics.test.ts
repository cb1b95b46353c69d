import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseUspTopic, isUspInbox, inboxTopic, withReplyTo } from '../../broker/usp/index.ts'
import { AGENT, CONTROLLER } from './fixtures.ts'

test('the default layout', () => {
  assert.deepEqual(parseUspTopic(`acme/usp/agent/${AGENT}`), { tenant: 'acme', kind: 'agent', endpointId: AGENT })
  assert.deepEqual(parseUspTopic(`acme/usp/controller/${CONTROLLER}`), { tenant: 'acme', kind: 'controller', endpointId: CONTROLLER })
  assert.deepEqual(parseUspTopic(`acme/usp/status/${AGENT}`), { tenant: 'acme', kind: 'status', endpointId: AGENT })
  assert.deepEqual(parseUspTopic(`acme/bulkdata/${AGENT}/report`), { tenant: 'acme', kind: 'bulkdata', endpointId: AGENT, subtopic: 'report' })
  assert.deepEqual(parseUspTopic(`acme/bulkdata/${AGENT}`), { tenant: 'acme', kind: 'bulkdata', endpointId: AGENT })
  assert.deepEqual(parseUspTopic('acme/telemetry/x'), { tenant: 'acme', kind: 'other' })
})

test('TR-369 R-MQTT.24/.25 spec example: reply-to split off and %2F decoded', () => {
  const topic = 'usp/agents/cid:3AA3F8:my-unique-usp-id-42/reply-to=usp%2Fcontrollers%2Foui:00256D:my-unique-bbf-id-42'
  const parsed = parseUspTopic(topic)
  assert.equal(parsed.replyTo, 'usp/controllers/oui:00256D:my-unique-bbf-id-42')
  assert.equal(parsed.kind, 'other') // the spec's flat layout is not uspgate's tenant layout
  // The same suffix on a uspgate inbox.
  const inbox = `acme/usp/agent/${AGENT}/reply-to=acme%2Fusp%2Fcontroller%2F${CONTROLLER}`
  assert.deepEqual(parseUspTopic(inbox), {
    tenant: 'acme', kind: 'agent', endpointId: AGENT, replyTo: `acme/usp/controller/${CONTROLLER}`
  })
  assert.equal(isUspInbox(inbox), true)
})

test('withReplyTo is the inverse of the suffix parsing', () => {
  const topic = withReplyTo(inboxTopic('acme', 'agent', AGENT), `acme/usp/controller/${CONTROLLER}`)
  assert.equal(topic, `acme/usp/agent/${AGENT}/reply-to=acme%2Fusp%2Fcontroller%2F${CONTROLLER}`)
  assert.equal(parseUspTopic(topic).replyTo, `acme/usp/controller/${CONTROLLER}`)
})

test('odd input is handled deterministically', () => {
  assert.deepEqual(parseUspTopic(''), { tenant: '', kind: 'other' })
  assert.deepEqual(parseUspTopic('/'), { tenant: '', kind: 'other' })
  // Leading '/': empty tenant, still recognised (the tenant-prefix invariant refuses it elsewhere).
  assert.deepEqual(parseUspTopic('/usp/agent/x'), { tenant: '', kind: 'agent', endpointId: 'x' })
  // Multiple reply-to: the LAST one wins; the earlier one stays as a sub-level.
  assert.deepEqual(parseUspTopic('acme/usp/agent/x/reply-to=a%2Fb/reply-to=acme%2Fc'), {
    tenant: 'acme', kind: 'agent', endpointId: 'x', subtopic: 'reply-to=a%2Fb', replyTo: 'acme/c'
  })
  // Lower-case %2f is decoded too; other escapes are left alone.
  assert.equal(parseUspTopic('acme/usp/agent/x/reply-to=acme%2fusp%2Fcontroller%2fc%25').replyTo, 'acme/usp/controller/c%25')
  // Raw '/' after the marker is kept (everything after the last marker is the reply-to).
  assert.equal(parseUspTopic('acme/usp/agent/x/reply-to=acme/raw').replyTo, 'acme/raw')
  // Empty reply-to is present but empty.
  assert.deepEqual(parseUspTopic('acme/usp/agent/x/reply-to='), { tenant: 'acme', kind: 'agent', endpointId: 'x', replyTo: '' })
  // Trailing slash: an (empty) sub-level, still the inbox.
  assert.deepEqual(parseUspTopic('acme/usp/agent/x/'), { tenant: 'acme', kind: 'agent', endpointId: 'x', subtopic: '' })
  // Missing endpoint level.
  assert.deepEqual(parseUspTopic('acme/usp/agent/'), { tenant: 'acme', kind: 'other' })
  assert.deepEqual(parseUspTopic('acme/usp/agent'), { tenant: 'acme', kind: 'other' })
  assert.deepEqual(parseUspTopic('acme/bulkdata/'), { tenant: 'acme', kind: 'other' })
  // Case-sensitive levels.
  assert.deepEqual(parseUspTopic('acme/USP/agent/x'), { tenant: 'acme', kind: 'other' })
  // A marker in the endpoint level leaves no endpoint (no Endpoint ID starts with "reply-to=").
  assert.deepEqual(parseUspTopic('acme/usp/agent/reply-to=x'), { tenant: 'acme', kind: 'other', replyTo: 'x' })
  // Without its leading '/', "reply-to=" is no marker.
  assert.deepEqual(parseUspTopic('acme/usp/agent/xreply-to=y'), { tenant: 'acme', kind: 'agent', endpointId: 'xreply-to=y' })
})

test('isUspInbox: agent and controller inboxes only, with or without suffix or sub-levels', () => {
  assert.equal(isUspInbox(`acme/usp/agent/${AGENT}`), true)
  assert.equal(isUspInbox(`acme/usp/controller/${CONTROLLER}/reply-to=acme%2Fx`), true)
  assert.equal(isUspInbox(`acme/usp/agent/${AGENT}/extra`), true) // reaches a 3.1.1 Agent's `<inbox>/#`
  assert.equal(isUspInbox(`acme/usp/status/${AGENT}`), false)
  assert.equal(isUspInbox(`acme/bulkdata/${AGENT}/json`), false)
  assert.equal(isUspInbox('acme/other'), false)
  assert.equal(isUspInbox(''), false)
})

test('inboxTopic builds the layout and refuses ids that are not one topic level', () => {
  assert.equal(inboxTopic('acme', 'agent', AGENT), `acme/usp/agent/${AGENT}`)
  assert.equal(inboxTopic('acme', 'controller', CONTROLLER), `acme/usp/controller/${CONTROLLER}`)
  for (const bad of ['', 'a/b', 'a+', '#', 'a\u0000b']) {
    assert.throws(() => inboxTopic('acme', 'agent', bad), TypeError)
  }
  assert.throws(() => inboxTopic('', 'agent', AGENT), TypeError)
  assert.throws(() => inboxTopic('acme', 'status' as 'agent', AGENT), TypeError)
})
