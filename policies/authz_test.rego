# Unit tests for uspgate.authz: one allow and one deny per rule. Run: opa test policies/
package uspgate.authz_test

import rego.v1

import data.uspgate.authz

agent_id := "os::00256D-0001"

ctrl_id := "self::ctrl"

agent := {
	"tenant": "acme", "principal": agent_id, "role": "agent", "client_id": agent_id,
	"protocol": 5, "auth": "certificate", "listener": "mqtts",
}

controller := {
	"tenant": "acme", "principal": ctrl_id, "role": "controller", "client_id": "ctrl-1",
	"protocol": 5, "auth": "password", "listener": "mqtts",
}

req(action, client, topic) := {"action": action, "client": client, "topic": topic, "qos": 1, "retain": false}

allowed(inp, reason) if {
	authz.decision == {"allow": true, "reason": reason} with input as inp
}

denied(inp, reason) if {
	authz.decision == {"allow": false, "reason": reason} with input as inp
}

# --- connect --------------------------------------------------------------------------------------

test_connect_agent_and_controller_allowed if {
	allowed({"action": "connect", "client": agent}, "connect_allowed")
	allowed({"action": "connect", "client": controller}, "connect_allowed")
}

test_connect_other_role_denied if {
	denied({"action": "connect", "client": object.union(agent, {"role": "admin"})}, "role_not_allowed")
	denied({"action": "connect", "client": object.remove(agent, ["role"])}, "role_not_allowed")
}

test_connect_disabled_tenant_denied if {
	denied({"action": "connect", "client": agent}, "tenant_disabled") with data.tenants as {"acme": {"disabled": true}}
	allowed({"action": "connect", "client": agent}, "connect_allowed") with data.tenants as {"acme": {"disabled": false}}
	allowed({"action": "connect", "client": agent}, "connect_allowed") with data.tenants as {"other": {"disabled": true}}
}

test_disabled_tenant_denies_traffic_too if {
	denied(req("publish", agent, "acme/usp/controller/self::ctrl"), "tenant_disabled") with data.tenants as {"acme": {"disabled": true}}
}

test_missing_identity_denied if {
	denied({"action": "connect", "client": object.remove(agent, ["tenant"])}, "missing_identity")
	denied({"action": "connect", "client": object.union(agent, {"principal": ""})}, "missing_identity")
}

# --- guards ---------------------------------------------------------------------------------------

test_unknown_action_denied if {
	denied(req("unsubscribe", agent, "acme/usp/agent/os::00256D-0001"), "unknown_action")
	denied({"client": agent}, "unknown_action")
}

test_missing_topic_denied if {
	denied({"action": "publish", "client": agent, "qos": 1, "retain": false}, "missing_topic")
	denied(req("subscribe", agent, 7), "missing_topic")
}

test_topic_outside_tenant_denied if {
	denied(req("publish", agent, "other/usp/controller/self::ctrl"), "topic_outside_tenant")
	denied(req("subscribe", controller, "acmex/bulkdata/#"), "topic_outside_tenant")
	denied(req("deliver", agent, "other/usp/agent/os::00256D-0001"), "topic_outside_tenant")
}

test_status_is_gateway_only if {
	denied(req("publish", agent, "acme/usp/status/os::00256D-0001"), "status_is_gateway_only")
	denied(req("publish", controller, "acme/usp/status/os::00256D-0001"), "status_is_gateway_only")

	# even when a tenant extra would grant it
	denied(req("publish", agent, "acme/usp/status/os::00256D-0001"), "status_is_gateway_only") with data.tenants as {"acme": {"extra_publish": {"agent": ["#"]}}}
}

test_qos2_on_usp_topic_denied if {
	denied(object.union(req("publish", agent, "acme/usp/controller/self::ctrl"), {"qos": 2}), "qos2_on_usp_topic")
	denied(object.union(req("subscribe", agent, "acme/usp/agent/os::00256D-0001/#"), {"qos": 2}), "qos2_on_usp_topic")
	allowed(object.union(req("publish", agent, "acme/usp/controller/self::ctrl"), {"qos": 0}), "agent_to_controller_inbox")
}

