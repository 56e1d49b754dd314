"""A stack the plan accepts is never refused by quota admission: the plan counts every pod the program puts in a tenant
namespace (workers, frontends, planner, picker, Triton servers, staging, engine-build and benchmark Jobs) at the
values admission sees, and its sums are the rendered pods' own (issue #23)."""
import copy

import pytest

from ncp.readmodel.recorder import run_stack_file
from ncp.plan.errors import ConfigError
from ncp.plan.names import tenant_namespace
from ncp.plan.site_plan import build_plan
from ncp.plan.sources import read_stack_file
from ncp.plan.tenant_pods import GI, QUOTA_KEYS, quantity, tenant_demands
from tests.e2e.test_lab_e2e import CONFIG as COMPOSED_LAB

POD_KINDS = ("Deployment", "Job", "DynamoGraphDeployment")


def _problems(raw: dict) -> str:
    with pytest.raises(ConfigError) as error:
        build_plan(raw, set(), "Pulumi.e2e-lab.yaml")
    return str(error.value)


def test_the_composed_lab_quota_that_admission_refused_is_refused_by_the_plan():
    """The composed lab e2e had memoryQuota 160Gi and the API server refused its pods (limits.memory 176Gi > 160Gi):
    the old count took the worker alone (112Gi) and accepted it. Frontends and Jobs count at the LimitRange's default
    limit (16Gi), the worker at its own."""
    raw = copy.deepcopy(COMPOSED_LAB)
    raw["tenants"][0]["memoryQuota"] = "160Gi"
    text = _problems(raw)
    assert ("ncp-inference:tenants[0].memoryQuota: is 160Gi; quota admission counts 176Gi of limits.memory "
            "(chat-small workers 1 x 112Gi, chat-small frontends (LimitRange default) 2 x 16Gi, chat-small model "
            "staging Job 1 x 16Gi, chat-small benchmark Job 1 x 16Gi) for tenant dev's pods in tenant-dev at once"
            ) in text
    assert ("fix: raise memoryQuota to at least 176Gi: pulumi config set --path 'ncp-inference:tenants[0].memoryQuota'"
            " 176Gi") in text
    raw["tenants"][0]["memoryQuota"] = "176Gi"  # the fix, applied
    build_plan(raw, set(), "Pulumi.e2e-lab.yaml")


@pytest.mark.parametrize("key", sorted(QUOTA_KEYS))
def test_every_quota_key_is_checked_and_its_fix_is_enough(key):
    """Each key one below what the tenant's pods take is refused with that key's command; the value the command
    sets is accepted."""
    raw = copy.deepcopy(COMPOSED_LAB)
    tenant = raw["tenants"][0]
    tenant.update(cpuLimit=tenant["cpuQuota"], memoryLimit=tenant["memoryQuota"])
    plan = build_plan(raw, set(), "Pulumi.e2e-lab.yaml")
    demand = tenant_demands(plan.config, plan.endpoints, plan.inference_services, plan.profile.gpu.per_node)["dev"]
    attribute = QUOTA_KEYS[key][1]
    need = demand.shown(attribute)
    below = {"": lambda v: str(int(quantity(v)) - 1), "Gi": lambda v: f"{int(quantity(v) / GI) - 1}Gi"}
    low = below[QUOTA_KEYS[key][2]](need)
    tenant[key] = int(low) if key in ("gpuLimit", "podQuota") else low
    if key == "gpuLimit":
        tenant["gpuQuota"] = 0
    text = _problems(raw)
    assert f"ncp-inference:tenants[0].{key}: is {low}; quota admission counts {need} of " in text
    assert f"pulumi config set --path 'ncp-inference:tenants[0].{key}' {need}" in text
    tenant[key] = int(need) if key in ("gpuLimit", "podQuota") else need
    tenant["gpuQuota"] = COMPOSED_LAB["tenants"][0]["gpuQuota"]
    build_plan(raw, set(), "Pulumi.e2e-lab.yaml")


