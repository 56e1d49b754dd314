"""The same proof on a profile without MIG or RDMA: a one-GPU lab site composed here (not the example lab stack),
deployed by the real engine, its pods admitted and placed on simulated L40S nodes, then destroyed."""
import time

import pytest
import yaml

from ncp.plan.catalog import integration_points
from ncp.plan.names import PROJECT
from ncp.plan.site_plan import build_plan
from ncp.plan.tenant_pods import QUOTA_KEYS, TenantDemand, quantity, tenant_demands
from tests.e2e import simulated
from tests.e2e.engine import pulumi, stack_env

STACK = "e2e-lab"
# memoryQuota holds what runs at once at its memory limits (the plan counts it: ncp/plan/tenant_pods.py): the TRT-LLM
# worker
# (80Gi /dev/shm + 32Gi per GPU), the two frontends (the tenant LimitRange's default 16Gi), the model-staging and the
# benchmark Jobs (16Gi each): 176Gi, with room to spare.
CONFIG = {
    "site": {"name": "e2e-lab", "environment": "lab", "hardwareProfile": "lab", "gpuNodes": 1,
             "validationEvidence": {"path": "evidence/e2e-lab/", "owner": "ci"}},
    "tenants": [{"name": "dev", "gpuQuota": 1, "gpuLimit": 1, "cpuQuota": "32", "memoryQuota": "192Gi",
                 "admins": ["lab-admins"]}],
    "components": {
        "chartMirror": "tests/e2e/charts", "skipAwait": True,
        "health": {"datastoreSecret": "nvsentinel-datastore-external"},
        "serving": {
            "storage": {"modelArtifacts": {"storageClass": "e2e-lab-shared", "size": "50Gi",
                                           "accessMode": "ReadWriteMany"},
                        "modelCache": {"storageClass": "e2e-lab-local", "size": "50Gi"},
                        "benchmarkOutput": {"storageClass": "e2e-lab-bench", "size": "5Gi"}},
            "modelStaging": {"proxy": {"url": "http://proxy.lab.example:3128", "cidrs": ["10.99.0.10/32"]}},
            "validation": {"benchmarkImage": "nvcr.io/ncp-lab/ncp-tools/aiperf:0.8.0",
                           "suiteImage": "nvcr.io/ncp-lab/ncp-tools/isv-ncp-validation-suite:0.6.8"}}},
    "endpoints": [{
        "name": "chat-small", "tenant": "dev", "backend": "trtllm", "sizing": "sites/lab/sizing/chat-small.yaml",
        "model": {"name": "Qwen/Qwen3-8B", "source": "hf://Qwen/Qwen3-8B",
                  "revision": "b968826d9c46dd6066d109eabc6255188de91218", "class": "dense-llm"},
        "slo": {"isl": 2000, "osl": 500, "ttftMs": 1000, "tpotMs": 50, "concurrency": 8, "requestCount": 100,
                "thresholds": {"timeToFirstTokenP95Ms": 1500}}}],
    "localDecisions": [{"decision": "Stand-in charts in tests/e2e/charts as the chart mirror",
                        "reason": "The e2e cluster has no route to chart repositories."}],
}


@pytest.fixture(scope="module")
def plan():
    return build_plan(CONFIG, set(), f"Pulumi.{STACK}.yaml")


@pytest.fixture(scope="module")
def deployed(cluster, project, tmp_path_factory, plan):
    api, env = cluster
    (project / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(
        {"config": {f"{PROJECT}:{key}": value for key, value in CONFIG.items()}}, sort_keys=False))
    env = stack_env(env, tmp_path_factory.mktemp("backend"))
    pulumi(project, env, "stack", "init", STACK)
    pulumi(project, env, "up", "--yes", "--skip-preview")
    return api, env, project


@pytest.fixture(scope="module")
def placement(deployed, plan, tmp_path_factory):
    return simulated.prove_workloads(deployed[0], plan, tmp_path_factory.mktemp("readiness"))


def test_every_pod_is_admitted_and_placed(deployed, placement, plan):
    api = deployed[0]
    assert not plan.network_enabled and not plan.profile.gpu.mig.supported
    assert api.get("/api/v1/namespaces/tenant-dev/persistentvolumeclaims/model-artifacts")["status"]["phase"] == "Bound"
    print(placement.report("lab, composed stack"))
    assert not placement.problems, "\n".join(placement.problems)
    assert placement.phases["tenant-dev"]["Succeeded"] >= 2, "the staging and benchmark Jobs ran to completion"


def test_the_quota_status_counts_what_the_plan_counts(deployed, placement, plan):
    """After apply, the API server's quota status holds exactly what the plan counts for the tenant's pods that are
    still running (the staging and benchmark Jobs have completed, and a completed pod holds no quota), and the plan's
    sum with every Job running again beside them is within the quota (ncp/plan/tenant_pods.py)."""
    api = deployed[0]
    demand = tenant_demands(plan.config, plan.endpoints, plan.inference_services, plan.profile.gpu.per_node)["dev"]
    running = TenantDemand("dev", [group for group in demand.groups if not group.what.endswith(" Job")])
    gpu = integration_points().gpu.resource
    keys = {key.format(gpu=gpu): attribute for key, attribute, _ in QUOTA_KEYS.values()}
    expected = {key: running.total(attribute) for key, attribute in keys.items()}
    deadline, used = time.monotonic() + 60, {}
    while time.monotonic() < deadline:  # the quota controller recalculates asynchronously
        status = api.get("/api/v1/namespaces/tenant-dev/resourcequotas/tenant-quota")["status"]
        used = {key: quantity(status.get("used", {}).get(key, "0")) for key in expected}
        if used == pytest.approx(expected):
            break
        time.sleep(2)
    print("quota used:", {k: status["used"].get(k) for k in expected}, "plan:", expected)
    assert used == pytest.approx(expected)
    hard = {key: quantity(status["hard"][key]) for key in expected}
    assert all(demand.total(attribute) <= hard[key] for key, attribute in keys.items()), (demand, hard)


def test_tenant_guardrails_refuse(deployed, placement, plan):
    simulated.prove_tenant_guardrails(deployed[0], plan, placement, "lab, composed stack")


def test_platform_priority_is_refused_in_a_tenant_namespace(deployed, placement, plan):
    simulated.prove_platform_priority_refused(deployed[0], plan, placement)


def test_destroy(deployed):
    api, env, project = deployed
    simulated.remove_graph_standins(api)
    pulumi(project, env, "destroy", "--yes", "--skip-preview")
    assert api.wait_gone("/api/v1/namespaces/tenant-dev"), "the tenant namespace outlived destroy"
