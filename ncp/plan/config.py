"""Stack config schema: the `ncp-inference:*` keys of a Pulumi.<stack>.yaml.

Field names are snake_case here and camelCase in YAML (e.g. `gpu_quota` is `gpuQuota`).
"""
import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, Field, field_validator, model_validator

from ncp.plan.catalog import ROOT, LocalDecision, integration_points
from ncp.plan.inference_service_config import InferenceService
from ncp.plan.serving import IN_CLUSTER_URL, Cidr, Endpoint, ServingSettings, in_cluster_target
from ncp.plan.profile import DriverManagement, DriverUpgradePolicyOverride
from ncp.plan.strict import StrictModel, Text

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"
DURATION = r"^[0-9]+(s|m|h)$"
Name = Annotated[str, Field(pattern=DNS_LABEL, max_length=40)]
Quantity = Annotated[str, Field(pattern=QUANTITY)]
Duration = Annotated[str, Field(pattern=DURATION)]


class Environment(str, Enum):
    LAB = "lab"
    STAGING = "staging"
    PROD = "prod"


def _inside_project(path: str) -> bool:
    resolved = Path(path).expanduser()
    resolved = (resolved if resolved.is_absolute() else ROOT / resolved).resolve()
    return resolved.is_relative_to(ROOT.resolve())


class EvidenceTtl(StrictModel):
    """Days each kind of evidence stays fresh: the promotion gate refuses older records (their expiresAt, signed)."""

    endpoint: int = Field(default=30, ge=1, description="an endpoint's acceptance record")
    inference_service: int = Field(default=30, ge=1, description="a Triton inference service's acceptance record")
    readiness: int = Field(default=90, ge=1, description="the site's readiness record (NCCL, storage)")
    return_to_service: int = Field(default=365, ge=1, description="a node's return-to-service gate record")
    node_handover: int = Field(default=365, ge=1, description="a node's handover (sanitize) record")


# RA: Architecture Decision Guardrails: "The base RA should mandate evidence, ownership, and decision records"
class ValidationEvidence(StrictModel):
    """Where the site's acceptance evidence lives (RA Validation Methodology: evidence paths per phase)."""

    path: Text = Field(description="evidence location, e.g. s3://bucket/site/ or evidence/<site>/")
    owner: Text = Field(description="who owns the evidence (a team or person), recorded in the baseline record")
    signing_key: Optional[Text] = Field(
        default=None, description="the site's private evidence signing key (PEM), outside the repository; "
                                  "NCP_EVIDENCE_SIGNING_KEY overrides; default "
                                  "~/.config/ncp-inference/<site>.signing-key.pem")
    trusted_keys: Optional[Text] = Field(
        default=None, description="project-relative file of the public keys evidence is verified with; default "
                                  "sites/<stack>/evidence/trusted-keys.yaml")
    ttl_days: EvidenceTtl = Field(default_factory=lambda: EvidenceTtl(),
                                  description="how long each kind of evidence stays fresh for the promotion gate")
    regression_margin_pct: float = Field(
        default=10, gt=0, le=100, description="`ncp evidence compare`: a metric worse than the last passed "
                                              "record of the same key by more than this fails")

    @field_validator("signing_key")
    @classmethod
    def _outside_repository(cls, path: Optional[str]) -> Optional[str]:
        if path is not None and _inside_project(path):
            raise ValueError(f"{path} is inside the repository: keep the site's private key elsewhere (e.g. "
                             "~/.config/ncp-inference/) so it is never committed")
        return path


class Site(StrictModel):
    """The site this stack deploys to: its name, environment, hardware profile and size, and where its evidence
    lives."""

    name: Name = Field(description="the site's name: the baseline record, evidence and reviews carry it")
    environment: Environment = Field(description="lab, staging or prod: how strict validation and the pack are")
    hardware_profile: Text = Field(description="a file of profiles/ without .yaml (e.g. hgx-h200): GPUs, fabric, "
                                               "driver and readiness thresholds of the site's nodes")
    gpu_nodes: int = Field(ge=1, description="GPU worker nodes of the hardware profile in this cluster")
    kubernetes_version: Optional[str] = Field(
        default=None, pattern=r"^1\.[0-9]+$",
        description="the cluster's Kubernetes minor version (e.g. 1.35), checked against the matrix and by preflight")
    validation_evidence: Optional[ValidationEvidence] = Field(
        default=None, description="required in staging and prod (policy hardware-profile-and-evidence)")


