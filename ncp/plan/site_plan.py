"""Build the validated deployment plan from raw stack config: schema checks, then cross-checks against the
hardware profile and the compatibility matrix. Every problem is collected before anything is raised."""
import ipaddress
import itertools
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from pydantic import ValidationError

from ncp.plan.admission import AdmissionPlan, admission_plan, tenant_exceptions
from ncp.plan.catalog import (
    ChartPin, CompatibilityMatrix, integration_points, load_dynamo_runtime, load_matrix, load_profile, profile_names,
)
from ncp.plan.config import Components, Environment, MigSettings, PullCredentials, StackConfig, Tenant, TimeSlicing
from ncp.plan.endpoint_plan import EndpointPlan
from ncp.plan.cross_field import cross_field_problems
from ncp.plan.endpoints import plan_endpoints, rdma_workers, runtime_image
from ncp.plan.inference_services import InferenceServicePlan, plan_inference_services
from ncp.plan.tenant_pods import quota_problems
from ncp.plan.layers import READINESS_LAYER, READINESS_NAMESPACE, PlatformLayers, plan_layers
from ncp.plan.gateway import RoutePlan, endpoint_picker_image, plan_routes
from ncp.plan.local_overlay import LocalOverlay, local_setting_problems, merged, mirror_problems
from ncp.plan.site_base import LayeredConfig, VersionPin, layer_site, pinned_matrix
from ncp.plan.errors import ConfigError, Problem, manual_edit, problems_from_validation, rm_command, set_command
from ncp.plan.gpu_partition import (
    MIG_LAYOUT, GpuCount, capacity_breakdown, gpu_count, gpu_product_label, gpu_units_per_node, mig_pool_nodes,
    site_gpu_units, tenant_gpu_unit, tenant_mig,
)
from ncp.plan.names import PROJECT, TENANT_KEY, tenant_namespace
from ncp.plan.ra_rules import ra_rule_problems
from ncp.plan.raw_checks import at_placeholder, number_problems, placeholder_problems, with_stand_ins
from ncp.plan.pod_security import KVBM_REASON, RDMA_REASON, PodSecurity, privileged_for
from ncp.plan.profile import DriverManagement, DriverUpgradePolicy, HardwareProfile
from ncp.plan.serving import ApiServerEgress, ServingSettings, StorageTier
from ncp.plan.serving_features import nvlink_pack_domain
from ncp.plan.tenancy import TenantQueue, TenantSpec, tenant_queue, tenant_spec

SECRET_KEYS = ("ngcApiKey",)


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


@dataclass(frozen=True)
class Rail:
    interface: str
    subnet: str
    gateway: str


@dataclass(frozen=True)
class RailAttachment:
    """One rail's NetworkAttachmentDefinition as every namespace whose pods attach to the rail gets its own copy: the
    pods name it without a namespace, which Multus resolves in the pod's own namespace
    (k8snetworkplumbingwg/multus-cni pkg/k8sclient/k8sclient.go parsePodNetworkAnnotation: an entry without
    `<namespace>/` takes the pod's namespace), so no pod needs a reference into another namespace. Every copy names
    the same nv-ipam pool, which stays in the Network Operator's namespace: the nv-ipam node daemon serves the pools of
    the one namespace it watches, whatever the pod's (Mellanox/nvidia-k8s-ipam cmd/ipam-node/app/options/options.go,
    `--ippools-namespace`).

    Attributes:
        name: the attachment's name (rail-<index>), the same in every namespace.
        config: the rail's CNI configuration (JSON).
        annotations: the attachment's annotations (the SR-IOV resource Multus asks the device plugin for).
    """

    name: str
    config: str
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NodePlacement:
    """Where a tenant's pods run: its dedicated nodes (labelled and tainted TENANT_KEY=<tenant> by the site): its GPU
    nodes and the CPU nodes its frontends, planners and Jobs run on, so no pod of a tenant shares a node with another
    tenant's. Only GPU pods add the GPU taint's toleration: control-plane pods stay off GPU nodes."""

    node_selector: dict[str, str]
    tolerations: tuple[dict[str, str], ...]
    nodes: int = 1  # how many nodes the selector matches: replicas spread across them only when there are several

    @classmethod
    def dedicated(cls, tenant: str, nodes: int = 1) -> "NodePlacement":
        return cls(node_selector={TENANT_KEY: tenant},
                   tolerations=({"key": TENANT_KEY, "operator": "Equal", "value": tenant, "effect": "NoSchedule"},),
                   nodes=nodes)


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


