#!/usr/bin/env bash
# Run dealdesk on this machine with demo data: Temporal dev server, worker, web.
# First installs what running dealdesk needs (system packages and the venvs; not the tests').
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh runtime
exec .venv/bin/dealdesk up --demo "$@"