def _mig_slices(profile_name: str) -> int:
    match = re.match(r"^([0-9]+)g\.", profile_name)
    if not match:
        raise ValueError(f"{profile_name!r} is not a MIG profile name like 1g.10gb")
    return int(match.group(1))


class MigSettings(StrictModel):
    """MIG partitioning of the site's GPUs (profiles that support MIG): the GPU Operator's mig-manager applies the
    layout."""

    strategy: Literal["single", "mixed"] = Field(
        default="single", description="the GPU Operator's MIG strategy: single exposes one profile per node as "
                                      "nvidia.com/gpu, mixed exposes each profile as its own resource")
    layout: dict[str, Annotated[int, Field(ge=1)]] = Field(
        min_length=1, description="MIG profile -> instances per GPU, applied to every GPU it partitions"
    )
    node_pool: Optional[Text] = Field(
        default=None, description="the tenant whose dedicated nodes (tenants[].nodePool) carry the layout; the other "
                                  "nodes keep whole GPUs. Absent: every GPU of the site is partitioned")

    def applies_to(self, tenant: str) -> bool:
        """Whether the tenant's pods run on partitioned GPUs."""
        return self.node_pool is None or self.node_pool == tenant

    @field_validator("layout")
    @classmethod
    def _profile_names(cls, layout: dict[str, int]) -> dict[str, int]:
        for name in layout:
            _mig_slices(name)
        return layout

    @model_validator(mode="after")
    def _single_means_one_profile(self) -> "MigSettings":
        if self.strategy == "single" and len(self.layout) != 1:
            raise ValueError("strategy single exposes one MIG profile per node; use strategy mixed for several")
        return self

    @property
    def compute_slices(self) -> int:
        return sum(_mig_slices(name) * count for name, count in self.layout.items())


class TimeSlicing(StrictModel):
    """GPU time-slicing (only when asked): several pods share one GPU without memory isolation."""

    replicas: int = Field(ge=2, le=48, description="pods that share each GPU")
    validation_evidence: Optional[Text] = Field(
        default=None, description="evidence that time-slicing meets the latency SLO (needed for prod serving)"
    )


class GpuOperatorSettings(StrictModel):
    """GPU enablement: the GPU Operator's driver, MIG, time-slicing and driver upgrade settings."""

    driver: Optional[DriverManagement] = Field(default=None, description="defaults to the profile's driver mode")
    mig: Optional[MigSettings] = Field(default=None, description="partition GPUs with MIG (MIG-capable profiles)")
    time_slicing: Optional[TimeSlicing] = Field(default=None, description="share GPUs by time-slicing")
    driver_upgrade_policy: Optional[DriverUpgradePolicyOverride] = Field(
        default=None, description="overrides the profile's gpu.driverUpgrade, key by key")

    @model_validator(mode="after")
    def _one_sharing_mode(self) -> "GpuOperatorSettings":
        if self.mig and self.time_slicing:
            raise ValueError("choose MIG or time-slicing, not both")
        return self


