"""Break-fix drills on the simulated cluster (real kube-apiserver, kube-scheduler and controller-manager; KWOK GPU
nodes of the prod profile run the pods): a GPU fault on a node is quarantined and drained as NVSentinel does it, the
tenant's pods reschedule inside its pool (or stay Pending with the scheduler's reason), NVSentinel is refused the
uncordon, the return-to-service gate runs on the node (KWOK runs its Job; the containers' logs are what their own
rendered commands print here against stand-ins of nvidia-smi, dcgmi and all_reduce_perf) and alone returns it; a
failing gate keeps its node out naming the layer; a node moves between tenants by the handover procedure. Each
step is asserted; the timeline is printed and written beside the records."""
import os
import time
from pathlib import Path

import pytest
import yaml

from ncp.evidence.signing import KEY_ENV
from ncp.evidence import node_capacity as capacity
from ncp.evidence import node_gate, node_handover, node_incident
from ncp.plan.break_fix import (
    UNCORDON_GUARD, break_fix, gate_job, handover_job, node_baseline,
    uncordon_guard,
)
from ncp.plan.catalog import integration_points
from ncp.plan.layers import READINESS_NAMESPACE
from ncp.plan.names import TENANT_KEY, tenant_namespace
from ncp.plan.record import RECORD_NAME, RECORD_NAMESPACE, baseline_record, config_map_data
from ncp.plan.sources import plan_from_stack_file
from tests.e2e.cluster import own_control_plane
from tests.e2e.kube_api import KubeApi
from tests.e2e.simulated import nodes_for
from tests.e2e.test_rbac_e2e import Api
from tests.support.gate_standins import Node, job_logs
from tests.evidence_keys import make_keys

PORTS = {"NCP_E2E_ETCD_PORT": "26790", "NCP_E2E_API_PORT": "19443", "NCP_E2E_KCM_PORT": "13357",
         "NCP_E2E_SCHEDULER_PORT": "13359", "NCP_E2E_KWOK_PORT": "13247"}
STACK, TENANT, OTHER = "prod", "acme-chat", "globex-research"
NVSENTINEL_NAMESPACE = "nvsentinel"
NVSENTINEL = (f"system:serviceaccount:{NVSENTINEL_NAMESPACE}:fault-quarantine",
              ["system:serviceaccounts", f"system:serviceaccounts:{NVSENTINEL_NAMESPACE}", "system:authenticated"])
FAILING_NODE = "gpu-10"  # one of globex-research's nodes, idle: a GPU falls off its bus
WORKLOAD = "chat-worker"


STORAGE_IMAGE = "site.example/fio:drill"


def gate_logs(plan, directory: Path) -> dict[str, str]:
    """What each container of the rendered gate and handover Jobs prints on a healthy node: their own commands run
    here against stand-ins of the node's tools (tests/support/gate_standins.py), the node's facts taken from the
    plan's baseline so the drill needs no hand-kept numbers. A broken check script breaks the drill."""
    baseline = node_baseline(plan, TENANT)
    node = Node(driver=str(baseline.driver), gpus=baseline.gpus, busbw=baseline.nccl_bus_bandwidth_gbps * 1.1)
    return {**job_logs(gate_job(plan), node, directory / "gate"),
            **job_logs(handover_job(plan, STORAGE_IMAGE), node, directory / "handover")}


def kwok_logs(directory: Path, plan) -> Path:
    """A KWOK ClusterLogs giving the break-fix containers their logs (KWOK v0.8 selects pods by namespace and name
    only, so every node prints the healthy output; the failing drill breaks the node itself)."""
    directory.mkdir(parents=True, exist_ok=True)
    logs = []
    for container, text in gate_logs(plan, directory / "run").items():
        cri = directory / f"{container}.log"
        cri.write_text("".join(f"2026-01-01T00:00:00.000000000Z stdout F {line}\n" for line in text.splitlines()))
        logs.append({"containers": [container], "logsFile": str(cri)})
    config = directory / "kwok-break-fix.yaml"
    config.write_text(yaml.safe_dump({"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterLogs",
                                      "metadata": {"name": "break-fix"},
                                      "spec": {"selector": {"matchNamespaces": [READINESS_NAMESPACE]},
                                               "logs": logs}}))
    return config


