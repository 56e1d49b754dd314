#!/usr/bin/env bash
# Set up .venv and the offline Pulumi engine (both idempotent; the engine's first build takes ~30 minutes on 2 cores
# and is cached outside the repository), then run the whole test suite, end-to-end tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The bootstrap reports on stderr (its progress, the ERROR line naming component, step, reason and log; the engine
# summary); stdout carries nothing a test run needs.
status=0
bash tools/e2e/bootstrap.sh >/dev/null || status=$?
if ((status != 0)); then
  echo "test.sh: the offline engine bootstrap failed (exit $status): its ERROR line above names the component, the" \
    "step and the log; no test was run" >&2
  exit "$status"
fi
exec .venv/bin/python -m pytest "$@"
