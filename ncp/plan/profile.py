"""Hardware profile schema: what the RA calls the "named hardware profile" every deployment needs.

A profile describes the GPU node and fabric a site is built from; the stack config names one, and the profile
plus the stack config decide which layers are composed and how they are tuned.
"""
from enum import Enum
from typing import Annotated, Optional, Union

import re

from pydantic import AfterValidator, Field, computed_field, model_validator

from ncp.plan.strict import StrictModel


# RA: Known Limitations: "Hardware guidance must be reconciled with the selected NVIDIA Enterprise RA"
class RaProfile(str, Enum):
    """The profile families the RA names (Physical Architecture / Architecture Decision Guardrails)."""

    RTX_PRO = "RTX PRO"
    HGX = "HGX"
    GB300_NVL72 = "GB300 NVL72"
    CLOUD_HOSTED = "cloud-hosted"
    LAB = "lab"


class EastWestFabric(str, Enum):
    NONE = "none"
    RDMA = "rdma"
    GPUDIRECT_RDMA = "gpudirect-rdma"


class RdmaExposure(str, Enum):
    """How RDMA devices reach pods: one shared RDMA device plugin resource, or SR-IOV virtual functions."""

    SHARED_DEVICE_PLUGIN = "shared-device-plugin"
    SRIOV = "sriov"


class DriverManagement(str, Enum):
    MANAGED = "managed"  # GPU Operator installs the driver container
    PREINSTALLED = "preinstalled"  # node image ships the driver (managed cloud pools, DGX OS)


class Isolation(str, Enum):
    NAMESPACE = "namespace"
    DEDICATED_NODES = "dedicated-nodes"
    VM = "vm"
    BARE_METAL = "bare-metal"


class MigInstance(StrictModel):
    """One GPU-instance profile as `nvidia-smi mig -lgip` / `-lgipp` report it."""

    memory_gib: float = Field(gt=0, alias="memoryGiB", description="memory of one instance")
    max_instances: int = Field(ge=1, description="instances of this profile one GPU can hold")
    size: int = Field(ge=1, description="memory slices one instance occupies")
    placements: list[int] = Field(min_length=1, description="memory slices an instance may start at")


class Mig(StrictModel):
    supported: bool
    memory_slices: int = Field(default=8, ge=1, description="memory slices of one GPU (placements index them)")
    instances: dict[str, MigInstance] = Field(
        default_factory=dict, description="GPU-instance profile table: name (e.g. 1g.18gb) -> geometry")

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented form for computed fields
    @property
    def profiles(self) -> list[str]:
        """MIG profile names the GPU offers (the policy pack reads these from the stack record)."""
        return list(self.instances)

    @model_validator(mode="after")
    def _geometry(self) -> "Mig":
        if self.instances and not self.supported:
            raise ValueError("instances are listed but supported is false")
        for name, instance in self.instances.items():
            outside = [start for start in instance.placements if start + instance.size > self.memory_slices]
            if outside:
                raise ValueError(f"{name}: placements {outside} of size {instance.size} run past memory slice "
                                 f"{self.memory_slices - 1}")
        return self

    def placement(self, layout: dict[str, int]) -> Optional[dict[str, list[int]]]:
        """Start slices for every instance of layout without overlap, or None when the GPU cannot hold it.

        A GPU instance occupies the memory slices [start, start + size) of one of its profile's placements and
        creation fails on overlap with an occupied slice (NVML nvmlDeviceGetGpuInstancePossiblePlacements_v2), so a
        layout is valid exactly when such an assignment exists. Depth-first over instances, widest first."""
        wanted = sorted((name for name, count in layout.items() for _ in range(count)),
                        key=lambda name: -self.instances[name].size)
        if any(layout[name] > self.instances[name].max_instances for name in layout):
            return None
        chosen: dict[str, list[int]] = {name: [] for name in layout}

        def place(index: int, used: frozenset) -> bool:
            if index == len(wanted):
                return True
            instance = self.instances[wanted[index]]
            for start in instance.placements:
                slots = frozenset(range(start, start + instance.size))
                if not slots & used:
                    chosen[wanted[index]].append(start)
                    if place(index + 1, used | slots):
                        return True
                    chosen[wanted[index]].pop()
            return False

        return chosen if place(0, frozenset()) else None


