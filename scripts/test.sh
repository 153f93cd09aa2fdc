#!/usr/bin/env bash
# Install what the tests need (system packages too), then run the whole suite:
# lint, types, and pytest against the real Temporal dev server, SQLite and PostgreSQL,
# and headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
.venv/bin/ruff check .
.venv/bin/mypy
bash scripts/check-compose.sh
exec .venv/bin/python -m pytest "$@"
