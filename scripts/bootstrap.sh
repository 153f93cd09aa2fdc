#!/usr/bin/env bash
# Installs what dealdesk needs on a fresh Debian machine (as root) and the Python venvs.
#   scripts/bootstrap.sh runtime   what running dealdesk needs (scripts/demo.sh)
#   scripts/bootstrap.sh [test]    that, and what only the tests need (scripts/test.sh)
# Idempotent: quick when everything is there already. dealdesk/tools.py names the program or
# file each package provides, and tests/test_tools.py holds the two lists below to it.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-test}
case "$mode" in
  runtime|test) ;;
  *) echo "usage: $0 [runtime|test]" >&2; exit 2 ;;
esac

# Running dealdesk: poppler (anchors, signing-page images), LibreOffice Writer headless with
# Debian's python3-uno (the warm converter, unoserver) and python3-venv (its venv), fonts with
# Word's metrics (Calibri, Cambria; Times New Roman, Arial, Courier New) and DejaVu for names
# in any script. The Dockerfile installs the same list.
runtime_packages=(
  poppler-utils
  libreoffice-writer-nogui
  python3-uno
  python3-venv
  fonts-crosextra-carlito
  fonts-crosextra-caladea
  fonts-liberation2
  fonts-dejavu-core
)
# Only the tests: Chromium (browser tests), PostgreSQL, certutil (an NSS db for pdfsig),
# openssl (timestamp checks), SoftHSM (HSM tests), unshare (an evidence bundle checked with
# the network off).
test_packages=(
  chromium
  postgresql
  libnss3-tools
  openssl
  softhsm2
  util-linux
)

wanted=("${runtime_packages[@]}")
[ "$mode" = test ] && wanted+=("${test_packages[@]}")
# One dpkg query for all of them: a package it doesn't list, or lists as not fully
# installed, is missing.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${wanted[@]}" 2>/dev/null \
  | awk '$2 == "installed" { print $1 }' || true)
need_apt=()
for pkg in "${wanted[@]}"; do
  grep -qx "$pkg" <<<"$installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing ${need_apt[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    # dealdesk still starts and names each missing tool; say how to get them.
    echo "bootstrap: missing ${need_apt[*]}; as root run:" \
         "apt-get install -y --no-install-recommends ${need_apt[*]}" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# The demo needs dealdesk and its dependencies; the tests also the dev extras (pytest, ruff,
# mypy, playwright…). A stamp per set: a later test run still adds the extras.
extras=""
[ "$mode" = test ] && extras="[dev]"
stamp=.venv/.dealdesk-installed-$mode
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing Python packages ($mode)"
  .venv/bin/pip install -q --disable-pip-version-check -e ".$extras"
  touch "$stamp"
fi

# unoserver (the warm LibreOffice of documents/convert.py) needs `uno`, which only Debian's
# /usr/bin/python3 has: its own venv with the system site-packages, pinned to the client's
# version in .venv so both speak the same XML-RPC API. Without python3-uno, LibreOffice
# converts cold (slower) and dealdesk says so at start-up.
if [ -e /usr/lib/python3/dist-packages/uno.py ]; then
  uno_version=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("unoserver"))')
  if ! .venv-uno/bin/python -c "import sys, uno, importlib.metadata as m
sys.exit(m.version('unoserver') != '$uno_version')" >/dev/null 2>&1; then
    echo "bootstrap: installing unoserver $uno_version into .venv-uno"
    /usr/bin/python3 -m venv --system-site-packages .venv-uno
    .venv-uno/bin/pip install -q --disable-pip-version-check "unoserver==$uno_version"
  fi
fi