class DriverDrain(StrictModel):
    """`kubectl drain` of a node before its driver reloads (off: the operator only deletes GPU pods)."""

    enable: bool = Field(description="drain the node before the driver reloads")
    force: bool = Field(default=False, description="drain pods that no controller manages too")
    pod_selector: str = Field(default="", description="label selector of the pods to drain (empty: all)")
    timeout_seconds: int = Field(ge=0, description="seconds to wait for the drain; 0: no limit")
    delete_empty_dir: bool = Field(description="serving pods keep /dev/shm and scratch in emptyDirs: without it a "
                                               "drain of a serving node never finishes")


class GpuPodDeletion(StrictModel):
    """How the operator deletes the pods using GPUs on a node before its driver reloads."""

    force: bool = Field(default=False, description="delete GPU pods that no controller manages too")
    timeout_seconds: int = Field(default=300, ge=0, description="seconds to wait for the deletion; 0: no limit")
    delete_empty_dir: bool = Field(default=False, description="delete GPU pods that use emptyDir volumes too")


class WaitForCompletion(StrictModel):
    """Wait for the selected pods (e.g. batch jobs) on a node to finish before its driver upgrade starts."""

    timeout_seconds: int = Field(default=0, ge=0, description="0: wait for matching pods without a limit")
    pod_selector: str = Field(default="", description="label selector of the pods to wait for (empty: none)")


def _count_or_percent(value):
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{1,3}%", value):
        raise ValueError("must be a node count or a percentage like 25%")
    return value


MaxUnavailable = Annotated[Union[int, str], AfterValidator(_count_or_percent)]


class DriverUpgradePolicy(StrictModel):
    """The GPU Operator's driver upgrade policy (chart value driver.upgradePolicy; keys and meaning from
    NVIDIA/gpu-operator deployments/gpu-operator/values.yaml at the gpuOperator pin, lines 167-197): whether the
    operator upgrades the driver by itself, how many nodes at once, how many may be unavailable, and how it empties
    a node."""

    auto_upgrade: bool
    max_parallel_upgrades: int = Field(ge=0, description="nodes upgraded at once; 0 means all")
    max_unavailable: MaxUnavailable = Field(description="nodes (or a percentage like 25%) that may be unavailable")
    wait_for_completion: WaitForCompletion = Field(default_factory=WaitForCompletion)
    gpu_pod_deletion: GpuPodDeletion = Field(default_factory=GpuPodDeletion)
    drain: DriverDrain


class DriverUpgradePolicyOverride(StrictModel):
    """A stack's changes to the profile's driver upgrade policy: the keys it names replace the profile's."""

    auto_upgrade: Optional[bool] = Field(default=None, description="the operator upgrades the driver by itself")
    max_parallel_upgrades: Optional[int] = Field(default=None, ge=0, description="nodes upgraded at once; 0 means all")
    max_unavailable: Optional[MaxUnavailable] = Field(
        default=None, description="nodes (or a percentage like 25%) that may be unavailable")
    wait_for_completion: Optional[WaitForCompletion] = Field(
        default=None, description="pods to wait for before a node's upgrade")
    gpu_pod_deletion: Optional[GpuPodDeletion] = Field(default=None, description="how GPU pods are deleted")
    drain: Optional[DriverDrain] = Field(default=None, description="whether and how nodes are drained")

    def applied_to(self, policy: Optional[DriverUpgradePolicy]) -> DriverUpgradePolicy:
        """The profile's policy with these keys changed (a profile without one needs every key here)."""
        changes = {key: getattr(self, key) for key in self.model_fields_set}
        return DriverUpgradePolicy.model_validate({**(policy.model_dump() if policy else {}), **changes})