class Drill:
    """The cluster, the admin and impersonating clients, and the drill's timeline."""

    def __init__(self, env: dict, plan, out: Path):
        self.kubeconfig = str(Path(env["NCP_E2E_STATE"]) / "kubeconfig")
        self.api, self.raw, self.plan, self.out = KubeApi(Path(self.kubeconfig)), Api(Path(self.kubeconfig)), plan, out
        self.started, self.timeline = time.monotonic(), []

    def say(self, line: str) -> None:
        self.timeline.append(f"+{time.monotonic() - self.started:6.1f}s {line}")
        print(self.timeline[-1])

    def node(self, name: str) -> dict:
        return self.api.get(f"/api/v1/nodes/{name}")

    def pods(self) -> list[dict]:
        return self.api.get(f"/api/v1/namespaces/{tenant_namespace(TENANT)}/pods?labelSelector=app={WORKLOAD}")["items"]

    def command(self, module, *args: str) -> int:
        return module.main(["--stack", STACK, "--kubeconfig", self.kubeconfig, "--timeout", "120", "--poll", "1",
                            "--evidence-dir", str(self.out / "evidence"), "--index", str(self.out / "index.yaml"),
                            *args], say=self.say)


def _eventually(check, what: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"timed out waiting for {what}"
            return value
        time.sleep(0.5)


def _setup(drill: Drill) -> None:
    api, plan = drill.api, drill.plan
    for node in nodes_for(plan, rdma_devices=63):
        api.create("/api/v1/nodes", node)
    for namespace in (READINESS_NAMESPACE, tenant_namespace(TENANT), NVSENTINEL_NAMESPACE, RECORD_NAMESPACE):
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    # The baseline record as the program deploys it: the gate judges the node against this, not the plan.
    api.create(f"/api/v1/namespaces/{RECORD_NAMESPACE}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": RECORD_NAME},
        "data": config_map_data(baseline_record(plan).documents())})
    for job in (gate_job(plan), handover_job(plan, STORAGE_IMAGE)):
        api.create(f"/apis/batch/v1/namespaces/{READINESS_NAMESPACE}/jobs", job)
    spec, binding = uncordon_guard(NVSENTINEL_NAMESPACE)
    admission = "/apis/admissionregistration.k8s.io/v1"
    api.create(f"{admission}/validatingadmissionpolicies", {"metadata": {"name": UNCORDON_GUARD}, "spec": spec})
    api.create(f"{admission}/validatingadmissionpolicybindings", {"metadata": {"name": UNCORDON_GUARD},
                                                                   "spec": binding})
    # What NVSentinel's fault-quarantine and node-drainer may do (their chart's RBAC, in short).
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    api.create(f"{rbac}/clusterroles", {"metadata": {"name": "nvsentinel-drill"}, "rules": [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch", "update"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]}]})
    api.create(f"{rbac}/clusterrolebindings", {
        "metadata": {"name": "nvsentinel-drill"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "nvsentinel-drill"},
        "subjects": [{"kind": "ServiceAccount", "name": "fault-quarantine", "namespace": NVSENTINEL_NAMESPACE}]})


def workload(plan, replicas: int) -> dict:
    """The tenant's GPU workers: a whole node each, on its pool (label, taint), as its serving graph's workers."""
    gpu = integration_points().gpu
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": WORKLOAD, "namespace": tenant_namespace(TENANT)},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": WORKLOAD}},
                     "template": {"metadata": {"labels": {"app": WORKLOAD}}, "spec": {
                         "nodeSelector": {TENANT_KEY: TENANT, gpu.product_label: plan.profile.gpu.product_label},
                         "tolerations": [{"key": TENANT_KEY, "operator": "Equal", "value": TENANT,
                                          "effect": "NoSchedule"},
                                         {"key": gpu.taint_key, "operator": "Exists", "effect": "NoSchedule"}],
                         "containers": [{"name": "worker", "image": "registry.example/worker:drill", "resources": {
                             "limits": {gpu.resource: str(plan.profile.gpu.per_node)}}}]}}}}


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    plan = plan_from_stack_file(STACK)
    state = tmp_path_factory.mktemp("drill-control-plane")  # fresh: another module's objects never leak in
    # NCP_DRILL_OUT keeps the drill's records and timeline (e.g. as CI artifacts); else a pytest temporary directory.
    out = Path(os.environ["NCP_DRILL_OUT"]) if os.environ.get("NCP_DRILL_OUT") else tmp_path_factory.mktemp("drill")
    out.mkdir(parents=True, exist_ok=True)
    keys = make_keys(out)
    previous_key = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = str(keys.key)
    # The gate's pods name KAI's scheduler: the real kube-scheduler answers to it too (KAI is not running here).
    with own_control_plane(state, PORTS, NCP_E2E_KWOK_CONFIG=str(kwok_logs(out / "kwok", plan)),
                           NCP_E2E_SCHEDULER_NAMES=integration_points().kai.scheduler_name) as env:
        drill = Drill(env, plan, out)
        _setup(drill)
        yield drill
    if previous_key is None:
        os.environ.pop(KEY_ENV, None)
    else:
        os.environ[KEY_ENV] = previous_key
    timeline = "# Break-fix drill timeline\n\n" + "\n".join(f"- {line}" for line in drill.timeline) + "\n"
    (out / "drill-timeline.md").write_text(timeline)
    print(f"\n{timeline}\ndrill timeline and records written to {out}")


