"""Rules over serving endpoints: the site settings they need, tenant, backend disposition, model provenance, sizing
file, fabric, planner bounds, KV offload, NVLink and MIG fit, and the tenant's GPU budget. Every problem names the
endpoint's config path and the fix."""
import math
from typing import Callable, Iterator, Sequence

from ncp.plan.break_fix import gate_images
from ncp.plan.catalog import ROOT, CompatibilityMatrix, load_allowlists, load_disposition, load_dynamo_runtime
from ncp.plan.config import Environment, Tenant
from ncp.plan.endpoint_plan import WorkerGroup
from ncp.plan.errors import Problem, manual_edit, rm_command, set_command
from ncp.plan.gpu_partition import tenant_mig
from ncp.plan.inference_service_config import InferenceService
from ncp.plan.names import PROJECT
from ncp.plan.rules.registry import RuleInputs
from ncp.plan.serving import Endpoint
from ncp.plan.serving_features import kv_disk_gb, kv_offload_wanted, planner_plan
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


def _with_tenant(i: RuleInputs) -> Iterator[tuple[int, Endpoint, Tenant]]:
    """The endpoints whose tenant exists (an unknown tenant is its own problem, and the only one of its endpoint)."""
    tenants = {t.name: t for t in i.config.tenants}
    for index, endpoint in enumerate(i.config.endpoints):
        if endpoint.tenant in tenants:
            yield index, endpoint, tenants[endpoint.tenant]


def _sized(i: RuleInputs) -> Iterator[tuple[int, Endpoint, Tenant, list[WorkerGroup]]]:
    """The endpoints with a tenant and a sizing file that matches them, with their sized worker groups."""
    assert i.profile is not None
    layouts = i.layouts
    for index, endpoint, tenant in _with_tenant(i):
        if index in layouts:
            yield index, endpoint, tenant, layouts[index].workers


def storage_required(i: RuleInputs) -> list[Problem]:
    if i.config.endpoints and i.config.components.serving.storage is None:
        return [Problem(f"{PROJECT}:components.serving.storage", "is required when endpoints are defined",
                        STORAGE_FIX)]
    return []


def benchmark_image_required(i: RuleInputs) -> list[Problem]:
    if i.config.endpoints and i.config.components.serving.validation.benchmark_image is None:
        return [Problem(f"{PROJECT}:components.serving.validation.benchmarkImage",
                        "is required when endpoints are defined (AIPerf publishes no container image)",
                        benchmark_image_fix(i.matrix))]
    return []


def suite_image_required(i: RuleInputs) -> list[Problem]:
    validation = i.config.components.serving.validation
    if i.config.site.environment != Environment.PROD or not validation.suite or validation.suite_image is not None:
        return []
    return [Problem(f"{PROJECT}:components.serving.validation.suiteImage",
                    "is required in prod (the ISV NCP Validation Suite publishes no image)",
                    f"build isv-ncp-validation-suite {i.matrix.workload('validationSuite').version} into "
                    "an image and set it: "
                    + set_command(f"{PROJECT}:components.serving.validation.suiteImage", "<image>@sha256:<digest>"))]


def tool_images_by_digest(i: RuleInputs) -> list[Problem]:
    if i.config.site.environment != Environment.PROD:
        return []
    validation = i.config.components.serving.validation
    return [Problem(f"{PROJECT}:components.serving.validation.{key}",
                    f"{image} is pinned by tag only: prod pins tool images by digest",
                    f"pulumi config set --path '{PROJECT}:components.serving.validation.{key}' "
                    f"'{image}@sha256:<digest of the image you built>'")
            for key, image in (("suiteImage", validation.suite_image), ("benchmarkImage", validation.benchmark_image))
            if image is not None and "@sha256:" not in image]


def unknown_tenants(i: RuleInputs, items: Sequence[Endpoint | InferenceService],
                    path: Callable[[int, str], str]) -> list[Problem]:
    """Each of `items` (at `path(index, key)`) whose tenant the stack does not define."""
    tenants = [t.name for t in i.config.tenants]
    return [Problem(path(index, "tenant"), f"names unknown tenant {item.tenant!r}",
                    set_command(path(index, "tenant"), f"<one of: {', '.join(tenants)}>"))
            for index, item in enumerate(items) if item.tenant not in tenants]


def known_tenant(i: RuleInputs) -> list[Problem]:
    return unknown_tenants(i, i.config.endpoints, _path)


