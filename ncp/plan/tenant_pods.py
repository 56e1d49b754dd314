"""Every pod the program puts in a tenant namespace, at the resources quota admission counts for it, summed per tenant
against the tenant's ResourceQuota: a stack the plan accepts is never refused by quota admission.

What runs at once, counted together: the Dynamo workers (at the planner's maxReplicas where a planner scales them),
the two frontends and the planner of each endpoint (no resources of their own: the tenant LimitRange's defaults),
each endpoint's picker, the tenant's ModelExpress server, every Triton server, and every Job the program creates in
the namespace: model staging (it re-runs beside the serving graph when a revision changes), the engine builds
(likewise beside their server) and the AIPerf benchmarks (run on demand beside what they measure). GPUs are the
exception: an engine build's GPUs are counted as its server's, which the program creates only after the build has
run. The figures come from the files the
components build their pods from (data/dynamo-backends.yaml for workers, data/tenant-pods.yaml for the rest)."""
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional, Sequence

from ncp.plan.catalog import ROOT, _load
from ncp.plan.config import Quantity, StackConfig, Tenant
from ncp.plan.endpoint_plan import EndpointPlan, WorkerGroup
from ncp.plan.endpoints import worker_pods
from ncp.plan.inference_services import InferenceServicePlan
from ncp.plan.strict import StrictModel

TENANT_PODS_FILE = ROOT / "data" / "tenant-pods.yaml"
# RA: Validation Methodology: "east-west reachability, north-south redundancy, storage configuration"
FRONTEND_REPLICAS = 2  # frontends of every endpoint, on different nodes (components/serving/graph.py)
GI = 2**30
_UNITS = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": GI, "Ti": 2**40,
          "m": 1e-3}


def quantity(value: str) -> float:
    """A Kubernetes quantity as a number (cores or bytes)."""
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", value)
    if match is None or match.group(2) not in _UNITS:  # the config's Quantity pattern admits only this form
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    number, unit = match.groups()
    return float(number) * _UNITS[unit]


class Amounts(StrictModel):
    cpu: Quantity
    memory: Quantity


class ContainerResources(StrictModel):
    requests: Amounts
    limits: Amounts


class LimitRangeDefaults(StrictModel):
    default_request: Amounts
    default: Amounts
    min: Amounts


class TenantPods(StrictModel):
    source: str
    limit_range: LimitRangeDefaults
    containers: dict[str, ContainerResources]

    def container(self, name: str) -> ContainerResources:
        try:
            return self.containers[name]
        except KeyError:
            raise KeyError(f"{TENANT_PODS_FILE.name} has no container entry {name!r}") from None

    @property
    def defaulted(self) -> ContainerResources:
        """A container that sets no resources, as the tenant LimitRange admits it."""
        return ContainerResources(requests=self.limit_range.default_request, limits=self.limit_range.default)


@lru_cache(maxsize=1)
def load_tenant_pods() -> TenantPods:
    return _load(TenantPods, TENANT_PODS_FILE)


@dataclass(frozen=True)
class PodGroup:
    """`pods` identical pods of one kind, each at the amounts admission counts (cores, bytes, GPUs)."""

    what: str
    pods: int
    requests_cpu: float
    requests_memory: float
    limits_cpu: float
    limits_memory: float
    gpus: int = 0

    @classmethod
    def of(cls, what: str, pods: int, containers: Sequence[ContainerResources],
           init: Sequence[ContainerResources] = (), gpus: int = 0) -> "PodGroup":
        """A pod's amount is the sum of its containers, or its largest init container where that is more."""
        def amount(side: str, key: str) -> float:
            running = sum(quantity(getattr(getattr(c, side), key)) for c in containers)
            return max([running, *(quantity(getattr(getattr(c, side), key)) for c in init)])
        return cls(what, pods, amount("requests", "cpu"), amount("requests", "memory"), amount("limits", "cpu"),
                   amount("limits", "memory"), gpus)


# quota key of the stack -> (ResourceQuota key, PodGroup field, unit shown)
QUOTA_KEYS = {
    "cpuQuota": ("requests.cpu", "requests_cpu", ""),
    "memoryQuota": ("requests.memory", "requests_memory", "Gi"),
    "cpuLimit": ("limits.cpu", "limits_cpu", ""),
    "memoryLimit": ("limits.memory", "limits_memory", "Gi"),
    "gpuLimit": ("requests.{gpu}", "gpus", ""),
    "podQuota": ("pods", "pods", ""),
}


@dataclass
class TenantDemand:
    """What one tenant's pods take at once, pod group by pod group."""

    tenant: str
    groups: list[PodGroup] = field(default_factory=list)

    def total(self, attribute: str) -> float:
        if attribute == "pods":
            return sum(group.pods for group in self.groups)
        return sum(group.pods * getattr(group, attribute) for group in self.groups)

    def shown(self, attribute: str) -> str:
        """The total as a quota value that holds it: whole Gi for memory, cores to the milli-core."""
        total = self.total(attribute)
        if attribute.endswith("memory"):
            return f"{math.ceil(total / GI - 1e-9)}Gi"
        return f"{math.ceil(total * 1000 - 1e-6) / 1000:g}"

    def breakdown(self, attribute: str) -> str:
        parts = []
        for group in self.groups:
            each = group.pods if attribute == "pods" else getattr(group, attribute)
            if not each:
                continue
            if attribute == "pods":
                parts.append(f"{group.what} {each}")
                continue
            value = f"{each / GI:g}Gi" if attribute.endswith("memory") else f"{each:g}"
            parts.append(f"{group.what} {group.pods} x {value}")
        return ", ".join(parts)


