"""The real Pulumi engine against a local kube-apiserver: preview, up, a no-change preview, checks through the API
server, the policy pack blocking a violating config, and a destroy that leaves nothing behind.

Needs the engine built by e2e/bootstrap.sh (scripts/test.sh runs it) and the upstream CRDs in ../shared/upstream."""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.kube_api import KubeApi, only_version, without_descriptions

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ROOT.parent / "shared" / "upstream"
E2E = ROOT / "e2e"
STACK = "e2e"
# Real CRDs for every custom resource the e2e stack creates (upstream copies, read in place), with the version the
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
TIMEOUT = 900


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
    if not UPSTREAM.is_dir():
        pytest.skip(f"{UPSTREAM} is absent: the e2e installs the real upstream CRDs from there")
    env = {**engine_env, "NCP_E2E_STATE": str(tmp_path_factory.mktemp("control-plane"))}
    subprocess.run([str(E2E / "control-plane.sh"), "start"], env=env, check=True, timeout=300)
    try:
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
    """A copy of the project (Pulumi writes the stack's encryption salt into Pulumi.e2e.yaml), sharing .venv."""
    copy = tmp_path_factory.mktemp("project") / "ncp-inference"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache",
                                                              "venv", ".state"))
    (copy / ".venv").symlink_to(ROOT / ".venv")
    (copy / "policy" / "venv").symlink_to(ROOT / ".venv")
    return copy


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


def test_engine_lifecycle(cluster, project, tmp_path):
    api, env = cluster
    env = {**env, "PULUMI_BACKEND_URL": f"file://{tmp_path / 'backend'}", "PULUMI_CONFIG_PASSPHRASE": "ncp-e2e"}
    (tmp_path / "backend").mkdir()
    pulumi(project, env, "stack", "init", STACK)

    preview = pulumi(project, env, "preview")
    assert "kubernetes:helm.sh/v3:Release" in preview.stdout and "to create" in preview.stdout
    pulumi(project, env, "up", "--yes", "--skip-preview")
    pulumi(project, env, "preview", "--expect-no-changes")

    # Through the API server: what the program promised exists, with the fields that matter.
    namespace = api.get("/api/v1/namespaces/tenant-dev")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    quota = api.get("/api/v1/namespaces/tenant-dev/resourcequotas/tenant-quota")
    assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "8"
    deny = api.get("/apis/networking.k8s.io/v1/namespaces/tenant-dev/networkpolicies/default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    queue = api.get("/apis/scheduling.run.ai/v2/queues/tenant-dev")
    assert queue["spec"]["parentQueue"] == "ncp-root"
    assert queue["spec"]["resources"]["gpu"]["quota"] == 8
    graph = api.get("/apis/nvidia.com/v1alpha1/namespaces/tenant-dev/dynamographdeployments/chat-dense")
    worker = graph["spec"]["services"]["TRTLLMWorker"]
    assert (worker["replicas"], worker["resources"]["limits"]["gpu"]) == (2, "4"), "the sizing file's layout"
    assert graph["metadata"]["annotations"]["nvidia.com/kai-scheduler-queue"] == "tenant-dev"
    pool = api.get("/apis/inference.networking.k8s.io/v1/namespaces/tenant-dev/inferencepools/chat-dense")
    assert pool["spec"]["targetPorts"] == [{"number": 8000}]
    assert api.get("/apis/monitoring.coreos.com/v1/namespaces/tenant-dev/podmonitors/chat-dense")
    assert api.get("/apis/batch/v1/namespaces/tenant-dev/jobs/chat-dense-aiperf")["spec"]["suspend"] is True
    assert api.get("/apis/apps/v1/namespaces/dynamo-system/deployments/modelexpress")
    policy = api.get("/apis/mellanox.com/v1alpha1/nicclusterpolicies/nic-cluster-policy")
    assert "rdmaSharedDevicePlugin" in policy["spec"] and "nvIpam" in policy["spec"]
    pool0 = api.get("/apis/nv-ipam.nvidia.com/v1alpha1/namespaces/nvidia-network-operator/ippools/rail-0")
    assert pool0["spec"]["subnet"] == "10.210.0.0/24"
    assert api.get("/apis/k8s.cni.cncf.io/v1/namespaces/nvidia-network-operator/network-attachment-definitions/rail-1")
    rendered = api.get("/api/v1/namespaces/nvsentinel/configmaps/nvsentinel-rendered-values")
    values = yaml.safe_load(rendered["data"]["values.yaml"])
    assert values["global"]["dryRun"] is True
    assert values["mongodb-store"]["mongodb"]["auth"]["existingSecret"] == "nvsentinel-datastore-external"
    gpu_values = yaml.safe_load(api.get("/api/v1/namespaces/gpu-operator/configmaps/gpu-operator-rendered-values")[
        "data"]["values.yaml"])
    assert gpu_values["driver"]["rdma"] == {"enabled": True, "useHostMofed": True}
    record = api.get("/api/v1/namespaces/ncp-system/configmaps/ncp-baseline-record")
    assert yaml.safe_load(record["data"]["hardwareProfile"])["name"] == "hgx-h200"

    # The policy pack, through the CLI, blocks a deliberately violating config under the prod pack config.
    pulumi(project, env, "config", "set", "--path", "ncp-inference:components.serving.validation.suiteImage",
           "docker.io/library/busybox:latest")
    blocked = pulumi(project, env, "preview", "--policy-pack", "policy", "--policy-pack-config",
                     "policy/config/prod.json", expect=1)
    output = blocked.stdout + blocked.stderr
    assert "image-references" in output
    assert "uses the mutable tag latest" in output
    assert "not from an allowlisted registry" in output
    assert "must be pinned by digest" in output, "the e2e serving image is pinned by tag, not digest"
    assert "mandatory" in output

    pulumi(project, env, "destroy", "--yes", "--skip-preview")
    for path in ("/api/v1/namespaces/tenant-dev", "/api/v1/namespaces/ncp-system", "/api/v1/namespaces/nvsentinel",
                 "/api/v1/namespaces/nvidia-network-operator",
                 "/apis/mellanox.com/v1alpha1/nicclusterpolicies/nic-cluster-policy",
                 "/apis/scheduling.run.ai/v2/queues/tenant-dev", "/apis/scheduling.run.ai/v2/queues/ncp-root",
                 "/apis/scheduling.k8s.io/v1/priorityclasses/ncp-serving",
                 "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/isv-ncp-validation"):
        assert api.wait_gone(path), f"{path} is still there after destroy"
    leftovers = api.get("/api/v1/namespaces?labelSelector=app.kubernetes.io%2Fpart-of%3Dncp-inference")
    assert leftovers["items"] == []
