"""Rules over the site: the stack's settings against its hardware profile (GPU sharing, driver, rails, topology,
capacity, dedicated nodes), the matrix's Kubernetes versions, prod's required settings and secrets."""
from typing import Optional

from ncp.plan.catalog import CompatibilityMatrix, profile_names
from ncp.plan.config import Environment, MigSettings, PullCredentials, StackConfig
from ncp.plan.errors import Problem, manual_edit, rm_command, set_command
from ncp.plan.fabric import nv_ipam_node_capacity, rail_prefix_for, rail_subnets, tenant_needs, topology_aware
from ncp.plan.gpu_partition import capacity_breakdown, gpu_units_per_node, site_gpu_units, tenant_mig
from ncp.plan.names import PROJECT
from ncp.plan.profile import DriverManagement, HardwareProfile
from ncp.plan.rules.registry import RawInputs, RuleInputs


def _set_fix(path: str, fix: str) -> str:
    command = f"pulumi config set --path '{path}' <value>"
    return f"{fix}: {command}" if fix else command


def _nodes_first(config: StackConfig) -> str:
    """Capacity is gpuNodes x GPUs per node: a wrong node count is the likelier cause than a wrong quota."""
    return (f"if the site has more than {config.site.gpu_nodes} GPU nodes, set them: pulumi config set --path "
            f"'{PROJECT}:site.gpuNodes' <nodes>;")


def _unplaceable(profile: HardwareProfile, layout: dict[str, int]) -> str:
    table = profile.gpu.mig.instances
    shown = ", ".join(f"{count} x {name} (max {table[name].max_instances}, {table[name].size} of "
                      f"{profile.gpu.mig.memory_slices} memory slices at {table[name].placements})"
                      for name, count in layout.items())
    return f"cannot be placed on one {profile.gpu.model}: {shown} overlap or exceed a profile's instance limit"


def _topology_problems(config: StackConfig, profile: HardwareProfile) -> list[Problem]:
    """Topology-aware placement needs a rack level between zone and host."""
    problems = []
    if topology_aware(config, profile) and not profile.topology_labels.rack:
        # KAI leaves a node out of a topology unless it carries every level's label (kai-scheduler/KAI-Scheduler
        # pkg/scheduler/plugins/topology/common.go:69-77 isNodePartOfTopology, at the kaiScheduler pin).
        problems.append(Problem(f"{PROJECT}:components.scheduling.topologyAware",
                                f"profile {profile.name} declares no rack label (topologyLabels.rack), so topology-"
                                "aware placement has no level between zone and host",
                                manual_edit(f"profiles/{profile.name}.yaml", "topologyLabels.rack",
                                            "declare the rack label every GPU node carries")
                                + ", or " + set_command(f"{PROJECT}:components.scheduling.topologyAware", "false")))
    return problems


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



def _rail_problems(config: StackConfig) -> list[Problem]:
    net = config.components.network_operator
    base = f"{PROJECT}:components.networkOperator"
    subnets = rail_subnets(config)
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


SECRET_KEYS = ("ngcApiKey",)


def secrets_encrypted(i: RawInputs) -> list[Problem]:
    return [Problem(f"{PROJECT}:{key}", "is stored in plain text",
                    f"pulumi config rm {PROJECT}:{key} && pulumi config set --secret {PROJECT}:{key}")
            for key in SECRET_KEYS if key in i.raw and key not in i.secret_keys]


def known_profile(i: RuleInputs) -> list[Problem]:
    if i.config.site.hardware_profile in profile_names():
        return []
    return [Problem(f"{PROJECT}:site.hardwareProfile", f"names unknown profile {i.config.site.hardware_profile!r}",
                    set_command(f"{PROJECT}:site.hardwareProfile", f"<one of: {', '.join(profile_names())}>")
                    + " (files in profiles/)")]


# RA: Architecture Decision Guardrails: "The platform needs a declared Kubernetes API surface"
def kubernetes_version(i: RuleInputs) -> list[Problem]:
    k8s = i.config.site.kubernetes_version or i.matrix.kubernetes.default_version
    if k8s in i.matrix.kubernetes.supported_versions:
        return []
    return [Problem(f"{PROJECT}:site.kubernetesVersion", f"{k8s} is not in the compatibility matrix",
                    set_command(f"{PROJECT}:site.kubernetesVersion",
                                f"<one of: {', '.join(i.matrix.kubernetes.supported_versions)}>"))]


def _profiled(check):
    """A check over (config, profile) as a rule's check over its inputs."""
    def run(i: RuleInputs) -> list[Problem]:
        assert i.profile is not None
        return check(i.config, i.profile)
    return run


mig_layout = _profiled(_mig_problems)
driver = _profiled(_driver_problems)
rail_interfaces = _profiled(_rail_interface_problems)
topology_rack_label = _profiled(_topology_problems)
capacity = _profiled(_capacity_problems)
node_pools = _profiled(_node_pool_problems)


def excepted_tenants(i: RuleInputs) -> list[Problem]:
    assert i.profile is not None
    return _excepted_tenant_problems(i.config, i.endpoints, i.profile.has_rdma_fabric)


def telemetry_retention(i: RuleInputs) -> list[Problem]:
    return _telemetry_problems(i.config)


def ngc_api_key(i: RuleInputs) -> list[Problem]:
    if i.config.site.environment != Environment.PROD or "ngcApiKey" in i.raw:
        return []
    return [Problem(f"{PROJECT}:ngcApiKey", "is required in prod (image pulls from nvcr.io)",
                    f"pulumi config set --secret {PROJECT}:ngcApiKey <NGC API key>")]


def storage_readiness(i: RuleInputs) -> list[Problem]:
    if i.config.site.environment != Environment.PROD:
        return []
    return _storage_readiness_problems(i.config, i.profile, i.matrix)


def pull_credentials(i: RuleInputs) -> list[Problem]:
    if (i.config.site.environment != Environment.PROD
            or i.config.components.tenancy.pull_credentials != PullCredentials.SHARED_KEY):
        return []
    return [Problem(f"{PROJECT}:components.tenancy.pullCredentials",
                    "sharedKey is refused in prod: it copies the provider's NGC key into every tenant namespace, "
                    "where every tenant admin can read it",
                    _set_fix(f"{PROJECT}:components.tenancy.pullCredentials",
                             "node (configure the nodes' kubelet credential provider or registry mirror for nvcr.io)"))]
