"""Cross-checks and plans for serving endpoints: tenant, backend disposition, model provenance, sizing file,
GPU budget and fabric (what the tenant's pods take against its quota: ncp/plan/tenant_pods.py). Every problem names the
endpoint's config path and the fix."""
import math
from dataclasses import dataclass

from ncp.plan.break_fix import gate_image_problems
from ncp.plan.catalog import ROOT, CompatibilityMatrix, load_allowlists, load_disposition, load_dynamo_runtime
from ncp.plan.config import Environment, StackConfig
from ncp.plan.endpoint_plan import EndpointPlan, WorkerGroup
from ncp.plan.errors import Problem, set_command
from ncp.plan.gpu_partition import tenant_mig
from ncp.plan.names import PROJECT, tenant_namespace
from ncp.plan.profile import HardwareProfile
from ncp.plan.serving_features import (
    kv_offload_gb, mig_fit_problems, parallel_problems, placement_problems, planner_plan,
)
from ncp.plan.sizing_bridge import SizingMismatch, read_layout, sizing_command

STAGEABLE_SCHEMES = ("hf://",)  # sources the model staging Job knows how to fetch


STORAGE_FIX = "name a storage class and size per tier: " + " && ".join(
    set_command(f"{PROJECT}:components.serving.storage.{tier}.{key}", f"<{key}>")
    for tier in ("modelArtifacts", "modelCache", "benchmarkOutput") for key in ("storageClass", "size"))


def benchmark_image_fix(matrix: CompatibilityMatrix) -> str:
    return (f"build an image with aiperf=={matrix.workload('aiperf').version} and set it: "
            + set_command(f"{PROJECT}:components.serving.validation.benchmarkImage", "<image>"))


def _path(index: int, key: str = "") -> str:
    return f"{PROJECT}:endpoints[{index}]" + (f".{key}" if key else "")


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


def _site_setting_problems(config: StackConfig) -> list[Problem]:
    serving = config.components.serving
    problems = []
    if any(e.planner for e in config.endpoints) and serving.planner_prometheus_url is None:
        problems.append(Problem(f"{PROJECT}:components.serving.plannerPrometheusUrl",
                                "is required when an endpoint sets planner: true (the Dynamo planner scales from "
                                "the serving metrics it queries in Prometheus)",
                                "set it to the URL of the Prometheus that scrapes the serving PodMonitors: "
                                + set_command(f"{PROJECT}:components.serving.plannerPrometheusUrl",
                                              "http://<prometheus service>.<namespace>.svc:9090")
                                + " (or set planner: false on each endpoint)"))
    if (config.endpoints and config.site.environment == Environment.PROD and serving.api_server_egress is None):
        problems.append(Problem(f"{PROJECT}:components.serving.apiServerEgress",
                                "is required in prod: Dynamo pods reach the Kubernetes API (Kubernetes discovery) "
                                "and their egress must be limited to its endpoints",
                                "set cidrs and ports to the kubernetes Service's endpoints: kubectl get "
                                "endpointslice -n default -l kubernetes.io/service-name=kubernetes"))
    return problems


def runtime_image(matrix: CompatibilityMatrix, key: str, digests: dict[str, str]) -> str:
    """A Dynamo image (a backend runtime, or the planner) of the pinned release, by digest where one is recorded."""
    image = matrix.workload("dynamoRuntime").images[key]
    return f"{image}@{digests[key]}" if key in digests else image


