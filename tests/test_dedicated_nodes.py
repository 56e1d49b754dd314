"""Dedicated tenant nodes (issue #10, items 2 and 4): prod refuses several tenants whose only boundary would be the
namespace; node pools fit the site and their tenant's GPU limit; every pod the program defines for a tenant runs on
that tenant's nodes and tolerates no other tenant's taint. Fixture stacks from tests/support/synthetic.py."""
import pytest
import yaml

from ncp.readmodel.recorder import run_program
from tests.support.synthetic import mutate, record_storage, secret_keys, site_config
from ncp.plan.errors import ConfigError
from ncp.plan.names import TENANT_KEY
from ncp.plan.site_plan import RDMA_RAIL_ISOLATION, build_plan
from ncp.scaffold.checklist import render_checklist
from tests.test_operators import CHAT_ENDPOINT

REASONING_ENDPOINT = {  # disaggregated across two nodes: its workers use the RDMA rails
    "name": "reason", "tenant": "t1", "backend": "trtllm", "sizing": "sites/prod/sizing/reasoning-large.yaml",
    "router": "kv",
    "model": {"name": "Qwen/Qwen3-235B-A22B-FP8", "source": "hf://Qwen/Qwen3-235B-A22B-FP8",
              "revision": "39eb2b067ea6b8e3e1dd97d3cd0c7ffeaf3e1a35", "class": "moe-llm"},
    "slo": {"isl": 8000, "osl": 1000, "ttftMs": 500, "tpotMs": 20, "concurrency": 48, "requestCount": 1000,
            "thresholds": {"timeToFirstTokenP95Ms": 700}},
}
SERVING = {"storage": {
    "modelArtifacts": {"storageClass": "models", "size": "1Ti", "accessMode": "ReadWriteMany"},
    "modelCache": {"storageClass": "nvme", "size": "1Ti"},
    "benchmarkOutput": {"storageClass": "results", "size": "100Gi"}},
    "validation": {"benchmarkImage": "nvcr.io/test-org/tools/aiperf:0.8.0"}}


def problems(config: dict) -> str:
    with pytest.raises(ConfigError) as error:
        build_plan(config, secret_keys(config), "Pulumi.test.yaml")
    return str(error.value)


def plan(config: dict):
    return build_plan(config, secret_keys(config), "Pulumi.test.yaml")


def without_pools(config: dict) -> dict:
    result = mutate(config, "site.name", config["site"]["name"])
    for tenant in result["tenants"]:
        tenant.pop("nodePool", None)
    return result


def serving_site(pools: bool = True) -> dict:
    """Staging HGX H200 site, 8 nodes, two tenants with an endpoint each (t1's disaggregated over the rails). Without
    pools, only t0 shares the GPU nodes: t1's RDMA workers need a Pod Security exception, which the plan confines to
    dedicated nodes."""
    config = site_config("hgx-h200", "staging", tenants=2, gpu_nodes=8)
    for tenant in config["tenants"]:
        tenant.update(gpuQuota=16, gpuLimit=32, cpuQuota="512", memoryQuota="2Ti",
                      **({"nodePool": {"nodes": 4}} if pools or tenant["name"] == "t1" else {}))
    config["endpoints"] = [{**CHAT_ENDPOINT, "tenant": "t0"}, REASONING_ENDPOINT]
    config["components"]["serving"] = SERVING
    return record_storage(config)


# --- refusals ---------------------------------------------------------------------------------------------------------

# RA: Workload Isolation: "namespaces are useful but should not be the only isolation boundary"
def test_prod_refuses_several_tenants_without_dedicated_nodes():
    config = without_pools(site_config("hgx-h200", "prod", tenants=2, gpu_nodes=4))
    text = problems(config)
    for index, name in enumerate(("t0", "t1")):
        assert (f"ncp-inference:tenants[{index}].nodePool: is required in prod with 2 tenants: without dedicated "
                "nodes the namespace would be the tenant's only isolation boundary") in text
        assert f"give tenant {name} its own GPU nodes" in text
    assert "profile hgx-h200 (tenancy.isolation dedicated-nodes)" in text
    assert "pulumi config set --path 'ncp-inference:tenants[0].nodePool.nodes' <value>" in text
    # The same site with the pools synthetic.py gives every prod tenant is accepted.
    assert plan(site_config("hgx-h200", "prod", tenants=2, gpu_nodes=4)).tenant_node_pools["t1"]["nodes"] == 2


