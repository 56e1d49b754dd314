"""The project's own data files: hardware profiles and the compatibility matrix."""
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional, Union

import yaml
from pydantic import Field, RootModel, ValidationError, model_validator

from ncp.plan.errors import ConfigError, Problem, manual_edit, problems_from_validation
from ncp.plan.pod_security import PodSecurity
from ncp.plan.profile import HardwareProfile
from ncp.plan.strict import StrictModel, Text

ROOT = Path(__file__).resolve().parents[2]
PROFILES_DIR = ROOT / "profiles"
MATRIX_FILE = ROOT / "data" / "compatibility-matrix.yaml"


# The partner-product kinds a stack uses and records a local decision for (rules/ra.py checks each is recorded).
PartnerProduct = Literal["storage", "gateway", "certManager", "metricsBackend", "registry"]


class LocalDecision(StrictModel):
    """A partner-selected, non-NVIDIA choice recorded outside the base RA."""

    decision: Text = Field(description="what the site chose, e.g. the storage class or gateway product")
    reason: Text = Field(min_length=10, description="why: recorded in the baseline record and the release review")
    kind: Optional[PartnerProduct] = Field(
        default=None, description="the partner-product kind it records (storage, gateway, certManager, "
                                  "metricsBackend, registry); other decisions leave it out")


class SnapshotNote(StrictModel):
    """Why a pin differs from the version of the upstream snapshot (../shared/upstream/MANIFEST.md) the tests
    check it against: the checks read files of another version, so a bump must be looked at, not pass silently."""

    pinned: str = Field(description="the pin this note was written for; a bump without a new note fails a test")
    snapshot: str = Field(description="the snapshot's version as MANIFEST.md gives it")
    reason: str = Field(min_length=20)


class Dependency(StrictModel):
    """Another chart this one is installed after, and why."""

    component: str
    reason: str = Field(min_length=20)


# When a chart is deployed: always, or when the site has what it serves (ncp/plan/layers.py resolves each).
DeployCondition = Literal["always", "rdmaFabric", "servingEndpoints", "prometheusStack"]


class ChartPin(StrictModel):
    display_name: str
    layer: str
    chart: str
    repository: str = ""
    version: str
    namespace: str
    ra_matrix: str
    deviation: Optional[str] = None
    checked_against: Optional[SnapshotNote] = None
    source: str
    images: dict[str, str] = Field(default_factory=dict)
    image_repository: Optional[str] = None
    crds: list[str] = Field(default_factory=list)
    prerequisites: list[str] = Field(default_factory=list, description="what the site must provide for this chart")
    decisions: list[str] = Field(default_factory=list,
                                 description="how the program uses the chart where upstream leaves a choice, and why")
    local_decision: Optional[LocalDecision] = None
    # Optional so that matrices of earlier revisions (read by `ncp upgrade-plan`) still load; the plan refuses a
    # deployed chart without it (ncp/plan/layers.py).
    pod_security: Optional[PodSecurity] = Field(
        default=None, description="the Pod Security level the chart's namespace enforces, and why")
    depends_on: list[Dependency] = Field(default_factory=list, description="charts installed before this one")
    deployed_when: DeployCondition = "always"

    @property
    def chart_name(self) -> str:
        return self.chart.rstrip("/").rsplit("/", 1)[-1]


class AccessRule(StrictModel):
    """One RBAC PolicyRule a workload needs, with where upstream does what needs it."""

    api_groups: list[str] = Field(default_factory=lambda: [""])
    resources: list[str] = Field(default_factory=list)
    non_resource_urls: list[str] = Field(default_factory=list, alias="nonResourceURLs")
    verbs: list[str] = Field(min_length=1)
    source: str


class WorkloadPin(StrictModel):
    """A component the program runs from images rather than a Helm chart."""

    display_name: str
    layer: str
    version: str
    ra_matrix: str
    deviation: Optional[str] = None
    checked_against: Optional[SnapshotNote] = None
    source: str
    images: dict[str, str] = Field(default_factory=dict)
    ports: dict[str, int] = Field(default_factory=dict)
    overrides: dict[str, Union[str, list[str]]] = Field(default_factory=dict)
    suite_file: Optional[str] = None
    read_only_checks: list[str] = Field(default_factory=list)
    reads: list[AccessRule] = Field(default_factory=list)


class KubernetesPins(StrictModel):
    default_version: str
    supported_versions: list[str]