# RA: Visual Architecture Views: "Place control services away from hot-path GPU workers"
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
    layers: PlatformLayers
    endpoints: tuple[EndpointPlan, ...] = ()
    inference_services: tuple[InferenceServicePlan, ...] = ()
    routes: tuple[RoutePlan, ...] = ()  # HTTPRoutes of the gateway path (ncp/plan/gateway.py)
    local_overlay: Optional[str] = None  # the test cluster overlay merged over the stack (ncp/plan/local_overlay.py)
    base: Optional[str] = None  # the shared base the stack starts from (ncp/plan/site_base.py)
    version_pins: tuple[VersionPin, ...] = ()  # charts kept off the matrix for a wave (site_base.py)

    @property
    def site(self):
        return self.config.site

    @property
    def environment(self) -> Environment:
        return self.config.site.environment

    @property
    def tenants(self) -> list[Tenant]:
        return self.config.tenants

    @property
    def settings(self) -> Components:
        """The stack's validated component settings, values the components take as they are; every fact derived
        from them is a property of the plan."""
        return self.config.components

    @property
    def serving(self) -> ServingSettings:
        return self.config.components.serving

    @property
    def managed_driver(self) -> bool:
        """The GPU Operator installs the driver container (the node image does not ship one)."""
        return self.driver == DriverManagement.MANAGED

    @property
    def managed_nic_driver(self) -> bool:
        return self.config.components.network_operator.nic_driver == DriverManagement.MANAGED

    @property
    def host_mofed(self) -> bool:
        """GPUDirect RDMA uses the DOCA-OFED driver the node image ships."""
        return self.config.components.network_operator.nic_driver == DriverManagement.PREINSTALLED

    @property
    def gpu_node_selector(self) -> dict[str, str]:
        """Selects every GPU node: GFD labels each one."""
        return {integration_points().gpu.present_label: "true"}

    @property
    def endpoint_picker_image(self) -> str:
        """The endpoint picker's image, by digest where the stack records one (required in prod)."""
        return endpoint_picker_image(self.matrix, self.config.components.serving.image_digests)

    @property
    def tenant_pod_security(self) -> dict[str, PodSecurity]:
        """Pod Security level per tenant namespace, where it is not restricted. RDMA workers pin memory (ibv_reg_mr)
        and need IPC_LOCK as root (data/dynamo-backends.yaml rdmaCapabilities); neither `restricted` nor `baseline`
        admits an added IPC_LOCK (Pod Security Standards: baseline allows only AUDIT_WRITE, CHOWN, DAC_OVERRIDE,
        FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT), so only tenants
        running RDMA workers get `privileged`, still warned and audited at `restricted`. Workers offloading KV to disk
        mount the node's /run/udev read-only (kvbm.udevHostPath), and both levels refuse every hostPath volume.
        `privileged` admits anything; admission (plan.admission, the Tenancy layer's policies) lets pass only these
        exceptions (tenant_exceptions)."""
        reasons = {tenant: [reason for reason, needed in ((RDMA_REASON, rdma), (KVBM_REASON, kvbm)) if needed]
                   for tenant, (rdma, kvbm) in tenant_needs(self.endpoints, self.network_enabled).items()}
        return {tenant: privileged_for(needs) for tenant, needs in reasons.items() if needs}

    @property
    def tenant_specs(self) -> list[TenantSpec]:
        pod_security, needs = self.tenant_pod_security, tenant_needs(self.endpoints, self.network_enabled)
        placements = {t.name: self.placement(t.name) for t in self.tenants}
        return [tenant_spec(t, pod_security.get(t.name), placement.node_selector if placement else None,
                            tenant_exceptions(*needs.get(t.name, (False, False))))
                for t, placement in zip(self.tenants, placements.values(), strict=True)]

    @property
    def gateway_ports(self) -> list[int]:
        """What the site's gateway reaches in a tenant namespace: the pools' target port (the Dynamo frontend) and
        the endpoint picker's ext-proc port."""
        names = integration_points()
        return [load_dynamo_runtime().frontend.http_port, names.gateway_inference_extension.endpoint_picker_port]

    @property
    def admission(self) -> AdmissionPlan:
        """What admission holds tenants to; tenant images by digest in prod, as the serving images are."""
        return admission_plan(require_digest=self.environment == Environment.PROD)

    @property
    def tenant_queues(self) -> list[TenantQueue]:
        return [tenant_queue(t) for t in self.tenants]

    def rdma_resource(self, endpoint: EndpointPlan) -> Optional[str]:
        """The RDMA device resource the endpoint's workers request, when they use the rails."""
        return self.profile.fabric.rdma_resource_name if rdma_workers(endpoint, self.network_enabled) else None

    @property
    def tenant_storage_classes(self) -> list[str]:
        """Storage classes tenants may claim from: every tier but the platform's telemetry retention."""
        storage = self.config.components.serving.storage
        return [tier.storage_class for name, tier in storage.named() if name != "telemetry-retention"] \
            if storage else []

    @property
    def prometheus_storage(self) -> Optional[StorageTier]:
        storage = self.config.components.serving.storage
        return storage.telemetry_retention if storage else None

    @property
    def pack_domain(self) -> Optional[str]:
        """The topology domain multi-node workers are packed into, when placement is topology-aware."""
        return nvlink_pack_domain(self.profile, self.topology_levels) if self.topology_aware else None

    @property
    def planner_image(self) -> str:
        serving = self.config.components.serving
        return runtime_image(self.matrix, load_dynamo_runtime().planner.image, serving.image_digests)

    @property
    def api_server_egress(self) -> ApiServerEgress:
        return self.config.components.serving.api_server_egress or ApiServerEgress()

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
        """GPUs the site's queues share, in the units the scheduler counts (see plan.gpu_partition)."""
        return site_gpu_units(self.config, self.profile)

    @property
    def gpu_count(self) -> GpuCount:
        """Physical GPUs and MIG units counted apart, for reports (gpu_capacity adds them for the queues)."""
        return gpu_count(self.config, self.profile)

    def gpu_unit(self, tenant: str) -> str:
        """What the tenant's gpuQuota and gpuLimit count: GPUs, or MIG units where its nodes are partitioned."""
        return tenant_gpu_unit(self.config, self.profile, tenant)

    def gpu_product_for(self, tenant: str) -> str:
        """The nvidia.com/gpu.product value GFD puts on the nodes the tenant's GPU pods run on."""
        return gpu_product_label(self.profile, tenant_mig(self.mig, tenant))

    @property
    def gpu_node_products(self) -> dict[str, int]:
        """nvidia.com/gpu.product value -> GPU nodes that carry it."""
        pool = mig_pool_nodes(self.config)
        products = {gpu_product_label(self.profile, self.mig): self.config.site.gpu_nodes - pool}
        if pool:
            products = {self.profile.gpu.product_label: self.config.site.gpu_nodes - pool,
                        gpu_product_label(self.profile, self.mig): pool}
        return products

    @property
    def shared_gpu_product(self) -> str:
        """The nvidia.com/gpu.product of the GPU nodes no tenant's MIG pool partitions (the platform's own Jobs)."""
        site_wide = self.mig if self.mig is not None and self.mig.node_pool is None else None
        return gpu_product_label(self.profile, site_wide)

    @property
    def platform_queues(self) -> list[TenantQueue]:
        """The platform's own KAI queues: the readiness tests run on over-quota GPUs only, before tenants serve."""
        if not any(ns.layer == READINESS_LAYER for ns in self.layers.namespaces):
            return []
        return [TenantQueue(tenant=READINESS_LAYER, queue=READINESS_NAMESPACE, gpu_quota=0,
                            gpu_limit=self.gpu_capacity, over_quota_weight=1)]

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
    def topology_levels(self) -> tuple[TopologyLevel, ...]:
        """Topology levels, broadest first, for Grove's ClusterTopologyBinding (and the KAI Topology Grove derives)."""
        return topology_levels(self.profile)

    @staticmethod
    def tenant_namespace(tenant: Tenant) -> str:
        return tenant_namespace(tenant.name)

    @property
    def tenant_node_pools(self) -> dict[str, dict]:
        """tenant -> its dedicated nodes and the label and taint the site puts on them (a site step)."""
        return {t.name: {"nodes": t.node_pool.nodes, "label": f"{TENANT_KEY}={t.name}",
                         "taint": f"{TENANT_KEY}={t.name}:NoSchedule", **self._pool_mig_label(t.name)}
                for t in self.tenants if t.node_pool}

    def _pool_mig_label(self, tenant: str) -> dict:
        """The mig-manager label the site puts on a pool whose nodes carry the pooled MIG layout."""
        if self.mig is None or self.mig.node_pool != tenant:
            return {}
        return {"migConfigLabel": f"{integration_points().gpu.mig_config_label}={MIG_LAYOUT}"}

    def placement(self, tenant_name: str) -> Optional[NodePlacement]:
        """The tenant's dedicated nodes, or None where it shares the site's GPU nodes."""
        tenant = next(t for t in self.tenants if t.name == tenant_name)
        return NodePlacement.dedicated(tenant.name, tenant.node_pool.nodes) if tenant.node_pool else None


