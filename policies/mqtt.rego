# MQTT topic filter coverage, for the tenant extras of policy data.
#
# filter_covers(granted, requested) holds when every topic matched by the requested filter (or the
# requested concrete topic) is also matched by the granted filter. Both are arrays of levels.
# Wildcards follow MQTT 5.0 section 4.7: "+" matches exactly one level, "#" (last level only)
# matches the parent level and any number of levels below. A granted level "{principal}" matches
# only the asking client's own principal (Endpoint ID), so one tenant extra can say "each Agent's
# own sub-tree".
package uspgate.authz

import rego.v1

# Granted filter ends with "#": the levels before it must cover the same leading levels.
filter_covers(granted, requested) if {
	n := count(granted) - 1
	granted[n] == "#"
	count(requested) >= n
	every i, g in array.slice(granted, 0, n) {
		level_covers(g, requested[i])
	}
}

# Otherwise: same depth, level by level.
filter_covers(granted, requested) if {
	granted[count(granted) - 1] != "#"
	count(granted) == count(requested)
	every i, g in granted {
		level_covers(g, requested[i])
	}
}

# "+" covers one concrete level or "+", never a "#" (which spans several levels).
level_covers("+", requested) if requested != "#"

level_covers("{principal}", requested) if requested == input.client.principal

level_covers(granted, requested) if {
	not granted in {"+", "#", "{principal}"}
	granted == requested
}
