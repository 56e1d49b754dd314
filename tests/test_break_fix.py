"""The break-fix loop without a cluster: the gate and handover Job templates, judging a gate run against the
baseline (each guard fails when what it guards breaks), NVSentinel's hand-over (rule sets that taint, the admission
policy that keeps it from uncordoning), triage by layer with runbooks, capacity follows health, and the commands'
bad-input exits. The drills on the simulated cluster are tests/e2e/test_break_fix_drill.py."""
import re
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from ncp.evidence import node_capacity as capacity
from ncp.evidence import node_gate, node_handover, node_incident
from ncp.evidence.node_gate import judge_node, judge_results, parse_results, return_to_service_patch
from ncp.plan.rules import RULE_BY_ID, RuleInputs
from ncp.plan.break_fix import (
    CHECKS_ANNOTATION, LAYERS, RESULT_PREFIX, UNCORDON_GUARD, break_fix, fault_quarantine_rule_sets,
    gate_job, gate_steps, handover_job, node_baseline, uncordon_guard,
)
from ncp.cluster_api import KubeError
from ncp.plan.capacity import capacity_report, short_tenants
from tests.support.gate_standins import Node, job_logs
from ncp.plan.record import RECORD_NAME, RECORD_NAMESPACE, baseline_record, config_map_data
from ncp.plan.catalog import ROOT, integration_points
from ncp.plan.names import TENANT_KEY
from ncp.plan.sources import plan_from_stack_file

RUNBOOKS = ROOT / "docs" / "runbooks"


@pytest.fixture(scope="module")
def prod_plan():
    return plan_from_stack_file("prod")


def smi_table(driver: str, gpus: int) -> str:
    """nvidia-smi's table, as far as the validation suite reads it."""
    rows = "".join(f"|   {i}  NVIDIA H200                    On  |   00000000:{24 + i:02X}:00.0 Off |\n"
                   for i in range(gpus))
    return f"| NVIDIA-SMI {driver}   Driver Version: {driver}   CUDA Version: 13.1 |\n{rows}"


def healthy_logs(baseline, busbw: float) -> dict[str, str]:
    return {"dcgm-diag": f"{RESULT_PREFIX} dcgm-diag PASS level=2 exit=0",
            "node-checks": f"{smi_table(baseline.driver, baseline.gpus)}{RESULT_PREFIX} node-checks PASS exit=0",
            "nccl-rails": f"{RESULT_PREFIX} nccl-rails PASS busbw={busbw}",
            "serving-smoke": f"{RESULT_PREFIX} serving-smoke PASS exit=0"}


def gate_node(plan, tenant, **changes) -> dict:
    baseline = node_baseline(plan, tenant)
    labels = {**baseline.labels, **changes.pop("labels", {})}
    gpus = changes.pop("gpus", str(baseline.gpus))
    return {"metadata": {"name": "gpu-1", "labels": labels},
            "spec": {"unschedulable": True, "taints": changes.pop("taints", [])},
            "status": {"allocatable": {integration_points().gpu.resource: gpus}}}


def test_the_gate_job_runs_every_check_in_order_on_one_node_and_waits_suspended(prod_plan):
    job = gate_job(prod_plan)
    pod = job["spec"]["template"]["spec"]
    names = [c["name"] for c in pod["initContainers"] + pod["containers"]]
    assert names == ["dcgm-diag", "node-checks", "nccl-rails", "serving-smoke"]
    assert job["spec"]["suspend"] is True and job["metadata"]["namespace"] == "ncp-readiness"
    assert pod["tolerations"] == [{"operator": "Exists"}], "it runs on a cordoned, quarantined node"
    gpu = integration_points().gpu.resource
    assert {c["resources"]["limits"][gpu] for c in pod["initContainers"] + pod["containers"]} == {"8"}
    assert "dcgmi diag --host nvidia-dcgm.gpu-operator.svc:5555 -r 2" in pod["initContainers"][0]["command"][2]
    assert "NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 all_reduce_perf" in pod["initContainers"][2]["command"][2]
    lab = plan_from_stack_file("lab")
    assert [s.name for s in gate_steps(lab)] == ["dcgm-diag", "node-checks", "serving-smoke"], "no rails in the lab"


