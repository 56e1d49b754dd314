#!/usr/bin/env bash
# Set up .venv and the offline Pulumi engine (both idempotent; the engine's first build takes ~17 minutes and
# is cached outside the repository), then run the whole test suite, end-to-end tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash e2e/bootstrap.sh >/dev/null
exec .venv/bin/python -m pytest "$@"