def test_a_tenant_with_a_pod_security_exception_needs_its_own_nodes_in_every_environment():
    """t1's workers use the rails (IPC_LOCK as root: a privileged namespace); sharing nodes with t0 is refused in
    staging too, naming the key and the fix; alone on the site, or on its own nodes, it is accepted."""
    config = without_pools(serving_site())
    text = problems(config)
    assert ("ncp-inference:tenants[1].nodePool: is required: tenant t1 runs RDMA workers, which need a privileged Pod "
            "Security exception, and shares the site with other tenants") in text
    assert "tenants[0].nodePool" not in text, "t0 needs no exception"
    assert plan(serving_site(pools=False)).placement("t1") is not None


def test_one_tenant_missing_its_pool_is_named():
    config = site_config("hgx-h200", "prod", tenants=3, gpu_nodes=6)
    del config["tenants"][1]["nodePool"]
    text = problems(config)
    assert "tenants[1].nodePool: is required in prod" in text and "tenants[0].nodePool" not in text


def test_namespace_tenancy_outside_prod_and_a_single_prod_tenant_need_no_pool():
    assert not plan(without_pools(site_config("hgx-h200", "staging", tenants=2))).tenant_node_pools
    assert not plan(site_config("hgx-h200", "prod", tenants=1)).tenant_node_pools


def test_a_pool_must_hold_its_tenants_gpu_limit():
    config = mutate(site_config("hgx-h200", "prod", tenants=2, gpu_nodes=4), "tenants[0].gpuLimit", 17)
    text = problems(config)
    assert ("ncp-inference:tenants[0].nodePool.nodes: 2 nodes hold 16 GPUs; the tenant's gpuLimit is 17, and its pods "
            "run only on its own nodes") in text
    assert "give it >= 3 nodes, or lower gpuLimit" in text


def test_pools_must_fit_the_site():
    config = mutate(site_config("hgx-h200", "prod", tenants=2, gpu_nodes=4), "tenants[1].nodePool.nodes", 3)
    text = problems(config)
    assert "ncp-inference:tenants: dedicate 5 nodes in total (sum of nodePool.nodes); site.gpuNodes is 4" in text
    assert "'ncp-inference:site.gpuNodes'" in text


# --- placement --------------------------------------------------------------------------------------------------------

def tenant_pod_specs(recording) -> list[tuple[str, str, dict]]:
    """(tenant, where, pod spec) for every pod the program defines in a tenant namespace."""
    specs = []
    for resource in recording.resources:
        if not resource.custom:
            continue
        namespace = resource.inputs.get("metadata", {}).get("namespace", "")
        if not namespace.startswith("tenant-"):
            continue
        tenant, kind = namespace.removeprefix("tenant-"), resource.inputs.get("kind")
        if kind in ("Job", "Deployment", "StatefulSet", "DaemonSet"):
            template = resource.inputs["spec"].get("jobTemplate", {}).get("spec", resource.inputs["spec"])["template"]
            specs.append((tenant, f"{kind}/{resource.inputs['metadata']['name']}", template["spec"]))
        elif kind == "DynamoGraphDeployment":
            for service, definition in resource.inputs["spec"]["services"].items():
                specs.append((tenant, f"{kind}/{service}", definition.get("extraPodSpec", {})))
    return specs


def tolerates(toleration: dict, key: str, value: str, effect: str) -> bool:
    """Kubernetes toleration matching (k8s.io/api core/v1 toleration.go ToleratesTaint)."""
    if toleration.get("effect") and toleration["effect"] != effect:
        return False
    if toleration.get("key") and toleration["key"] != key:
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return True
    return toleration.get("key") == key and toleration.get("value", "") == value


def placement_violations(specs, tenants: list[str]) -> list[str]:
    violations = []
    for tenant, where, spec in specs:
        if (spec.get("nodeSelector") or {}).get(TENANT_KEY) != tenant:
            violations.append(f"{where} of {tenant} does not select its nodes")
        tolerations = spec.get("tolerations") or []
        if not any(tolerates(t, TENANT_KEY, tenant, "NoSchedule") for t in tolerations):
            violations.append(f"{where} of {tenant} does not tolerate its nodes' taint")
        for other in tenants:
            if other != tenant and any(tolerates(t, TENANT_KEY, other, "NoSchedule") for t in tolerations):
                violations.append(f"{where} of {tenant} tolerates {other}'s taint")
    return violations


