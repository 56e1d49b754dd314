"""The plans of serving endpoints: each endpoint's sized workers, image, planner bounds and KV offload, and the pods
the Dynamo operator makes of them. The endpoint rules (tenant, backend disposition, model provenance, sizing file,
GPU budget and fabric) are ncp/plan/rules/endpoints.py."""
import math
from dataclasses import dataclass

from ncp.plan.catalog import ROOT, CompatibilityMatrix, load_dynamo_runtime
from ncp.plan.config import StackConfig
from ncp.plan.endpoint_plan import EndpointPlan, WorkerGroup
from ncp.plan.names import tenant_namespace
from ncp.plan.profile import HardwareProfile
from ncp.plan.serving_features import kv_offload_gb, planner_plan
from ncp.plan.sizing_bridge import Layout, SizingMismatch, read_layout


@dataclass(frozen=True)
class WorkerPods:
    """The pods of one worker group as the Dynamo operator creates them: a multi-node worker is one pod per node."""

    pods: int
    gpus_per_pod: int
    cpu: int
    memory_gi: int
    shared_memory_gi: int


def worker_pods(backend: str, group: WorkerGroup, gpus_per_node: int, kv_offload: bool) -> WorkerPods:
    """Host CPU and memory of each worker pod, from its GPUs and engine (data/dynamo-backends.yaml workerResources):
    cores and memory per GPU plus the engine's /dev/shm, which is memory-backed and charged to the pod, plus the KV
    block manager's pinned host tier when the endpoint offloads KV (kvbm.hostCacheGbPerGpu)."""
    runtime = load_dynamo_runtime()
    resources, shm = runtime.worker_resources, runtime.backends[backend].shared_memory_gi
    nodes = math.ceil(group.gpus_per_worker / gpus_per_node)
    gpus = min(group.gpus_per_worker, gpus_per_node)
    host_cache_gi = math.ceil(gpus * runtime.kvbm.host_cache_gb_per_gpu * 1e9 / 2**30) if kv_offload else 0
    return WorkerPods(pods=group.replicas * nodes, gpus_per_pod=gpus, cpu=gpus * resources.cpu_per_gpu,
                      memory_gi=shm + gpus * resources.memory_per_gpu_gi + host_cache_gi, shared_memory_gi=shm)


# RA: Networking: "so the highest-volume traffic remains on the most appropriate fabric"
def rdma_workers(plan: EndpointPlan, network_enabled: bool) -> bool:
    """Workers use the east-west RDMA rails when the site has them and they talk across nodes: disaggregated workers
    move the KV cache, and a worker spanning nodes runs its model-parallel collectives between them."""
    return network_enabled and (plan.mode == "disaggregated" or plan.multi_node)


def runtime_image(matrix: CompatibilityMatrix, key: str, digests: dict[str, str]) -> str:
    """A Dynamo image (a backend runtime, or the planner) of the pinned release, by digest where one is recorded."""
    image = matrix.workload("dynamoRuntime").images[key]
    return f"{image}@{digests[key]}" if key in digests else image


def sized_layouts(config: StackConfig, profile: HardwareProfile) -> dict[int, Layout]:
    """endpoint index -> its sized layout, for the endpoints whose tenant exists and whose sizing file matches (the
    endpoint rules refuse the others, ncp/plan/rules/endpoints.py)."""
    tenants = {t.name for t in config.tenants}
    layouts = {}
    for index, endpoint in enumerate(config.endpoints):
        if endpoint.tenant not in tenants:
            continue
        try:
            # RA: Model Optimization And Runtime Preparation: "New model bring-up should use versioned recipes"
            layouts[index] = read_layout(ROOT / endpoint.sizing, endpoint, profile)
        except SizingMismatch:
            continue
    return layouts


def plan_endpoints(config: StackConfig, profile: HardwareProfile, matrix: CompatibilityMatrix) -> list[EndpointPlan]:
    """Each endpoint's plan: its tenant's namespace and queue, the sized workers, the image, planner bounds and KV
    offload (an endpoint the rules refuse has no plan: unknown tenant, a sizing file that does not match)."""
    serving = config.components.serving
    tenants = {t.name: t for t in config.tenants}
    runtime = load_dynamo_runtime()
    tier = serving.storage.kv_offload if serving.storage else None
    plans = []
    for index, layout in sized_layouts(config, profile).items():
        endpoint = config.endpoints[index]
        tenant = tenants[endpoint.tenant]
        plans.append(EndpointPlan(
            endpoint=endpoint, tenant=tenant, namespace=tenant_namespace(tenant.name),
            queue=tenant_namespace(tenant.name),
            mode=layout.mode, workers=tuple(layout.workers),
            image=runtime_image(matrix, endpoint.backend, serving.image_digests),
            sizing_file=endpoint.sizing, estimate=layout.estimate, planner=planner_plan(endpoint, layout.workers),
            kv_offload_gb=kv_offload_gb(endpoint, tier, runtime),
            nodes_per_worker={group.role: math.ceil(group.gpus_per_worker / profile.gpu.per_node)
                              for group in layout.workers}))
    return plans
