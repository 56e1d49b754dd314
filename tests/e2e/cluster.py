"""The e2e control plane outside pytest: the engine environment, starting/stopping the local control plane and
installing the CRDs every e2e stack needs. The e2e fixtures and bench/real_engine.py share it."""
import os
import subprocess
from pathlib import Path

import yaml

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


class EngineMissing(RuntimeError):
    """The offline engine is not built (e2e/bootstrap.sh has not run)."""


def _exports(text: str) -> dict:
    env = {}
    for line in text.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip('"').replace("$PATH", os.environ.get("PATH", ""))
    return env


def engine_environment() -> dict:
    """os.environ plus the engine's PATH/PULUMI_HOME/offline switches from e2e/bootstrap.sh --print-env."""
    result = subprocess.run([str(E2E / "bootstrap.sh"), "--print-env"], capture_output=True, text=True)
    if result.returncode != 0:
        raise EngineMissing(f"the offline Pulumi engine is not built: run e2e/bootstrap.sh first\n{result.stderr}")
    return {**os.environ, **_exports(result.stdout)}


def start_control_plane(env: dict) -> tuple[KubeApi, dict]:
    """Start the control plane in env's NCP_E2E_STATE and install the CRDs; (api, env with KUBECONFIG)."""
    subprocess.run([str(E2E / "control-plane.sh"), "start"], env=env, check=True, timeout=300)
    kubeconfig = Path(env["NCP_E2E_STATE"]) / "kubeconfig"
    api = KubeApi(kubeconfig)
    for path, version in CRDS.items():
        crd = yaml.safe_load((UPSTREAM / path).read_text())
        api.apply_crd(without_descriptions(only_version(crd, version)))
    for path in OWN_CRDS:
        api.apply_crd(yaml.safe_load(path.read_text()))
    return api, {**env, "KUBECONFIG": str(kubeconfig)}


def stop_control_plane(env: dict) -> None:
    subprocess.run([str(E2E / "control-plane.sh"), "stop"], env=env, timeout=60)
