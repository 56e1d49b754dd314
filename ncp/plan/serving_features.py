"""Per-endpoint serving features resolved against the sized layout and the hardware profile: the SLA planner's
bounds, KV offload through Dynamo's KV block manager, NVLink-domain placement and MIG slice fit. Each returns its
value and the problems that refuse it; every problem names the endpoint's config key and the fix."""
import math
from typing import Optional

from ncp.plan.catalog import DynamoRuntime
from ncp.plan.config import MigSettings, Tenant
from ncp.plan.endpoint_plan import PlannerPlan, WorkerGroup
from ncp.plan.errors import Problem, manual_edit, rm_command, set_command
from ncp.plan.profile import HardwareProfile
from ncp.plan.names import PROJECT
from ncp.plan.serving import Endpoint, StorageTier
from ncp.plan.sizing_bridge import sizing_command

_BYTES = {"Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def _path(index: int, key: str) -> str:
    return f"{PROJECT}:endpoints[{index}].{key}"


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


def planner_plan(index: int, endpoint: Endpoint, tenant: Tenant, workers: list[WorkerGroup],
                 runtime: DynamoRuntime) -> tuple[Optional[PlannerPlan], list[Problem]]:
    """Min/max workers per role (defaults: 1 and the sized replicas), the GPU budget they add up to, and the SLA
    loop's interval. The planner scales within [min, max] of every role and never past the tenant's gpuLimit."""
    settings = endpoint.planner
    if settings is None:
        return None, []
    sized = {group.role: group for group in workers}
    problems = _unknown_roles(index, endpoint, sized)
    lowest = {role: settings.min_replicas.get(role, 1) for role in sized}
    highest = {role: settings.max_replicas.get(role, group.replicas) for role, group in sized.items()}
    for role in sized:
        if lowest[role] > highest[role]:
            problems.append(Problem(_path(index, f"planner.minReplicas.{role}"),
                                    f"is {lowest[role]}, above maxReplicas.{role} {highest[role]}",
                                    set_command(_path(index, f"planner.minReplicas.{role}"), str(highest[role]))
                                    + f" (or raise maxReplicas.{role})"))
    max_gpus = sum(highest[role] * group.gpus_per_worker for role, group in sized.items())
    problems += _no_room(index, sized, lowest, max_gpus, tenant)
    if max_gpus > tenant.gpu_limit:
        problems.append(Problem(_path(index, "planner.maxReplicas"),
                                f"lets the planner grow to {max_gpus} GPUs; tenant {tenant.name}'s gpuLimit is "
                                f"{tenant.gpu_limit}", "lower maxReplicas: "
                                + set_command(_path(index, "planner.maxReplicas.<role>"), "<workers>")
                                + f" (or raise tenant {tenant.name}'s gpuLimit)"))
    fast_loop = runtime.planner.load_adjustment_interval_seconds
    if settings.adjustment_interval_seconds <= fast_loop:
        problems.append(Problem(_path(index, "planner.adjustmentIntervalSeconds"),
                                f"is {settings.adjustment_interval_seconds}; the planner's SLA loop must be slower "
                                f"than its {fast_loop} s load loop (Dynamo planner_config.py refuses it)",
                                set_command(_path(index, "planner.adjustmentIntervalSeconds"), "180")
                                + f" (more than {fast_loop}; 180 is the default)"))
    return PlannerPlan(min_replicas=lowest, max_replicas=highest, max_gpus=max_gpus,
                       adjustment_interval_seconds=settings.adjustment_interval_seconds), problems


# RA: Model Data And Memory Architecture: "Host memory, local SSD, remote memory, and peer-to-peer transfer"
def kv_offload_gb(index: int, endpoint: Endpoint, tier: Optional[StorageTier], runtime: DynamoRuntime,
                  gpus_per_pod: int) -> tuple[Optional[int], list[Problem]]:
    """The KV block manager's disk tier per worker pod in GB, from the kvOffload tier, or None when the endpoint does
    not offload. On by default when the site has the tier; refused for backends without KVBM and for a tier smaller
    than the host tier in front of it (KVBM is write-through: a smaller lower tier only churns)."""
    wanted = endpoint.kv_offload if endpoint.kv_offload is not None else tier is not None
    if not wanted:
        return None, []
    key = _path(index, "kvOffload")
    if tier is None:
        return None, [Problem(key, "is true but components.serving.storage.kvOffload names no storage tier",
                              "add the tier: " + " && ".join(
                                  set_command(f"{PROJECT}:components.serving.storage.kvOffload.{part}", f"<{part}>")
                                  for part in ("storageClass", "size")) + ", or " + rm_command(key))]
    backend = runtime.backends[endpoint.backend]
    if backend.kvbm_unsupported:
        return None, [Problem(key, f"backend {endpoint.backend} cannot offload KV to the kvOffload tier "
                                   f"({backend.kvbm_unsupported}; data/dynamo-backends.yaml)",
                              set_command(key, "false") + " (or use backend trtllm or vllm)")]
    number, unit = tier.size[:-2], tier.size[-2:]
    disk_gb = math.floor(int(number) * _BYTES[unit] * runtime.kvbm.disk_fill_ratio / 1e9)
    host_gb = gpus_per_pod * runtime.kvbm.host_cache_gb_per_gpu
    if disk_gb < host_gb:
        return None, [Problem(f"{PROJECT}:components.serving.storage.kvOffload.size",
                              f"is {tier.size} ({disk_gb} GB usable); endpoint {endpoint.name}'s workers keep "
                              f"{host_gb} GB of KV in host memory in front of it, and a smaller disk tier only churns",
                              set_command(f"{PROJECT}:components.serving.storage.kvOffload.size",
                                          f"{math.ceil(host_gb / runtime.kvbm.disk_fill_ratio * 1e9 / 2**30)}Gi")
                              + ", or " + set_command(_path(index, "kvOffload"), "false"))]
    return disk_gb, []


# RA: Data Center Architecture: "Use rack-scale GPU domains for large models"
def placement_problems(index: int, endpoint: Endpoint, workers: list[WorkerGroup],
                       profile: HardwareProfile) -> list[Problem]:
    """A worker spanning nodes of a multi-node NVLink system must fit one NVLink domain: its tensor/expert-parallel
    traffic runs over NVLink, which does not cross domains."""
    if not profile.nvlink.multi_node:
        return []
    return [Problem(_path(index, "sizing"),
                    f"needs {group.gpus_per_worker} GPUs per {group.role} worker; one NVLink domain of profile "
                    f"{profile.name} holds {profile.nvlink.domain_size}",
                    f"re-size with at most {profile.nvlink.domain_size} GPUs per worker: "
                    + sizing_command(endpoint, profile, profile.nvlink.domain_size))
            for group in workers if group.gpus_per_worker > profile.nvlink.domain_size]


def mig_fit_problems(index: int, endpoint: Endpoint, workers: list[WorkerGroup], profile: HardwareProfile,
                     mig: Optional[MigSettings]) -> list[Problem]:
    """Under MIG strategy single every GPU a worker gets is one slice; AIConfigurator's per-GPU memory estimate
    (weights, activations and KV at its batch size) must fit the slice's memory."""
    if mig is None or mig.strategy != "single" or not profile.gpu.mig.supported:
        return []
    (name,) = mig.layout
    instance = profile.gpu.mig.instances.get(name)
    if instance is None:
        return []  # reported on components.gpuOperator.mig.layout
    slice_gb = instance.memory_gib * 2**30 / 1e9
    problems = []
    for group in workers:
        if group.memory_gb_per_gpu is None:
            problems.append(Problem(_path(index, "sizing"),
                                    f"{endpoint.sizing} records no per-GPU memory estimate, so {endpoint.model.name} "
                                    f"cannot be checked against MIG slice {name}",
                                    "re-size the endpoint (the sizing file then records memoryGbPerGpu): "
                                    + sizing_command(endpoint, profile, group.gpus)))
        elif group.memory_gb_per_gpu > slice_gb:
            problems.append(Problem(_path(index, "sizing"),
                                    f"{endpoint.model.name} needs {group.memory_gb_per_gpu:g} GB per GPU "
                                    f"({group.role} workers: weights and KV at batch size, AIConfigurator); MIG slice "
                                    f"{name} of {profile.gpu.model} holds {slice_gb:.1f} GB",
                                    "use a larger MIG profile: "
                                    + set_command(f"{PROJECT}:components.gpuOperator.mig.layout",
                                                  "'{<larger profile>: <count>}'")
                                    + " (or whole GPUs, or a smaller model for this endpoint)"))
    return problems


def parallel_problems(index: int, endpoint: Endpoint, workers: list[WorkerGroup],
                      runtime: DynamoRuntime) -> list[Problem]:
    """A layout with attention data parallelism runs only on a backend whose engine switch for it is recorded."""
    if runtime.backends[endpoint.backend].attention_data_parallel_arg:
        return []
    return [Problem(_path(index, "sizing"),
                    f"{endpoint.sizing} gives {group.role} workers {group.data_parallel} attention data-parallel "
                    "ranks; "
                    f"the {endpoint.backend} worker settings (data/dynamo-backends.yaml) have no switch for it",
                    "re-size with another backend (ncp sizing --backend trtllm ..., the command in the "
                    "sizing file's header), or "
                    + manual_edit("data/dynamo-backends.yaml", f"backends.{endpoint.backend}.attentionDataParallelArg",
                                  "record the engine argument that switches attention data parallelism on"))
            for group in workers if group.data_parallel > 1]


def nvlink_pack_domain(profile: HardwareProfile, levels) -> Optional[str]:
    """The topology domain (of the site's ClusterTopologyBinding levels) a multi-node worker is packed into: the
    NVLink domain on multi-node NVLink profiles, None elsewhere (a worker there spans nodes over the RDMA rails)."""
    if not profile.nvlink.multi_node:
        return None
    return next((level.domain for level in levels if level.key == profile.topology_labels.nvlink_domain), None)
