"""Build the validated deployment plan from raw stack config: schema checks, then cross-checks against the
hardware profile and the compatibility matrix. Every problem is collected before anything is raised."""
import ipaddress
import itertools
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from pydantic import ValidationError

from plan.catalog import (
    ChartPin, CompatibilityMatrix, integration_points, load_matrix, load_profile, profile_names,
)
from plan.config import Environment, MigSettings, PullCredentials, StackConfig, Tenant, TimeSlicing
from plan.endpoint_plan import EndpointPlan
from plan.endpoints import plan_endpoints
from plan.inference_services import InferenceServicePlan, plan_inference_services
from plan.errors import ConfigError, Problem, problems_from_validation
from plan.raw_checks import number_problems, placeholder_problems
from plan.profile import DriverManagement, DriverUpgradePolicy, HardwareProfile

PROJECT = "ncp-inference"
SECRET_KEYS = ("ngcApiKey",)
TENANT_NAMESPACE_PREFIX = "tenant-"
# One key for the tenant's label on its objects and on its dedicated nodes, and for the taint those nodes carry.
TENANT_KEY = "ncp-inference.io/tenant"


@dataclass(frozen=True)
class TopologyLevel:
    domain: str  # Grove topology domain name (ClusterTopologyBinding spec.levels[].domain)
    key: str  # node label key


# Profile topology label field -> Grove domain, broadest first. zone/rack/host are Grove's predefined domains
# (ai-dynamo/grove operator/api/core/v1alpha1/clustertopologybinding.go TopologyDomain consts, at the grove pin);
# the NVLink domain has no predefined name, and the domain pattern ^[a-z][a-z0-9-]*$ admits our own.
TOPOLOGY_DOMAINS = (("zone", "zone"), ("rack", "rack"), ("nvlink_domain", "nvlink-domain"), ("host", "host"))


def topology_levels(profile: HardwareProfile) -> tuple[TopologyLevel, ...]:
    labels = profile.topology_labels
    return tuple(TopologyLevel(domain, getattr(labels, field)) for field, domain in TOPOLOGY_DOMAINS
                 if getattr(labels, field))


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


@dataclass(frozen=True)
class Rail:
    interface: str
    subnet: str
    gateway: str


@dataclass(frozen=True)
class NodePlacement:
    """Where a tenant's pods run: its dedicated nodes (labelled and tainted TENANT_KEY=<tenant> by the site): its GPU
    nodes and the CPU nodes its frontends, planners and Jobs run on, so no pod of a tenant shares a node with another
    tenant's. Only GPU pods add the GPU taint's toleration: control-plane pods stay off GPU nodes."""

    node_selector: dict[str, str]
    tolerations: tuple[dict[str, str], ...]

    @classmethod
    def dedicated(cls, tenant: str) -> "NodePlacement":
        return cls(node_selector={TENANT_KEY: tenant},
                   tolerations=({"key": TENANT_KEY, "operator": "Equal", "value": tenant, "effect": "NoSchedule"},))


# Why the rails need no per-tenant IPPools or NetworkAttachmentDefinitions on dedicated nodes, and what the site
# still owns. nv-ipam hands each node its own block of every rail pool (Mellanox/nvidia-k8s-ipam
# pkg/ipam-controller/allocator/allocator.go, at the networkOperator pin): on dedicated nodes a tenant's pods take rail
# addresses only from its own nodes' blocks and reach only its own nodes' NICs (the RDMA device plugin exposes the
# node's devices). Separating tenants' traffic on a shared rail segment is the fabric's job (per-tenant VLAN/VRF or
# partition on the rail switches): Kubernetes NetworkPolicy does not apply to Multus secondary networks.
RDMA_RAIL_ISOLATION = (
    "rail addresses come from per-node nv-ipam blocks, so each tenant's pods use only its own nodes' blocks and NICs; "
    "segment the rails per tenant in the fabric (VLAN/VRF or partition per tenant node set on the rail switches): "
    "NetworkPolicy does not cover Multus secondary networks")


