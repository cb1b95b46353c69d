#!/usr/bin/env bash
# System dependencies of the test suite: redis-server (Debian package) and the
# pinned OPA CLI (built with `go install`). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) || {
    echo "could not install redis-server (apt-get failed)" >&2; exit 1; }
fi
echo "redis-server: $(command -v redis-server)"
if [ -f .ci/install-opa.sh ]; then bash .ci/install-opa.sh; fi