def _at_most(plan: EndpointPlan, group: WorkerGroup) -> WorkerGroup:
    """The role's workers at the planner's maxReplicas (the sized replicas without a planner)."""
    if plan.planner is None:
        return group
    return group.model_copy(update={"replicas": plan.planner.max_replicas[group.role]})


def endpoint_pods(plan: EndpointPlan, gpus_per_node: int, picker: bool) -> list[PodGroup]:
    """The pods of one planned endpoint, its workers at the planner's maximum."""
    return endpoint_pod_groups(plan.name, plan.endpoint.backend, [_at_most(plan, group) for group in plan.workers],
                               gpus_per_node, kv_offload=plan.kv_offload_gb is not None,
                               planner=bool(plan.endpoint.planner), picker=picker)


def endpoint_pod_groups(name: str, backend: str, workers: Sequence[WorkerGroup], gpus_per_node: int, *,
                        kv_offload: bool, planner: bool, picker: bool) -> list[PodGroup]:
    """The pods of one endpoint: its workers, two frontends, the planner, picker, staging and benchmark Jobs."""
    data = load_tenant_pods()
    groups = []
    for group in workers:
        pods = worker_pods(backend, group, gpus_per_node, kv_offload)
        amounts = Amounts(cpu=str(pods.cpu), memory=f"{pods.memory_gi}Gi")
        groups.append(PodGroup.of(f"{name} {'' if group.role == 'worker' else group.role + ' '}workers", pods.pods,
                                  [ContainerResources(requests=amounts, limits=amounts)], gpus=pods.gpus_per_pod))
    groups.append(PodGroup.of(f"{name} frontends (LimitRange default)", FRONTEND_REPLICAS, [data.defaulted]))
    if planner:
        groups.append(PodGroup.of(f"{name} planner (LimitRange default)", 1, [data.defaulted]))
    if picker:
        groups.append(PodGroup.of(f"{name} endpoint picker", 1, [data.container("endpointPicker")]))
    groups.append(PodGroup.of(f"{name} model staging Job", 1, [data.container("modelStaging")]))
    groups.append(PodGroup.of(f"{name} benchmark Job", 1, [data.container("benchmark")]))
    return groups


def service_pods(plan: InferenceServicePlan) -> list[PodGroup]:
    """The pods of one Triton service: its servers (with their engine check), the engine build and the benchmark."""
    data = load_tenant_pods()
    name, gpus = plan.name, plan.service.gpus.count
    return [PodGroup.of(f"{name} Triton servers", plan.service.replicas, [data.container("tritonServer")],
                        init=[data.container("tritonVerify")], gpus=gpus),
            # Its GPUs are the servers': the server Deployment is created once the build has run (triton.py).
            PodGroup.of(f"{name} engine build Job", 1, [data.container("engineBuild")]),
            PodGroup.of(f"{name} benchmark Job", 1, [data.container("benchmark")])]


def model_express_tenants(model_express: bool, endpoints: Sequence[EndpointPlan]) -> list[str]:
    """The tenants that run their own ModelExpress server: every serving tenant, where the site runs ModelExpress
    (docs/decisions/0005-model-express-per-tenant.md)."""
    return sorted({endpoint.tenant.name for endpoint in endpoints}) if model_express else []


def tenant_demands(config: StackConfig, endpoints: Sequence[EndpointPlan], services: Sequence[InferenceServicePlan],
                   gpus_per_node: int) -> dict[str, TenantDemand]:
    picker = config.components.serving.gateway_inference_extension
    demands = {tenant.name: TenantDemand(tenant.name) for tenant in config.tenants}
    for endpoint in endpoints:
        demands[endpoint.tenant.name].groups += endpoint_pods(endpoint, gpus_per_node, picker)
    for service in services:
        demands[service.tenant.name].groups += service_pods(service)
    for tenant in model_express_tenants(config.components.serving.model_express, endpoints):
        demands[tenant].groups.append(PodGroup.of("ModelExpress server", 1,
                                                  [load_tenant_pods().container("modelExpress")]))
    return demands


def quota_of(tenant: Tenant, key: str) -> tuple[str, str]:
    """(stack key that sets it, its value): limits default to the quotas when the stack sets none."""
    values: dict[str, Optional[str]] = {
        "cpuQuota": tenant.cpu_quota, "memoryQuota": tenant.memory_quota, "gpuLimit": str(tenant.gpu_limit),
        "podQuota": str(tenant.pod_quota), "cpuLimit": tenant.cpu_limit, "memoryLimit": tenant.memory_limit}
    value = values[key]
    if value is None:
        fallback = {"cpuLimit": "cpuQuota", "memoryLimit": "memoryQuota"}[key]
        return fallback, str(values[fallback])
    return key, value