def _set_fix(path: str, fix: str) -> str:
    command = f"pulumi config set --path '{path}' <value>"
    return f"{fix}: {command}" if fix else command


def _nodes_first(config: StackConfig) -> str:
    """Capacity is gpuNodes x GPUs per node: a wrong node count is the likelier cause than a wrong quota."""
    return (f"if the site has more than {config.site.gpu_nodes} GPU nodes, set them: pulumi config set --path "
            f"'{PROJECT}:site.gpuNodes' <nodes>;")


# RA: Physical Architecture: "Do not inherit HGX or NVL72 assumptions by default."
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
    """The stack's settings against its hardware profile: GPU sharing, driver, rails, topology and capacity."""
    problems = _mig_problems(config, profile) + _driver_problems(config, profile) + _rail_interface_problems(
        config, profile)
    if _topology_aware(config, profile) and not profile.topology_labels.rack:
        # KAI leaves a node out of a topology unless it carries every level's label (kai-scheduler/KAI-Scheduler
        # pkg/scheduler/plugins/topology/common.go:69-77 isNodePartOfTopology, at the kaiScheduler pin).
        problems.append(Problem(f"{PROJECT}:components.scheduling.topologyAware",
                                f"profile {profile.name} declares no rack label (topologyLabels.rack), so topology-"
                                "aware placement has no level between zone and host",
                                manual_edit(f"profiles/{profile.name}.yaml", "topologyLabels.rack",
                                            "declare the rack label every GPU node carries")
                                + ", or " + set_command(f"{PROJECT}:components.scheduling.topologyAware", "false")))
    return problems + _capacity_problems(config, profile)


