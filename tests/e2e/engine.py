"""Running the real Pulumi CLI against the e2e control plane."""
import subprocess
import time
from pathlib import Path

import pytest

TIMEOUT = 900


def stack_env(env: dict, backend: Path) -> dict:
    backend.mkdir(exist_ok=True)
    return {**env, "PULUMI_BACKEND_URL": f"file://{backend}", "PULUMI_CONFIG_PASSPHRASE": "ncp-e2e"}


def pulumi(project: Path, env: dict, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    started = time.monotonic()
    result = subprocess.run(["pulumi", *args, "--non-interactive"], cwd=project, env=env, capture_output=True,
                            text=True, timeout=TIMEOUT)
    print(f"pulumi {' '.join(args)}: exit {result.returncode} in {time.monotonic() - started:.1f}s")
    if result.returncode != expect:
        diagnostics = result.stdout[result.stdout.find("Diagnostics:"):] if "Diagnostics:" in result.stdout else ""
        pytest.fail(f"pulumi {' '.join(args)} exited {result.returncode}, expected {expect}\n"
                    f"{diagnostics[:8000] or result.stdout[-6000:]}\n{result.stderr[-4000:]}")
    return result