def model_class_known(i: RuleInputs) -> list[Problem]:
    classes = load_disposition().model_classes
    return [Problem(_path(index, "model.class"), "is not a model class of the disposition matrix",
                    set_command(_path(index, "model.class"), f"<one of: {', '.join(classes)}>")
                    + " (data/backend-disposition.yaml)")
            for index, endpoint, _ in _with_tenant(i) if endpoint.model.model_class not in classes]


# RA: AI Platform-as-a-Service: "maintain a backend disposition matrix"
# RA: Operations And Lifecycle Management: "treat unsupported feature gaps as explicit disposition items"
def backend_accepted(i: RuleInputs) -> list[Problem]:
    environment = i.config.site.environment
    problems = []
    for index, endpoint, _ in _with_tenant(i):
        model_class = load_disposition().model_classes.get(endpoint.model.model_class)
        if model_class is None:
            continue
        verdict = model_class.backends.get(endpoint.backend)
        if verdict is None or environment.value not in verdict.environments:
            gaps = "; ".join(verdict.blocking_gaps) if verdict else "no disposition recorded"
            problems.append(Problem(_path(index, "backend"),
                                    f"{endpoint.backend} is not accepted for {endpoint.model.model_class} in "
                                    f"{environment.value} ({gaps})",
                                    (verdict.rollback if verdict else "") + " Or use a backend the disposition "
                                    "matrix accepts for this environment: "
                                    + set_command(_path(index, "backend"), "<backend>")))
    return problems


def model_source_allowed(i: RuleInputs) -> list[Problem]:
    allowed = load_allowlists().model_sources
    problems = []
    for index, endpoint, _ in _with_tenant(i):
        source = endpoint.model.source
        if not any(source.startswith(prefix) for prefix in allowed):
            problems.append(Problem(_path(index, "model.source"), f"{source!r} is not an allowlisted source",
                                    set_command(_path(index, "model.source"), f"<one of: {', '.join(allowed)}...>")
                                    + " (data/allowlists.yaml)"))
        elif not source.startswith(STAGEABLE_SCHEMES):
            problems.append(Problem(_path(index, "model.source"), "has no staging recipe for this scheme",
                                    set_command(_path(index, "model.source"),
                                                f"<one of: {', '.join(STAGEABLE_SCHEMES)}...>")))
    return problems


def gate_images_by_digest(i: RuleInputs) -> list[Problem]:
    """Prod pins the return-to-service gate's DCGM and NCCL images by digest, as the serving images."""
    if i.config.site.environment != Environment.PROD:
        return []
    assert i.profile is not None
    digests = i.config.components.serving.image_digests
    return [Problem(f"{PROJECT}:components.serving.imageDigests.{key}",
                    "is required in prod: the return-to-service gate's images are pinned by digest",
                    f"pulumi config set --path '{PROJECT}:components.serving.imageDigests.{key}' sha256:<digest of "
                    f"{image}>")
            for key, image in gate_images(i.matrix, i.profile).items() if key not in digests]


def serving_images_by_digest(i: RuleInputs) -> list[Problem]:
    if i.config.site.environment != Environment.PROD:
        return []
    digests = i.config.components.serving.image_digests
    images = i.matrix.workload("dynamoRuntime").images
    return [Problem(f"{PROJECT}:components.serving.imageDigests.{image}",
                    "is required in prod: serving images are pinned by digest",
                    f"pulumi config set --path '{PROJECT}:components.serving.imageDigests.{image}' sha256:<digest of "
                    f"{images[image]}>")
            for _, endpoint, _ in _with_tenant(i)
            for image in [endpoint.backend] + (["planner"] if endpoint.planner else []) if image not in digests]


def sizing_file_matches(i: RuleInputs) -> list[Problem]:
    assert i.profile is not None
    problems = []
    for index, endpoint, _ in _with_tenant(i):
        if index in i.layouts:
            continue
        try:
            read_layout(ROOT / endpoint.sizing, endpoint, i.profile)
        except SizingMismatch as mismatch:
            problems.append(Problem(_path(index, "sizing"), mismatch.message, mismatch.fix))
    return problems