class NetworkOperatorSettings(StrictModel):
    """Network enablement on RDMA profiles: the Network Operator's NIC driver and the east-west rails."""

    nic_driver: DriverManagement = Field(
        default=DriverManagement.PREINSTALLED,
        description="managed: the Network Operator installs the DOCA driver; preinstalled: the node image has it")
    doca_driver_version: Optional[str] = Field(
        default=None, description="the DOCA driver tag for the host OS (required with nicDriver managed)")
    rail_interfaces: list[Annotated[str, Field(pattern=r"^[a-zA-Z0-9_.-]{1,15}$")]] = Field(
        default_factory=list, description="host netdevs of the east-west NICs, one per rail"
    )
    rail_subnet: Cidr = Field(
        default="192.168.0.0/16", description="split into one /<railPrefixLength> per rail"
    )
    rail_prefix_length: int = Field(default=24, ge=16, le=29, description="prefix length of each rail's subnet")
    per_node_block_size: int = Field(default=16, ge=2, le=254,
                                     description="addresses nv-ipam gives each node per rail")
    mtu: int = Field(default=9000, ge=1280, le=9216, description="MTU of the rail networks (bytes)")

    @field_validator("doca_driver_version")
    @classmethod
    def _webhook_accepts_version(cls, version: Optional[str]) -> Optional[str]:
        # The NicClusterPolicy webhook rejects any other ofedDriver.version (see data/integration-points.yaml).
        pattern = integration_points().network_operator.doca_driver_version_pattern
        if version is not None and not re.fullmatch(pattern, version, flags=re.ASCII):
            raise ValueError(f"{version!r} is not a DOCA driver version the Network Operator accepts, e.g. "
                             "doca3.2.0-25.10-1.2.8.0-2 (DOCA release - driver version - build) or 25.01-0.6.0.0-0")
        return version

    @model_validator(mode="after")
    def _managed_driver_needs_version(self) -> "NetworkOperatorSettings":
        if self.nic_driver == DriverManagement.MANAGED and not self.doca_driver_version:
            raise ValueError("nicDriver managed needs docaDriverVersion (the DOCA driver tag for your host OS)")
        return self


class SchedulingSettings(StrictModel):
    """Placement and scheduling: KAI Scheduler's placement and topology-aware placement of multi-node workers."""

    placement_strategy: Literal["binpack", "spread"] = Field(
        default="binpack", description="KAI Scheduler's GPU placement: fill nodes first, or spread pods over them")
    topology_aware: Optional[bool] = Field(default=None, description="defaults to true on multi-node NVLink profiles")


class HealthSettings(StrictModel):
    """Health and break-fix: NVSentinel's remediation mode, drain timeout and datastore credentials."""

    remediation: Optional[Literal["dry-run", "enforce"]] = Field(
        default=None, description="defaults to dry-run outside prod and enforce in prod"
    )
    datastore_secret: Optional[str] = Field(
        default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="an existing Secret with the datastore credentials (e.g. synced from the site's secret store); "
                    "by default the program generates them")
    drain_timeout_seconds: int = Field(default=600, ge=60, description="whole minutes: NVSentinel counts in minutes")
    local_decision: Optional[LocalDecision] = Field(
        default=None, description="why prod remediation stays in dry-run (required for remediation dry-run in prod)")

    @field_validator("drain_timeout_seconds")
    @classmethod
    def _whole_minutes(cls, seconds: int) -> int:
        # node-drainer's DeleteAfterTimeout mode takes deleteAfterTimeoutMinutes (an integer).
        if seconds % 60:
            raise ValueError(f"{seconds} is not a whole number of minutes; use a multiple of 60")
        return seconds


class PrometheusStack(StrictModel):
    """A Prometheus stack deployed by the program: not an RA component, so only as a recorded local decision."""

    enabled: bool = Field(default=False, description="deploy kube-prometheus-stack (off: the site brings its own)")
    local_decision: Optional[LocalDecision] = Field(default=None, description="why (required when enabled)")

    # RA: Known Limitations: "unless the partner records it as a local decision outside the reference stack"
    @model_validator(mode="after")
    def _recorded(self) -> "PrometheusStack":
        if self.enabled and self.local_decision is None:
            raise ValueError("a Prometheus stack is not an NVIDIA RA component: record localDecision.reason")
        return self


