# METADATA
# title: uspgate topic ACLs
# description: |
#   The server-side Access Control List that TR-369 requires of an MQTT server carrying USP
#   (R-MQTT.42: "support an Access Control List mechanism that can restrict the topics an
#   authenticated MQTT client can subscribe or publish to"), for the default USP topic layout of
#   DESIGN.md "Identity and namespaces". Compiled to wasm with entry point uspgate/authz/decision.
#
#   The gateway checks in code, before asking: the topic starts with "<tenant>/", no "$" topics,
#   sane lengths and characters, and the USP envelope. The decision depends only on the input and
#   on data (shipped in the same bundle), so the engine can cache it per
#   (revision, identity, action, topic, qos, retain).
package uspgate.authz

import rego.v1

actions := {"connect", "publish", "subscribe", "deliver"}

roles := {"agent", "controller"}

# Precedence: a guard denies whatever a grant says; then the first grant (sorted) allows; then a
# refusal explains why nothing granted. Every outcome carries one stable reason string.
default decision := {"allow": false, "reason": "no_rule"}

decision := {"allow": false, "reason": reason} if {
	reason := guard
} else := {"allow": true, "reason": reason} if {
	reason := grant
} else := {"allow": false, "reason": reason} if {
	reason := refusal
}

# --- identity and topic facts ----------------------------------------------------------------

tenant := input.client.tenant

role := input.client.role

principal := input.client.principal

tenant_prefix := concat("", [tenant, "/"])

# Per-tenant policy data (see policies/README.md); absent tenants get the defaults.
default tenant_config := {}

tenant_config := data.tenants[tenant]

levels := split(input.topic, "/")

# Topic (or filter) levels below "<tenant>/", the form extra_publish/extra_subscribe are written in.
relative_levels := array.slice(levels, 1, count(levels))

# The asking client's own inbox: "<tenant>/usp/<role>/<principal>".
own_inbox := concat("/", [tenant, "usp", role, principal])

usp_topic if levels[1] == "usp"

usp_inbox_topic if {
	levels[1] == "usp"
	levels[2] in {"agent", "controller"}
}

# [R-MQTT.24] An MQTT 3.1.1 sender appends "/reply-to=<its reply topic, / as %2F>" to the
# destination topic. The ACL applies to the destination, the part before the suffix; the reply-to
# target itself is checked in code (same tenant).
reply_to_at := indexof(input.topic, "/reply-to=")

base_topic := substring(input.topic, 0, reply_to_at) if {
	reply_to_at >= 0
} else := input.topic

# [R-MQTT.25] the receiver reads everything after "/reply-to=" as one escaped topic, so the suffix
# is one non-empty level.
reply_to_well_formed if reply_to_at < 0

reply_to_well_formed if {
	reply_to_at >= 0
	suffix := substring(input.topic, reply_to_at + count("/reply-to="), -1)
	suffix != ""
	not contains(suffix, "/")
}

# The USP inbox a PUBLISH goes to: {"kind": "agent"|"controller", "id": <endpoint id>}.
publish_inbox := {"kind": parts[2], "id": parts[3]} if {
	reply_to_well_formed
	parts := split(base_topic, "/")
	count(parts) == 4
	parts[1] == "usp"
	parts[2] in {"agent", "controller"}
	parts[3] != ""
}

# --- guards: deny regardless of any grant, in this order ---------------------------------------

# Facts tested with `not` are named rules: OPA does not evaluate `not f(x)` to true when x is
# undefined (a missing input field), but `not rule` is true when the rule is undefined.
known_action if input.action in actions

known_role if role in roles

identity_present if {
	is_string(tenant)
	tenant != ""
	is_string(principal)
	principal != ""
}

topic_present if is_string(input.topic)

topic_in_tenant if startswith(input.topic, tenant_prefix)

guard := "unknown_action" if {
	not known_action
} else := "role_not_allowed" if {
	not known_role
} else := "missing_identity" if {
	not identity_present
} else := "tenant_disabled" if {
	# A disabled tenant is cut off entirely: no CONNECT, and no traffic from sessions still open.
	tenant_config.disabled == true
} else := "missing_topic" if {
	input.action != "connect"
	not topic_present
} else := "topic_outside_tenant" if {
	# Defence in depth: the gateway already refuses these in code.
	input.action != "connect"
	not topic_in_tenant
} else := "status_is_gateway_only" if {
	# Presence is published by the gateway itself; a client writing there could fake it.
	input.action == "publish"
	levels[1] == "usp"
	levels[2] == "status"
} else := "qos2_on_usp_topic" if {
	# [R-MQTT.20] [R-MQTT.46] USP needs QoS 0 and 1 only; QoS 2 adds a 4-packet flow per Record.
	input.action in {"publish", "subscribe"}
	input.qos == 2
	usp_topic
} else := "retain_on_usp_inbox" if {
	# A retained USP Record would be replayed to the next subscriber of the inbox, out of its
	# request/response context.
	input.action == "publish"
	input.retain == true
	usp_inbox_topic
}

