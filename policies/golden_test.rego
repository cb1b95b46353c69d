# Runs every case of policies/golden.json (loaded by `opa test policies/` as data.golden) through the
# Rego evaluator; the engine runs the same cases through the compiled wasm before activating a
# bundle, so both evaluators are held to one list.
package uspgate.authz_test

import rego.v1

import data.uspgate.authz

golden_failures contains msg if {
	some case in data.golden
	got := authz.decision with input as case.input
	not golden_matches(got, case.expect)
	msg := sprintf("%s: expected %v, got %v", [case.name, case.expect, got])
}

golden_matches(got, expect) if {
	got.allow == expect.allow
	not expect.reason
}

golden_matches(got, expect) if {
	got.allow == expect.allow
	got.reason == expect.reason
}

test_golden_cases_present if count(data.golden) >= 30

test_golden_cases_pass if {
	print(golden_failures)
	count(golden_failures) == 0
}