class TelemetrySettings(StrictModel):
    """Telemetry: scrape settings, the labels the site's Prometheus and Grafana select by, GPU alert bounds."""

    scrape_interval: Duration = Field(default="30s", description="scrape interval of the program's monitors")
    prometheus_selector_labels: dict[str, Text] = Field(
        default_factory=lambda: {"release": "kube-prometheus-stack"},
        description="labels the site's Prometheus selects ServiceMonitors/PodMonitors/PrometheusRules by",
    )
    gpu_temperature_celsius: int = Field(default=85, ge=50, le=110,
                                         description="GPU temperature (°C) above which the health alert fires")
    prometheus_stack: PrometheusStack = Field(default_factory=PrometheusStack)
    dashboard_label: dict[str, Text] = Field(
        default_factory=lambda: {"grafana_dashboard": "1"},
        description="the one label (Grafana sidecar.dashboards.label: labelValue) the site's Grafana loads "
                    "dashboard ConfigMaps by")
    # RA: Telemetry And Observability: "the same three observability pillars as the broader NCP software guide"
    otlp_endpoint: Optional[str] = Field(
        default=None, pattern=IN_CLUSTER_URL,
        description="the site's OpenTelemetry Collector OTLP/gRPC receiver, http://<service>.<namespace>.svc:4317: "
                    "Dynamo frontends and workers export traces and logs to it (where it sends them is the site's "
                    "choice); unset exports none, logs stay JSONL on stderr")

    def otlp_collector(self) -> Optional[tuple[str, int]]:
        """(namespace, port) of the site's collector, for the Dynamo pods' egress."""
        return in_cluster_target(self.otlp_endpoint, "components.telemetry.otlpEndpoint")

    @field_validator("dashboard_label")
    @classmethod
    def _one_label(cls, label: dict[str, str]) -> dict[str, str]:
        if len(label) != 1:
            raise ValueError("name exactly one label, e.g. {grafana_dashboard: \"1\"}: the Grafana sidecar selects "
                             "dashboards by one label key and value")
        return label


class PullCredentials(str, Enum):
    # The nodes pull nvcr.io with the site's kubelet image credential provider or registry mirror: no registry
    # credential in tenant namespaces (a site prerequisite, written to the baseline record).
    NODE = "node"
    # ngcApiKey copied into every tenant namespace as a pull secret: every tenant admin can read the provider's key
    # (anyone who may create a pod may mount any Secret of the namespace), so prod refuses it.
    SHARED_KEY = "sharedKey"


def _pem_public_key(key: str) -> str:
    if not key.strip().startswith("-----BEGIN PUBLIC KEY-----"):
        raise ValueError("is not a PEM public key (-----BEGIN PUBLIC KEY-----): give the signer's cosign.pub")
    return key


class ImageSignatures(StrictModel):
    """Images in tenant namespaces verified by signature at admission, by the Sigstore policy-controller the site
    runs (a site prerequisite; ValidatingAdmissionPolicy cannot verify signatures). Every image from an allowlisted
    registry must carry a cosign signature one of these keys verifies: the site signs (or re-signs, when it mirrors)
    the NVIDIA images it runs and its own tool images, and tenants have theirs signed by the site's signer."""

    public_keys: list[Annotated[Text, AfterValidator(_pem_public_key)]] = Field(
        min_length=1, description="PEM public keys of the site's cosign signers; an image in a tenant namespace must "
                                  "carry a signature one of them verifies")


class TenancySettings(StrictModel):
    """Tenancy: the platform namespaces tenant NetworkPolicies admit, and how tenant pods pull images."""

    gateway_namespace: Name = Field(default="gateway-system", description="namespace of the inference gateway")
    monitoring_namespace: Name = Field(default="monitoring", description="namespace Prometheus scrapes from")
    pull_credentials: PullCredentials = Field(
        default=PullCredentials.NODE, description="how tenant pods pull from nvcr.io (node | sharedKey, not in prod)")
    image_signatures: Optional[ImageSignatures] = Field(
        default=None, description="verify tenant-namespace images by signature at admission (Sigstore "
                                  "policy-controller); required in prod")


