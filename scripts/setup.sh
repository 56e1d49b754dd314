#!/usr/bin/env bash
# Create .venv with the pinned requirements (idempotent; only the package registry is needed).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
# The manifest scanner checkov in its own venv: its pins would downgrade packages of requirements.txt.
python3 -m venv .venv-scanners
.venv-scanners/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-scanners.txt
