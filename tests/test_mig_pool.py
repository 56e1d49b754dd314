"""A MIG layout on one tenant's dedicated nodes: that tenant's pods get MIG slices and select the MIG product label,
every other tenant keeps whole GPUs; capacity counts both; the layout reaches exactly those nodes through the
mig-manager label the site puts on them (no NFD rule, which would partition every GPU node); and every way to
get it wrong is a config error naming the key."""
import yaml

from ncp.readmodel.recorder import run_program
from tests.support.synthetic import mutate, secret_keys
from ncp.plan.catalog import integration_points
from ncp.plan.site_plan import build_plan
from ncp.scaffold.checklist import render_checklist
from tests.test_inference_services import config, problems

POOLED = {"strategy": "single", "layout": {"1g.18gb": 7}, "nodePool": "t1"}
SLICE = {"count": 1, "migProfile": "1g.18gb"}


def pooled(**changes) -> dict:
    """Prod, 4 H200 nodes: t0 and t1 own 2 each; t1's are partitioned, and its service runs on a slice."""
    raw = config("prod", mig=POOLED, tenant="t1", gpus=SLICE, replicas=4, **changes)
    raw["components"]["serving"]["imageDigests"] |= {"tritonserver": "sha256:" + "a" * 64,
                                                    "tensorrt": "sha256:" + "b" * 64}
    raw["tenants"][1].update(gpuQuota=28, gpuLimit=112)
    return raw


def test_only_the_pool_is_partitioned():
    plan = build_plan(pooled(), secret_keys(pooled()), "Pulumi.test.yaml")
    assert plan.gpu_capacity == 2 * 8 + 2 * 8 * 7
    assert (plan.gpu_product_for("t0"), plan.gpu_product_for("t1")) == ("NVIDIA-H200", "NVIDIA-H200-MIG-1g.18gb")
    assert plan.gpu_node_products == {"NVIDIA-H200": 2, "NVIDIA-H200-MIG-1g.18gb": 2}
    assert plan.inference_services[0].gpu_product == "NVIDIA-H200-MIG-1g.18gb"
    label = integration_points().gpu.mig_config_label
    assert plan.tenant_node_pools["t1"]["migConfigLabel"] == f"{label}=ncp-layout"
    assert "migConfigLabel" not in plan.tenant_node_pools["t0"]
    checklist = render_checklist(plan, ["gpuOperator"])
    assert f"kubectl label --overwrite node <node> {label}=ncp-layout" in checklist
    assert "`nvidia.com/gpu.product=NVIDIA-H200-MIG-1g.18gb` (2)" in checklist


def test_the_layout_reaches_only_the_labelled_nodes():
    raw = pooled()
    recording = run_program(raw, secret_keys(raw), stack="t")
    assert not recording.custom_resources("NodeFeatureRule"), "an NFD rule would label every GPU node"
    manager = recording.releases()["gpu-operator"].inputs["values"]["migManager"]["config"]
    assert manager["default"] == "all-disabled", "unlabelled nodes stay whole"
    assert "ncp-layout" in yaml.safe_load(manager["data"]["config.yaml"])["mig-configs"]
    server = next(r.inputs for r in recording.resources if r.inputs.get("kind") == "Deployment"
                  and r.inputs["metadata"]["namespace"] == "tenant-t1")
    selector = server["spec"]["template"]["spec"]["nodeSelector"]
    assert selector[integration_points().gpu.product_label] == "NVIDIA-H200-MIG-1g.18gb"


def test_pool_must_name_a_tenant_with_dedicated_nodes():
    unknown = problems(mutate(pooled(), "components.gpuOperator.mig.nodePool", "nobody"))
    assert "unknown tenant 'nobody'" in unknown["ncp-inference:components.gpuOperator.mig.nodePool"]
    raw = pooled()
    raw["site"]["environment"] = "staging"
    del raw["tenants"][1]["nodePool"]
    shared = problems(raw)
    assert "has no dedicated nodes" in shared["ncp-inference:components.gpuOperator.mig.nodePool"]


def test_a_slice_is_refused_outside_the_pool():
    found = problems(mutate(pooled(), "inferenceServices[0].tenant", "t0"))
    message = found["ncp-inference:inferenceServices[0].gpus.migProfile"]
    assert "tenant t0's nodes have whole GPUs" in message and "tenant t1" in message


def test_pool_limits_count_slices_and_other_pools_whole_gpus():
    within = mutate(pooled(), "tenants[1].gpuLimit", 112)
    assert build_plan(within, secret_keys(within), "Pulumi.test.yaml").tenants[1].gpu_limit == 112
    found = problems(mutate(pooled(), "tenants[0].gpuLimit", 17))
    assert "2 nodes hold 16 GPUs" in found["ncp-inference:tenants[0].nodePool.nodes"]


def test_replicated_servers_spread_over_hosts_and_drain_one_at_a_time():
    raw = pooled()
    recording = run_program(raw, secret_keys(raw), stack="t")
    server = next(r.inputs for r in recording.resources if r.inputs.get("kind") == "Deployment"
                  and r.inputs["metadata"]["namespace"] == "tenant-t1")
    term = server["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == integration_points().kubernetes.hostname_label
    assert term["labelSelector"]["matchLabels"] == server["spec"]["selector"]["matchLabels"]
    budget = next(r.inputs for r in recording.resources if r.inputs.get("kind") == "PodDisruptionBudget")
    assert budget["spec"] == {"maxUnavailable": 1, "selector": server["spec"]["selector"]}