test_qos2_allowed_outside_usp if {
	allowed(object.union(req("publish", agent, "acme/bulkdata/os::00256D-0001/wifi"), {"qos": 2}), "agent_own_bulkdata")
}

test_retain_on_usp_inbox_denied if {
	denied(object.union(req("publish", agent, "acme/usp/controller/self::ctrl"), {"retain": true}), "retain_on_usp_inbox")
	denied(object.union(req("publish", controller, "acme/usp/agent/os::00256D-0001/reply-to=acme%2Fusp%2Fcontroller%2Fself::ctrl"), {"retain": true}), "retain_on_usp_inbox")
}

test_retain_allowed_on_bulkdata if {
	allowed(object.union(req("publish", agent, "acme/bulkdata/os::00256D-0001"), {"retain": true}), "agent_own_bulkdata")
}

# --- agent ----------------------------------------------------------------------------------------

test_agent_subscribe_own_inbox_allowed if {
	allowed(req("subscribe", agent, "acme/usp/agent/os::00256D-0001"), "agent_own_inbox")
	allowed(req("subscribe", agent, "acme/usp/agent/os::00256D-0001/#"), "agent_own_inbox")
}

test_agent_subscribe_other_inbox_denied if {
	denied(req("subscribe", agent, "acme/usp/agent/os::00256D-0002"), "not_own_inbox")
	denied(req("subscribe", agent, "acme/usp/agent/+"), "not_own_inbox")
	denied(req("subscribe", agent, "acme/usp/agent/#"), "not_own_inbox")
}

test_agent_subscribe_elsewhere_denied if {
	denied(req("subscribe", agent, "acme/usp/agent/os::00256D-0001/+"), "agent_cannot_subscribe_here")
	denied(req("subscribe", agent, "acme/usp/controller/self::ctrl"), "agent_cannot_subscribe_here")
	denied(req("subscribe", agent, "acme/usp/status/#"), "agent_cannot_subscribe_here")
	denied(req("subscribe", agent, "acme/bulkdata/#"), "agent_cannot_subscribe_here")
	denied(req("subscribe", agent, "acme/#"), "agent_cannot_subscribe_here")
}

test_agent_publish_controller_inbox_allowed if {
	allowed(req("publish", agent, "acme/usp/controller/self::ctrl"), "agent_to_controller_inbox")
	allowed(req("publish", agent, "acme/usp/controller/other::ctrl"), "agent_to_controller_inbox")
	allowed(req("publish", agent, "acme/usp/controller/self::ctrl/reply-to=acme%2Fusp%2Fagent%2Fos::00256D-0001"), "agent_to_controller_inbox")
}

test_agent_publish_elsewhere_denied if {
	denied(req("publish", agent, "acme/usp/agent/os::00256D-0002"), "agent_cannot_publish_here")
	denied(req("publish", agent, "acme/usp/agent/os::00256D-0001"), "agent_cannot_publish_here")
	denied(req("publish", agent, "acme/usp/controller"), "agent_cannot_publish_here")
	denied(req("publish", agent, "acme/usp/controller/self::ctrl/extra"), "agent_cannot_publish_here")
	denied(req("publish", agent, "acme/other"), "agent_cannot_publish_here")
}

test_publish_bad_reply_to_denied if {
	denied(req("publish", agent, "acme/usp/controller/self::ctrl/reply-to="), "bad_reply_to")
	denied(req("publish", agent, "acme/usp/controller/self::ctrl/reply-to=acme/usp/agent/x"), "bad_reply_to")
}