def _running(drill: Drill) -> list[dict]:
    return [p for p in drill.pods() if p["status"].get("phase") == "Running" and not p["metadata"].get(
        "deletionTimestamp")]


def _pending_reason(drill: Drill) -> str:
    for pod in drill.pods():
        for condition in pod["status"].get("conditions") or []:
            if condition["type"] == "PodScheduled" and condition["status"] == "False" and condition.get("message"):
                return condition["message"]
    return ""


def _as_nvsentinel(drill: Drill, method: str, path: str, body: dict) -> tuple[int, dict]:
    return drill.raw.call(method, path, body, as_user=NVSENTINEL,
                          content_type="application/strategic-merge-patch+json" if method == "PATCH"
                          else "application/json")


def _taint_keys(node: dict) -> set[str]:
    return {t["key"] for t in node["spec"].get("taints") or []}


STATE: dict = {}


# RA: Break-Fix Architecture: "detect, triage, remediate"
def test_fault_quarantines_the_node_and_the_pods_reschedule_inside_the_pool(drill):
    drill.api.create(f"/apis/apps/v1/namespaces/{tenant_namespace(TENANT)}/deployments", workload(drill.plan, 3))
    pods = _eventually(lambda: len(_running(drill)) == 3 and _running(drill), "3 workers running")
    faulty = STATE["faulty"] = pods[0]["spec"]["nodeName"]
    drill.say(f"fault: GPU XID on {faulty} (tenant {TENANT}'s workers on "
              f"{', '.join(sorted(p['spec']['nodeName'] for p in pods))})")
    quarantine = break_fix().quarantine.taint.as_dict()
    node = drill.node(faulty)
    status, body = _as_nvsentinel(drill, "PATCH", f"/api/v1/nodes/{faulty}", {"spec": {
        "unschedulable": True, "taints": [*node["spec"].get("taints", []), quarantine]}})
    assert status == 200, body
    drill.say(f"quarantine: NVSentinel cordoned {faulty} and set taint {quarantine['key']}={quarantine['value']}")
    for pod in [p for p in pods if p["spec"]["nodeName"] == faulty]:
        name = pod["metadata"]["name"]
        status, body = _as_nvsentinel(drill, "POST", f"/api/v1/namespaces/{tenant_namespace(TENANT)}/pods/{name}/"
                                      "eviction", {"apiVersion": "policy/v1", "kind": "Eviction",
                                                   "metadata": {"name": name}})
        assert status == 201, body
        drill.say(f"drain: NVSentinel evicted {name}")
    moved = _eventually(lambda: len(_running(drill)) == 3 and all(
        p["spec"]["nodeName"] != faulty for p in _running(drill)) and _running(drill), "the workers to reschedule")
    owners = {drill.node(p["spec"]["nodeName"])["metadata"]["labels"].get(TENANT_KEY) for p in moved}
    assert owners == {TENANT}, f"a worker left its tenant's pool: {owners}"
    drill.say(f"reschedule: 3 workers running inside {TENANT}'s pool, none on {faulty}")