def plan_endpoints(config: StackConfig, profile: HardwareProfile, matrix: CompatibilityMatrix,
                   multi_node_fabric: bool) -> tuple[list[EndpointPlan], list[Problem]]:
    problems: list[Problem] = []
    plans: list[EndpointPlan] = []
    environment = config.site.environment
    serving = config.components.serving
    tenants = {t.name: t for t in config.tenants}
    if config.endpoints and serving.storage is None:
        problems.append(Problem(f"{PROJECT}:components.serving.storage", "is required when endpoints are defined",
                                STORAGE_FIX))
    if config.endpoints and serving.validation.benchmark_image is None:
        problems.append(Problem(f"{PROJECT}:components.serving.validation.benchmarkImage",
                                "is required when endpoints are defined (AIPerf publishes no container image)",
                                benchmark_image_fix(matrix)))
    if environment == Environment.PROD and serving.validation.suite and serving.validation.suite_image is None:
        problems.append(Problem(f"{PROJECT}:components.serving.validation.suiteImage",
                                "is required in prod (the ISV NCP Validation Suite publishes no image)",
                                f"build isv-ncp-validation-suite {matrix.workload('validationSuite').version} into "
                                "an image and set it: "
                                + set_command(f"{PROJECT}:components.serving.validation.suiteImage",
                                              "<image>@sha256:<digest>")))
    if environment == Environment.PROD:
        for key, image in (("suiteImage", serving.validation.suite_image),
                           ("benchmarkImage", serving.validation.benchmark_image)):
            if image is not None and "@sha256:" not in image:
                problems.append(Problem(f"{PROJECT}:components.serving.validation.{key}",
                                        f"{image} is pinned by tag only: prod pins tool images by digest",
                                        f"pulumi config set --path '{PROJECT}:components.serving.validation.{key}' "
                                        f"'{image}@sha256:<digest of the image you built>'"))
    allowed_sources = load_allowlists().model_sources
    runtime = load_dynamo_runtime()
    disposition = load_disposition()
    budget: dict[str, int] = {}
    for index, endpoint in enumerate(config.endpoints):
        tenant = tenants.get(endpoint.tenant)
        if tenant is None:
            problems.append(Problem(_path(index, "tenant"), f"names unknown tenant {endpoint.tenant!r}",
                                    set_command(_path(index, "tenant"), f"<one of: {', '.join(tenants)}>")))
            continue
        model = endpoint.model
        model_class = disposition.model_classes.get(model.model_class)
        if model_class is None:
            problems.append(Problem(_path(index, "model.class"), "is not a model class of the disposition matrix",
                                    set_command(_path(index, "model.class"),
                                                f"<one of: {', '.join(disposition.model_classes)}>")
                                    + " (data/backend-disposition.yaml)"))
        else:
            # RA: AI Platform-as-a-Service: "maintain a backend disposition matrix"
            # RA: Operations And Lifecycle Management: "treat unsupported feature gaps as explicit disposition items"
            verdict = model_class.backends.get(endpoint.backend)
            if verdict is None or environment.value not in verdict.environments:
                gaps = "; ".join(verdict.blocking_gaps) if verdict else "no disposition recorded"
                problems.append(Problem(_path(index, "backend"),
                                        f"{endpoint.backend} is not accepted for {model.model_class} in "
                                        f"{environment.value} ({gaps})",
                                        (verdict.rollback if verdict else "") + " Or use a backend the disposition "
                                        "matrix accepts for this environment: "
                                        + set_command(_path(index, "backend"), "<backend>")))
        if not any(model.source.startswith(prefix) for prefix in allowed_sources):
            problems.append(Problem(_path(index, "model.source"), f"{model.source!r} is not an allowlisted source",
                                    set_command(_path(index, "model.source"),
                                                f"<one of: {', '.join(allowed_sources)}...>")
                                    + " (data/allowlists.yaml)"))
        elif not model.source.startswith(STAGEABLE_SCHEMES):
            problems.append(Problem(_path(index, "model.source"), "has no staging recipe for this scheme",
                                    set_command(_path(index, "model.source"),
                                                f"<one of: {', '.join(STAGEABLE_SCHEMES)}...>")))
        planner_image = ["planner"] if endpoint.planner else []
        for image in [endpoint.backend] + planner_image:
            if environment == Environment.PROD and image not in serving.image_digests:
                problems.append(Problem(f"{PROJECT}:components.serving.imageDigests.{image}",
                                        "is required in prod: serving images are pinned by digest",
                                        f"pulumi config set --path '{PROJECT}:components.serving.imageDigests."
                                        f"{image}' sha256:<digest of "
                                        f"{matrix.workload('dynamoRuntime').images[image]}>"))
        sizing_file = ROOT / endpoint.sizing
        try:
            # RA: Model Optimization And Runtime Preparation: "New model bring-up should use versioned recipes"
            layout = read_layout(sizing_file, endpoint, profile)
        except SizingMismatch as mismatch:
            problems.append(Problem(_path(index, "sizing"), mismatch.message, mismatch.fix))
            continue
        gpus = sum(group.gpus for group in layout.workers)
        budget[tenant.name] = budget.get(tenant.name, 0) + gpus
        widest = max(group.gpus_per_worker for group in layout.workers)
        if widest > profile.gpu.per_node and not multi_node_fabric:
            problems.append(Problem(_path(index, "sizing"),
                                    f"needs {widest} GPUs per worker across nodes; profile {profile.name} has "
                                    f"{profile.gpu.per_node} GPUs per node and no east-west RDMA fabric or "
                                    "multi-node NVLink for multi-node workers",
                                    f"re-size with at most {profile.gpu.per_node} GPUs per worker: "
                                    f"{sizing_command(endpoint, profile, profile.gpu.per_node)} (or use an RDMA "
                                    "profile)"))
        planner, planner_problems = planner_plan(index, endpoint, tenant, layout.workers, runtime)
        kv_offload = serving.storage.kv_offload if serving.storage else None
        kv_gb, kv_problems = kv_offload_gb(index, endpoint, kv_offload, runtime, min(widest, profile.gpu.per_node))
        problems += (planner_problems + kv_problems + placement_problems(index, endpoint, layout.workers, profile)
                     + parallel_problems(index, endpoint, layout.workers, runtime)
                     + mig_fit_problems(index, endpoint, layout.workers, profile,
                                        tenant_mig(config.components.gpu_operator.mig, tenant.name)))
        plans.append(EndpointPlan(
            endpoint=endpoint, tenant=tenant, namespace=tenant_namespace(tenant.name),
            queue=tenant_namespace(tenant.name),
            mode=layout.mode, workers=tuple(layout.workers),
            image=runtime_image(matrix, endpoint.backend, serving.image_digests),
            sizing_file=endpoint.sizing, estimate=layout.estimate, planner=planner, kv_offload_gb=kv_gb,
            nodes_per_worker={group.role: math.ceil(group.gpus_per_worker / profile.gpu.per_node)
                              for group in layout.workers}))
    problems += _site_setting_problems(config) + gate_image_problems(config, matrix, profile)
    for index, endpoint in enumerate(config.endpoints):
        tenant = tenants.get(endpoint.tenant)
        # Serving runs on guaranteed GPUs: capacity above gpuQuota is over-quota and can be reclaimed by KAI.
        if tenant and budget.get(tenant.name, 0) > tenant.gpu_quota:
            problems.append(Problem(_path(index, "sizing"),
                                    f"tenant {tenant.name}'s endpoints need {budget.pop(tenant.name)} GPUs; its "
                                    f"gpuQuota is {tenant.gpu_quota}",
                                    "raise the tenant's gpuQuota: "
                                    + set_command(f"{PROJECT}:tenants[{config.tenants.index(tenant)}].gpuQuota",
                                                  "<GPUs>")
                                    + ", or size the endpoints with a smaller GPU budget: "
                                    + sizing_command(endpoint, profile, tenant.gpu_quota)))
    return plans, problems
