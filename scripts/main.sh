#!/usr/bin/env bash
# Set up .venv and run the main job on the embedded default stack (lab): validate the stack config and compose the
# whole program offline, printing the plan. Pass another stack name to check it instead: scripts/main.sh prod
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m offline.check --stack "${1:-lab}" --plan
