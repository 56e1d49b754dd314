"""Fixtures of the real-engine e2e: the engine environment, a local control plane with the real upstream CRDs and a
simulated node pool (scheduler + KWOK), and a throwaway copy of the project."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from plan.catalog import integration_points
from tests.e2e.kube_api import KubeApi, only_version, without_descriptions

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ROOT.parent / "shared" / "upstream"
E2E = ROOT / "e2e"
# Real CRDs for every custom resource the e2e stacks create (upstream copies, read in place), with the version the
# program writes. The DGD copy is Dynamo 1.5.0's (v1alpha1 + v1beta1 behind the operator's conversion webhook); our
# pinned 1.2.1 has only v1alpha1, so the e2e installs it that way.
CRDS = {
    "kai-scheduler/scheduling.run.ai_queues.yaml": "v2",
    "prometheus-operator/monitoring.coreos.com_prometheusrules.yaml": "v1",
    "prometheus-operator/monitoring.coreos.com_podmonitors.yaml": "v1",
    "dynamo/nvidia.com_dynamographdeployments.yaml": "v1alpha1",
    "network-operator/mellanox.com_nicclusterpolicies.yaml": "v1alpha1",
    "network-operator/005-nv-ipam.nvidia.com_ippools.yaml": "v1alpha1",
    "gateway-api-inference-extension/inference.networking.k8s.io_inferencepools.yaml": "v1",
}
# CRDs with no upstream copy in shared/upstream: our own stand-ins.
OWN_CRDS = sorted((Path(__file__).parent / "crds").glob("*.yaml"))


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
    # Pods naming KAI's scheduler are placed by the real kube-scheduler's second profile (KAI is not running).
    env = {**engine_env, "NCP_E2E_STATE": str(tmp_path_factory.mktemp("control-plane")),
           "NCP_E2E_SCHEDULER_NAMES": integration_points().kai.scheduler_name}
    try:
        subprocess.run([str(E2E / "control-plane.sh"), "start"], env=env, check=True, timeout=300)
        api = KubeApi(Path(env["NCP_E2E_STATE"]) / "kubeconfig")
        for path, version in CRDS.items():
            crd = yaml.safe_load((UPSTREAM / path).read_text())
            api.apply_crd(without_descriptions(only_version(crd, version)))
        for path in OWN_CRDS:
            api.apply_crd(yaml.safe_load(path.read_text()))
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