def gpu_toleration() -> dict[str, str]:
    """Tolerates the taint sites put on GPU nodes (integration-points gpu.taintKey)."""
    return {"key": integration_points().gpu.taint_key, "operator": "Exists", "effect": "NoSchedule"}


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
    inference_services: tuple[InferenceServicePlan, ...] = ()

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
        """GPUs the site's queues share, in the units the scheduler counts (see gpu_units_per_node)."""
        return self.config.site.gpu_nodes * gpu_units_per_node(self.profile, self.mig)

    @property
    def driver_upgrade_policy(self) -> Optional[DriverUpgradePolicy]:
        """The GPU Operator's driver upgrade policy: the profile's, with the stack's overrides; None when the
        driver is preinstalled (nothing for the operator to upgrade)."""
        if self.driver != DriverManagement.MANAGED:
            return None
        override = self.config.components.gpu_operator.driver_upgrade_policy
        policy = self.profile.gpu.driver_upgrade
        return override.applied_to(policy) if override is not None else policy

    @property
    def gpu_product_label(self) -> str:
        """The nvidia.com/gpu.product value GFD puts on this site's GPU nodes."""
        return gpu_product_label(self.profile, self.mig)

    @property
    def topology_levels(self) -> tuple[TopologyLevel, ...]:
        """Topology levels, broadest first, for Grove's ClusterTopologyBinding (and the KAI Topology Grove derives)."""
        return topology_levels(self.profile)

    @staticmethod
    def tenant_namespace(tenant: Tenant) -> str:
        return TENANT_NAMESPACE_PREFIX + tenant.name

    @property
    def tenant_node_pools(self) -> dict[str, dict]:
        """tenant -> its dedicated nodes and the label and taint the site puts on them (a site step)."""
        return {t.name: {"nodes": t.node_pool.nodes, "label": f"{TENANT_KEY}={t.name}",
                         "taint": f"{TENANT_KEY}={t.name}:NoSchedule"} for t in self.tenants if t.node_pool}

    def placement(self, tenant_name: str) -> Optional[NodePlacement]:
        """The tenant's dedicated nodes, or None where it shares the site's GPU nodes."""
        tenant = next(t for t in self.tenants if t.name == tenant_name)
        return NodePlacement.dedicated(tenant.name) if tenant.node_pool else None


def _set_fix(path: str, fix: str) -> str:
    command = f"pulumi config set --path '{path}' <value>"
    return f"{fix}: {command}" if fix else command


def _nodes_first(config: StackConfig) -> str:
    """Capacity is gpuNodes x GPUs per node: a wrong node count is the likelier cause than a wrong quota."""
    return (f"if the site has more than {config.site.gpu_nodes} GPU nodes, set them: pulumi config set --path "
            f"'{PROJECT}:site.gpuNodes' <nodes>;")


def _topology_aware(config: StackConfig, profile: HardwareProfile) -> bool:
    configured = config.components.scheduling.topology_aware
    return profile.nvlink.multi_node if configured is None else configured


def _unplaceable(profile: HardwareProfile, layout: dict[str, int]) -> str:
    table = profile.gpu.mig.instances
    shown = ", ".join(f"{count} x {name} (max {table[name].max_instances}, {table[name].size} of "
                      f"{profile.gpu.mig.memory_slices} memory slices at {table[name].placements})"
                      for name, count in layout.items())
    return f"cannot be placed on one {profile.gpu.model}: {shown} overlap or exceed a profile's instance limit"


def _profile_problems(config: StackConfig, profile: HardwareProfile) -> list[Problem]:
    problems = []
    gpu_settings = config.components.gpu_operator
    mig = gpu_settings.mig
    units = gpu_units_per_node(profile, mig)
    capacity = config.site.gpu_nodes * units
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
            if set(mig.layout) <= set(allowed) and profile.gpu.mig.placement(mig.layout) is None:
                problems.append(Problem(f"{base}.layout", _unplaceable(profile, mig.layout),
                                        "choose instance counts whose placements fit side by side (the profile's "
                                        f"gpu.mig.instances table in profiles/{profile.name}.yaml)"))
    override = gpu_settings.driver_upgrade_policy
    if override is not None and (gpu_settings.driver or profile.gpu.driver) == DriverManagement.PREINSTALLED:
        problems.append(Problem(f"{PROJECT}:components.gpuOperator.driverUpgradePolicy",
                                f"the driver is preinstalled in {profile.name}'s node image: the GPU Operator does "
                                "not upgrade it", "remove driverUpgradePolicy"))
    elif override is not None:
        try:
            override.applied_to(profile.gpu.driver_upgrade)
        except ValueError as error:
            problems.append(Problem(f"{PROJECT}:components.gpuOperator.driverUpgradePolicy",
                                    f"does not apply to the profile's policy ({str(error).splitlines()[0]})",
                                    "name only keys of driver.upgradePolicy with valid values"))
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
        problems += _rail_problems(config)
    elif net.rail_interfaces:
        problems.append(Problem(f"{net_base}.railInterfaces",
                                f"profile {profile.name} has no RDMA east-west fabric, so the Network Operator is not "
                                "deployed", f"remove it: pulumi config rm --path '{net_base}.railInterfaces'"))
    if _topology_aware(config, profile) and not profile.topology_labels.rack:
        # KAI leaves a node out of a topology unless it carries every level's label (kai-scheduler/KAI-Scheduler
        # pkg/scheduler/plugins/topology/common.go:69-77 isNodePartOfTopology, at the kaiScheduler pin).
        problems.append(Problem(f"{PROJECT}:components.scheduling.topologyAware",
                                f"profile {profile.name} declares no rack label (topologyLabels.rack), so topology-"
                                "aware placement has no level between zone and host",
                                f"declare topologyLabels.rack in profiles/{profile.name}.yaml (a label every GPU "
                                "node carries) or set topologyAware false"))
    for index, tenant in enumerate(config.tenants):
        if tenant.gpu_limit > capacity:
            problems.append(Problem(f"{PROJECT}:tenants[{index}].gpuLimit",
                                    f"is {tenant.gpu_limit}; the site has {capacity} GPUs "
                                    f"({config.site.gpu_nodes} nodes x {units}"
                                    f"{' MIG-partitioned' if units != profile.gpu.per_node else ''})",
                                    f"{_nodes_first(config)} otherwise use a value <= {capacity}"))
    total_quota = sum(t.gpu_quota for t in config.tenants)
    if total_quota > capacity:
        problems.append(Problem(f"{PROJECT}:tenants",
                                f"guarantee {total_quota} GPUs in total (sum of gpuQuota); the site has {capacity}",
                                f"{_nodes_first(config)} otherwise lower gpuQuota values and use gpuLimit and "
                                "overQuotaWeight for burst capacity"))
    return problems