# --- grants -----------------------------------------------------------------------------------

# Several grants may match (a default rule and a tenant extra); the first in sort order is reported
# so the outcome is deterministic ("agent_*" / "controller_*" sort before "tenant_extra_*").
grant := sort(grants)[0] if count(grants) > 0

grants contains "connect_allowed" if input.action == "connect"

# Agent: subscribe to its own inbox, or to "<inbox>/#" as an MQTT 3.1.1 Agent does to receive
# replies addressed to "<inbox>/reply-to=..." (DESIGN.md).
grants contains "agent_own_inbox" if {
	role == "agent"
	input.action == "subscribe"
	input.topic in {own_inbox, concat("", [own_inbox, "/#"])}
}

grants contains "agent_own_inbox" if {
	role == "agent"
	input.action == "deliver"
	at_or_below(input.topic, own_inbox)
}

# Agent: send USP Records (Notify, responses) to any Controller of its tenant.
grants contains "agent_to_controller_inbox" if {
	role == "agent"
	input.action == "publish"
	publish_inbox.kind == "controller"
}

# Agent: Bulk Data / telemetry under its own endpoint id only.
grants contains "agent_own_bulkdata" if {
	role == "agent"
	input.action == "publish"
	at_or_below(input.topic, concat("/", [tenant, "bulkdata", principal]))
}

# Controller: send USP Records to any Agent of its tenant.
grants contains "controller_to_agent_inbox" if {
	role == "controller"
	input.action == "publish"
	publish_inbox.kind == "agent"
}

grants contains "controller_own_inbox" if {
	role == "controller"
	input.action == "subscribe"
	input.topic in {own_inbox, concat("", [own_inbox, "/#"])}
}

grants contains "controller_own_inbox" if {
	role == "controller"
	input.action == "deliver"
	at_or_below(input.topic, own_inbox)
}

# Controller: read all telemetry of its tenant ("<t>/bulkdata/#" or any filter below it).
grants contains "controller_bulkdata" if {
	role == "controller"
	input.action in {"subscribe", "deliver"}
	levels[1] == "bulkdata"
	count(levels) >= 3
}

# Controller: read presence ("<t>/usp/status/#", "<t>/usp/status/+" or one Agent's status).
grants contains "controller_status" if {
	role == "controller"
	input.action in {"subscribe", "deliver"}
	count(levels) == 4
	levels[1] == "usp"
	levels[2] == "status"
	levels[3] != ""
}

# Tenant extras (policy data): MQTT filters relative to "<tenant>/", per role.
grants contains "tenant_extra_publish" if {
	input.action == "publish"
	some filter in tenant_config.extra_publish[role]
	filter_covers(split(filter, "/"), relative_levels)
}

grants contains "tenant_extra_subscribe" if {
	input.action in {"subscribe", "deliver"}
	some filter in tenant_config.extra_subscribe[role]
	filter_covers(split(filter, "/"), relative_levels)
}

# --- refusals: why nothing was granted ----------------------------------------------------------

refusal := "bad_reply_to" if {
	input.action == "publish"
	reply_to_at >= 0
	not reply_to_well_formed
} else := "not_own_bulkdata" if {
	input.action == "publish"
	role == "agent"
	levels[1] == "bulkdata"
} else := "agent_cannot_publish_here" if {
	input.action == "publish"
	role == "agent"
} else := "controller_cannot_publish_here" if {
	input.action == "publish"
	role == "controller"
} else := "not_own_inbox" if {
	# Another endpoint's inbox of the same kind, or a wildcard over several.
	input.action == "subscribe"
	levels[1] == "usp"
	levels[2] == role
	levels[3] != principal
} else := "agent_cannot_subscribe_here" if {
	input.action == "subscribe"
	role == "agent"
} else := "controller_cannot_subscribe_here" if {
	input.action == "subscribe"
	role == "controller"
} else := "cannot_read_topic" if {
	input.action == "deliver"
}

# topic == base, or topic is below base ("base/...").
at_or_below(topic, base) if topic == base

at_or_below(topic, base) if startswith(topic, concat("", [base, "/"]))
