#!/usr/bin/env bash
# Fuzzes a running admin API from its own OpenAPI document with schemathesis (PyPI; pinned and installed
# by .ci/install-deps.sh into .ci/bin/venv). Fails on any 5xx, any reply that breaks its documented schema,
# status code, content type or headers, any invalid request the API accepts, and any route that ignores auth.
#
#   .ci/fuzz-admin.sh <admin-url> <bearer-token>
#
# FUZZ_MAX_EXAMPLES (default 40 per operation) bounds the run (about 20 s for the whole API); FUZZ_SEED
# (default fixed) reproduces it. test/admin/fuzz.test.ts runs this against a fresh gateway under `npm test`.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
url="${1:?usage: .ci/fuzz-admin.sh <admin-url> <bearer-token>}"
token="${2:?usage: .ci/fuzz-admin.sh <admin-url> <bearer-token>}"

st="${SCHEMATHESIS:-$repo_root/.ci/bin/venv/bin/schemathesis}"
if [ ! -x "$st" ]; then
  echo "schemathesis is not installed (looked for $st): run 'bash .ci/install-deps.sh'" >&2
  exit 127
fi

# schemathesis writes its caches and reports into the working directory: keep them out of the repo.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

# An invalid request refused for its size (413, the documented body limit) is refused all the same:
# negative data may be large (an array generated in place of an integer), so 413 counts as a rejection.
# The security-event stream (Server-Sent Events) stays open for maxSeconds (default 300): fuzzed with
# maxSeconds=0 it answers the backlog and ends at once, so every other parameter, the auth and the
# headers are still fuzzed and no request hangs.
cat > schemathesis.toml <<'TOML'
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]

[[operations]]
include-path = "/v1/security-events/stream"
parameters = { "query.maxSeconds" = 0 }
TOML

# --workers 1: hypothesis' lambda-source introspection is not thread-safe on CPython 3.11
# ("AST constructor recursion depth mismatch" runtime errors with several workers).
status=0
"$st" --config-file "$work/schemathesis.toml" run "${url%/}/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance,negative_data_rejection,ignored_auth \
  --phases examples,coverage,fuzzing \
  --max-examples "${FUZZ_MAX_EXAMPLES:-40}" \
  --seed "${FUZZ_SEED:-20261125}" \
  --workers 1 \
  --generation-database none \
  --request-timeout 10 \
  --no-color \
  --output-truncate true || status=$?
exit "$status"