def _pod_amounts(containers: list[dict], init: list[dict], defaults: dict) -> dict[str, float]:
    """A pod's amounts as admission counts them, each container without resources at the LimitRange's defaults."""
    def side(container: dict, which: str, key: str) -> float:
        resources = container.get("resources") or {}
        value = (resources.get(which) or {}).get(key)
        return quantity(value if value is not None else defaults[which][key])
    amounts = {}
    for which, key in (("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")):
        running = sum(side(c, which, key) for c in containers)
        amounts[f"{which}_{key}"] = max([running, *(side(c, which, key) for c in init)])
    amounts["gpus"] = sum(int((c.get("resources") or {}).get("requests", {}).get("nvidia.com/gpu", 0))
                          for c in containers)
    return amounts


def rendered_sums(recording, namespace: str) -> dict[str, float]:
    """What the rendered objects of one namespace put there at once: Deployments at their replicas, one pod per Job,
    each Dynamo service at replicas x nodes (its `resources` on the main container, none on the others)."""
    manifests = [r.inputs for r in recording.resources if r.custom
                 and (r.inputs.get("metadata") or {}).get("namespace") == namespace]
    limit_range = next(m for m in manifests if m.get("kind") == "LimitRange")["spec"]["limits"][0]
    defaults = {"requests": limit_range["defaultRequest"], "limits": limit_range["default"]}
    sums = dict.fromkeys(("requests_cpu", "requests_memory", "limits_cpu", "limits_memory", "gpus", "pods"), 0.0)

    def add(pods: int, amounts: dict[str, float], gpus: bool = True) -> None:
        sums["pods"] += pods
        for key, value in amounts.items():
            sums[key] += pods * value if (gpus or key != "gpus") else 0

    for manifest in manifests:
        kind = manifest.get("kind")
        if kind in ("Deployment", "Job"):
            pod = manifest["spec"]["template"]["spec"]
            # An engine build's GPUs are its server's (ncp/plan/tenant_pods.py): the server is created after it.
            add(int(manifest["spec"].get("replicas", 1)) if kind == "Deployment" else 1,
                _pod_amounts(pod["containers"], pod.get("initContainers", []), defaults), gpus=kind != "Job")
        elif kind == "DynamoGraphDeployment":
            for service in manifest["spec"]["services"].values():
                resources = service.get("resources")
                container = {"resources": {side: {k: v for k, v in resources[side].items() if k in ("cpu", "memory")}
                                           for side in ("requests", "limits")}} if resources else {}
                amounts = _pod_amounts([container], [], defaults)
                amounts["gpus"] = int(resources["requests"]["gpu"]) if resources else 0
                add(int(service["replicas"]) * int(service.get("multinode", {}).get("nodeCount", 1)), amounts)
    return sums


@pytest.mark.parametrize("stack", ["lab", "vision"])
def test_the_plans_sums_are_the_rendered_pods(stack):
    """The plan's per-tenant sums equal what the rendered Deployments, Jobs and graphs put in each tenant namespace at
    the rendered LimitRange's defaults: a resource changed in a component without the plan's data would differ."""
    raw, secrets = read_stack_file(stack)
    plan = build_plan(raw, secrets, f"Pulumi.{stack}.yaml")
    assert not any(e.planner for e in plan.endpoints), "a planner's maximum is not what the graph renders"
    recording = run_stack_file(stack)
    demands = tenant_demands(plan.config, plan.endpoints, plan.inference_services, plan.profile.gpu.per_node)
    checked = 0
    for tenant, demand in demands.items():
        if not demand.groups:
            continue
        rendered = rendered_sums(recording, tenant_namespace(tenant))
        planned = {attribute: demand.total(attribute) for _, attribute, _ in QUOTA_KEYS.values()}
        assert planned == pytest.approx(rendered), tenant
        checked += 1
    assert checked