class Gpu(StrictModel):
    model: str
    product_label: str = Field(
        description="value of the nvidia.com/gpu.product node label set by GPU Feature Discovery")
    per_node: int = Field(ge=1)
    memory_gib: int = Field(ge=1, alias="memoryGiB")
    mig: Mig
    driver: DriverManagement
    driver_upgrade: Optional[DriverUpgradePolicy] = Field(
        default=None, description="the site's default driver upgrade policy; required with a managed driver")

    @model_validator(mode="after")
    def _upgrade_policy(self) -> "Gpu":
        if self.driver == DriverManagement.MANAGED and self.driver_upgrade is None:
            raise ValueError("a managed driver needs driverUpgrade (the GPU Operator's driver.upgradePolicy)")
        if self.driver == DriverManagement.PREINSTALLED and self.driver_upgrade is not None:
            raise ValueError("driverUpgrade is set but the driver is preinstalled in the node image")
        return self


class NvLink(StrictModel):
    domain_size: int = Field(ge=1, description="GPUs that share one NVLink domain")
    multi_node: bool = Field(description="the NVLink domain spans several Kubernetes nodes (e.g. NVL72 racks)")


class Fabric(StrictModel):
    east_west: EastWestFabric
    nics_per_node: int = Field(ge=0)
    nic_speed_gbps: int = Field(ge=0)
    nic_model: Optional[str] = None
    rdma_exposure: Optional[RdmaExposure] = None
    rdma_resource_name: Optional[str] = Field(
        default=None, description="extended resource pods request for RDMA, e.g. rdma/rdma_shared_device_a"
    )

    @model_validator(mode="after")
    def _rdma_fields(self) -> "Fabric":
        has_rdma = self.east_west != EastWestFabric.NONE
        if has_rdma and (self.rdma_exposure is None or not self.rdma_resource_name or self.nics_per_node < 1):
            raise ValueError("an RDMA east-west fabric needs rdmaExposure, rdmaResourceName and nicsPerNode >= 1")
        if not has_rdma and self.rdma_exposure is not None:
            raise ValueError("rdmaExposure is set but eastWest is none")
        return self


class Dpu(StrictModel):
    present: bool
    model: Optional[str] = None
    role: Optional[str] = None


class LocalNvme(StrictModel):
    present: bool
    capacity_tib: float = Field(default=0, ge=0, alias="capacityTiB")


class SparePolicy(StrictModel):
    """How much GPU capacity the site keeps above the tenants' guaranteed quotas, so that quarantined nodes do not
    leave a tenant short (capacity follows health: `ncp node capacity` and the gate's record compare it with what is
    healthy now)."""

    per_pool: int = Field(ge=0, description="GPU nodes each dedicated node pool keeps above its tenant's quota")
    shared: int = Field(ge=0, description="GPU nodes the shared GPU nodes keep above the shared tenants' quotas")
    action: str = Field(min_length=1, description="what the operator does when quarantines exceed the spare")


class Tenancy(StrictModel):
    isolation: Isolation
    spare_policy: SparePolicy = Field(description="spare GPU nodes against quarantines; every profile states one")
    notes: str = ""


# The RA's storage tiers as the stack config names them (components.serving.storage), camelCase.
STORAGE_TIERS = ("modelArtifacts", "modelCache", "kvOffload", "benchmarkOutput", "telemetryRetention")


class Readiness(StrictModel):
    """Pass thresholds of the fabric and storage readiness checks run before disaggregated serving is accepted:
    NCCL all_reduce_perf across the east-west rails (its "Avg bus bandwidth" line) and a fio sequential read per
    storage tier. nccl-tests' busbw is normalised to be comparable with the hardware's peak bandwidth
    (NVIDIA/nccl-tests doc/PERFORMANCE.md), so the bus bandwidth threshold is stated against the node's east-west
    peak (nicsPerNode x nicSpeedGbps / 8) and may not exceed it."""

    nccl_bus_bandwidth_gbps: Optional[float] = Field(
        default=None, gt=0, alias="ncclBusBandwidthGBps",
        description="minimum all_reduce_perf Avg bus bandwidth across every rail, GB/s; RDMA profiles only (a profile "
                    "without a fabric sets storage thresholds alone: storage readiness). Each rail on its own must "
                    "reach this divided by nicsPerNode (ncclRailBusBandwidth)")
    nccl_nodes: int = Field(default=2, ge=2, description="nodes the NCCL test spans (one pod per node)")
    storage_read_gbps: dict[str, float] = Field(
        alias="storageReadGBps", description="minimum fio sequential read per storage tier, GB/s (10^9 bytes/s)")
    source: str = Field(min_length=1, description="where the thresholds come from")

    @model_validator(mode="after")
    def _tiers(self) -> "Readiness":
        unknown = sorted(set(self.storage_read_gbps) - set(STORAGE_TIERS))
        if unknown:
            raise ValueError(f"storageReadGBps names unknown tiers {unknown}; tiers are {list(STORAGE_TIERS)}")
        if any(value <= 0 for value in self.storage_read_gbps.values()):
            raise ValueError("storageReadGBps values must be > 0")
        return self


