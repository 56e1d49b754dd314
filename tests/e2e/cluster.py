"""The e2e control plane outside pytest: the engine environment, starting/stopping the local control plane and
installing the CRDs every e2e stack needs (tests.e2e.crds, the operator guide's documented step). The e2e fixtures and
tools/bench/real_engine.py share it."""
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.crds import CRDS, UPSTREAM, install
from ncp.plan.local_overlay import OVERLAY_ENV
from tests.e2e.kube_api import KubeApi

__all__ = ["CRDS", "E2E", "UPSTREAM", "EngineMissing", "engine_environment", "own_control_plane",
           "start_control_plane", "stop_control_plane"]

ROOT = Path(__file__).resolve().parents[2]
E2E = ROOT / "tools" / "e2e"


class EngineMissing(RuntimeError):
    """The offline engine is not built (tools/e2e/bootstrap.sh has not run)."""


def _exports(text: str) -> dict:
    env = {}
    for line in text.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip('"').replace("$PATH", os.environ.get("PATH", ""))
    return env


def engine_environment() -> dict:
    """os.environ plus the engine's PATH/PULUMI_HOME/offline switches from tools/e2e/bootstrap.sh --print-env."""
    result = subprocess.run([str(E2E / "bootstrap.sh"), "--print-env"], capture_output=True, text=True)
    if result.returncode != 0:
        raise EngineMissing(f"the offline Pulumi engine is not built: run tools/e2e/bootstrap.sh\n{result.stderr}")
    return {**os.environ, **_exports(result.stdout)}


def start_control_plane(env: dict) -> tuple[KubeApi, dict]:
    """Start the control plane in env's NCP_E2E_STATE and install the CRDs; (api, env with KUBECONFIG)."""
    subprocess.run([str(E2E / "control-plane.sh"), "start"], env=env, check=True, timeout=300)
    kubeconfig = Path(env["NCP_E2E_STATE"]) / "kubeconfig"
    api = KubeApi(kubeconfig)
    install(api, say=lambda _: None)
    return api, {**env, "KUBECONFIG": str(kubeconfig), OVERLAY_ENV: str(E2E / "local-control-plane.yaml")}


def stop_control_plane(env: dict) -> None:
    subprocess.run([str(E2E / "control-plane.sh"), "stop"], env=env, timeout=60)


@contextmanager
def own_control_plane(state: Path, ports: dict[str, str], **extra_env: str) -> Iterator[dict]:
    """A control plane of the test module's own, on `ports` (each overridable by its NCP_E2E_* variable), with no
    CRDs; yields its environment (NCP_E2E_STATE holds its kubeconfig) and stops it after. Skips where the engine is
    not built."""
    env = {**os.environ, **{key: os.environ.get(key, value) for key, value in ports.items()},
           "NCP_E2E_STATE": str(state), **extra_env}
    started = subprocess.run(["bash", str(E2E / "control-plane.sh"), "start"], env=env, capture_output=True,
                             text=True, timeout=300)
    if started.returncode != 0:
        if any(reason in started.stderr for reason in ("not built", "not bootstrapped", "missing")):
            pytest.skip(f"the control plane is not built: run tools/e2e/bootstrap.sh\n{started.stderr[-500:]}")
        pytest.fail(f"control plane did not start:\n{started.stderr[-3000:]}")
    try:
        yield env
    finally:
        stop_control_plane(env)