@pytest.mark.parametrize("stack", ["prod", "lab"])
def test_the_break_fix_steps_are_hardened_and_root_only_where_named(stack):
    plan = plan_from_stack_file(stack)
    for job in (gate_job(plan), handover_job(plan, "site/fio:1@sha256:" + "1" * 64)):
        pod = job["spec"]["template"]["spec"]
        assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["initContainers"] + pod["containers"]:
            context, resources = container["securityContext"], container["resources"]
            assert context["readOnlyRootFilesystem"] is True and context["runAsGroup"] == 10001
            assert {"name": "scratch", "mountPath": "/tmp"} in container["volumeMounts"]
            assert {"cpu", "memory", "ephemeral-storage"} <= set(resources["requests"]) & set(resources["limits"])
            root = {"nccl-rails": ["IPC_LOCK"], "gpu-reset": ["SYS_ADMIN"]}.get(container["name"])
            if container["name"] == "sanitize":
                assert context["privileged"] is True
            elif root:
                assert context["runAsUser"] == 0 and context["capabilities"] == {"drop": ["ALL"], "add": root}
                assert context["allowPrivilegeEscalation"] is False
            else:
                assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001
                assert context["capabilities"] == {"drop": ["ALL"]} and context["allowPrivilegeEscalation"] is False
            if stack == "prod" and container["name"] != "sanitize":
                assert "@sha256:" in container["image"], f"{container['name']}: prod pins the gate images by digest"


def test_prod_requires_the_gate_image_digests(prod_plan):
    config = prod_plan.config.model_copy(deep=True)
    config.components.serving.image_digests.pop("dcgm")
    problems = RULE_BY_ID["prod.gate-image-digest"].run(
        RuleInputs({}, set(), config=config, profile=prod_plan.profile, matrix=prod_plan.matrix))
    assert [p.path for p in problems] == ["ncp-inference:components.serving.imageDigests.dcgm"]
    assert "nvcr.io/nvidia/cloud-native/dcgm:4.6.0-1-ubuntu24.04" in problems[0].fix


