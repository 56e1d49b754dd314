"""Build the validated deployment plan from raw stack config: the rules (ncp/plan/rules: raw values, the schema,
then every config rule, each problem collected before anything is raised), then the derivation of the plan."""
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from pydantic import ValidationError

from ncp.plan.admission import AdmissionPlan, admission_plan, tenant_exceptions
from ncp.plan.catalog import (
    ChartPin,
    CompatibilityMatrix,
    integration_points,
    load_dynamo_runtime,
    load_matrix,
    load_profile,
    profile_names,
)
from ncp.plan.config import Components, Environment, MigSettings, PullCredentials, StackConfig, Tenant, TimeSlicing
from ncp.plan.endpoint_plan import EndpointPlan
from ncp.plan.endpoints import plan_endpoints, rdma_workers, runtime_image
from ncp.plan.errors import ConfigError, Problem, problems_from_validation
from ncp.plan.fabric import rail_subnets, tenant_needs, topology_aware
from ncp.plan.gateway import RoutePlan, endpoint_picker_image, plan_routes
from ncp.plan.gpu_partition import (
    MIG_LAYOUT,
    GpuCount,
    gpu_count,
    gpu_product_label,
    mig_pool_nodes,
    site_gpu_units,
    tenant_gpu_unit,
    tenant_mig,
)
from ncp.plan.inference_services import InferenceServicePlan, plan_inference_services
from ncp.plan.layers import READINESS_LAYER, READINESS_NAMESPACE, PlatformLayers, site_layers
from ncp.plan.local_overlay import LocalOverlay, merged
from ncp.plan.names import MODEL_EXPRESS, PROJECT, TENANT_KEY, tenant_namespace
from ncp.plan.pod_security import KVBM_REASON, RDMA_REASON, PodSecurity, privileged_for
from ncp.plan.profile import DriverManagement, DriverUpgradePolicy, HardwareProfile
from ncp.plan.rules import RULE_BY_ID, RULES, RawInputs, RuleInputs, run_rules
from ncp.plan.rules.raw import at_placeholder, with_stand_ins
from ncp.plan.rules.site import SECRET_KEYS, _set_fix
from ncp.plan.serving import ApiServerEgress, ServingSettings, StorageTier
from ncp.plan.serving_features import nvlink_pack_domain
from ncp.plan.site_base import LayeredConfig, VersionPin, layer_site, pinned_matrix
from ncp.plan.tenancy import TenantQueue, TenantSpec, tenant_queue, tenant_spec
from ncp.plan.tenant_pods import model_express_tenants

__all__ = ["SECRET_KEYS", "SitePlan", "build_plan"]


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
                            tenant_exceptions(*needs.get(t.name, (False, False))), self.platform_workloads(t.name))
                for t, placement in zip(self.tenants, placements.values(), strict=True)]

    @property
    def model_express_namespaces(self) -> dict[str, str]:
        """tenant -> the namespace of its own ModelExpress server."""
        return {tenant: tenant_namespace(tenant)
                for tenant in model_express_tenants(self.serving.model_express, self.endpoints)}

    def platform_workloads(self, tenant: str) -> tuple[str, ...]:
        """The program's workloads in a tenant's namespace: each endpoint (its graph, picker, staging and benchmark
        Jobs are all named after it), each inference service, and the tenant's ModelExpress server."""
        served = [e.name for e in self.endpoints if e.tenant.name == tenant]
        services = [s.name for s in self.inference_services if s.tenant.name == tenant]
        model_express = [MODEL_EXPRESS] if tenant in self.model_express_namespaces else []
        return tuple(sorted({*served, *services, *model_express}))

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




def _rails(config: StackConfig) -> tuple[Rail, ...]:
    rails = []
    # rail_subnets gives one subnet per interface; _rail_problems refused the plan when the subnet holds fewer.
    for interface, rail_net in zip(config.components.network_operator.rail_interfaces, rail_subnets(config),
                                   strict=True):
        rails.append(Rail(interface=interface, subnet=str(rail_net), gateway=str(next(iter(rail_net.hosts())))))
    return tuple(rails)


