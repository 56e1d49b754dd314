"""What the readiness gates check on a site (RDMA profiles): the NCCL test across the rails when the site has the
nodes it spans, and a fio read per storage tier the profile sets a threshold for."""
from dataclasses import dataclass
from typing import Optional

from plan.serving import StorageTier
from plan.site_plan import SitePlan

# Storage tier names as StorageTiers.named() gives them -> as the stack config and the profile write them.
TIER_KEYS = {"model-artifacts": "modelArtifacts", "model-cache": "modelCache", "kv-offload": "kvOffload",
             "benchmark-output": "benchmarkOutput", "telemetry-retention": "telemetryRetention"}


@dataclass(frozen=True)
class ReadinessPlan:
    nccl_nodes: Optional[int]  # None when the site has fewer GPU nodes than the test spans
    gpus_per_node: int
    tiers: list[tuple[str, str, StorageTier]]  # (camelCase, label name, tier) of tiers the profile sets a threshold for
    thresholds: dict  # the profile's readiness block, as written

    @property
    def tier_names(self) -> list[str]:
        return [tier for tier, _, _ in self.tiers]


def readiness_plan(plan: SitePlan) -> Optional[ReadinessPlan]:
    """None on profiles without an RDMA fabric: there is no east-west fabric to make ready."""
    readiness = plan.profile.readiness
    if not plan.network_enabled or readiness is None:
        return None
    storage = plan.config.components.serving.storage
    tiers = [(TIER_KEYS[name], name, tier) for name, tier in (storage.named() if storage else [])
             if TIER_KEYS[name] in readiness.storage_read_gbps]
    return ReadinessPlan(
        nccl_nodes=readiness.nccl_nodes if plan.site.gpu_nodes >= readiness.nccl_nodes else None,
        gpus_per_node=plan.profile.gpu.per_node, tiers=tiers,
        thresholds=readiness.model_dump(by_alias=True, mode="json"))
