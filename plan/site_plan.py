"""Build the validated deployment plan from raw stack config: schema checks, then cross-checks against the
hardware profile and the compatibility matrix. Every problem is collected before anything is raised."""
import ipaddress
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from pydantic import ValidationError

from plan.catalog import ChartPin, CompatibilityMatrix, load_matrix, load_profile, profile_names
from plan.config import Environment, MigSettings, PullCredentials, StackConfig, Tenant, TimeSlicing
from plan.endpoint_plan import EndpointPlan
from plan.endpoints import plan_endpoints
from plan.errors import ConfigError, Problem, problems_from_validation
from plan.profile import DriverManagement, HardwareProfile

PROJECT = "ncp-inference"
SECRET_KEYS = ("ngcApiKey",)
TENANT_NAMESPACE_PREFIX = "tenant-"


@dataclass(frozen=True)
class Rail:
    interface: str
    subnet: str
    gateway: str


@dataclass(frozen=True)
class SitePlan:
    """Everything the components need, derived once. Components read this; they never read raw config."""

    config: StackConfig
    profile: HardwareProfile
    matrix: CompatibilityMatrix
    kubernetes_version: str
    driver: DriverManagement
    mig: Optional[MigSettings]
    time_slicing: Optional[TimeSlicing]
    network_enabled: bool
    rails: tuple[Rail, ...]
    topology_aware: bool
    remediation: str
    has_ngc_api_key: bool
    endpoints: tuple[EndpointPlan, ...] = ()

    @property
    def site(self):
        return self.config.site

    @property
    def environment(self) -> Environment:
        return self.config.site.environment

    @property
    def tenants(self) -> list[Tenant]:
        return self.config.tenants

    def chart(self, component: str) -> ChartPin:
        """The pinned chart, taken from the site's chart mirror when it has one (same chart, same version)."""
        pin = self.matrix.pin(component)
        mirror = self.config.components.chart_mirror
        if mirror is None:
            return pin
        return pin.model_copy(update={"chart": f"./{mirror.strip('/')}/{pin.chart_name}", "repository": ""})

    @property
    def tenant_pull_secret(self) -> bool:
        """Whether tenant namespaces hold a copy of ngcApiKey (sharedKey; prod refuses it)."""
        return self.has_ngc_api_key and self.config.components.tenancy.pull_credentials == PullCredentials.SHARED_KEY

    @property
    def gpu_capacity(self) -> int:
        return self.config.site.gpu_nodes * self.profile.gpu.per_node

    @staticmethod
    def tenant_namespace(tenant: Tenant) -> str:
        return TENANT_NAMESPACE_PREFIX + tenant.name


def _set_fix(path: str, fix: str) -> str:
    command = f"pulumi config set --path '{path}' <value>"
    return f"{fix}: {command}" if fix else command


def _profile_problems(config: StackConfig, profile: HardwareProfile) -> list[Problem]:
    problems = []
    gpu_settings = config.components.gpu_operator
    capacity = config.site.gpu_nodes * profile.gpu.per_node
    mig = gpu_settings.mig
    if mig is not None:
        base = f"{PROJECT}:components.gpuOperator.mig"
        if not profile.gpu.mig.supported:
            problems.append(Problem(base, f"profile {profile.name} ({profile.gpu.model}) does not support MIG",
                                    f"remove it: pulumi config rm --path '{base}'"))
        else:
            allowed = profile.gpu.mig.profiles
            for name in mig.layout:
                if name not in allowed:
                    problems.append(Problem(f"{base}.layout.{name}",
                                            f"is not an accepted MIG profile of {profile.name}",
                                            f"use one of: {', '.join(allowed) or '(none recorded in the profile)'}"))
            max_slices = max((int(p.split("g.")[0]) for p in allowed), default=0)
            if allowed and mig.compute_slices > max_slices:
                problems.append(Problem(f"{base}.layout",
                                        f"needs {mig.compute_slices} compute slices per GPU; "
                                        f"{profile.gpu.model} has {max_slices}",
                                        "reduce the instance counts"))
    if gpu_settings.driver == DriverManagement.MANAGED and profile.gpu.driver == DriverManagement.PREINSTALLED:
        problems.append(Problem(f"{PROJECT}:components.gpuOperator.driver",
                                f"profile {profile.name} ships the driver in its node image; a managed driver would "
                                "conflict with it", "remove the override or use preinstalled"))
    net = config.components.network_operator
    net_base = f"{PROJECT}:components.networkOperator"
    if profile.has_rdma_fabric:
        if not net.rail_interfaces:
            problems.append(Problem(f"{net_base}.railInterfaces",
                                    f"profile {profile.name} has an RDMA east-west fabric; name its NIC interfaces",
                                    _set_fix(f"{net_base}.railInterfaces[0]", "")))
        elif len(net.rail_interfaces) > profile.fabric.nics_per_node:
            problems.append(Problem(f"{net_base}.railInterfaces",
                                    f"lists {len(net.rail_interfaces)} rails; profile {profile.name} has "
                                    f"{profile.fabric.nics_per_node} NICs per node", "list one interface per NIC"))
        elif len(net.rail_interfaces) != len(set(net.rail_interfaces)):
            problems.append(Problem(f"{net_base}.railInterfaces", "lists an interface twice", "list each once"))
        subnet = ipaddress.IPv4Network(net.rail_subnet)
        if subnet.prefixlen > 24 - max(len(net.rail_interfaces) - 1, 0).bit_length():
            problems.append(Problem(f"{net_base}.railSubnet", f"{subnet} cannot hold one /24 per rail",
                                    "use a larger subnet, e.g. 192.168.0.0/16"))
    elif net.rail_interfaces:
        problems.append(Problem(f"{net_base}.railInterfaces",
                                f"profile {profile.name} has no RDMA east-west fabric, so the Network Operator is not "
                                "deployed", f"remove it: pulumi config rm --path '{net_base}.railInterfaces'"))
    for index, tenant in enumerate(config.tenants):
        if tenant.gpu_limit > capacity:
            problems.append(Problem(f"{PROJECT}:tenants[{index}].gpuLimit",
                                    f"is {tenant.gpu_limit}; the site has {capacity} GPUs "
                                    f"({config.site.gpu_nodes} nodes x {profile.gpu.per_node})",
                                    f"use a value <= {capacity}"))
    total_quota = sum(t.gpu_quota for t in config.tenants)
    if total_quota > capacity:
        problems.append(Problem(f"{PROJECT}:tenants",
                                f"guarantee {total_quota} GPUs in total (sum of gpuQuota); the site has {capacity}",
                                "lower gpuQuota values; use gpuLimit and overQuotaWeight for burst capacity"))
    return problems