def build_plan(raw: Mapping[str, Any], secret_keys: set[str], source: str,
               overlay: Optional[LocalOverlay] = None) -> SitePlan:
    """raw: the project's config keys without the `ncp-inference:` prefix, values already decoded from JSON;
    overlay: the local control plane's settings, merged over raw after the checks of what raw itself holds."""
    layered = layer_site(raw, source, load_matrix())  # a shared base and version pins (ncp/plan/site_base.py)
    own = layered.raw
    raw = merged(own, overlay)
    placeholders = RULE_BY_ID["raw.placeholder"].run(RawInputs(raw, secret_keys, overlay, own))
    if not placeholders:
        return _validated_plan(RawInputs(raw, secret_keys, overlay, own), source, layered)
    # Placeholders do not hide the other problems: validate again with a value of its kind in place of each, and
    # keep every problem that is not about a placeholder's own value (that one is the placeholder problem).
    stand_ins, replaced = with_stand_ins(dict(raw))
    try:
        _validated_plan(RawInputs(stand_ins, secret_keys | (replaced & set(SECRET_KEYS)), overlay, own), source,
                        layered)
        others: list[Problem] = []
    except ConfigError as error:
        others = [p for p in error.problems if not at_placeholder(p.path, placeholders)]
    raise ConfigError(source, placeholders + others)


def _parsed(inputs: RawInputs, source: str, layered: LayeredConfig) -> tuple[RuleInputs, list[Problem]]:
    """The raw rules, then the schema: RuleInputs for the config rules and the raw rules' problems; a config the
    schema refuses raises with both (no config rule can read it)."""
    problems = run_rules("raw", inputs, [r for r in RULES if r.id != "raw.placeholder"])
    plain = {k: v for k, v in inputs.raw.items() if k not in SECRET_KEYS}
    try:
        config = StackConfig.model_validate(plain)
    except ValidationError as exc:
        problems += problems_from_validation(f"{PROJECT}:", exc, _set_fix, model=StackConfig)
        raise ConfigError(source, problems) from None
    known = config.site.hardware_profile in profile_names()
    return RuleInputs(inputs.raw, inputs.secret_keys, inputs.overlay, inputs.unmerged, config=config,
                      profile=load_profile(config.site.hardware_profile) if known else None,
                      matrix=pinned_matrix(load_matrix(), layered.pins)), problems


def _validated_plan(inputs: RawInputs, source: str, layered: LayeredConfig) -> SitePlan:
    """Every rule first (all problems collected), then the derivation of a config they all accepted."""
    checked, problems = _parsed(inputs, source, layered)
    problems += run_rules("config", checked)
    if problems or checked.profile is None:  # an unknown profile is among the problems
        raise ConfigError(source, problems)
    config, profile, matrix = checked.config, checked.profile, checked.matrix
    endpoints = plan_endpoints(config, profile, matrix)
    settings = config.components
    return SitePlan(
        config=config,
        profile=profile,
        matrix=matrix,
        kubernetes_version=config.site.kubernetes_version or matrix.kubernetes.default_version,
        driver=settings.gpu_operator.driver or profile.gpu.driver,
        mig=settings.gpu_operator.mig,
        time_slicing=settings.gpu_operator.time_slicing,
        # RA: Operator View: "Use Network Operator where the deployment requires high-performance east-west traffic"
        network_enabled=profile.has_rdma_fabric,
        rails=_rails(config) if profile.has_rdma_fabric else (),
        topology_aware=topology_aware(config, profile),
        remediation=settings.health.remediation or (
            "enforce" if config.site.environment == Environment.PROD else "dry-run"),
        has_ngc_api_key="ngcApiKey" in inputs.raw,
        layers=site_layers(config, profile, matrix, bool(endpoints)),
        endpoints=tuple(endpoints),
        inference_services=tuple(plan_inference_services(config, profile, matrix)),
        routes=tuple(plan_routes(config)),
        local_overlay=inputs.overlay.path if inputs.overlay else None,
        base=layered.base,
        version_pins=layered.pins,
    )