class CompatibilityMatrix(StrictModel):
    schema_version: int
    kubernetes: KubernetesPins
    components: dict[str, ChartPin]
    workloads: dict[str, WorkloadPin] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _dependencies_are_charts(self) -> "CompatibilityMatrix":
        for name, pin in self.components.items():
            for dependency in pin.depends_on:
                if dependency.component not in self.components or dependency.component == name:
                    raise ValueError(f"components.{name}.dependsOn names {dependency.component!r}, which is not "
                                     "another chart of the matrix")
        return self

    def workload(self, name: str) -> WorkloadPin:
        try:
            return self.workloads[name]
        except KeyError:
            raise KeyError(f"{MATRIX_FILE.name} has no workload entry {name!r}") from None

    def pin(self, component: str) -> ChartPin:
        try:
            return self.components[component]
        except KeyError:
            raise KeyError(f"{MATRIX_FILE.name} has no entry for component {component!r}") from None


def _read_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), [Problem(str(path), f"cannot be read: {exc}", manual_edit(
            str(path), "the line and column above", "fix the YAML syntax"), rule="input.data-file")]) from exc


def _load(model, path: Path):
    """Validate a data file against its model; a bad file is a ConfigError naming the file and each key."""
    try:
        return model.model_validate(_read_yaml(path))
    except ValidationError as exc:
        raise ConfigError(str(path), problems_from_validation("", exc, model=model, config=False)) from None


@lru_cache(maxsize=1)
def load_matrix() -> CompatibilityMatrix:
    return _load(CompatibilityMatrix, MATRIX_FILE)


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


@lru_cache(maxsize=None)
def load_profile(name: str) -> HardwareProfile:
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(path)
    profile = _load(HardwareProfile, path)
    if profile.name != name:
        raise ConfigError(str(path), [Problem("name", f"is {profile.name!r} but the file is {name}.yaml",
                                              manual_edit(str(path), "name", f"set it to {name}"),
                                              rule="input.data-file")])
    return profile


SIGNALS_FILE = ROOT / "data" / "telemetry-signals.yaml"


class MetricSource(StrictModel):
    """One exporter's metric names and the labels, label values and histogram bounds its series arrive with."""

    source: str
    metrics: dict[str, str]
    workload_namespace_label: Optional[str] = None
    gpu_labels: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    label_values: dict[str, str] = Field(default_factory=dict)
    pod_labels: dict[str, str] = Field(default_factory=dict)
    service_labels: dict[str, str] = Field(default_factory=dict)  # labels of the Service a ServiceMonitor selects
    component_types: dict[str, list[str]] = Field(default_factory=dict)
    ports: dict[str, str] = Field(default_factory=dict)
    buckets: dict[str, list[float]] = Field(default_factory=dict)

    def buckets_around(self, histogram: str, bound: float) -> tuple[float, float, float]:
        """The histogram's `le` bounds bracketing a threshold, lower <= threshold <= upper, and the weight of the
        upper one when the share of observations under the threshold is interpolated linearly between them (the
        assumption histogram_quantile makes). On a bucket bound, or beyond the last finite one, the weight is 0."""
        buckets = sorted(self.buckets[histogram])
        lower = max(le for le in buckets if le <= bound)
        upper = min((le for le in buckets if le >= bound), default=lower)
        weight = 0.0 if upper == lower else (bound - lower) / (upper - lower)
        return lower, upper, weight


class Signals(RootModel[dict[str, MetricSource]]):
    pass


SERVING_TWIN_FILE = ROOT / "data" / "serving-twin.yaml"


def operator_pod() -> dict:
    """What the Dynamo operator adds to each DGD service's pod (data/serving-twin.yaml operatorPod, with sources)."""
    return yaml.safe_load(SERVING_TWIN_FILE.read_text())["operatorPod"]


@lru_cache(maxsize=1)
def load_signals() -> dict[str, MetricSource]:
    return _load(Signals, SIGNALS_FILE).root


DISPOSITION_FILE = ROOT / "data" / "backend-disposition.yaml"
ALLOWLISTS_FILE = ROOT / "data" / "allowlists.yaml"


class BackendDisposition(StrictModel):
    environments: list[str]
    accepted_gaps: list[str] = Field(default_factory=list)
    blocking_gaps: list[str] = Field(default_factory=list)
    rollback: str = Field(min_length=1)


class ModelClass(StrictModel):
    description: str
    backends: dict[str, BackendDisposition]


class DispositionMatrix(StrictModel):
    source: str
    model_classes: dict[str, ModelClass]


@lru_cache(maxsize=1)
def load_disposition() -> DispositionMatrix:
    return _load(DispositionMatrix, DISPOSITION_FILE)


class Allowlists(StrictModel):
    chart_repositories: list[str]
    image_registries: list[str]
    model_sources: list[str]
    model_revisions: dict[str, str] = Field(
        default_factory=dict, description="model source prefix -> the pattern of its immutable revisions")
    tenant_host_paths: list[str] = Field(default_factory=list, description="node paths tenant pods may mount read-only")


@lru_cache(maxsize=1)
def load_allowlists() -> Allowlists:
    return _load(Allowlists, ALLOWLISTS_FILE)


