"""Per-endpoint serving features resolved against the sized layout and the hardware profile: the SLA planner's
bounds, KV offload through Dynamo's KV block manager, NVLink-domain placement and MIG slice fit. Each returns its
value; the problems that refuse one are the endpoint rules' (ncp/plan/rules/endpoints.py)."""
import math
from typing import Optional

from ncp.plan.catalog import DynamoRuntime
from ncp.plan.endpoint_plan import PlannerPlan, WorkerGroup
from ncp.plan.profile import HardwareProfile
from ncp.plan.serving import Endpoint, StorageTier

_BYTES = {"Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def planner_plan(endpoint: Endpoint, workers: list[WorkerGroup]) -> Optional[PlannerPlan]:
    """Min/max workers per role (defaults: 1 and the sized replicas), the GPU budget they add up to, and the SLA
    loop's interval. The planner scales within [min, max] of every role and never past the tenant's gpuLimit
    (ncp/plan/rules/endpoints.py refuses bounds that do not)."""
    settings = endpoint.planner
    if settings is None:
        return None
    sized = {group.role: group for group in workers}
    lowest = {role: settings.min_replicas.get(role, 1) for role in sized}
    highest = {role: settings.max_replicas.get(role, group.replicas) for role, group in sized.items()}
    max_gpus = sum(highest[role] * group.gpus_per_worker for role, group in sized.items())
    return PlannerPlan(min_replicas=lowest, max_replicas=highest, max_gpus=max_gpus,
                       adjustment_interval_seconds=settings.adjustment_interval_seconds)


def kv_offload_wanted(endpoint: Endpoint, tier: Optional[StorageTier]) -> bool:
    """On by default when the site has the kvOffload tier."""
    return endpoint.kv_offload if endpoint.kv_offload is not None else tier is not None


def kv_disk_gb(tier: StorageTier, runtime: DynamoRuntime) -> int:
    number, unit = tier.size[:-2], tier.size[-2:]
    return math.floor(int(number) * _BYTES[unit] * runtime.kvbm.disk_fill_ratio / 1e9)


# RA: Model Data And Memory Architecture: "Host memory, local SSD, remote memory, and peer-to-peer transfer"
def kv_offload_gb(endpoint: Endpoint, tier: Optional[StorageTier], runtime: DynamoRuntime) -> Optional[int]:
    """The KV block manager's disk tier per worker pod in GB, from the kvOffload tier, or None when the endpoint does
    not offload (ncp/plan/rules/endpoints.py refuses backends without KVBM and a tier smaller than the host tier)."""
    if tier is None or not kv_offload_wanted(endpoint, tier) or runtime.backends[endpoint.backend].kvbm_unsupported:
        return None
    return kv_disk_gb(tier, runtime)


def nvlink_pack_domain(profile: HardwareProfile, levels) -> Optional[str]:
    """The topology domain (of the site's ClusterTopologyBinding levels) a multi-node worker is packed into: the
    NVLink domain on multi-node NVLink profiles, None elsewhere (a worker there spans nodes over the RDMA rails)."""
    if not profile.nvlink.multi_node:
        return None
    return next((level.domain for level in levels if level.key == profile.topology_labels.nvlink_domain), None)
