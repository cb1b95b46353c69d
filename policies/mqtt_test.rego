# Unit tests for filter_covers (MQTT 5.0 section 4.7 wildcard semantics). Run: opa test policies/
package uspgate.authz_test

import rego.v1

import data.uspgate.authz

covers(granted, requested) if authz.filter_covers(split(granted, "/"), split(requested, "/"))

test_literal_filter if {
	covers("a/b", "a/b")
	not covers("a/b", "a/c")
	not covers("a/b", "a/b/c")
	not covers("a/b", "a")
}

test_single_level_wildcard if {
	covers("a/+/c", "a/x/c")
	covers("a/+/c", "a/+/c")
	not covers("a/+/c", "a/x/y/c")
	not covers("a/+", "a/#")
	not covers("a/x", "a/+")
}

test_multi_level_wildcard if {
	covers("#", "a")
	covers("#", "a/b/c")
	covers("a/#", "a")
	covers("a/#", "a/b/c")
	covers("a/#", "a/+/c")
	covers("a/#", "a/#")
	not covers("a/#", "b/c")
	not covers("a/b/#", "a/#")
}

test_principal_placeholder if {
	covers("v/{principal}/#", "v/os::1/x") with input.client.principal as "os::1"
	not covers("v/{principal}/#", "v/os::2/x") with input.client.principal as "os::1"
	not covers("v/{principal}", "v/+") with input.client.principal as "os::1"
}
