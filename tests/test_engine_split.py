"""scripts/test.sh runs the suite in two parts: `-m "not engine"` with the engine hidden while tools/e2e/bootstrap.sh
builds it, then `-m engine`. These tests hold the guard that keeps the split honest: an unmarked test that asks for
the engine fails in the first part (it would pass on a warm cache and skip on a cold one), and tests/e2e/ is marked."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ENGINE_HIDDEN_ENV

ROOT = Path(__file__).resolve().parents[1]
PROBE = "tests/fixtures/engine_split/probe.py"


def _pytest(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if key not in (ENGINE_HIDDEN_ENV, "NCP_ENGINE_CACHE")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=300)


def test_an_unmarked_test_asking_for_the_engine_fails_while_it_is_hidden():
    run = _pytest(PROBE, **{ENGINE_HIDDEN_ENV: "1"})
    assert run.returncode == 1, run.stdout + run.stderr
    assert "needs the offline engine" in run.stdout and "pytestmark = pytest.mark.engine" in run.stdout


def test_the_same_test_only_skips_when_the_engine_is_simply_absent(tmp_path):
    run = _pytest(PROBE, NCP_ENGINE_CACHE=str(tmp_path / "no-engine"))
    assert run.returncode == 0 and "1 skipped" in run.stdout, run.stdout + run.stderr


def test_every_e2e_test_is_marked_engine():
    run = _pytest("tests/e2e", "-m", "not engine", "--collect-only")
    assert "no tests collected" in run.stdout or " deselected" in run.stdout, run.stdout + run.stderr
    assert "::" not in run.stdout, run.stdout


@pytest.mark.parametrize("part", ["not engine", "engine"])
def test_test_sh_runs_both_parts_without_arguments(part):
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert f'-m "{part}"' in script or f"-m {part}" in script