def _node_pool_problems(config: StackConfig, profile: HardwareProfile) -> list[Problem]:
    """Dedicated node pools fit the site and hold their tenant's GPU limit; prod with several tenants has them,
    since namespaces should not be the only isolation boundary for high-value multi-tenant GPU services (RA,
    Isolation And Security / Workload Isolation)."""
    problems = []
    units = gpu_units_per_node(profile, config.components.gpu_operator.mig)
    pooled = [(index, tenant) for index, tenant in enumerate(config.tenants) if tenant.node_pool]
    for index, tenant in pooled:
        pool_gpus = tenant.node_pool.nodes * units
        if tenant.gpu_limit > pool_gpus:
            path = f"{PROJECT}:tenants[{index}].nodePool.nodes"
            problems.append(Problem(path, f"{tenant.node_pool.nodes} nodes hold {pool_gpus} GPUs; the tenant's "
                                          f"gpuLimit is {tenant.gpu_limit}, and its pods run only on its own nodes",
                                    _set_fix(path, f"give it >= {-(-tenant.gpu_limit // units)} nodes, or lower "
                                                   "gpuLimit")))
    total = sum(tenant.node_pool.nodes for _, tenant in pooled)
    if total > config.site.gpu_nodes:
        problems.append(Problem(f"{PROJECT}:tenants", f"dedicate {total} nodes in total (sum of nodePool.nodes); "
                                                      f"site.gpuNodes is {config.site.gpu_nodes}",
                                f"{_nodes_first(config)} otherwise give the tenants fewer nodes"))
    if config.site.environment == Environment.PROD and len(config.tenants) > 1:
        for index, tenant in enumerate(config.tenants):
            if tenant.node_pool is None:
                path = f"{PROJECT}:tenants[{index}].nodePool.nodes"
                problems.append(Problem(
                    f"{PROJECT}:tenants[{index}].nodePool",
                    f"is required in prod with {len(config.tenants)} tenants: without dedicated nodes the namespace "
                    f"would be the tenant's only isolation boundary, which the RA (Workload Isolation) does not "
                    f"accept for multi-tenant GPU services and profile {profile.name} (tenancy.isolation "
                    f"{profile.tenancy.isolation.value}) does not either",
                    _set_fix(path, f"give tenant {tenant.name} its own GPU nodes (at least "
                                   f"{max(1, -(-tenant.gpu_limit // units))})")))
    return problems


def nv_ipam_node_capacity(subnet: ipaddress.IPv4Network, block_size: int) -> int:
    """Nodes an nv-ipam IPPool can give a block to. The allocator starts the first block at network+1 and accepts a
    block only if it ends inside the subnet and before the broadcast address (Mellanox/nvidia-k8s-ipam
    pkg/ipam-controller/allocator/allocator.go:65-73 getFirstStartIP, :188-193 allocationValid
    at the networkOperator pin). The gateway only costs a block when blocks are one address (:113); ours are >= 2, so
    it takes one address of the first node's block."""
    return (subnet.num_addresses - 2) // block_size


def _rail_subnets(config: StackConfig) -> list[ipaddress.IPv4Network]:
    net = config.components.network_operator
    subnet = ipaddress.IPv4Network(net.rail_subnet)
    if net.rail_prefix_length < subnet.prefixlen:
        return []
    return list(itertools.islice(subnet.subnets(new_prefix=net.rail_prefix_length), len(net.rail_interfaces)))


