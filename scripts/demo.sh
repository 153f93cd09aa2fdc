#!/usr/bin/env bash
# Run dealdesk on this machine with demo data: Temporal dev server, worker, web.
set -euo pipefail
cd "$(dirname "$0")/.."
DEALDESK_SKIP_APT=1 bash scripts/bootstrap.sh
exec .venv/bin/dealdesk up --demo "$@"