def multi_node_fabric(i: RuleInputs) -> list[Problem]:
    profile = i.profile
    assert profile is not None
    if profile.has_rdma_fabric or profile.nvlink.multi_node:
        return []
    problems = []
    for index, endpoint, _, workers in _sized(i):
        widest = max(group.gpus_per_worker for group in workers)
        if widest > profile.gpu.per_node:
            problems.append(Problem(_path(index, "sizing"),
                                    f"needs {widest} GPUs per worker across nodes; profile {profile.name} has "
                                    f"{profile.gpu.per_node} GPUs per node and no east-west RDMA fabric or "
                                    "multi-node NVLink for multi-node workers",
                                    f"re-size with at most {profile.gpu.per_node} GPUs per worker: "
                                    f"{sizing_command(endpoint, profile, profile.gpu.per_node)} (or use an RDMA "
                                    "profile)"))
    return problems


def _unknown_roles(index: int, endpoint: Endpoint, sized: dict) -> list[Problem]:
    """Planner bounds for a role the sizing file does not have."""
    settings = endpoint.planner
    assert settings is not None
    return [Problem(_path(index, f"planner.{key}.{role}"),
                    f"names role {role}; the sizing file {endpoint.sizing} has {', '.join(sized)}",
                    f"use {' and '.join(sized)}: " + rm_command(_path(index, f"planner.{key}.{role}"))
                    + " && " + set_command(_path(index, f"planner.{key}.{next(iter(sized))}"), "<workers>"))
            for key, bounds in (("minReplicas", settings.min_replicas), ("maxReplicas", settings.max_replicas))
            for role in sorted(set(bounds) - set(sized))]


def _no_room(index: int, sized: dict, lowest: dict, max_gpus: int, tenant: Tenant) -> list[Problem]:
    """A planner whose GPU budget is its minimum can never scale up (maxReplicas defaults to the sized replicas)."""
    min_gpus = sum(lowest[role] * group.gpus_per_worker for role, group in sized.items())
    if max_gpus > min_gpus:
        return []
    return [Problem(_path(index, "planner.maxReplicas"),
                    f"leaves the planner no room: its GPU budget ({max_gpus}) is its minimum ({min_gpus}), so it "
                    "can never scale up (maxReplicas defaults to the sized replicas)",
                    f"raise maxReplicas of a role ({', '.join(sized)}) above its minReplicas, within the tenant's "
                    f"gpuLimit {tenant.gpu_limit}: "
                    + set_command(_path(index, f"planner.maxReplicas.{next(iter(sized))}"), "<workers>"))]


def planner_bounds(i: RuleInputs) -> list[Problem]:
    """The planner scales within [min, max] of every role, leaves itself room, never past the tenant's gpuLimit, and
    its SLA loop runs slower than its load loop."""
    fast_loop = load_dynamo_runtime().planner.load_adjustment_interval_seconds
    problems = []
    for index, endpoint, tenant, workers in _sized(i):
        planner = planner_plan(endpoint, workers)
        if planner is None:
            continue
        sized = {group.role: group for group in workers}
        problems += _unknown_roles(index, endpoint, sized)
        lowest, highest = planner.min_replicas, planner.max_replicas
        problems += [Problem(_path(index, f"planner.minReplicas.{role}"),
                             f"is {lowest[role]}, above maxReplicas.{role} {highest[role]}",
                             set_command(_path(index, f"planner.minReplicas.{role}"), str(highest[role]))
                             + f" (or raise maxReplicas.{role})")
                     for role in sized if lowest[role] > highest[role]]
        problems += _no_room(index, sized, lowest, planner.max_gpus, tenant)
        if planner.max_gpus > tenant.gpu_limit:
            problems.append(Problem(_path(index, "planner.maxReplicas"),
                                    f"lets the planner grow to {planner.max_gpus} GPUs; tenant {tenant.name}'s "
                                    f"gpuLimit is {tenant.gpu_limit}", "lower maxReplicas: "
                                    + set_command(_path(index, "planner.maxReplicas.<role>"), "<workers>")
                                    + f" (or raise tenant {tenant.name}'s gpuLimit)"))
        if planner.adjustment_interval_seconds <= fast_loop:
            problems.append(Problem(_path(index, "planner.adjustmentIntervalSeconds"),
                                    f"is {planner.adjustment_interval_seconds}; the planner's SLA loop must be slower "
                                    f"than its {fast_loop} s load loop (Dynamo planner_config.py refuses it)",
                                    set_command(_path(index, "planner.adjustmentIntervalSeconds"), "180")
                                    + f" (more than {fast_loop}; 180 is the default)"))
    return problems