BACKENDS_FILE = ROOT / "data" / "dynamo-backends.yaml"


class Frontend(StrictModel):
    module: str
    http_port_flag: str
    http_port: int
    router_mode_env: str
    migration_limit_env: str
    migration_limit: int = Field(ge=1)


class KvbmFlag(StrictModel):
    """A worker flag and its value (vLLM's --kv-transfer-config JSON, TRT-LLM's --connector)."""

    flag: str
    value: str
    disaggregated_value: Optional[str] = None


class BackendRuntime(StrictModel):
    module: str
    service_name_prefix: str = Field(description="the DGD service names of the backend's workers start with it")
    model_path_flag: str
    served_model_name_flag: str
    engine_args_flag: Optional[str] = None
    engine_args: dict[str, str] = Field(default_factory=dict)
    parallel_flags: dict[str, str] = Field(default_factory=dict)
    disaggregation_flag: Optional[str] = None
    multinode_over_ssh: bool = False
    disaggregated_transfer: Optional[KvbmFlag] = Field(
        default=None, description="KV transfer flag prefill/decode workers need (replaced by kvbm's when offloading)")
    disaggregated_engine_args: dict = Field(default_factory=dict, description="engine config of prefill/decode workers")
    attention_data_parallel_arg: Optional[str] = Field(
        default=None, description="engine config switch for attention data parallelism; absent: not supported")
    shared_memory_gi: int = Field(gt=0)
    model_streamer: bool
    kvbm: Optional[KvbmFlag] = None
    kvbm_unsupported: Optional[str] = Field(default=None, description="why the backend has no KVBM")

    @model_validator(mode="after")
    def _kvbm_recorded(self) -> "BackendRuntime":
        if (self.kvbm is None) == (self.kvbm_unsupported is None):
            raise ValueError("record either kvbm (how the worker enables it) or kvbmUnsupported (why not)")
        return self


class Kvbm(StrictModel):
    cpu_cache_env: str
    disk_cache_env: str
    disk_cache_dir_env: str
    host_cache_gb_per_gpu: int = Field(gt=0)
    disk_fill_ratio: float = Field(gt=0, le=1)
    udev_host_path: str = Field(pattern=r"^/", description="the node's udev database cuFile reads (read-only)")


class ModelStreamer(StrictModel):
    load_format_flag: str
    load_format: str
    env: dict[str, str]


class Planner(StrictModel):
    module: str
    config_flag: str
    image: str = Field(description="key of the planner image in the dynamoRuntime workload pin")
    prometheus_env: str
    fixed_config: dict[str, str]
    config_keys: dict[str, str]
    load_adjustment_interval_seconds: int = Field(gt=0)
    modes: dict[str, str]


class TelemetryExport(StrictModel):
    """The Dynamo runtime's own settings for OTLP export of traces and logs and for JSONL logs."""
    enabled_env: str
    traces_endpoint_env: str
    logs_endpoint_env: str
    service_name_env: str
    json_logs_env: str


class WorkerResources(StrictModel):
    reason: str = Field(min_length=10)
    cpu_per_gpu: int = Field(gt=0)
    memory_per_gpu_gi: int = Field(gt=0)


class DynamoRuntime(StrictModel):
    source: str
    frontend: Frontend
    planner: Planner
    kvbm: Kvbm
    telemetry_export: TelemetryExport
    self_host_metadata_env: dict[str, str]
    worker_resources: WorkerResources
    backends: dict[str, BackendRuntime]
    model_streamer: ModelStreamer
    model_express_client_env: str
    rdma_capabilities: list[str]
    multinode_ssh: "MultinodeSsh"


@lru_cache(maxsize=1)
def load_dynamo_runtime() -> DynamoRuntime:
    return _load(DynamoRuntime, BACKENDS_FILE)


INTEGRATION_FILE = ROOT / "data" / "integration-points.yaml"


class Sourced(StrictModel):
    source: str


class GpuNames(Sourced):
    resource: str
    product_label: str
    present_label: str
    taint_key: str
    mig_product_infix: str
    mig_config_label: str
    mig_config_state_label: str
    driver_version_label: str
    pci_vendor_id: str
    pci_display_classes: list[str]


class DcgmNames(Sourced):
    service: str
    port: int


class KaiNames(Sourced):
    queue_label: str
    scheduler_name: str
    batch_min_member_annotation: str


class DynamoNames(Sourced):
    queue_annotation: str
    frontend_service_suffix: str
    nats_service_suffix: str
    nats_port: int
    nats_decision: str
    nats_server_env: str
    nats_plane_env: dict[str, str]

    @staticmethod
    def dynamo_namespace(namespace: str, graph: str) -> str:
        return f"{namespace}-{graph}"