def test_every_tenant_pod_runs_on_its_own_nodes_only():
    recording = run_program(serving_site(), stack="dedicated")
    specs = tenant_pod_specs(recording)
    kinds = {where.split("/")[0] for _, where, _ in specs}
    assert kinds == {"Job", "DynamoGraphDeployment"}  # staging and benchmark Jobs; frontends and workers
    assert {tenant for tenant, _, _ in specs} == {"t0", "t1"}
    assert placement_violations(specs, ["t0", "t1"]) == []
    workers = [spec for _, where, spec in specs if "Worker" in where]
    assert workers and all(spec["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-H200" for spec in workers)


def test_tenant_namespaces_hold_pods_they_create_to_their_nodes():
    """Pods a tenant admin creates are not the program's: the namespace's PodNodeSelector annotation (kubernetes
    plugin/pkg/admission/podnodeselector) merges the tenant's selector into each and refuses a conflicting one."""
    def selectors(config):
        recording = run_program(config, stack="dedicated")
        return {r.inputs["metadata"]["name"]: (r.inputs["metadata"].get("annotations") or {}).get(
            "scheduler.alpha.kubernetes.io/node-selector") for r in recording.of_type("kubernetes:core/v1:Namespace")
            if r.inputs["metadata"]["name"].startswith("tenant-")}
    assert selectors(serving_site()) == {"tenant-t0": f"{TENANT_KEY}=t0", "tenant-t1": f"{TENANT_KEY}=t1"}
    assert selectors(serving_site(pools=False)) == {"tenant-t0": None, "tenant-t1": f"{TENANT_KEY}=t1"}


def test_the_placement_check_catches_shared_nodes_and_foreign_tolerations():
    recording = run_program(serving_site(pools=False), stack="shared")
    specs = tenant_pod_specs(recording)
    violations = placement_violations(specs, ["t0", "t1"])
    shared = [spec for spec in specs if spec[0] == "t0"]
    assert shared and len(violations) == 2 * len(shared)  # no selector, no toleration, on every pod of t0
    wildcard = [("t0", "Job/x", {"nodeSelector": {TENANT_KEY: "t0"},
                                 "tolerations": [{"operator": "Exists"}]})]
    assert placement_violations(wildcard, ["t0", "t1"]) == ["Job/x of t0 tolerates t1's taint"]


# --- site steps -------------------------------------------------------------------------------------------------------

def test_checklist_and_baseline_record_carry_the_site_steps():
    config = serving_site()
    site_plan = plan(config)
    text = render_checklist(site_plan, [])
    assert (f"4 GPU nodes and at least one CPU node (for its frontends, planners and Jobs, which stay off GPU nodes) "
            f"for tenant t1 alone: `kubectl label node <node> {TENANT_KEY}=t1` and "
            f"`kubectl taint node <node> {TENANT_KEY}=t1:NoSchedule`") in text
    assert f"tenant rail isolation: {RDMA_RAIL_ISOLATION}" in text
    assert "kube-apiserver admission plugin `PodNodeSelector` enabled" in text
    recording = run_program(config, stack="dedicated")
    record = next(r for r in recording.resources if r.inputs.get("metadata", {}).get("name") == "ncp-baseline-record")
    pools = yaml.safe_load(record.inputs["data"]["tenantNodePools"])  # one YAML document per key
    assert record.inputs["data"]["tenantRdmaRails"] == RDMA_RAIL_ISOLATION  # strings are kept as they are
    assert pools["t0"] == {"nodes": 4, "label": f"{TENANT_KEY}=t0", "taint": f"{TENANT_KEY}=t0:NoSchedule"}


def test_scaffold_gives_each_prod_tenant_its_nodes(tmp_path):
    from ncp.plan.catalog import load_profile
    from ncp.scaffold.cli import TenantAnswer, render
    text = render("west", load_profile("hgx-h200"), "prod", 4,
                  [TenantAnswer.parse("acme:16:24"), TenantAnswer.parse("beta:8")])
    assert "nodePool: {nodes: 3}" in text and "nodePool: {nodes: 1}" in text


# --- quota before claims ----------------------------------------------------------------------------------------------

def test_tenant_claims_wait_for_the_tenant_quota():
    """Admission refuses a claim the quota covers until the quota controller wrote the quota's status: the tenant's
    claims, staging Job and graph depend on the tenant environment, whose quota Pulumi awaits until status.hard."""
    recording = run_program(serving_site(), stack="dedicated")
    quota = next(r for r in recording.resources if r.type == "kubernetes:core/v1:ResourceQuota"
                 and r.inputs["metadata"]["name"] == "tenant-quota"
                 and r.inputs["metadata"]["namespace"] == "tenant-t0")
    assert quota.inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == "jsonpath={.status.hard.pods}"
    # The engine receives a dependency on a component as one on each of its resources.
    waiting = [r for r in recording.resources if r.inputs.get("metadata", {}).get("namespace") == "tenant-t0"
               and (r.type in ("kubernetes:core/v1:PersistentVolumeClaim", "kubernetes:batch/v1:Job")
                    or r.inputs.get("kind") == "DynamoGraphDeployment")]
    assert {r.inputs["kind"] for r in waiting} == {"PersistentVolumeClaim", "Job", "DynamoGraphDeployment"}
    assert all(quota.urn in r.dependencies for r in waiting), \
        [r.name for r in waiting if quota.urn not in r.dependencies]
