#!/usr/bin/env bash
# Set up .venv and run the main job on the embedded default stack (lab): validate the stack config, compose the
# whole program offline, print its summary (layers, tenants, totals) and run the policy pack.
#   scripts/main.sh prod          check another stack
#   scripts/main.sh lab --plan    also print every resource in install order with its values
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
stack="${1:-lab}"
shift || true
exec .venv/bin/ncp check --stack "$stack" "$@"