def _mig_problems(config: StackConfig, profile: HardwareProfile) -> list[Problem]:
    mig = config.components.gpu_operator.mig
    if mig is None:
        return []
    base = f"{PROJECT}:components.gpuOperator.mig"
    problems = _mig_pool_problems(config, mig, base)
    if not profile.gpu.mig.supported:
        return problems + [Problem(base, f"profile {profile.name} ({profile.gpu.model}) does not support MIG",
                                   f"remove it: pulumi config rm --path '{base}'")]
    allowed = profile.gpu.mig.profiles
    problems += [Problem(f"{base}.layout.{name}", f"is not an accepted MIG profile of {profile.name}",
                         f"use one of: {', '.join(allowed) or '(none recorded in the profile)'}: "
                         + rm_command(f"{base}.layout.{name}") + " && "
                         + set_command(f"{base}.layout.<accepted profile>", "<count>"))
                 for name in mig.layout if name not in allowed]
    if set(mig.layout) <= set(allowed) and profile.gpu.mig.placement(mig.layout) is None:
        problems.append(Problem(f"{base}.layout", _unplaceable(profile, mig.layout),
                                "choose instance counts whose placements fit side by side (the profile's "
                                f"gpu.mig.instances table in profiles/{profile.name}.yaml): "
                                + set_command(f"{base}.layout", "'{<profile>: <count>, ...}'")))
    return problems