test_agent_publish_own_bulkdata_allowed if {
	allowed(req("publish", agent, "acme/bulkdata/os::00256D-0001"), "agent_own_bulkdata")
	allowed(req("publish", agent, "acme/bulkdata/os::00256D-0001/Device.WiFi/report"), "agent_own_bulkdata")
}

test_agent_publish_other_bulkdata_denied if {
	denied(req("publish", agent, "acme/bulkdata/os::00256D-0002/x"), "not_own_bulkdata")
	denied(req("publish", agent, "acme/bulkdata/os::00256D-00011"), "not_own_bulkdata")
	denied(req("publish", agent, "acme/bulkdata"), "not_own_bulkdata")
}

test_agent_deliver_own_inbox_allowed if {
	allowed(req("deliver", agent, "acme/usp/agent/os::00256D-0001"), "agent_own_inbox")
	allowed(req("deliver", agent, "acme/usp/agent/os::00256D-0001/reply-to=acme%2Fusp%2Fcontroller%2Fself::ctrl"), "agent_own_inbox")
}

test_agent_deliver_elsewhere_denied if {
	denied(req("deliver", agent, "acme/usp/agent/os::00256D-0002"), "cannot_read_topic")
	denied(req("deliver", agent, "acme/usp/agent/os::00256D-00010"), "cannot_read_topic")
	denied(req("deliver", agent, "acme/bulkdata/os::00256D-0001"), "cannot_read_topic")
	denied(req("deliver", agent, "acme/usp/status/os::00256D-0001"), "cannot_read_topic")
}

# --- controller -----------------------------------------------------------------------------------

test_controller_publish_agent_inbox_allowed if {
	allowed(req("publish", controller, "acme/usp/agent/os::00256D-0001"), "controller_to_agent_inbox")
	allowed(req("publish", controller, "acme/usp/agent/os::00256D-0001/reply-to=acme%2Fusp%2Fcontroller%2Fself::ctrl"), "controller_to_agent_inbox")
}

test_controller_publish_elsewhere_denied if {
	denied(req("publish", controller, "acme/usp/controller/other::ctrl"), "controller_cannot_publish_here")
	denied(req("publish", controller, "acme/bulkdata/os::00256D-0001"), "controller_cannot_publish_here")
	denied(req("publish", controller, "acme/usp/agent/os::00256D-0001/sub"), "controller_cannot_publish_here")
}

test_controller_subscribe_own_inbox_allowed if {
	allowed(req("subscribe", controller, "acme/usp/controller/self::ctrl"), "controller_own_inbox")
	allowed(req("subscribe", controller, "acme/usp/controller/self::ctrl/#"), "controller_own_inbox")
}

test_controller_subscribe_other_inbox_denied if {
	denied(req("subscribe", controller, "acme/usp/controller/other::ctrl"), "not_own_inbox")
	denied(req("subscribe", controller, "acme/usp/controller/+"), "not_own_inbox")
}

test_controller_subscribe_bulkdata_allowed if {
	allowed(req("subscribe", controller, "acme/bulkdata/#"), "controller_bulkdata")
	allowed(req("subscribe", controller, "acme/bulkdata/+/wifi"), "controller_bulkdata")
	allowed(req("subscribe", controller, "acme/bulkdata/os::00256D-0001/#"), "controller_bulkdata")
}

test_controller_subscribe_status_allowed if {
	allowed(req("subscribe", controller, "acme/usp/status/#"), "controller_status")
	allowed(req("subscribe", controller, "acme/usp/status/+"), "controller_status")
	allowed(req("subscribe", controller, "acme/usp/status/os::00256D-0001"), "controller_status")
}

test_controller_subscribe_elsewhere_denied if {
	denied(req("subscribe", controller, "acme/usp/agent/os::00256D-0001"), "controller_cannot_subscribe_here")
	denied(req("subscribe", controller, "acme/usp/status/os::00256D-0001/x"), "controller_cannot_subscribe_here")
	denied(req("subscribe", controller, "acme/bulkdata"), "controller_cannot_subscribe_here")
	denied(req("subscribe", controller, "acme/#"), "controller_cannot_subscribe_here")
}

