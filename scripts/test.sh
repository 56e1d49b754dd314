#!/usr/bin/env bash
# Set up .venv and the offline Pulumi engine (both idempotent; the engine's first build takes ~30 minutes on 2 cores
# and is cached outside the repository), then run the whole test suite, end-to-end tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
# The engine bootstrap needs only the system python3 and go, not .venv: on a cold machine its Go builds (CPU) run
# while setup.sh downloads and installs the virtualenvs (network and disk). It reports on stderr (its progress, the
# ERROR line naming component, step, reason and log; the engine summary); stdout carries nothing a test run needs.
bash tools/e2e/bootstrap.sh >/dev/null &
bootstrap=$!
trap 'kill "$bootstrap" 2>/dev/null || true' EXIT
bash scripts/setup.sh
status=0
wait "$bootstrap" || status=$?
trap - EXIT
if ((status != 0)); then
  echo "test.sh: the offline engine bootstrap failed (exit $status): its ERROR line above names the component, the" \
    "step and the log; no test was run" >&2
  exit "$status"
fi
exec .venv/bin/python -m pytest "$@"