# RA: Model Data And Memory Architecture: "Host memory, local SSD, remote memory, and peer-to-peer transfer"
def kv_offload_fits(i: RuleInputs) -> list[Problem]:
    """KV offload needs the kvOffload tier and a backend with the KV block manager, and the disk tier is at least the
    host tier in front of it (KVBM is write-through: a smaller lower tier only churns)."""
    assert i.profile is not None
    storage = i.config.components.serving.storage
    tier = storage.kv_offload if storage else None
    runtime = load_dynamo_runtime()
    problems = []
    for index, endpoint, _, workers in _sized(i):
        if not kv_offload_wanted(endpoint, tier):
            continue
        key = _path(index, "kvOffload")
        backend = runtime.backends[endpoint.backend]
        if tier is None:
            problems.append(Problem(key, "is true but components.serving.storage.kvOffload names no storage tier",
                                    "add the tier: " + " && ".join(
                                        set_command(f"{PROJECT}:components.serving.storage.kvOffload.{part}",
                                                    f"<{part}>") for part in ("storageClass", "size"))
                                    + ", or " + rm_command(key)))
            continue
        if backend.kvbm_unsupported:
            problems.append(Problem(key, f"backend {endpoint.backend} cannot offload KV to the kvOffload tier "
                                         f"({backend.kvbm_unsupported}; data/dynamo-backends.yaml)",
                                    set_command(key, "false") + " (or use backend trtllm or vllm)"))
            continue
        gpus_per_pod = min(max(group.gpus_per_worker for group in workers), i.profile.gpu.per_node)
        disk_gb, host_gb = kv_disk_gb(tier, runtime), gpus_per_pod * runtime.kvbm.host_cache_gb_per_gpu
        if disk_gb < host_gb:
            problems.append(Problem(f"{PROJECT}:components.serving.storage.kvOffload.size",
                                    f"is {tier.size} ({disk_gb} GB usable); endpoint {endpoint.name}'s workers keep "
                                    f"{host_gb} GB of KV in host memory in front of it, and a smaller disk tier only "
                                    "churns",
                                    set_command(f"{PROJECT}:components.serving.storage.kvOffload.size",
                                                f"{math.ceil(host_gb / runtime.kvbm.disk_fill_ratio * 1e9 / 2**30)}Gi")
                                    + ", or " + set_command(_path(index, "kvOffload"), "false")))
    return problems


# RA: Data Center Architecture: "Use rack-scale GPU domains for large models"
def nvlink_domain_fit(i: RuleInputs) -> list[Problem]:
    """A worker spanning nodes of a multi-node NVLink system must fit one NVLink domain: its tensor/expert-parallel
    traffic runs over NVLink, which does not cross domains."""
    profile = i.profile
    assert profile is not None
    if not profile.nvlink.multi_node:
        return []
    return [Problem(_path(index, "sizing"),
                    f"needs {group.gpus_per_worker} GPUs per {group.role} worker; one NVLink domain of profile "
                    f"{profile.name} holds {profile.nvlink.domain_size}",
                    f"re-size with at most {profile.nvlink.domain_size} GPUs per worker: "
                    + sizing_command(endpoint, profile, profile.nvlink.domain_size))
            for index, endpoint, _, workers in _sized(i)
            for group in workers if group.gpus_per_worker > profile.nvlink.domain_size]


def attention_data_parallel(i: RuleInputs) -> list[Problem]:
    """A layout with attention data parallelism runs only on a backend whose engine switch for it is recorded."""
    runtime = load_dynamo_runtime()
    return [Problem(_path(index, "sizing"),
                    f"{endpoint.sizing} gives {group.role} workers {group.data_parallel} attention data-parallel "
                    "ranks; "
                    f"the {endpoint.backend} worker settings (data/dynamo-backends.yaml) have no switch for it",
                    "re-size with another backend (ncp sizing --backend trtllm ..., the command in the "
                    "sizing file's header), or "
                    + manual_edit("data/dynamo-backends.yaml", f"backends.{endpoint.backend}.attentionDataParallelArg",
                                  "record the engine argument that switches attention data parallelism on"))
            for index, endpoint, _, workers in _sized(i)
            if not runtime.backends[endpoint.backend].attention_data_parallel_arg
            for group in workers if group.data_parallel > 1]