test_controller_deliver_allowed if {
	allowed(req("deliver", controller, "acme/usp/controller/self::ctrl/reply-to=acme%2Fusp%2Fagent%2Fos::00256D-0001"), "controller_own_inbox")
	allowed(req("deliver", controller, "acme/bulkdata/os::00256D-0001/wifi"), "controller_bulkdata")
	allowed(req("deliver", controller, "acme/usp/status/os::00256D-0001"), "controller_status")
}

test_controller_deliver_elsewhere_denied if {
	denied(req("deliver", controller, "acme/usp/controller/other::ctrl"), "cannot_read_topic")
	denied(req("deliver", controller, "acme/usp/agent/os::00256D-0001"), "cannot_read_topic")
}

# --- tenant extras (policy data) ------------------------------------------------------------------

extras := {"acme": {
	"extra_publish": {"agent": ["vendor/{principal}/events/#"], "controller": ["vendor/broadcast"]},
	"extra_subscribe": {"controller": ["vendor/+/events/#"], "agent": ["vendor/broadcast"]},
}}

test_extra_publish_allowed if {
	allowed(req("publish", agent, "acme/vendor/os::00256D-0001/events/boot"), "tenant_extra_publish") with data.tenants as extras
	allowed(req("publish", controller, "acme/vendor/broadcast"), "tenant_extra_publish") with data.tenants as extras
}

test_extra_publish_denied if {
	# {principal} is the publisher's own id only
	denied(req("publish", agent, "acme/vendor/os::00256D-0002/events/boot"), "agent_cannot_publish_here") with data.tenants as extras
	denied(req("publish", controller, "acme/vendor/broadcast/x"), "controller_cannot_publish_here") with data.tenants as extras

	# extras of one tenant do not leak into another
	denied(req("publish", object.union(agent, {"tenant": "other"}), "other/vendor/broadcast"), "agent_cannot_publish_here") with data.tenants as extras
}

test_extra_subscribe_allowed if {
	allowed(req("subscribe", controller, "acme/vendor/+/events/#"), "tenant_extra_subscribe") with data.tenants as extras
	allowed(req("subscribe", controller, "acme/vendor/os::00256D-0001/events/boot"), "tenant_extra_subscribe") with data.tenants as extras
	allowed(req("deliver", controller, "acme/vendor/os::00256D-0001/events"), "tenant_extra_subscribe") with data.tenants as extras
	allowed(req("subscribe", agent, "acme/vendor/broadcast"), "tenant_extra_subscribe") with data.tenants as extras
	allowed(req("deliver", agent, "acme/vendor/broadcast"), "tenant_extra_subscribe") with data.tenants as extras
}

test_extra_subscribe_denied if {
	# a wider filter than granted is refused
	denied(req("subscribe", controller, "acme/vendor/#"), "controller_cannot_subscribe_here") with data.tenants as extras
	denied(req("subscribe", agent, "acme/vendor/+"), "agent_cannot_subscribe_here") with data.tenants as extras
	denied(req("deliver", agent, "acme/vendor/other"), "cannot_read_topic") with data.tenants as extras
}

test_default_rule_wins_over_extra if {
	allowed(req("subscribe", controller, "acme/bulkdata/#"), "controller_bulkdata") with data.tenants as {"acme": {"extra_subscribe": {"controller": ["#"]}}}
}

test_extra_cannot_override_guards if {
	e := {"acme": {"extra_publish": {"agent": ["usp/#"]}}}
	denied(object.union(req("publish", agent, "acme/usp/agent/os::00256D-0002"), {"qos": 2}), "qos2_on_usp_topic") with data.tenants as e
	denied(object.union(req("publish", agent, "acme/usp/agent/os::00256D-0002"), {"retain": true}), "retain_on_usp_inbox") with data.tenants as e
}
