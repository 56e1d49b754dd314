"""What the readiness gates check on a site: on RDMA profiles the NCCL test across the rails (all rails, then each
rail on its own) when the site has the nodes it spans; on every profile with readiness thresholds a fio read per
storage tier the profile sets a threshold for (storage readiness on sites without a fabric too)."""
from dataclasses import dataclass
from typing import Optional

from ncp.plan.serving import StorageTier
from ncp.plan.site_plan import SitePlan

# Storage tier names as StorageTiers.named() gives them -> as the stack config and the profile write them.
TIER_KEYS = {"model-artifacts": "modelArtifacts", "model-cache": "modelCache", "kv-offload": "kvOffload",
             "benchmark-output": "benchmarkOutput", "telemetry-retention": "telemetryRetention"}


@dataclass(frozen=True)
class ReadinessPlan:
    nccl_nodes: Optional[int]  # None without a fabric, or when the site has fewer GPU nodes than the test spans
    fabric: bool  # the site has an RDMA east-west fabric: the NCCL checks apply
    rails: tuple[str, ...]  # the rails' interfaces in the pods, each tested on its own
    gpus_per_node: int
    tiers: list[tuple[str, str, StorageTier]]  # (camelCase, label name, tier) of tiers the profile sets a threshold for
    thresholds: dict  # the profile's readiness block, as written

    @property
    def tier_names(self) -> list[str]:
        return [tier for tier, _, _ in self.tiers]


def readiness_plan(plan: SitePlan) -> Optional[ReadinessPlan]:
    """None on profiles without readiness thresholds. Without an RDMA fabric only storage is made ready."""
    readiness = plan.profile.readiness
    if readiness is None:
        return None
    fabric = plan.network_enabled and readiness.nccl_bus_bandwidth_gbps is not None
    storage = plan.config.components.serving.storage
    tiers = [(TIER_KEYS[name], name, tier) for name, tier in (storage.named() if storage else [])
             if TIER_KEYS[name] in readiness.storage_read_gbps]
    return ReadinessPlan(
        nccl_nodes=readiness.nccl_nodes if fabric and plan.site.gpu_nodes >= readiness.nccl_nodes else None,
        fabric=fabric, rails=tuple(rail.interface for rail in plan.rails) if fabric else (),
        gpus_per_node=plan.profile.gpu.per_node, tiers=tiers,
        thresholds=readiness.model_dump(by_alias=True, mode="json"))
