#!/usr/bin/env bash
# Writes the env files docker/compose.yml reads secrets from (mode 0600, git-ignored), with fresh random
# values: gateway.env (admin token, PKI master key, Redis URL with its password), redis.env (the same
# Redis password), grafana.env (Grafana's admin password). Existing files are kept (FORCE=1 rewrites):
# the PKI master key must stay the same for the life of the cluster's data.
#   ./make-secrets.sh [DIR]     (default: this folder; compose reads them from ${SECRETS_DIR:-.})
set -euo pipefail
cd "${1:-$(dirname "${BASH_SOURCE[0]}")}"
umask 077
rand () { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
if [ -f gateway.env ] && [ "${FORCE:-0}" != 1 ]; then echo "$PWD/gateway.env exists; kept (FORCE=1 to replace)"; exit 0; fi
redis_password="$(rand 24)"
cat > gateway.env <<ENV
USPGATE_ADMIN_TOKEN=usa_$(rand 32)
USPGATE_PKI_MASTER_KEY=$(rand 32)
USPGATE_REDIS_URL=redis://:${redis_password}@redis:6379
ENV
printf 'REDIS_PASSWORD=%s\n' "$redis_password" > redis.env
printf 'GF_SECURITY_ADMIN_PASSWORD=%s\n' "$(rand 16)" > grafana.env
echo "wrote gateway.env, redis.env, grafana.env (0600) in $PWD; the admin token is in gateway.env"
