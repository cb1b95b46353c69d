#!/usr/bin/env bash
# Installs the pinned OPA CLI (used to compile policies/*.rego to wasm and to run `opa test`).
# Idempotent: if an `opa` on PATH, in $(go env GOPATH)/bin or in ~/go/bin already reports the pinned
# version, nothing is downloaded. The pin lives in ONE place: policies/OPA_VERSION
# (also read by policies/opa-cli.ts, so the build and the tests use the same binary).
# Prints the absolute path of the opa binary on the last line of stdout.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pinned="$(tr -d '[:space:]' < "$repo_root/policies/OPA_VERSION")"   # e.g. v1.22.2
want="${pinned#v}"                                                  # `opa version` prints 1.22.2

# Prints "Version: x.y.z" → x.y.z for the given binary, or nothing when it does not run.
opa_version_of() {
  "$1" version 2>/dev/null | awk -F': ' '/^Version:/ { print $2; exit }' || true
}

candidates=()
if command -v opa >/dev/null 2>&1; then candidates+=("$(command -v opa)"); fi
gobin=""
if command -v go >/dev/null 2>&1; then
  gobin="$(go env GOBIN)"
  [ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
  candidates+=("$gobin/opa")
fi
candidates+=("${HOME:-/root}/go/bin/opa")   # Go's default GOPATH, for shells without go on PATH

for c in "${candidates[@]}"; do
  if [ -x "$c" ] && [ "$(opa_version_of "$c")" = "$want" ]; then
    echo "opa $pinned already installed" >&2
    echo "$c"
    exit 0
  fi
done

if [ -z "$gobin" ]; then
  echo "install-opa: Go is required to install opa $pinned (go install github.com/open-policy-agent/opa@$pinned)" >&2
  exit 1
fi

echo "installing opa $pinned with go install (this compiles OPA; it takes a few minutes)..." >&2
go install "github.com/open-policy-agent/opa@$pinned"

got="$(opa_version_of "$gobin/opa")"
if [ "$got" != "$want" ]; then
  echo "install-opa: $gobin/opa reports version '${got:-<none>}', expected $want" >&2
  exit 1
fi
echo "opa $pinned installed" >&2
echo "$gobin/opa"
