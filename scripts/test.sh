#!/usr/bin/env bash
# Set up .venv and the offline Pulumi engine (both idempotent; the engine's first build takes ~30 minutes on 2 cores
# and is cached outside the repository), then run the whole test suite, end-to-end tests included.
# With no arguments the suite runs in two parts: the tests that need no engine while the engine bootstrap is still
# building (on a cold machine the two overlap), then the tests marked `engine` once it is built. With arguments, pytest
# gets them as they are, after the bootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
# The engine bootstrap needs only the system python3 and go, not .venv: on a cold machine its Go builds (CPU) run
# while setup.sh downloads and installs the virtualenvs (network and disk). It reports on stderr (its progress, the
# ERROR line naming component, step, reason and log; the engine summary); stdout carries nothing a test run needs.
bash tools/e2e/bootstrap.sh >/dev/null &
bootstrap=$!
trap 'kill "$bootstrap" 2>/dev/null || true' EXIT
bash scripts/setup.sh

without_engine=0
if (($# == 0)); then
  echo "test.sh: part 1 of 2: the tests that need no engine, while the engine bootstrap runs" >&2
  # tests/conftest.py hides the engine in this part: a test that asks for it fails, naming the marker to add.
  NCP_TESTS_ENGINE_HIDDEN=1 .venv/bin/python -m pytest -m "not engine" || without_engine=$?
fi

status=0
wait "$bootstrap" || status=$?
trap - EXIT
if ((status != 0)); then
  echo "test.sh: the offline engine bootstrap failed (exit $status): its ERROR line above names the component, the" \
    "step and the log; no test that needs the engine was run" >&2
  exit "$status"
fi
if (($# > 0)); then
  exec .venv/bin/python -m pytest "$@"
fi

echo "test.sh: part 2 of 2: the tests marked engine" >&2
with_engine=0
.venv/bin/python -m pytest -m engine || with_engine=$?
echo "test.sh: exit codes: part 1 (no engine) $without_engine, part 2 (engine) $with_engine" >&2
if ((without_engine != 0)); then exit "$without_engine"; fi
exit "$with_engine"