def _driver_problems(config: StackConfig, profile: HardwareProfile) -> list[Problem]:
    gpu_settings = config.components.gpu_operator
    problems = []
    override = gpu_settings.driver_upgrade_policy
    if override is not None and (gpu_settings.driver or profile.gpu.driver) == DriverManagement.PREINSTALLED:
        problems.append(Problem(f"{PROJECT}:components.gpuOperator.driverUpgradePolicy",
                                f"the driver is preinstalled in {profile.name}'s node image: the GPU Operator does "
                                "not upgrade it",
                                rm_command(f"{PROJECT}:components.gpuOperator.driverUpgradePolicy")))
    elif override is not None:
        try:
            override.applied_to(profile.gpu.driver_upgrade)
        except ValueError as error:
            problems.append(Problem(f"{PROJECT}:components.gpuOperator.driverUpgradePolicy",
                                    f"does not apply to the profile's policy ({str(error).splitlines()[0]})",
                                    "name only keys of driver.upgradePolicy with valid values: "
                                    + set_command(f"{PROJECT}:components.gpuOperator.driverUpgradePolicy.<key>")))
    if gpu_settings.driver == DriverManagement.MANAGED and profile.gpu.driver == DriverManagement.PREINSTALLED:
        problems.append(Problem(f"{PROJECT}:components.gpuOperator.driver",
                                f"profile {profile.name} ships the driver in its node image; a managed driver would "
                                "conflict with it", rm_command(f"{PROJECT}:components.gpuOperator.driver")
                                + " (or " + set_command(f"{PROJECT}:components.gpuOperator.driver", "preinstalled")
                                + ")"))
    return problems


def _rail_interface_problems(config: StackConfig, profile: HardwareProfile) -> list[Problem]:
    net = config.components.network_operator
    net_base = f"{PROJECT}:components.networkOperator"
    if not profile.has_rdma_fabric:
        return [Problem(f"{net_base}.railInterfaces",
                        f"profile {profile.name} has no RDMA east-west fabric, so the Network Operator is not "
                        "deployed", f"remove it: pulumi config rm --path '{net_base}.railInterfaces'")
                ] if net.rail_interfaces else []
    if not net.rail_interfaces:
        return [Problem(f"{net_base}.railInterfaces",
                        f"profile {profile.name} has an RDMA east-west fabric; name its NIC interfaces",
                        _set_fix(f"{net_base}.railInterfaces[0]", ""))] + _rail_problems(config)
    if len(net.rail_interfaces) > profile.fabric.nics_per_node:
        return [Problem(f"{net_base}.railInterfaces",
                        f"lists {len(net.rail_interfaces)} rails; profile {profile.name} has "
                        f"{profile.fabric.nics_per_node} NICs per node", "list one interface per NIC: " + " && ".join(
                            rm_command(f"{net_base}.railInterfaces[{i}]")
                            for i in reversed(range(profile.fabric.nics_per_node, len(net.rail_interfaces)))))
                ] + _rail_problems(config)
    if len(net.rail_interfaces) != len(set(net.rail_interfaces)):
        twice = next(i for i, nic in enumerate(net.rail_interfaces) if net.rail_interfaces.index(nic) != i)
        return [Problem(f"{net_base}.railInterfaces", "lists an interface twice", "list each once: "
                        + set_command(f"{net_base}.railInterfaces[{twice}]", "<the NIC it should name>"))
                ] + _rail_problems(config)
    return _rail_problems(config)


def _capacity_problems(config: StackConfig, profile: HardwareProfile) -> list[Problem]:
    capacity = site_gpu_units(config, profile)
    problems = [Problem(f"{PROJECT}:tenants[{index}].gpuLimit",
                        f"is {tenant.gpu_limit}; the site has {capacity} GPUs ({capacity_breakdown(config, profile)})",
                        f"{_nodes_first(config)} otherwise use a value <= {capacity}: "
                        + set_command(f"{PROJECT}:tenants[{index}].gpuLimit", str(capacity)))
                for index, tenant in enumerate(config.tenants) if tenant.gpu_limit > capacity]
    total_quota = sum(t.gpu_quota for t in config.tenants)
    if total_quota > capacity:
        problems.append(Problem(f"{PROJECT}:tenants",
                                f"guarantee {total_quota} GPUs in total (sum of gpuQuota); the site has {capacity}",
                                f"{_nodes_first(config)} otherwise lower gpuQuota values and use gpuLimit and "
                                "overQuotaWeight for burst capacity: "
                                + set_command(f"{PROJECT}:tenants[<index>].gpuQuota", "<GPUs>")))
    return problems


def _mig_pool_problems(config: StackConfig, mig: MigSettings, base: str) -> list[Problem]:
    """A pooled layout partitions one tenant's dedicated nodes: the site labels exactly those nodes for mig-manager."""
    if mig.node_pool is None:
        return []
    tenant = next((t for t in config.tenants if t.name == mig.node_pool), None)
    if tenant is None:
        return [Problem(f"{base}.nodePool", f"names unknown tenant {mig.node_pool!r}",
                        set_command(f"{base}.nodePool", f"<one of: {', '.join(t.name for t in config.tenants)}>"))]
    if tenant.node_pool is None:
        return [Problem(f"{base}.nodePool", f"tenant {tenant.name} has no dedicated nodes (tenants[].nodePool), so no "
                                            "node set is its to partition",
                        f"give tenant {tenant.name} a nodePool: "
                        + set_command(f"{PROJECT}:tenants[{config.tenants.index(tenant)}].nodePool.nodes", "<nodes>")
                        + ", or partition every GPU node: " + rm_command(f"{base}.nodePool"))]
    return []