class Components(StrictModel):
    """Settings of each RA layer; every key has a default, so a stack names only what it changes."""

    gpu_operator: GpuOperatorSettings = Field(default_factory=GpuOperatorSettings)
    network_operator: NetworkOperatorSettings = Field(default_factory=NetworkOperatorSettings)
    scheduling: SchedulingSettings = Field(default_factory=SchedulingSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    tenancy: TenancySettings = Field(default_factory=TenancySettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    skip_await: bool = Field(default=False, description="do not wait for Helm releases to become ready (test clusters)")
    chart_mirror: Optional[str] = Field(
        default=None, pattern=r"^[A-Za-z0-9_./-]+$",
        description="directory (relative to the project) holding the pinned charts unpacked, one folder per chart "
                    "name: air-gapped sites and test clusters")


class NodePool(StrictModel):
    """GPU nodes dedicated to one tenant. The site labels and taints them with the tenant's name (the plan's
    TENANT_KEY; a site step in the checklist) and the program places the tenant's pods there."""

    nodes: int = Field(ge=1, description="GPU nodes of the site's gpuNodes given to this tenant alone")


class Tenant(StrictModel):
    """A tenant: its namespace, KAI queue, quotas, groups and (optionally) dedicated GPU nodes."""

    name: Name = Field(description="the tenant's name: namespace tenant-<name>, its KAI queue and labels")
    display_name: Optional[Text] = Field(default=None, description="a human-readable name for reviews")
    gpu_quota: int = Field(ge=0, description="GPUs guaranteed to the tenant (KAI deserved quota)")
    gpu_limit: int = Field(ge=0, description="hard cap on GPUs (KAI limit and ResourceQuota)")
    over_quota_weight: int = Field(default=1, ge=0,
                                   description="share of idle GPUs beyond the quota, relative to other tenants")
    cpu_quota: Quantity = Field(default="64", description="sum of CPU requests in the tenant namespace")
    memory_quota: Quantity = Field(default="512Gi", description="sum of memory requests in the tenant namespace")
    cpu_limit: Optional[Quantity] = Field(default=None, description="sum of CPU limits (default: cpuQuota)")
    memory_limit: Optional[Quantity] = Field(default=None, description="sum of memory limits (default: memoryQuota)")
    pod_quota: int = Field(default=200, ge=1, description="pods in the tenant namespace")
    claim_quota: int = Field(default=50, ge=0, description="PersistentVolumeClaims (incl. ephemeral volumes)")
    storage_quota: Quantity = Field(default="100Ti", description="storage all claims request, per class and in total")
    admins: list[Text] = Field(default_factory=list, description="identity-provider groups with tenant admin rights")
    viewers: list[Text] = Field(default_factory=list, description="identity-provider groups with read access")
    node_pool: Optional[NodePool] = Field(
        default=None, description="dedicated GPU nodes (required in prod with several tenants: RA Workload Isolation)")

    @model_validator(mode="after")
    def _limit_covers_quota(self) -> "Tenant":
        if self.gpu_limit < self.gpu_quota:
            raise ValueError(f"gpuLimit ({self.gpu_limit}) must be >= gpuQuota ({self.gpu_quota})")
        return self


class StackConfig(StrictModel):
    """Every `ncp-inference:*` key. `ngcApiKey` is a secret and validated separately (it never enters the model)."""

    site: Site
    components: Components = Field(default_factory=Components)
    tenants: list[Tenant] = Field(min_length=1, description="the site's tenants (at least one)")
    endpoints: list[Endpoint] = Field(default_factory=list, description="LLM serving endpoints (Dynamo)")
    inference_services: list[InferenceService] = Field(
        default_factory=list, description="traditional ML and vision services (TensorRT engines on Triton)")
    local_decisions: list[LocalDecision] = Field(
        default_factory=list, description="partner-selected, non-NVIDIA tools the stack uses, and why")

    @field_validator("tenants", "endpoints", "inference_services")
    @classmethod
    def _unique_names(cls, items: list) -> list:
        names = [item.name for item in items]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"names must be unique; repeated: {', '.join(duplicates)}")
        return items
