"""Fixtures of the real-engine e2e: the engine environment, a local control plane with the real upstream CRDs and a
simulated node pool (scheduler + KWOK), and a throwaway copy of the project."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.crds import UPSTREAM, install
from tests.e2e.kube_api import KubeApi

ROOT = Path(__file__).resolve().parents[2]
E2E = ROOT / "e2e"


def _exports(text: str) -> dict:
    env = {}
    for line in text.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip('"').replace("$PATH", os.environ.get("PATH", ""))
    return env


@pytest.fixture(scope="module")
def engine_env() -> dict:
    result = subprocess.run([str(E2E / "bootstrap.sh"), "--print-env"], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"the offline Pulumi engine is not built: run e2e/bootstrap.sh first\n{result.stderr}")
    return {**os.environ, **_exports(result.stdout)}


@pytest.fixture(scope="module")
def cluster(engine_env, tmp_path_factory):
    """(api, env): a fresh control plane per test module (ports from NCP_E2E_* in the environment)."""
    if not UPSTREAM.is_dir():
        pytest.skip(f"{UPSTREAM} is absent: the e2e installs the real upstream CRDs from there")
    env = {**engine_env, "NCP_E2E_STATE": str(tmp_path_factory.mktemp("control-plane"))}
    try:
        subprocess.run([str(E2E / "control-plane.sh"), "start"], env=env, check=True, timeout=300)
        api = KubeApi(Path(env["NCP_E2E_STATE"]) / "kubeconfig")
        install(api)
        yield api, {**env, "KUBECONFIG": str(Path(env["NCP_E2E_STATE"]) / "kubeconfig")}
    finally:
        subprocess.run([str(E2E / "control-plane.sh"), "stop"], env=env, timeout=60)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project (Pulumi writes the stack's encryption salt into its stack file), sharing .venv."""
    copy = tmp_path_factory.mktemp("project") / "ncp-inference"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache",
                                                              "venv", ".state"))
    (copy / ".venv").symlink_to(ROOT / ".venv")
    (copy / "policy" / "venv").symlink_to(ROOT / ".venv")
    return copy