def tenant_needs(endpoints, network_enabled: bool) -> dict[str, tuple[bool, bool]]:
    """tenant -> (RDMA workers, KV offload to disk) over its endpoints: what its workers need beyond Pod Security
    `restricted`."""
    needs: dict[str, tuple[bool, bool]] = {}
    for endpoint in endpoints:
        rdma, kvbm = needs.get(endpoint.tenant.name, (False, False))
        needs[endpoint.tenant.name] = (rdma or rdma_workers(endpoint, network_enabled),
                                       kvbm or endpoint.kv_offload_gb is not None)
    return needs


def _excepted_tenant_problems(config: StackConfig, endpoints, network_enabled: bool) -> list[Problem]:
    """A tenant whose workers need a Pod Security exception (RDMA, KV offload to disk) runs on its own nodes in
    every environment with other tenants: admission confines its pods to the exception (the Tenancy layer's
    policies), and its own nodes keep a breach of that away from other tenants' GPUs, weights and KV caches."""
    if len(config.tenants) < 2:
        return []
    problems, all_needs = [], tenant_needs(endpoints, network_enabled)
    for index, tenant in enumerate(config.tenants):
        needs = all_needs.get(tenant.name, (False, False))
        if any(needs) and tenant.node_pool is None:
            what = " and ".join(n for n, needed in zip(("RDMA workers", "KV offload to disk"), needs, strict=True)
                            if needed)
            path = f"{PROJECT}:tenants[{index}].nodePool"
            problems.append(Problem(path, f"is required: tenant {tenant.name} runs {what}, which need a privileged "
                                          "Pod Security exception, and shares the site with other tenants",
                                    _set_fix(f"{path}.nodes", f"give tenant {tenant.name} its own GPU nodes")))
    return problems


# RA: Workload Isolation: "namespaces are useful but should not be the only isolation boundary"
def _node_pool_problems(config: StackConfig, profile: HardwareProfile) -> list[Problem]:
    """Dedicated node pools fit the site and hold their tenant's GPU limit; prod with several tenants has them,
    since namespaces should not be the only isolation boundary for high-value multi-tenant GPU services (RA,
    Isolation And Security / Workload Isolation)."""
    problems = []
    mig = config.components.gpu_operator.mig
    pooled = [(index, tenant, tenant.node_pool) for index, tenant in enumerate(config.tenants) if tenant.node_pool]
    for index, tenant, pool in pooled:
        units = gpu_units_per_node(profile, tenant_mig(mig, tenant.name))
        pool_gpus = pool.nodes * units
        if tenant.gpu_limit > pool_gpus:
            path = f"{PROJECT}:tenants[{index}].nodePool.nodes"
            problems.append(Problem(path, f"{pool.nodes} nodes hold {pool_gpus} GPUs; the tenant's "
                                          f"gpuLimit is {tenant.gpu_limit}, and its pods run only on its own nodes",
                                    _set_fix(path, f"give it >= {-(-tenant.gpu_limit // units)} nodes, or lower "
                                                   "gpuLimit")))
    total = sum(pool.nodes for _, _, pool in pooled)
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
                                   f"{max(1, -(-tenant.gpu_limit // profile.gpu.per_node))})")))
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
                        "use a larger subnet: " + set_command(f"{base}.railSubnet", "192.168.0.0/16")
                        + ", or a longer railPrefixLength: " + set_command(f"{base}.railPrefixLength", "<prefix>"))]
    if not subnets:
        return []  # no rails named: reported on railInterfaces
    # Every rail has the same prefix, so one check covers each rail subnet.
    capacity = nv_ipam_node_capacity(subnets[0], net.per_node_block_size)
    nodes = config.site.gpu_nodes
    if nodes <= capacity:
        return []
    return [Problem(
        f"{base}.railPrefixLength",
        f"each rail subnet (/{net.rail_prefix_length}, e.g. {net.rail_interfaces[0]} {subnets[0]}) gives nv-ipam "
        f"blocks of {net.per_node_block_size} addresses (perNodeBlockSize) to {capacity} nodes: blocks start at the "
        f"network address + 1 and must end before the broadcast address; site.gpuNodes is {nodes}",
        set_command(f"{base}.railPrefixLength", str(rail_prefix_for(nodes, net.per_node_block_size)))
        + " (or a smaller perNodeBlockSize)")]