def mig_slice_fit(i: RuleInputs) -> list[Problem]:
    """Under MIG strategy single every GPU a worker gets is one slice; AIConfigurator's per-GPU memory estimate
    (weights, activations and KV at its batch size) must fit the slice's memory."""
    profile = i.profile
    assert profile is not None
    problems = []
    for index, endpoint, tenant, workers in _sized(i):
        mig = tenant_mig(i.config.components.gpu_operator.mig, tenant.name)
        if mig is None or mig.strategy != "single" or not profile.gpu.mig.supported:
            continue
        (name,) = mig.layout
        instance = profile.gpu.mig.instances.get(name)
        if instance is None:
            continue  # reported on components.gpuOperator.mig.layout
        slice_gb = instance.memory_gib * 2**30 / 1e9
        for group in workers:
            if group.memory_gb_per_gpu is None:
                problems.append(Problem(_path(index, "sizing"),
                                        f"{endpoint.sizing} records no per-GPU memory estimate, so "
                                        f"{endpoint.model.name} cannot be checked against MIG slice {name}",
                                        "re-size the endpoint (the sizing file then records memoryGbPerGpu): "
                                        + sizing_command(endpoint, profile, group.gpus)))
            elif group.memory_gb_per_gpu > slice_gb:
                problems.append(Problem(_path(index, "sizing"),
                                        f"{endpoint.model.name} needs {group.memory_gb_per_gpu:g} GB per GPU "
                                        f"({group.role} workers: weights and KV at batch size, AIConfigurator); MIG "
                                        f"slice {name} of {profile.gpu.model} holds {slice_gb:.1f} GB",
                                        "use a larger MIG profile: "
                                        + set_command(f"{PROJECT}:components.gpuOperator.mig.layout",
                                                      "'{<larger profile>: <count>}'")
                                        + " (or whole GPUs, or a smaller model for this endpoint)"))
    return problems


def planner_prometheus(i: RuleInputs) -> list[Problem]:
    if not any(e.planner for e in i.config.endpoints) or i.config.components.serving.planner_prometheus_url:
        return []
    return [Problem(f"{PROJECT}:components.serving.plannerPrometheusUrl",
                    "is required when an endpoint sets planner: true (the Dynamo planner scales from "
                    "the serving metrics it queries in Prometheus)",
                    "set it to the URL of the Prometheus that scrapes the serving PodMonitors: "
                    + set_command(f"{PROJECT}:components.serving.plannerPrometheusUrl",
                                  "http://<prometheus service>.<namespace>.svc:9090")
                    + " (or set planner: false on each endpoint)")]


def api_server_egress(i: RuleInputs) -> list[Problem]:
    config = i.config
    if not (config.endpoints and config.site.environment == Environment.PROD
            and config.components.serving.api_server_egress is None):
        return []
    return [Problem(f"{PROJECT}:components.serving.apiServerEgress",
                    "is required in prod: Dynamo pods reach the Kubernetes API (Kubernetes discovery) "
                    "and their egress must be limited to its endpoints",
                    "set cidrs and ports to the kubernetes Service's endpoints: kubectl get "
                    "endpointslice -n default -l kubernetes.io/service-name=kubernetes")]


def endpoints_within_quota(i: RuleInputs) -> list[Problem]:
    """Serving runs on guaranteed GPUs: capacity above gpuQuota is over-quota and can be reclaimed by KAI."""
    assert i.profile is not None
    budget: dict[str, int] = {}
    for _, _, tenant, workers in _sized(i):
        budget[tenant.name] = budget.get(tenant.name, 0) + sum(group.gpus for group in workers)
    problems = []
    for index, endpoint, tenant in _with_tenant(i):
        if budget.get(tenant.name, 0) > tenant.gpu_quota:
            problems.append(Problem(_path(index, "sizing"),
                                    f"tenant {tenant.name}'s endpoints need {budget.pop(tenant.name)} GPUs; its "
                                    f"gpuQuota is {tenant.gpu_quota}",
                                    "raise the tenant's gpuQuota: "
                                    + set_command(f"{PROJECT}:tenants[{i.config.tenants.index(tenant)}].gpuQuota",
                                                  "<GPUs>")
                                    + ", or size the endpoints with a smaller GPU budget: "
                                    + sizing_command(endpoint, i.profile, tenant.gpu_quota)))
    return problems
