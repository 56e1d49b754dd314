"""Where the binaries tools/e2e/bootstrap.sh builds from the Go module proxy (promtool, the Prometheus server, ...) are:
the engine cache's bin dir, or an explicit path in an environment variable (e.g. while the rest of the engine is still
building)."""
import os
import subprocess
from pathlib import Path
from typing import Optional

BOOTSTRAP = Path(__file__).resolve().parents[1] / "tools" / "e2e" / "bootstrap.sh"


def find_engine_binary(name: str, override_env: str) -> tuple[Optional[Path], str]:
    """The binary `name`, or None and the reason it is not there (with the command that builds it)."""
    override = os.environ.get(override_env)
    if override:
        path = Path(override)
        return (path, "") if os.access(path, os.X_OK) else (None, f"{override_env}={override} is not executable")
    result = subprocess.run(["bash", str(BOOTSTRAP), "--print-bin"], capture_output=True, text=True)
    if result.returncode != 0:
        return None, f"the offline engine is not bootstrapped (run tools/e2e/bootstrap.sh): {result.stderr.strip()}"
    path = Path(result.stdout.strip()) / name
    if not os.access(path, os.X_OK):
        return None, f"{path} is missing: tools/e2e/bootstrap.sh builds it with the engine (`--only {name}` alone)"
    return path, ""