def rail_prefix_for(nodes: int, block_size: int) -> int:
    """Longest prefix whose subnet gives `nodes` blocks of `block_size`."""
    return 32 - (nodes * block_size + 2 - 1).bit_length()


def _storage_readiness_problems(config: StackConfig, profile: Optional[HardwareProfile],
                                matrix: CompatibilityMatrix) -> list[Problem]:
    """In prod, readiness is never judged on NCCL alone: the fio Jobs of the storage tiers need the site's image."""
    storage = config.components.serving.storage
    if (profile is None or not profile.has_rdma_fabric or profile.readiness is None or storage is None
            or not storage.named() or config.components.serving.validation.storage_image is not None):
        return []
    path = f"{PROJECT}:components.serving.validation.storageImage"
    return [Problem(path, f"is required in prod on {profile.name}: without it the fio readiness Jobs of the storage "
                          f"tiers ({', '.join(name for name, _ in storage.named())}) are not defined and readiness "
                          "would be judged on the NCCL test alone",
                    f"build an image with fio {matrix.workloads['fio'].version}, push it to the site's registry and "
                    f"pin it by digest: pulumi config set --path '{path}' "
                    f"nvcr.io/<org>/tools/fio:{matrix.workloads['fio'].version}@sha256:<digest>")]


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
    # _rail_subnets gives one subnet per interface; _rail_problems refused the plan when the subnet holds fewer.
    for interface, rail_net in zip(config.components.network_operator.rail_interfaces, _rail_subnets(config),
                                   strict=True):
        rails.append(Rail(interface=interface, subnet=str(rail_net), gateway=str(next(iter(rail_net.hosts())))))
    return tuple(rails)


def build_plan(raw: Mapping[str, Any], secret_keys: set[str], source: str,
               overlay: Optional[LocalOverlay] = None) -> SitePlan:
    """raw: the project's config keys without the `ncp-inference:` prefix, values already decoded from JSON;
    overlay: the local control plane's settings, merged over raw after the checks of what raw itself holds."""
    layered = layer_site(raw, source, load_matrix())  # a shared base and version pins (ncp/plan/site_base.py)
    raw = layered.raw
    local_problems = local_setting_problems(raw, overlay)
    raw = merged(raw, overlay)
    placeholders = placeholder_problems(dict(raw), f"{PROJECT}:", SECRET_KEYS)
    if not placeholders:
        return _validated_plan(raw, secret_keys, source, overlay, local_problems, layered)
    # Placeholders do not hide the other problems: validate again with a value of its kind in place of each, and
    # keep every problem that is not about a placeholder's own value (that one is the placeholder problem).
    stand_ins, replaced = with_stand_ins(dict(raw))
    try:
        _validated_plan(stand_ins, secret_keys | (replaced & set(SECRET_KEYS)), source, overlay, [], layered)
        others: list[Problem] = []
    except ConfigError as error:
        others = [p for p in error.problems if not at_placeholder(p.path, placeholders)]
    own = [p for p in local_problems if not at_placeholder(p.path, placeholders)]
    raise ConfigError(source, own + placeholders + others)