def test_nvsentinel_cannot_return_the_node_to_service(drill):
    faulty = STATE["faulty"]
    status, body = _as_nvsentinel(drill, "PATCH", f"/api/v1/nodes/{faulty}", {"spec": {"unschedulable": False}})
    assert status in (403, 422) and UNCORDON_GUARD in body.get("message", ""), (status, body)
    kept = [t for t in drill.node(faulty)["spec"]["taints"] if t["key"] != break_fix().quarantine.taint.key]
    status, body = _as_nvsentinel(drill, "PATCH", f"/api/v1/nodes/{faulty}", {"spec": {"taints": kept}})
    assert status in (403, 422) and break_fix().quarantine.taint.key in body.get("message", ""), (status, body)
    drill.say(f"guard: NVSentinel's uncordon and untaint of {faulty} refused by {UNCORDON_GUARD}")


def test_a_full_pool_leaves_the_extra_worker_pending_with_the_reason(drill):
    pool = len([t for t in drill.plan.tenants if t.name == TENANT for _ in range(t.node_pool.nodes)])
    drill.api.patch(f"/apis/apps/v1/namespaces/{tenant_namespace(TENANT)}/deployments/{WORKLOAD}",
                    {"spec": {"replicas": pool}})
    reason = _eventually(lambda: len(_running(drill)) == pool - 1 and _pending_reason(drill), "one pending worker")
    assert "unschedulable" in reason and "untolerated taint" in reason, reason
    drill.say(f"pending: worker {pool} of {pool} waits: {reason}")


# RA: Break-Fix Architecture: "Re-admit the resource only after it matches the accepted baseline."
def test_the_gate_returns_the_node_and_the_pending_worker_lands_on_it(drill):
    faulty = STATE["faulty"]
    assert drill.command(node_gate, "--node", faulty, "--run-id", "drill") == 0
    node = drill.node(faulty)
    assert not node["spec"].get("unschedulable")
    quarantine = break_fix().quarantine
    assert not _taint_keys(node) & {quarantine.taint.key, quarantine.hold_taint.key}
    record = yaml.safe_load((drill.out / "evidence" / "returnToService" / f"{faulty}-drill.json").read_text())
    assert record["passed"] and record["signature"]["algorithm"] == "ed25519"
    assert {row["check"] for row in record["checks"]} >= {"dcgm-diag", "node-checks", "nccl-rails", "serving-smoke",
                                                          "driver", "gpu-count", "nccl-bus-bandwidth"}
    _eventually(lambda: any(p["spec"].get("nodeName") == faulty for p in _running(drill)), "a worker on the node")
    drill.say(f"capacity: the pending worker runs on {faulty} again")