def _rail_problems(config: StackConfig) -> list[Problem]:
    net = config.components.network_operator
    base = f"{PROJECT}:components.networkOperator"
    subnets = _rail_subnets(config)
    if len(subnets) < len(net.rail_interfaces):
        return [Problem(f"{base}.railSubnet",
                        f"{net.rail_subnet} cannot hold {len(net.rail_interfaces)} rails of /{net.rail_prefix_length}",
                        "use a larger subnet, e.g. 192.168.0.0/16, or a longer railPrefixLength")]
    if not subnets:
        return []  # no rails named: reported on railInterfaces
    # Every rail has the same prefix, so one check covers each rail subnet.
    capacity = nv_ipam_node_capacity(subnets[0], net.per_node_block_size)
    nodes = config.site.gpu_nodes
    if nodes <= capacity:
        return []
    return [Problem(
        f"{base}.railPrefixLength",
        f"each rail subnet (/{net.rail_prefix_length}, e.g. {net.rail_interfaces[0]} {subnets[0]}) gives nv-ipam blocks "
        f"of {net.per_node_block_size} addresses (perNodeBlockSize) to {capacity} nodes: blocks start at the network "
        f"address + 1 and must end before the broadcast address; site.gpuNodes is {nodes}",
        f"use a shorter railPrefixLength (e.g. {_prefix_for(nodes, net.per_node_block_size)}) or a smaller "
        "perNodeBlockSize")]


def _prefix_for(nodes: int, block_size: int) -> int:
    """Longest prefix whose subnet gives `nodes` blocks of `block_size`."""
    return 32 - (nodes * block_size + 2 - 1).bit_length()


def _telemetry_problems(config: StackConfig) -> list[Problem]:
    """The telemetry-retention tier backs the Prometheus the program deploys; a site's own Prometheus keeps its
    storage in its own configuration, where a tier set here would silently do nothing."""
    storage = config.components.serving.storage
    if storage is None or storage.telemetry_retention is None or config.components.telemetry.prometheus_stack.enabled:
        return []
    path = f"{PROJECT}:components.serving.storage.telemetryRetention"
    return [Problem(path, "backs only the Prometheus stack this program deploys, and "
                          "components.telemetry.prometheusStack.enabled is false",
                    f"remove it (your site's Prometheus keeps its own storage): pulumi config rm --path '{path}'; "
                    f"or deploy the stack: set {PROJECT}:components.telemetry.prometheusStack.enabled true with a "
                    "localDecision")]


def _rails(config: StackConfig) -> tuple[Rail, ...]:
    rails = []
    for interface, rail_net in zip(config.components.network_operator.rail_interfaces, _rail_subnets(config)):
        rails.append(Rail(interface=interface, subnet=str(rail_net), gateway=str(next(rail_net.hosts()))))
    return tuple(rails)


def build_plan(raw: Mapping[str, Any], secret_keys: set[str], source: str) -> SitePlan:
    """raw: the project's config keys without the `ncp-inference:` prefix, values already decoded from JSON."""
    placeholders = placeholder_problems(dict(raw), f"{PROJECT}:")
    if placeholders:  # schema errors about the same values would only repeat these
        raise ConfigError(source, placeholders)
    problems: list[Problem] = number_problems(dict(raw), f"{PROJECT}:")
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
        problems += _node_pool_problems(config, profile)

    matrix = load_matrix()
    k8s = config.site.kubernetes_version or matrix.kubernetes.default_version
    if k8s not in matrix.kubernetes.supported_versions:
        problems.append(Problem(f"{PROJECT}:site.kubernetesVersion", f"{k8s} is not in the compatibility matrix",
                                f"use one of: {', '.join(matrix.kubernetes.supported_versions)}"))
    endpoints, services = [], []
    if profile is not None:
        endpoints, endpoint_problems = plan_endpoints(
            config, profile, matrix, SitePlan.tenant_namespace,
            multi_node_fabric=profile.has_rdma_fabric or profile.nvlink.multi_node)
        problems += endpoint_problems
        services, service_problems = plan_inference_services(
            config, profile, matrix, config.components.gpu_operator.mig, gpu_product_label(profile,
            config.components.gpu_operator.mig), SitePlan.tenant_namespace, endpoints)
        problems += service_problems
    problems += _telemetry_problems(config)
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
        topology_aware=_topology_aware(config, profile),
        remediation=remediation,
        has_ngc_api_key=has_key,
        endpoints=tuple(endpoints),
        inference_services=tuple(services),
    )