def _validated_plan(raw: Mapping[str, Any], secret_keys: set[str], source: str, overlay: Optional[LocalOverlay],
                    local_problems: list[Problem], layered: LayeredConfig) -> SitePlan:
    problems: list[Problem] = local_problems + number_problems(dict(raw), f"{PROJECT}:")
    for key in SECRET_KEYS:
        if key in raw and key not in secret_keys:
            problems.append(Problem(f"{PROJECT}:{key}", "is stored in plain text",
                                    f"pulumi config rm {PROJECT}:{key} && pulumi config set --secret {PROJECT}:{key}"))
    plain = {k: v for k, v in raw.items() if k not in SECRET_KEYS}
    try:
        config = StackConfig.model_validate(plain)
    except ValidationError as exc:
        problems += problems_from_validation(f"{PROJECT}:", exc, _set_fix, model=StackConfig)
        raise ConfigError(source, problems) from None

    profile = None
    if config.site.hardware_profile not in profile_names():
        problems.append(Problem(f"{PROJECT}:site.hardwareProfile",
                                f"names unknown profile {config.site.hardware_profile!r}",
                                set_command(f"{PROJECT}:site.hardwareProfile",
                                            f"<one of: {', '.join(profile_names())}>") + " (files in profiles/)"))
    else:
        profile = load_profile(config.site.hardware_profile)
        problems += _profile_problems(config, profile)
        problems += _node_pool_problems(config, profile)

    matrix = pinned_matrix(load_matrix(), layered.pins)
    k8s = config.site.kubernetes_version or matrix.kubernetes.default_version
    # RA: Architecture Decision Guardrails: "The platform needs a declared Kubernetes API surface"
    if k8s not in matrix.kubernetes.supported_versions:
        problems.append(Problem(f"{PROJECT}:site.kubernetesVersion", f"{k8s} is not in the compatibility matrix",
                                set_command(f"{PROJECT}:site.kubernetesVersion",
                                            f"<one of: {', '.join(matrix.kubernetes.supported_versions)}>")))
    endpoints: list[EndpointPlan] = []
    services: list[InferenceServicePlan] = []
    if profile is not None:
        endpoints, endpoint_problems = plan_endpoints(
            config, profile, matrix, multi_node_fabric=profile.has_rdma_fabric or profile.nvlink.multi_node)
        problems += endpoint_problems
        services, service_problems = plan_inference_services(config, profile, matrix, endpoints)
        problems += service_problems + quota_problems(config, endpoints, services, profile.gpu.per_node)
    routes, route_problems = plan_routes(config, matrix)
    problems += route_problems + _telemetry_problems(config) + cross_field_problems(config, profile, endpoints)
    problems += ra_rule_problems(config, profile, endpoints)
    if profile is not None:
        problems += _excepted_tenant_problems(config, endpoints, profile.has_rdma_fabric)
    has_key = "ngcApiKey" in raw
    if config.site.environment == Environment.PROD:
        if not has_key:
            problems.append(Problem(f"{PROJECT}:ngcApiKey", "is required in prod (image pulls from nvcr.io)",
                                    f"pulumi config set --secret {PROJECT}:ngcApiKey <NGC API key>"))
        problems += _storage_readiness_problems(config, profile, matrix)
        if config.components.tenancy.pull_credentials == PullCredentials.SHARED_KEY:
            problems.append(Problem(
                f"{PROJECT}:components.tenancy.pullCredentials",
                "sharedKey is refused in prod: it copies the provider's NGC key into every tenant namespace, where "
                "every tenant admin can read it", _set_fix(f"{PROJECT}:components.tenancy.pullCredentials",
                                                           "node (configure the nodes' kubelet credential provider "
                                                           "or registry mirror for nvcr.io)")))
    if problems or profile is None:  # an unknown profile is among the problems
        raise ConfigError(source, problems)

    settings = config.components
    validation = settings.serving.validation
    layers = plan_layers(matrix, {"rdmaFabric": profile.has_rdma_fabric, "servingEndpoints": bool(endpoints),
                                  "prometheusStack": settings.telemetry.prometheus_stack.enabled},
                         validation_suite=validation.suite and validation.suite_image is not None,
                         # The readiness namespace holds the break-fix gate and handover Jobs on every site; the
                         # handover's sanitize step erases the node's NVMe devices (privileged), as NCCL needs IPC_LOCK.
                         readiness=True, readiness_fabric=True)
    mirrored = mirror_problems(settings.chart_mirror, [(matrix.pin(c).chart_name, matrix.pin(c).version)
                                                       for c in layers.charts])
    if mirrored:
        raise ConfigError(source, mirrored)
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
        # RA: Operator View: "Use Network Operator where the deployment requires high-performance east-west traffic"
        network_enabled=profile.has_rdma_fabric,
        rails=_rails(config) if profile.has_rdma_fabric else (),
        topology_aware=_topology_aware(config, profile),
        remediation=remediation,
        has_ngc_api_key=has_key,
        layers=layers,
        endpoints=tuple(endpoints),
        inference_services=tuple(services),
        routes=tuple(routes),
        local_overlay=overlay.path if overlay else None,
        base=layered.base,
        version_pins=layered.pins,
    )
