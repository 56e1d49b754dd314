#!/usr/bin/env bash
# Create .venv with the project installed (editable, so `.venv/bin/ncp` runs this checkout) and every package at the
# version the lock names (constraints.txt); idempotent; only the package registry is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv and installing the project (first time: about 2 minutes, ~1.5 GB)" >&2
else
  echo "setup: checking .venv against constraints.txt (installed: seconds; a changed pin: up to 2 minutes)" >&2
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[ops,sizing,dev]"
# The policy pack's virtualenv (policy/PulumiPolicy.yaml: `virtualenv: venv`): without it `pulumi preview
# --policy-pack policy` waits at "Loading policy packs". .venv carries the pack's pins (tests/test_policy_pack.py).
if [[ ! -e policy/venv ]]; then
  ln -s ../.venv policy/venv
fi
# The manifest scanner checkov in its own venv: its pins would downgrade packages of the project's.
[[ -x .venv-scanners/bin/python ]] || echo "setup: creating .venv-scanners for checkov (first time only)" >&2
python3 -m venv .venv-scanners
.venv-scanners/bin/python -m pip install --quiet --disable-pip-version-check -r tools/venvs/scanners.txt
# The serving twin's Dynamo release in its own venv (tools/venvs/twin.txt says why): the two Dynamo wheels without
# their dependency list, then those dependencies pinned. First time: about 1-2 minutes, ~700 MB.
[[ -x .venv-twin/bin/python ]] || echo "setup: creating .venv-twin for the serving twin (first time only)" >&2
python3 -m venv .venv-twin
.venv-twin/bin/python -m pip install --quiet --disable-pip-version-check -r tools/venvs/twin.txt
.venv-twin/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r tools/venvs/twin-nodeps.txt
# Graphviz `dot` renders the release review's site picture (ncp report). Debian package; idempotent.
if ! command -v dot >/dev/null 2>&1; then
  echo "setup: installing graphviz (apt) for the release review picture" >&2
  if [[ $(id -u) -eq 0 ]]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
  "${apt_get[@]}" update -q >/dev/null && DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -q graphviz >/dev/null
fi
echo "setup: done in ${SECONDS}s" >&2