class TopologyLabels(StrictModel):
    """Node label keys the scheduler and telemetry use to see the physical design."""

    zone: str = "topology.kubernetes.io/zone"
    host: str = "kubernetes.io/hostname"
    rack: Optional[str] = None
    nvlink_domain: Optional[str] = None


# RA: Physical Architecture: "record which assumptions apply to the partner profile"
# RA: GPU Compute Node: "The node design should account for GPU memory capacity"
# RA: Data Center Architecture: "cluster interconnect where required, and local GPU scale-up where supported"
class HardwareProfile(StrictModel):
    name: str
    description: str
    ra_profile: RaProfile
    gpu: Gpu
    nvlink: NvLink
    fabric: Fabric
    dpu: Dpu
    local_nvme: LocalNvme
    tenancy: Tenancy
    topology_labels: TopologyLabels = Field(default_factory=TopologyLabels)
    aiconfigurator_system: Optional[str] = Field(default=None, description="AIConfigurator --system name, if any")
    readiness: Optional[Readiness] = Field(default=None, description="readiness thresholds; required with RDMA")
    sources: list[str] = Field(min_length=1)

    @property
    def has_rdma_fabric(self) -> bool:
        return self.fabric.east_west != EastWestFabric.NONE

    @property
    def has_gpudirect_rdma(self) -> bool:
        return self.fabric.east_west == EastWestFabric.GPUDIRECT_RDMA

    @property
    def east_west_peak_gbps(self) -> float:
        """A node's east-west peak in GB/s: every rail NIC at line rate."""
        return self.fabric.nics_per_node * self.fabric.nic_speed_gbps / 8

    @model_validator(mode="after")
    def _readiness(self) -> "HardwareProfile":
        if self.has_rdma_fabric and self.readiness is None:
            raise ValueError("an RDMA east-west fabric needs readiness thresholds (readiness.ncclBusBandwidthGBps, "
                             "readiness.storageReadGBps)")
        nccl = self.readiness.nccl_bus_bandwidth_gbps if self.readiness else None
        if self.has_rdma_fabric and nccl is None:
            raise ValueError("an RDMA east-west fabric needs readiness.ncclBusBandwidthGBps (the NCCL test's bar)")
        if nccl is not None and not self.has_rdma_fabric:
            raise ValueError("readiness.ncclBusBandwidthGBps is set but the profile has no RDMA east-west fabric to "
                             "test: remove it (storage readiness needs storageReadGBps alone)")
        if nccl is not None and nccl > self.east_west_peak_gbps:
            raise ValueError(f"readiness.ncclBusBandwidthGBps {nccl} exceeds the "
                             f"east-west peak {self.east_west_peak_gbps:g} GB/s (nicsPerNode x nicSpeedGbps / 8)")
        return self

    @property
    def rail_bus_bandwidth_gbps(self) -> Optional[float]:
        """What the NCCL test must reach over each rail on its own: the all-rails bar shared by the NICs."""
        nccl = self.readiness.nccl_bus_bandwidth_gbps if self.readiness else None
        return None if nccl is None or not self.fabric.nics_per_node else nccl / self.fabric.nics_per_node

    @model_validator(mode="after")
    def _nvlink_consistent(self) -> "HardwareProfile":
        if self.nvlink.multi_node and self.nvlink.domain_size <= self.gpu.per_node:
            raise ValueError("nvlink.multiNode needs domainSize larger than gpu.perNode")
        if self.nvlink.multi_node and not self.topology_labels.nvlink_domain:
            raise ValueError("a multi-node NVLink domain needs topologyLabels.nvlinkDomain")
        return self
