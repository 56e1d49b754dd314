"""How the site's GPUs are partitioned, per tenant: whole GPUs, or the MIG layout of components.gpuOperator.mig on
every GPU node or on one tenant's dedicated nodes."""
from dataclasses import dataclass
from typing import Optional

from ncp.plan.catalog import integration_points
from ncp.plan.config import MigSettings, StackConfig
from ncp.plan.profile import HardwareProfile

MIG_LAYOUT = "ncp-layout"  # our mig-parted config's name: the value of nvidia.com/mig.config on partitioned nodes


def tenant_mig(mig: Optional[MigSettings], tenant: str) -> Optional[MigSettings]:
    """The MIG layout under a tenant's pods: the site's, unless it partitions another tenant's nodes."""
    return mig if mig is not None and mig.applies_to(tenant) else None


def gpu_units_per_node(profile: HardwareProfile, mig: Optional[MigSettings]) -> int:
    """GPUs per node as KAI counts them against queue quotas.

    Whole GPUs without MIG. MIG strategy single: the device plugin advertises every MIG device as one nvidia.com/gpu
    (NVIDIA/k8s-device-plugin internal/lm/mig-strategy.go:216-241@v0.20.0), so instances x GPUs. Strategy mixed:
    pods request nvidia.com/mig-<N>g.<M>gb and KAI counts each as N GPUs of quota (kai-scheduler/KAI-Scheduler
    pkg/scheduler/api/resource_info/gpu_resource_requirment.go GetGpusQuota, at the kaiScheduler pin), so compute
    slices x GPUs."""
    if mig is None or not profile.gpu.mig.supported:
        return profile.gpu.per_node
    if mig.strategy == "single":
        return profile.gpu.per_node * sum(mig.layout.values())
    return profile.gpu.per_node * mig.compute_slices


def gpu_product_label(profile: HardwareProfile, mig: Optional[MigSettings]) -> str:
    """GFD's nvidia.com/gpu.product: <product>-MIG-<profile> under strategy single (k8s-device-plugin
    internal/lm/resource.go:103 baseLabeler(count, model, "MIG", migProfile)@v0.20.0); unchanged otherwise."""
    if mig is None or mig.strategy != "single":
        return profile.gpu.product_label
    (mig_profile,) = mig.layout
    return f"{profile.gpu.product_label}{integration_points().gpu.mig_product_infix}{mig_profile}"


def mig_pool_nodes(config: StackConfig) -> int:
    """Nodes that carry a pooled MIG layout (0 when the layout is site-wide, absent, or names no pooled tenant)."""
    mig = config.components.gpu_operator.mig
    if mig is None or mig.node_pool is None:
        return 0
    tenant = next((t for t in config.tenants if t.name == mig.node_pool), None)
    return tenant.node_pool.nodes if tenant is not None and tenant.node_pool is not None else 0


def site_gpu_units(config: StackConfig, profile: HardwareProfile) -> int:
    """GPUs the site's queues share, in the units the scheduler counts: under a pooled layout the pool's nodes count
    their MIG devices and the others their whole GPUs. With strategy single a node whose GPUs have MIG disabled keeps
    the none strategy's whole GPUs and product label (NVIDIA/k8s-device-plugin internal/lm/mig-strategy.go
    newMigStrategySingleLabeler, "No devices have migEnabled=true. This is equivalent to the `none` MIG strategy",
    @v0.20.0), so one strategy serves both kinds of node."""
    mig = config.components.gpu_operator.mig
    if mig is None or mig.node_pool is None:
        return config.site.gpu_nodes * gpu_units_per_node(profile, mig)
    pool = mig_pool_nodes(config)
    return (config.site.gpu_nodes - pool) * profile.gpu.per_node + pool * gpu_units_per_node(profile, mig)


def capacity_breakdown(config: StackConfig, profile: HardwareProfile) -> str:
    """How site_gpu_units adds up, for messages: e.g. "16 nodes x 8 + 1 nodes x 56 MIG-partitioned"."""
    mig = config.components.gpu_operator.mig
    units = gpu_units_per_node(profile, mig)
    if units == profile.gpu.per_node:
        return f"{config.site.gpu_nodes} nodes x {units}"
    pool = mig_pool_nodes(config) if mig is not None and mig.node_pool else config.site.gpu_nodes
    whole = config.site.gpu_nodes - pool
    return (f"{whole} nodes x {profile.gpu.per_node} + " if whole else "") + f"{pool} nodes x {units} MIG-partitioned"


def mig_unit(mig: MigSettings) -> str:
    """What one unit of a partitioned tenant's gpuQuota/gpuLimit is (see gpu_units_per_node)."""
    layout = ", ".join(mig.layout)
    return f"MIG devices ({layout})" if mig.strategy == "single" else f"MIG compute slices ({layout})"


@dataclass(frozen=True)
class GpuCount:
    """The site's GPUs counted apart: physical GPUs, those left whole, and the MIG units the partitioned ones offer.
    Queue capacity (site_gpu_units) adds whole GPUs and MIG units; reports never call that sum GPUs."""

    physical: int
    whole: int
    partitioned: int  # physical GPUs carrying the MIG layout
    mig_units: int
    unit: str  # what a MIG unit is, "" without MIG

    def describe(self) -> str:
        if not self.partitioned:
            return f"{self.physical} GPUs"
        whole = f"{self.whole} whole, " if self.whole else ""
        return f"{self.physical} GPUs ({whole}{self.partitioned} partitioned into {self.mig_units} {self.unit})"


def gpu_count(config: StackConfig, profile: HardwareProfile) -> GpuCount:
    mig = config.components.gpu_operator.mig
    physical = config.site.gpu_nodes * profile.gpu.per_node
    if mig is None or not profile.gpu.mig.supported:
        return GpuCount(physical, physical, 0, 0, "")
    pool = mig_pool_nodes(config) if mig.node_pool else config.site.gpu_nodes
    partitioned = pool * profile.gpu.per_node
    return GpuCount(physical, physical - partitioned, partitioned, pool * gpu_units_per_node(profile, mig),
                    mig_unit(mig))


def tenant_gpu_unit(config: StackConfig, profile: HardwareProfile, tenant: str) -> str:
    """The unit of a tenant's gpuQuota/gpuLimit: GPUs, or the MIG units of the partitioned nodes it runs on."""
    mig = tenant_mig(config.components.gpu_operator.mig, tenant)
    return mig_unit(mig) if mig is not None and profile.gpu.mig.supported else "GPUs"