class MultusNames(Sourced):
    networks_annotation: str
    resource_name_annotation: str
    default_network_annotation: str


class NetworkOperatorNames(Sourced):
    nic_cluster_policy_name: str
    nic_vendor_id: str
    doca_driver_version_pattern: str


class GatewayNames(Sourced):
    endpoint_picker_port: int
    pool_api_version: str  # group/version of the InferencePool the pinned extension serves
    pool_kind: str
    route_api_version: str  # Gateway API HTTPRoute
    gateway_kind: str

    @property
    def pool_group(self) -> str:
        return self.pool_api_version.split("/", 1)[0]

    @property
    def route_group(self) -> str:
        return self.route_api_version.split("/", 1)[0]


class DatastoreNames(Sourced):
    root_password_key: str
    replica_set_key: str


class KubernetesNames(Sourced):
    pod_node_selector_annotation: str
    pod_node_selector_plugin: str
    pod_node_selector_refusal: str
    hostname_label: str


class EndpointPickerNames(Sourced):
    """The endpoint picker runner Dynamo 1.5's picker is built on: its flags and configuration API."""

    module: str
    module_version: str
    package: str
    flags: list[str]
    config_api_version: str
    config_kind: str
    config_mount_path: str
    config_file: str
    scorer: str
    picker: str
    profile_handler: str
    saturation_detector: str
    data_source: str


class MultinodeSsh(StrictModel):
    """What a multi-node TRT-LLM worker running as root needs for the operator's ssh/mpirun bootstrap."""

    root_capabilities: list[str]
    privilege_separation_dir: str
    home: str


class PrometheusTenancyNames(Sourced):
    group: str
    version: str
    plural: str
    enforced_namespace_label: str


class SigstoreNames(Sourced):
    group: str
    version: str
    kind: str
    include_label: str
    webhook_configuration: str


class IntegrationPoints(StrictModel):
    gpu: GpuNames
    dcgm: DcgmNames
    kai: KaiNames
    dynamo: DynamoNames
    multus: MultusNames
    network_operator: NetworkOperatorNames
    kubernetes: KubernetesNames
    gateway_inference_extension: GatewayNames
    endpoint_picker: EndpointPickerNames
    nvsentinel_datastore: DatastoreNames
    prometheus_tenancy: PrometheusTenancyNames
    sigstore: SigstoreNames


@lru_cache(maxsize=1)
def integration_points() -> IntegrationPoints:
    return _load(IntegrationPoints, INTEGRATION_FILE)


NETWORK_ACCESS_FILE = ROOT / "data" / "network-access.yaml"
TENANTS_PEER, MONITORING_PEER = "tenants", "monitoring"


class IngressAllow(StrictModel):
    """Ingress into a platform namespace: from a peer (tenants, monitoring or a matrix component), or on
    admission-webhook ports from any source (the kube-apiserver is not a pod)."""

    from_: Optional[str] = Field(default=None, alias="from")
    ports: list[int] = Field(default_factory=list, description="empty: every port")
    webhook_ports: list[int] = Field(default_factory=list)
    source: str

    @model_validator(mode="after")
    def _one_kind(self) -> "IngressAllow":
        if (self.from_ is None) == (not self.webhook_ports):
            raise ValueError("set exactly one of from, webhookPorts")
        return self


class EgressAllow(StrictModel):
    api_server: bool = False
    anywhere: Optional[str] = Field(default=None, description="why this namespace needs egress to any destination")


class PlatformAccess(StrictModel):
    egress: EgressAllow = Field(default_factory=EgressAllow)
    ingress: list[IngressAllow] = Field(default_factory=list)
    source: Optional[str] = None


class DnsService(Sourced):
    namespace: str
    pod_labels: dict[str, str]


class GatewayEgress(StrictModel):
    metadata_endpoints: list[str]
    source: str


class NetworkAccess(StrictModel):
    source: str
    api_server_ports: list[int]
    dns: DnsService
    gateway_egress: GatewayEgress
    platform: dict[str, PlatformAccess]

    def of(self, layer: str) -> PlatformAccess:
        try:
            return self.platform[layer]
        except KeyError:
            raise KeyError(f"{NETWORK_ACCESS_FILE.name} has no platform entry {layer!r}") from None


@lru_cache(maxsize=1)
def network_access() -> NetworkAccess:
    return _load(NetworkAccess, NETWORK_ACCESS_FILE)


TENANT_ACCESS_FILE = ROOT / "data" / "tenant-access.yaml"


class TenantAccess(StrictModel):
    source: str
    admin: list[AccessRule]
    viewer: list[AccessRule]
    platform_priority_classes: list[str]


@lru_cache(maxsize=1)
def tenant_access() -> TenantAccess:
    return _load(TenantAccess, TENANT_ACCESS_FILE)