def test_pulumi_never_waits_for_the_suspended_break_fix_jobs(prod):
    jobs = [r.inputs for r in prod.resources if r.type == "kubernetes:batch/v1:Job"
            and r.inputs["metadata"]["name"] in ("return-to-service", "node-handover")]
    assert len(jobs) == 2 and all(j["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true" for j in jobs)


def test_the_handover_job_erases_the_node_local_tiers_then_resets_the_gpus(prod_plan):
    pod = handover_job(prod_plan, "site/fio:1")["spec"]["template"]["spec"]
    sanitize, reset = pod["initContainers"][0], pod["containers"][0]
    assert sanitize["securityContext"]["privileged"] is True and pod["volumes"][1]["hostPath"]["path"] == "/"
    assert reset["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
    assert "nvme format \"$dev\" --ses=2" in sanitize["command"][2] and "blkdiscard" in sanitize["command"][2]
    assert "nvidia-smi -r" in reset["command"][2]


def test_a_healthy_gate_run_passes_and_each_guard_fails_what_it_guards(prod_plan):
    baseline = node_baseline(prod_plan, "acme-chat")
    checks = [s.name for s in gate_steps(prod_plan)]
    good = healthy_logs(baseline, baseline.nccl_bus_bandwidth_gbps + 1)

    def failing(logs: dict) -> list[str]:
        return node_gate.failing_layers(judge_results(baseline, checks, parse_results(logs)))

    assert failing(good) == []
    assert failing({**good, "dcgm-diag": good["dcgm-diag"].replace("PASS", "FAIL")}) == ["gpu"]
    assert failing({k: v for k, v in good.items() if k != "nccl-rails"}) == ["network"]
    assert failing({**good, "nccl-rails": f"{RESULT_PREFIX} nccl-rails PASS busbw=1.5"}) == ["network"]
    assert failing({**good, "node-checks": good["node-checks"].replace(baseline.driver, "550.1")}) == ["node"]
    assert failing({**good, "node-checks": good["node-checks"].replace("|   7  NVIDIA", "|   7  (gone)")}) == ["gpu"]
    assert failing({**good, "serving-smoke": ""}) == ["service"]


def _scripted(plan, node: Node, tmp_path, job=None) -> list[str]:
    """Failing layers of the rendered gate Job's own scripts run against stand-ins of the node's tools."""
    baseline, job = node_baseline(plan, "acme-chat"), job or gate_job(plan)
    checks = job["metadata"]["annotations"][CHECKS_ANNOTATION].split(",")
    return node_gate.failing_layers(judge_results(baseline, checks, parse_results(job_logs(job, node, tmp_path))))


def test_the_gate_scripts_judge_what_the_tools_print(prod_plan, tmp_path):
    baseline = node_baseline(prod_plan, "acme-chat")
    healthy = Node(driver=baseline.driver, gpus=baseline.gpus, busbw=baseline.nccl_bus_bandwidth_gbps * 1.1)
    logs = job_logs(gate_job(prod_plan), healthy, tmp_path)
    assert f"Driver Version: {baseline.driver}" in logs["node-checks"]
    assert f"{RESULT_PREFIX} node-checks PASS exit=0" in logs["node-checks"]
    assert node_gate.parse_results(logs)["node-checks"][1] == {"exit": "0", "driver": baseline.driver, "gpus": "8"}
    assert "matmul 1024.0" in logs["serving-smoke"] and "Successfully ran diagnostic" in logs["dcgm-diag"]
    assert _scripted(prod_plan, healthy, tmp_path) == []
    assert _scripted(prod_plan, replace(healthy, driver="580.95.05"), tmp_path) == ["node"]
    assert _scripted(prod_plan, replace(healthy, gpus=7), tmp_path) == ["gpu"]
    assert _scripted(prod_plan, replace(healthy, diag_fail="PCIe"), tmp_path) == ["gpu"]
    assert _scripted(prod_plan, replace(healthy, busbw=100.0), tmp_path) == ["network"]
    # A broken check script fails the gate: the GPU count no longer matches nvidia-smi -L's lines.
    broken = gate_job(prod_plan)
    node_checks = broken["spec"]["template"]["spec"]["initContainers"][1]
    node_checks["command"][2] = node_checks["command"][2].replace("nvidia-smi >", "nvidia-smi -L >")
    assert _scripted(prod_plan, healthy, tmp_path, broken) == ["node", "gpu"]


def test_the_node_itself_is_judged_against_the_baseline(prod_plan):
    def failing(node):
        return node_gate.failing_layers(judge_node(node_baseline(prod_plan, "acme-chat"), node))

    assert failing(gate_node(prod_plan, "acme-chat")) == []
    product = integration_points().gpu.product_label
    assert failing(gate_node(prod_plan, "acme-chat", labels={product: "NVIDIA-H100"})) == ["node"]
    assert failing(gate_node(prod_plan, "acme-chat", labels={TENANT_KEY: "globex-research"})) == ["node"]
    assert failing(gate_node(prod_plan, "acme-chat", gpus="7")) == ["gpu"]


class RecordedCluster:
    """The calls the gate makes, on one node, the deployed baseline record (None: absent) and the gate template."""

    def __init__(self, node: dict, record: "dict | None", template: dict):
        self._node, self.record, self.template = node, record, template

    def node(self, name: str) -> dict:
        return yaml.safe_load(yaml.safe_dump(self._node))

    def nodes(self) -> list[dict]:
        return [self.node(self._node["metadata"]["name"])]

    def config_map(self, namespace: str, name: str) -> dict:
        if self.record is None or (namespace, name) != (RECORD_NAMESPACE, RECORD_NAME):
            raise KubeError(f"GET configmap {namespace}/{name}: HTTP 404: not found", 404)
        return {"data": self.record}

    def job(self, namespace: str, name: str) -> dict:
        return self.template

    def patch_node(self, name: str, patch: dict) -> dict:
        self._node["spec"].update(patch["spec"])
        return self.node(name)


def _deployed(plan, **pool_changes) -> dict:
    """The record ConfigMap's data as the program deploys it, with `pool_changes` written into acme-chat's entry."""
    documents = baseline_record(plan).documents()
    documents["nodeBaseline"]["acme-chat"].update(pool_changes)
    return config_map_data(documents)


def _gate_run(plan, monkeypatch, record, logs=None):
    node = gate_node(plan, "acme-chat", taints=[break_fix().quarantine.taint.as_dict()])
    baseline = node_baseline(plan, "acme-chat")
    monkeypatch.setattr(node_gate, "run_on_node", lambda *args: logs or healthy_logs(
        baseline, baseline.nccl_bus_bandwidth_gbps + 1))
    cluster = RecordedCluster(node, record, gate_job(plan))
    return cluster, node_gate.gate(cluster, plan, "prod", "gpu-1", "t", 1, 1, node_gate.Timeline(lambda line: None))


def test_the_deployed_record_carries_every_fact_the_gate_judges(prod_plan):
    pools = yaml.safe_load(_deployed(prod_plan)["nodeBaseline"])
    assert set(pools) == {"shared", "acme-chat", "globex-research", "ncp-eval"}
    assert pools["acme-chat"] == {"gpuProduct": "NVIDIA-H200", "gpus": 8, "driver": "595.91.07", "migLayout": None,
                                  "ncclBusBandwidthGBps": 320.0, "tenant": "acme-chat",
                                  "labels": node_baseline(prod_plan, "acme-chat").labels}


# RA: Break-Fix Architecture: "Re-admit the resource only after it matches the accepted baseline."
def test_the_gate_judges_against_the_deployed_record_not_the_plan(prod_plan, monkeypatch):
    cluster, record = _gate_run(prod_plan, monkeypatch, _deployed(prod_plan))
    assert record.passed and cluster.node("gpu-1")["spec"]["unschedulable"] is False
    # The node reports the plan's driver; the deployed record says another: the gate follows the record.
    cluster, record = _gate_run(prod_plan, monkeypatch, _deployed(prod_plan, driver="580.95.05"))
    assert not record.passed and record.failing_layers == ["node"]
    row = next(r for r in record.checks if r.check == "driver")
    assert (row.measured, row.expected, row.status) == ("595.91.07", "580.95.05", "FAIL")
    assert cluster.node("gpu-1")["spec"]["unschedulable"] is True
    cluster, record = _gate_run(prod_plan, monkeypatch, _deployed(prod_plan, ncclBusBandwidthGBps=10_000))
    assert record.failing_layers == ["network"], "the threshold is the record's"
    cluster, record = _gate_run(prod_plan, monkeypatch, _deployed(prod_plan, gpuProduct="NVIDIA-B200",
                                                                  labels={"nvidia.com/gpu.product": "NVIDIA-B200"}))
    assert record.failing_layers == ["node"], "the labels are the record's"


@pytest.mark.parametrize("record, message", [
    (None, "the cluster lacks ConfigMap ncp-system/ncp-baseline-record"),
    ({"site": "name: x\n"}, "has no key nodeBaseline"),
    ({"nodeBaseline": "shared: {}\n"}, "has no pool acme-chat"),
    ({"nodeBaseline": "acme-chat: {gpus: 8}\n"}, "pool acme-chat is not a node baseline"),
])
def test_a_cluster_without_the_deployed_baseline_is_bad_input(prod_plan, monkeypatch, capsys, record, message):
    node = gate_node(prod_plan, "acme-chat")
    monkeypatch.setattr(node_gate, "connect_from", lambda args: RecordedCluster(node, record, gate_job(prod_plan)))
    assert node_gate.main(["--stack", "prod", "--node", "gpu-1"]) == 2
    error = capsys.readouterr().err
    assert message in error and ("fix: `pulumi up`" in error or "fix: label the node" in error), error
    assert node["spec"]["unschedulable"] is True and not node["spec"]["taints"], "nothing changed on the node"


def test_returning_to_service_drops_only_the_quarantine_and_hold_taints():
    quarantine = break_fix().quarantine
    keep = {"key": TENANT_KEY, "value": "acme-chat", "effect": "NoSchedule"}
    node = {"spec": {"unschedulable": True, "taints": [quarantine.taint.as_dict(), quarantine.hold_taint.as_dict(),
                                                       keep]}}
    assert return_to_service_patch(node) == {"spec": {"unschedulable": False, "taints": [keep]}}


def test_nvsentinel_taints_every_quarantine_and_may_never_uncordon(prod):
    release = next(r for r in prod.resources if r.type == "kubernetes:helm.sh/v3:Release" and "nvsentinel" in r.name)
    rule_sets = release.inputs["values"]["fault-quarantine"]["ruleSets"]
    assert rule_sets == fault_quarantine_rule_sets() and len(rule_sets) == len(break_fix().quarantine.rule_sets)
    assert all(r["cordon"] == {"shouldCordon": True} and r["taint"] == break_fix().quarantine.taint.as_dict()
               for r in rule_sets)
    spec, binding = uncordon_guard("nvsentinel")
    assert "system:serviceaccount:nvsentinel:" in spec["matchConditions"][0]["expression"]
    assert binding["validationActions"] == ["Deny"] and len(spec["validations"]) == 3
    policies = [r for r in prod.resources if r.type.endswith("ValidatingAdmissionPolicy") and "uncordon" in r.name]
    assert policies and policies[0].inputs["spec"]["matchConditions"] == spec["matchConditions"]


def test_fault_quarantine_is_a_subchart_of_the_pinned_nvsentinel(upstream):
    chart = yaml.safe_load((upstream / "nvsentinel" / "Chart.yaml").read_text())
    assert "fault-quarantine" in {d["name"] for d in chart["dependencies"]}


def test_every_alert_names_its_layer_and_links_its_fault_class_runbook(prod):
    rules = next(r for r in prod.custom_resources("PrometheusRule") if r.inputs["metadata"]["name"] == "ncp-gpu-health")
    alerts = [rule for group in rules.inputs["spec"]["groups"] for rule in group["rules"] if "alert" in rule]
    facts = break_fix()
    for alert in alerts:
        assert alert["alert"] in facts.alert_layers, f"{alert['alert']}: add it to data/break-fix.yaml alertLayers"
        assert alert["labels"]["layer"] == facts.alert_layers[alert["alert"]] in LAYERS
    linked = {a["alert"]: a["annotations"].get("runbook_url") for a in alerts}
    for fault in facts.fault_classes.values():
        assert (ROOT / fault.runbook).is_file(), fault.runbook
        assert all(linked[alert] for alert in fault.alerts if alert in linked)
    table = dict(re.findall(r"^\| (Ncp\w+) \| (\w+) \|", (RUNBOOKS / "README.md").read_text(), re.MULTILINE))
    assert table == facts.alert_layers, "docs/runbooks/README.md's table is the documented mapping"
    assert set(facts.gate_checks.values()) | set(facts.handover_steps.values()) <= set(LAYERS)


def test_capacity_names_the_pool_a_quarantine_leaves_short(prod_plan):
    def node(name, tenant, out=False):
        return {"metadata": {"name": name, "labels": {TENANT_KEY: tenant} if tenant else {}},
                "spec": {"unschedulable": out}, "status": {"allocatable": {integration_points().gpu.resource: "8"}}}

    nodes = ([node(f"a{i}", "acme-chat") for i in range(9)] + [node(f"g{i}", "globex-research") for i in range(6)]
             + [node("e0", "ncp-eval")])
    assert short_tenants(capacity_report(prod_plan, nodes)) == []
    nodes[0] = node("a0", "acme-chat", out=True)
    assert short_tenants(capacity_report(prod_plan, nodes)) == [], "one spare node in the pool"
    nodes[1] = node("a1", "acme-chat", out=True)
    rows = capacity_report(prod_plan, nodes)
    assert short_tenants(rows) == ["acme-chat"] and rows[0]["shortGpus"] == 8
    assert rows[0]["nodesOut"] == ["a0", "a1"] and rows[0]["spareNodesPolicy"] == 1


def test_every_profile_states_its_spare_policy():
    for path in sorted((ROOT / "profiles").glob("*.yaml")):
        policy = yaml.safe_load(path.read_text())["tenancy"].get("sparePolicy")
        assert policy and policy["action"].strip(), f"{path.name}: tenancy.sparePolicy"


@pytest.mark.parametrize("command, argv, message", [
    (node_gate, ["--stack", "nosuch", "--node", "gpu-1"], "Pulumi.nosuch.yaml"),
    (node_handover, ["--stack", "prod", "--node", "gpu-1", "--to", "nobody"], "--to nobody: not a tenant"),
    (node_gate, ["--stack", "prod", "--node", "gpu-1", "--kubeconfig", "/nonexistent/kubeconfig"], "kubeconfig"),
    (capacity, ["--stack", "prod", "--kubeconfig", "/nonexistent/kubeconfig"], "kubeconfig"),
    (node_incident, ["--stack", "prod", "--node", "gpu-1", "--kubeconfig", "/nonexistent/kubeconfig"], "kubeconfig"),
])
def test_bad_input_exits_2_with_one_line(command, argv, message, capsys):
    assert command.main(argv) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


def test_the_docs_name_the_commands_and_the_guard():
    text = (RUNBOOKS / "README.md").read_text()
    for needle in ("ncp node return-to-service", "ncp node handover", "ncp node capacity", "ncp node incident",
                   UNCORDON_GUARD):
        assert needle in text
    assert Path(node_gate.__file__).read_text().count("def main(") == 1


def test_the_incident_view_shows_the_deployed_baseline_not_the_plan(prod_plan):
    node = gate_node(prod_plan, "acme-chat", gpus="7")
    deployed = RecordedCluster(node, _deployed(prod_plan, gpus=4), gate_job(prod_plan))
    assert "[gpu] allocatable GPUs 7 (baseline 4)" in node_incident.host_lines(deployed, node)
    missing = node_incident.host_lines(RecordedCluster(node, None, gate_job(prod_plan)), node)
    assert "[gpu] allocatable GPUs 7 (no deployed baseline: the cluster lacks ConfigMap" in "\n".join(missing)