def _rails(config: StackConfig) -> tuple[Rail, ...]:
    subnet = ipaddress.IPv4Network(config.components.network_operator.rail_subnet)
    per_rail = list(subnet.subnets(new_prefix=24))
    rails = []
    for interface, rail_net in zip(config.components.network_operator.rail_interfaces, per_rail):
        rails.append(Rail(interface=interface, subnet=str(rail_net), gateway=str(next(rail_net.hosts()))))
    return tuple(rails)


def build_plan(raw: Mapping[str, Any], secret_keys: set[str], source: str) -> SitePlan:
    """raw: the project's config keys without the `ncp-inference:` prefix, values already decoded from JSON."""
    problems: list[Problem] = []
    for key in SECRET_KEYS:
        if key in raw and key not in secret_keys:
            problems.append(Problem(f"{PROJECT}:{key}", "is stored in plain text",
                                    f"pulumi config rm {PROJECT}:{key} && pulumi config set --secret {PROJECT}:{key}"))
    plain = {k: v for k, v in raw.items() if k not in SECRET_KEYS}
    try:
        config = StackConfig.model_validate(plain)
    except ValidationError as exc:
        problems += problems_from_validation(f"{PROJECT}:", exc, _set_fix)
        raise ConfigError(source, problems) from None

    profile = None
    if config.site.hardware_profile not in profile_names():
        problems.append(Problem(f"{PROJECT}:site.hardwareProfile",
                                f"names unknown profile {config.site.hardware_profile!r}",
                                f"use one of: {', '.join(profile_names())} (files in profiles/)"))
    else:
        profile = load_profile(config.site.hardware_profile)
        problems += _profile_problems(config, profile)

    matrix = load_matrix()
    k8s = config.site.kubernetes_version or matrix.kubernetes.default_version
    if k8s not in matrix.kubernetes.supported_versions:
        problems.append(Problem(f"{PROJECT}:site.kubernetesVersion", f"{k8s} is not in the compatibility matrix",
                                f"use one of: {', '.join(matrix.kubernetes.supported_versions)}"))
    endpoints = []
    if profile is not None:
        endpoints, endpoint_problems = plan_endpoints(
            config, profile, matrix, SitePlan.tenant_namespace,
            multi_node_fabric=profile.has_rdma_fabric or profile.nvlink.multi_node)
        problems += endpoint_problems
    has_key = "ngcApiKey" in raw
    if config.site.environment == Environment.PROD:
        if not has_key:
            problems.append(Problem(f"{PROJECT}:ngcApiKey", "is required in prod (image pulls from nvcr.io)",
                                    f"pulumi config set --secret {PROJECT}:ngcApiKey <NGC API key>"))
        if config.components.tenancy.pull_credentials == PullCredentials.SHARED_KEY:
            problems.append(Problem(
                f"{PROJECT}:components.tenancy.pullCredentials",
                "sharedKey is refused in prod: it copies the provider's NGC key into every tenant namespace, where "
                "every tenant admin can read it", _set_fix(f"{PROJECT}:components.tenancy.pullCredentials",
                                                           "node (configure the nodes' kubelet credential provider "
                                                           "or registry mirror for nvcr.io)")))
        if config.site.validation_evidence is None:
            problems.append(Problem(f"{PROJECT}:site.validationEvidence", "is required in prod",
                                    _set_fix(f"{PROJECT}:site.validationEvidence.path", "record where acceptance "
                                             "evidence is kept")))
    if problems:
        raise ConfigError(source, problems)

    settings = config.components
    remediation = settings.health.remediation or (
        "enforce" if config.site.environment == Environment.PROD else "dry-run")
    topology_aware = settings.scheduling.topology_aware
    if topology_aware is None:
        topology_aware = profile.nvlink.multi_node
    return SitePlan(
        config=config,
        profile=profile,
        matrix=matrix,
        kubernetes_version=k8s,
        driver=settings.gpu_operator.driver or profile.gpu.driver,
        mig=settings.gpu_operator.mig,
        time_slicing=settings.gpu_operator.time_slicing,
        network_enabled=profile.has_rdma_fabric,
        rails=_rails(config) if profile.has_rdma_fabric else (),
        topology_aware=topology_aware,
        remediation=remediation,
        has_ngc_api_key=has_key,
        endpoints=tuple(endpoints),
    )