def test_a_failing_gate_keeps_the_node_out_and_names_the_layer(drill):
    # A GPU fell off the bus: the device plugin advertises one GPU fewer (KWOK keeps the status it is given).
    gpus = str(drill.plan.profile.gpu.per_node - 1)
    resource = integration_points().gpu.resource
    drill.api.patch(f"/api/v1/nodes/{FAILING_NODE}/status",
                           {"status": {"capacity": {resource: gpus}, "allocatable": {resource: gpus}}})
    drill.say(f"fault: {FAILING_NODE} advertises {gpus} GPUs")
    assert drill.command(node_gate, "--node", FAILING_NODE, "--run-id", "drill-fail") == 1
    node = drill.node(FAILING_NODE)
    assert node["spec"].get("unschedulable") and break_fix().quarantine.hold_taint.key in _taint_keys(node)
    record = yaml.safe_load((drill.out / "evidence" / "returnToService" / f"{FAILING_NODE}-drill-fail.json")
                            .read_text())
    assert not record["passed"] and record["failingLayers"] == ["gpu"], record["failingLayers"]
    drill.say(f"gate: {FAILING_NODE} kept out, failed layer gpu")
    printed: list[str] = []
    assert node_incident.main(["--stack", STACK, "--node", FAILING_NODE, "--kubeconfig", drill.kubeconfig,
                               "--evidence-dir", str(drill.out / "evidence"), "--index",
                               str(drill.out / "index.yaml")], say=printed.append) == 0
    view = printed[-1]
    hold = break_fix().quarantine.hold_taint
    assert f"{hold.key}={hold.value}:{hold.effect}" in view and "[gpu] allocatable GPUs 7 (baseline 8)" in view
    assert "[gpu] gate drill-fail: allocatable-gpus FAIL 7" in view and "[node] pool globex-research" in view
    drill.say(f"incident view of {FAILING_NODE}: " + " | ".join(line for line in view.splitlines()
                                                               if line.startswith("[gpu]")))


def test_a_node_moves_between_tenants_by_the_handover(drill):
    node = next(p["spec"]["nodeName"] for p in _running(drill) if p["spec"]["nodeName"] != STATE["faulty"])
    assert drill.command(node_handover, "--node", node, "--to", OTHER, "--rebooted", "drill-ticket",
                         "--run-id", "handover") == 0
    moved = drill.node(node)
    assert moved["metadata"]["labels"][TENANT_KEY] == OTHER and not moved["spec"].get("unschedulable")
    assert {t["value"] for t in moved["spec"]["taints"] if t["key"] == TENANT_KEY} == {OTHER}
    record = yaml.safe_load((drill.out / "evidence" / "nodeHandover" / f"{node}-handover.json").read_text())
    assert record["passed"] and [row["check"] for row in record["checks"]] == [
        "drain", "sanitize-kv", "sanitize-cache", "gpu-reset", "reboot-request", "relabel"]
    assert all(p["spec"].get("nodeName") != node for p in _running(drill))
    reason = _eventually(lambda: _pending_reason(drill), "the evicted worker pending")
    drill.say(f"handover: {node} now {OTHER}'s; {TENANT}'s evicted worker waits: {reason}")


# RA: Break-Fix Architecture: "with minimal tenant impact"
def test_capacity_names_the_tenant_a_quarantine_leaves_short(drill):
    nodes = drill.api.get("/api/v1/nodes")["items"]
    eval_node = next(n["metadata"]["name"] for n in nodes if n["metadata"]["name"].startswith("gpu")
                     and n["metadata"]["labels"].get(TENANT_KEY) == "ncp-eval")
    status, body = _as_nvsentinel(drill, "PATCH", f"/api/v1/nodes/{eval_node}", {"spec": {
        "unschedulable": True, "taints": [*drill.node(eval_node)["spec"]["taints"],
                                          break_fix().quarantine.taint.as_dict()]}})
    assert status == 200, body
    drill.say(f"fault: NVSentinel quarantined {eval_node}, ncp-eval's only node")
    printed: list[str] = []
    assert capacity.main(["--stack", STACK, "--kubeconfig", drill.kubeconfig], say=printed.append) == 1
    assert "short: ncp-eval;" in printed[-1], printed[-1]
    drill.say("capacity: " + printed[-1].splitlines()[-1])
