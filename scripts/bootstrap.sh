#!/usr/bin/env bash
# Installs what dealdesk needs on a fresh Debian machine (as root) and the Python venv.
# Idempotent: quick when everything is there already.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# documents/: pdftotext and pdfsig, certutil (an NSS db for pdfsig), SoftHSM for HSM tests,
# LibreOffice Writer headless with Debian's python3-uno (for unoserver) and Word-metric fonts.
command -v pdftotext >/dev/null 2>&1 || need_apt+=(poppler-utils)
command -v certutil >/dev/null 2>&1 || need_apt+=(libnss3-tools)
[ -e /usr/lib/softhsm/libsofthsm2.so ] || need_apt+=(softhsm2)
[ -e /usr/lib/libreoffice/program/libswlo.so ] || need_apt+=(libreoffice-writer-nogui)
[ -e /usr/lib/python3/dist-packages/uno.py ] || need_apt+=(python3-uno)
/usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
[ -e /usr/share/fonts/truetype/crosextra/Carlito-Regular.ttf ] || need_apt+=(fonts-crosextra-carlito)
[ -e /usr/share/fonts/truetype/crosextra/Caladea-Regular.ttf ] || need_apt+=(fonts-crosextra-caladea)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
if [ ${#need_apt[@]} -gt 0 ] && [ "${DEALDESK_SKIP_APT:-}" != 1 ]; then
  echo "bootstrap: installing ${need_apt[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.dealdesk-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing Python packages"
  .venv/bin/pip install -q --disable-pip-version-check -e ".[dev]"
  touch "$stamp"
fi

# unoserver (the warm LibreOffice of documents/convert.py) needs `uno`, which only Debian's
# /usr/bin/python3 has: its own venv with the system site-packages, pinned to the client's
# version in .venv so both speak the same XML-RPC API.
uno_version=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("unoserver"))')
if ! .venv-uno/bin/python -c "import sys, uno, importlib.metadata as m
sys.exit(m.version('unoserver') != '$uno_version')" >/dev/null 2>&1; then
  echo "bootstrap: installing unoserver $uno_version into .venv-uno"
  /usr/bin/python3 -m venv --system-site-packages .venv-uno
  .venv-uno/bin/pip install -q --disable-pip-version-check "unoserver==$uno_version"
fi
