"""Hardware profile schema: what the RA calls the "named hardware profile" every deployment needs.

A profile describes the GPU node and fabric a site is built from; the stack config names one, and the profile
plus the stack config decide which layers are composed and how they are tuned.
"""
from enum import Enum
from typing import Optional

from pydantic import Field, model_validator

from plan.strict import StrictModel


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


class Mig(StrictModel):
    supported: bool
    profiles: list[str] = Field(default_factory=list, description="MIG profile names the GPU offers, e.g. 1g.18gb")

    @model_validator(mode="after")
    def _profiles_need_support(self) -> "Mig":
        if self.profiles and not self.supported:
            raise ValueError("profiles are listed but supported is false")
        return self


class Gpu(StrictModel):
    model: str
    product_label: str = Field(description="value of the nvidia.com/gpu.product node label set by GPU Feature Discovery")
    per_node: int = Field(ge=1)
    memory_gib: int = Field(ge=1, alias="memoryGiB")
    mig: Mig
    driver: DriverManagement


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


class Tenancy(StrictModel):
    isolation: Isolation
    notes: str = ""


class TopologyLabels(StrictModel):
    """Node label keys the scheduler and telemetry use to see the physical design."""

    zone: str = "topology.kubernetes.io/zone"
    host: str = "kubernetes.io/hostname"
    rack: Optional[str] = None
    nvlink_domain: Optional[str] = None


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
    sources: list[str] = Field(min_length=1)

    @property
    def has_rdma_fabric(self) -> bool:
        return self.fabric.east_west != EastWestFabric.NONE

    @property
    def has_gpudirect_rdma(self) -> bool:
        return self.fabric.east_west == EastWestFabric.GPUDIRECT_RDMA

    @model_validator(mode="after")
    def _nvlink_consistent(self) -> "HardwareProfile":
        if self.nvlink.multi_node and self.nvlink.domain_size <= self.gpu.per_node:
            raise ValueError("nvlink.multiNode needs domainSize larger than gpu.perNode")
        if self.nvlink.multi_node and not self.topology_labels.nvlink_domain:
            raise ValueError("a multi-node NVLink domain needs topologyLabels.nvlinkDomain")
        return self
