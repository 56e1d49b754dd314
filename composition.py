"""Wire the validated plan into the RA layers. The only module that knows every component; each component only
knows its own args."""
from typing import Optional

import pulumi

from components.cluster_baseline import ClusterBaseline, ClusterBaselineArgs, LayerNamespace
from components.gpu_enablement import GpuEnablement, GpuEnablementArgs
from components.health import Health, HealthArgs
from components.network_enablement import NetworkEnablement, NetworkEnablementArgs
from components.model_data import (
    ModelExpress, ModelExpressArgs, ModelStaging, ModelStagingArgs, TenantStorage, TenantStorageArgs, model_path,
)
from components.scheduling import TOPOLOGY_NAME, Scheduling, SchedulingArgs, TenantQueue
from components.serving.triton import InferenceService, InferenceServiceArgs
from components.dashboards import site_dashboards
from components.serving import (
    EndpointArgs, EndpointPicker, EndpointPickerArgs, ServingEndpoint, ServingPlatform, ServingPlatformArgs,
    TopologyPlacement,
)
from components.telemetry import Telemetry, TelemetryArgs
from components.tenancy import PULL_SECRET, WORKLOAD_SERVICE_ACCOUNT, Tenancy, TenancyArgs, TenantSpec
from components.validation import Benchmark, BenchmarkArgs, ValidationSuite, ValidationSuiteArgs
from components.readiness import Readiness, ReadinessArgs
from plan.readiness import readiness_plan
from acceptance.aiperf_args import aiperf_command, kserve_command
from plan.catalog import (
    MONITORING_PEER, TENANTS_PEER, integration_points, load_dynamo_runtime, load_signals, network_access, tenant_access,
)
from plan.endpoints import rdma_workers, runtime_image, tenant_pod_security
from plan.profile import DriverManagement
from plan.serving import ApiServerEgress
from plan.serving_features import nvlink_pack_domain
from plan.site_plan import RDMA_RAIL_ISOLATION, TENANT_NAMESPACE_PREFIX, SitePlan

BASELINE_NAMESPACE = "ncp-system"
VALIDATION_NAMESPACE = "ncp-validation"
READINESS_NAMESPACE = "ncp-readiness"  # privileged: the NCCL test's pods need IPC_LOCK as root (RDMA)


def deployed_components(plan: SitePlan) -> list[str]:
    """Compatibility-matrix entries this plan deploys, in install order."""
    names = ["gpuOperator"]
    if plan.network_enabled:
        names.append("networkOperator")
    names += ["kaiScheduler", "grove", "nvsentinel"]
    if plan.endpoints:
        names.append("dynamoPlatform")
    if plan.config.components.telemetry.prometheus_stack.enabled:
        names.append("kubePrometheusStack")
    return names


def layer_namespaces(plan: SitePlan) -> list[LayerNamespace]:
    pod_security = {"gpuOperator": "privileged", "networkOperator": "privileged", "nvsentinel": "privileged",
                    "kaiScheduler": "baseline", "grove": "baseline", "kubePrometheusStack": "privileged",
                    "dynamoPlatform": "baseline"}
    namespaces = [LayerNamespace(BASELINE_NAMESPACE, "baseline", "restricted")]
    for component in deployed_components(plan):
        namespaces.append(LayerNamespace(plan.matrix.pin(component).namespace, component, pod_security[component]))
    if validation_suite_enabled(plan):
        namespaces.append(LayerNamespace(VALIDATION_NAMESPACE, "validation", "restricted"))
    if readiness_plan(plan) is not None:
        namespaces.append(LayerNamespace(READINESS_NAMESPACE, "readiness", "privileged"))
    return namespaces


def validation_suite_enabled(plan: SitePlan) -> bool:
    validation = plan.config.components.serving.validation
    return validation.suite and validation.suite_image is not None


def local_decisions(plan: SitePlan) -> list[dict]:
    decisions = [d.model_dump(by_alias=True) for d in plan.config.local_decisions]
    for component in deployed_components(plan):
        pin = plan.matrix.pin(component)
        if pin.local_decision:
            decision = plan.config.components.telemetry.prometheus_stack.local_decision or pin.local_decision
            decisions.append({"component": component, **decision.model_dump(by_alias=True)})
    return decisions


def baseline_record(plan: SitePlan) -> dict:
    evidence = plan.site.validation_evidence
    return {
        "site": {"name": plan.site.name, "environment": plan.environment.value, "gpuNodes": plan.site.gpu_nodes,
                 "kubernetesVersion": plan.kubernetes_version},
        "hardwareProfile": plan.profile.model_dump(by_alias=True, mode="json"),
        "versions": {c: {"chart": plan.matrix.pin(c).chart, "version": plan.matrix.pin(c).version,
                         "raMatrix": plan.matrix.pin(c).ra_matrix, "deviation": plan.matrix.pin(c).deviation,
                         "decisions": plan.matrix.pin(c).decisions}
                     for c in deployed_components(plan)},
        "localDecisions": local_decisions(plan),
        "chartMirror": plan.config.components.chart_mirror,
        "prerequisites": {c: plan.matrix.pin(c).prerequisites for c in deployed_components(plan)
                          if plan.matrix.pin(c).prerequisites},
        "validationEvidence": evidence.model_dump(by_alias=True) if evidence else None,
        "gpuSharing": gpu_sharing(plan),
        "tenantImagePulls": plan.config.components.tenancy.pull_credentials.value,
        # Site steps: label and taint each tenant's nodes; the program places the tenant's pods there.
        "tenantNodePools": plan.tenant_node_pools,
        "tenantRdmaRails": RDMA_RAIL_ISOLATION if plan.network_enabled and plan.tenant_node_pools else None,
        # KAI ignores a node without every level's label: each GPU node must carry these keys.
        "topologyLevels": [vars(level) for level in plan.topology_levels] if plan.topology_aware else [],
        "serving": {e.name: {"tenant": e.tenant.name, "backend": e.endpoint.backend, "mode": e.mode, "gpus": e.gpus,
                             "model": e.endpoint.model.model_dump(by_alias=True), "sizing": e.sizing_file,
                             "estimate": e.estimate, "image": e.image} for e in plan.endpoints},
        "inferenceServices": {s.name: {"tenant": s.tenant.name, "gpus": s.gpu_units, "server": s.server_image,
                                       "builder": s.builder_image, "engineDir": s.engine_dir,
                                       "artifact": s.service.artifact.model_dump(by_alias=True)}
                              for s in plan.inference_services},
        "storageTiers": {tier: value.model_dump(by_alias=True) for tier, value in
                         (plan.config.components.serving.storage.named() if plan.config.components.serving.storage
                          else [])},
    }


def gpu_sharing(plan: SitePlan) -> dict:
    if plan.mig:
        return {"mode": "mig", "strategy": plan.mig.strategy, "layout": dict(plan.mig.layout)}
    if plan.time_slicing:
        return {"mode": "time-slicing", "replicas": plan.time_slicing.replicas,
                "validationEvidence": plan.time_slicing.validation_evidence}
    return {"mode": "exclusive"}


def compose(plan: SitePlan, ngc_api_key: Optional[pulumi.Output[str]]) -> dict:
    settings = plan.config.components
    matrix = plan.matrix
    skip_await = settings.skip_await
    telemetry = settings.telemetry

    tenant_namespaces = [plan.tenant_namespace(t) for t in plan.tenants]
    namespaces = layer_namespaces(plan)
    baseline = ClusterBaseline("baseline", ClusterBaselineArgs(
        site=plan.site.name, environment=plan.environment.value, profile=plan.profile.name,
        namespaces=namespaces, record=baseline_record(plan), network=network_access(),
        peers={TENANTS_PEER: tenant_namespaces, MONITORING_PEER: [settings.tenancy.monitoring_namespace],
               **{ns.layer: [ns.name] for ns in namespaces}},
        ngc_api_key=ngc_api_key, pull_secret_layers=["validation"]))

    network = None
    if plan.network_enabled:
        net = settings.network_operator
        network = NetworkEnablement("network", NetworkEnablementArgs(
            pin=plan.chart("networkOperator"), namespace=baseline.namespace("networkOperator"),
            namespace_name=matrix.pin("networkOperator").namespace, rails=plan.rails,
            exposure=plan.profile.fabric.rdma_exposure, rdma_resource=plan.profile.fabric.rdma_resource_name,
            managed_nic_driver=net.nic_driver == DriverManagement.MANAGED,
            doca_driver_version=net.doca_driver_version, mtu=net.mtu,
            per_node_block_size=net.per_node_block_size,
            gpu_node_selector={integration_points().gpu.present_label: "true"},  # GFD labels every GPU node
            skip_await=skip_await))

    gpu = GpuEnablement("gpu", GpuEnablementArgs(
        pin=plan.chart("gpuOperator"), namespace=baseline.namespace("gpuOperator"),
        namespace_name=matrix.pin("gpuOperator").namespace,
        managed_driver=plan.driver == DriverManagement.MANAGED, mig_capable=plan.profile.gpu.mig.supported,
        mig=plan.mig, time_slicing=plan.time_slicing, gpudirect_rdma=plan.profile.has_gpudirect_rdma,
        host_mofed=settings.network_operator.nic_driver == DriverManagement.PREINSTALLED,
        driver_upgrade_policy=(plan.driver_upgrade_policy.model_dump(by_alias=True)
                               if plan.driver_upgrade_policy else None),
        scrape_interval=telemetry.scrape_interval, monitor_labels=telemetry.prometheus_selector_labels,
        skip_await=skip_await),
        # GPUDirect RDMA's peer-memory module loads against the NIC driver the Network Operator provides.
        pulumi.ResourceOptions(depends_on=[network] if network else []))

    readiness = readiness_plan(plan)
    queues = [TenantQueue(tenant=t.name, queue=plan.tenant_namespace(t), gpu_quota=t.gpu_quota,
                          gpu_limit=t.gpu_limit, over_quota_weight=t.over_quota_weight) for t in plan.tenants]
    # The NCCL readiness test runs on over-quota GPUs, before tenants serve.
    platform_queues = [TenantQueue(tenant="readiness", queue=READINESS_NAMESPACE, gpu_quota=0,
                                   gpu_limit=plan.gpu_capacity, over_quota_weight=1)] if readiness else []
    scheduling = Scheduling("scheduling", SchedulingArgs(
        kai_pin=plan.chart("kaiScheduler"), grove_pin=plan.chart("grove"),
        kai_namespace=baseline.namespace("kaiScheduler"), grove_namespace=baseline.namespace("grove"),
        site_gpus=plan.gpu_capacity, queues=queues, platform_queues=platform_queues,
        placement_strategy=settings.scheduling.placement_strategy,
        topology_aware=plan.topology_aware,
        topology_levels=plan.topology_levels,
        skip_await=skip_await))

    if readiness is not None:
        Readiness("readiness", ReadinessArgs(
            plan=readiness, namespace=baseline.namespace("readiness"), nccl_pin=matrix.workload("ncclTests"),
            fio_image=settings.serving.validation.storage_image, networks=network.networks,
            rdma_resource=plan.profile.fabric.rdma_resource_name, capabilities=load_dynamo_runtime().rdma_capabilities,
            gpu_product=plan.gpu_product_label, queue=READINESS_NAMESPACE),
            pulumi.ResourceOptions(depends_on=[network, gpu, scheduling]))

    health = Health("health", HealthArgs(
        pin=plan.chart("nvsentinel"), namespace=baseline.namespace("nvsentinel"), dcgm_endpoint=gpu.dcgm_endpoint,
        remediation=plan.remediation, nic_monitor=plan.network_enabled, tenant_namespaces=tenant_namespaces,
        drain_timeout_seconds=settings.health.drain_timeout_seconds, scrape_interval=telemetry.scrape_interval,
        monitor_labels=telemetry.prometheus_selector_labels,
        skip_await=skip_await, existing_datastore_secret=settings.health.datastore_secret),
        pulumi.ResourceOptions(depends_on=[gpu]))

    prometheus = telemetry.prometheus_stack.enabled
    signals = load_signals()
    telemetry_layer = Telemetry("telemetry", TelemetryArgs(
        rules_namespace=baseline.namespace("baseline"),
        dcgm=signals["dcgm"], kai=signals["kai"], nvsentinel=signals["nvsentinel"],
        tenant_namespace_prefix=TENANT_NAMESPACE_PREFIX, selector_labels=telemetry.prometheus_selector_labels,
        gpu_temperature_celsius=telemetry.gpu_temperature_celsius,
        dashboards=site_dashboards(signals),
        dashboard_label=next(iter(telemetry.dashboard_label.items())),
        prometheus_pin=plan.chart("kubePrometheusStack") if prometheus else None,
        prometheus_namespace=baseline.namespace("kubePrometheusStack") if prometheus else None,
        prometheus_storage=settings.serving.storage.telemetry_retention if settings.serving.storage else None,
        skip_await=skip_await))

    if validation_suite_enabled(plan):
        storage = settings.serving.storage
        suite = matrix.workload("validationSuite")
        ValidationSuite("validation", ValidationSuiteArgs(
            namespace=baseline.namespace("validation"), image=settings.serving.validation.suite_image,
            suite_file=suite.suite_file, gpu_operator_namespace=matrix.pin("gpuOperator").namespace,
            overrides=suite.overrides, mig_strategy=plan.mig.strategy if plan.mig else None, version=suite.version,
            results=storage.benchmark_output if storage else None, checks=suite.read_only_checks,
            reads=suite.reads, pull_secret=baseline.pull_secret("validation"), skip_await=settings.skip_await))

    pod_security = tenant_pod_security(plan.endpoints, plan.network_enabled)
    tenancy = Tenancy("tenancy", TenancyArgs(
        tenants=[TenantSpec(name=t.name, namespace=plan.tenant_namespace(t), queue=plan.tenant_namespace(t),
                            gpu_limit=t.gpu_limit, cpu_quota=t.cpu_quota, memory_quota=t.memory_quota,
                            cpu_limit=t.cpu_limit or t.cpu_quota, memory_limit=t.memory_limit or t.memory_quota,
                            pods=t.pod_quota, claims=t.claim_quota, storage=t.storage_quota,
                            admins=t.admins, viewers=t.viewers, pod_security=pod_security.get(t.name),
                            node_selector=plan.placement(t.name).node_selector if t.node_pool else None)
                 for t in plan.tenants],
        gateway_namespace=settings.tenancy.gateway_namespace,
        monitoring_namespace=settings.tenancy.monitoring_namespace,
        platform_namespaces={ns.layer: ns.name for ns in namespaces},
        network=network_access(), access=tenant_access(),
        storage_classes=[tier.storage_class for name, tier in settings.serving.storage.named()
                         if name != "telemetry-retention"] if settings.serving.storage else [],
        ngc_api_key=ngc_api_key if plan.tenant_pull_secret else None))
    claims = tenant_storage(plan, tenancy, skip_await)
    serving = (compose_serving(plan, baseline, scheduling, network, tenancy, claims, skip_await)
               if plan.endpoints else {})
    services = compose_inference_services(plan, scheduling, tenancy, claims, skip_await)

    return {
        "site": plan.site.name,
        "environment": plan.environment.value,
        "hardwareProfile": plan.profile.name,
        "kubernetesVersion": plan.kubernetes_version,
        "namespaces": {ns.layer: ns.name for ns in layer_namespaces(plan)},
        "tenantNamespaces": tenancy.namespaces,
        "queues": scheduling.queues,
        "versions": {c: matrix.pin(c).version for c in deployed_components(plan)},
        "networks": network.networks if network else [],
        "remediation": plan.remediation,
        "telemetryRules": telemetry_layer.rules_name,
        "healthRelease": health.release.name,
        "endpoints": serving,
        "inferenceServices": services,
    }


def tenant_storage(plan: SitePlan, tenancy: Tenancy, skip_await: bool) -> dict[str, TenantStorage]:
    """The model-artifacts and benchmark-output claims of every tenant that serves (endpoints or services)."""
    storage = plan.config.components.serving.storage
    namespaces = {p.tenant.name: p.namespace for p in [*plan.endpoints, *plan.inference_services]}
    return {tenant: TenantStorage(f"storage-{tenant}", TenantStorageArgs(
        tenant=tenant, namespace=namespace, model_artifacts=storage.model_artifacts,
        benchmark_output=storage.benchmark_output, skip_await=skip_await),
        # Claims count against the tenant's quota: the API server refuses them until the quota exists.
        pulumi.ResourceOptions(depends_on=[tenancy.tenants[tenant]]))
        for tenant, namespace in namespaces.items()}


def compose_inference_services(plan: SitePlan, scheduling: Scheduling, tenancy: Tenancy,
                               storage: dict[str, TenantStorage], skip_await: bool) -> dict:
    settings = plan.config.components
    triton, signals = plan.matrix.workload("triton"), load_signals()["triton"]
    outputs = {}
    for service in plan.inference_services:
        claims = storage[service.tenant.name].claims
        server = InferenceService(f"inference-{service.name}", InferenceServiceArgs(
            plan=service, ports=triton.ports, signals=signals, model_claim=claims[TenantStorage.MODEL_CLAIM],
            service_account=WORKLOAD_SERVICE_ACCOUNT, pull_secret=PULL_SECRET if plan.tenant_pull_secret else None,
            selector_labels=settings.telemetry.prometheus_selector_labels,
            scrape_interval=settings.telemetry.scrape_interval, skip_await=skip_await,
            tenant_nodes=plan.placement(service.tenant.name)),
            # The tenant's queue schedules the build and the server; its environment holds the quota they count on.
            pulumi.ResourceOptions(depends_on=[scheduling, tenancy.tenants[service.tenant.name]]))
        slo = service.service.slo
        Benchmark(f"benchmark-{service.name}", BenchmarkArgs(
            endpoint=service.name, tenant=service.tenant.name, namespace=service.namespace,
            image=settings.serving.validation.benchmark_image, service_account=WORKLOAD_SERVICE_ACCOUNT,
            command=kserve_command(url=server.url, model=service.engine_model, inputs=service.service.engine.inputs,
                                   concurrency=slo.concurrency, request_count=slo.request_count,
                                   artifact_dir=f"/results/{service.name}", server_metrics=server.metrics_url),
            thresholds=service.acceptance_thresholds(), graph=server.deployment,
            placement=plan.placement(service.tenant.name)),
            pulumi.ResourceOptions(depends_on=[tenancy.tenants[service.tenant.name]]))
        outputs[service.name] = {"url": server.url, "gpus": service.gpu_units, "tenant": service.tenant.name,
                                 "engineDir": service.engine_dir}
    return outputs


def compose_serving(plan: SitePlan, baseline: ClusterBaseline, scheduling: Scheduling,
                    network: Optional[NetworkEnablement], tenancy: Tenancy, tenant_storage: dict[str, TenantStorage],
                    skip_await: bool) -> dict:
    matrix, settings = plan.matrix, plan.config.components
    serving, telemetry = settings.serving, settings.telemetry
    storage = serving.storage
    runtime = load_dynamo_runtime()
    signals = load_signals()["dynamo"]
    platform_ns = baseline.namespace("dynamoPlatform")
    model_express_url = None
    if serving.model_express:
        pin = matrix.workload("modelExpress")
        model_express = ModelExpress("model-express", ModelExpressArgs(
            namespace=platform_ns.metadata.name, image=pin.images["server"], port=pin.ports["grpc"],
            cache=storage.model_cache, skip_await=skip_await), pulumi.ResourceOptions(depends_on=[platform_ns]))
        model_express_url = model_express.url
    platform = ServingPlatform("serving", ServingPlatformArgs(
        pin=plan.chart("dynamoPlatform"), namespace=platform_ns, model_express_url=model_express_url,
        skip_await=skip_await),
        # The platform points at the separately installed KAI Scheduler and Grove, and DGDs need their queues.
        pulumi.ResourceOptions(depends_on=[scheduling]))
    pull_secret = PULL_SECRET if plan.tenant_pull_secret else None
    pack_domain = nvlink_pack_domain(plan.profile, plan.topology_levels) if plan.topology_aware else None
    topology = TopologyPlacement(TOPOLOGY_NAME, pack_domain) if pack_domain else None
    outputs = {}
    for endpoint in plan.endpoints:
        model = endpoint.endpoint.model
        claims = tenant_storage[endpoint.tenant.name].claims
        placement = plan.placement(endpoint.tenant.name)
        # Tenant objects wait for the tenant's environment: its Namespace, and its quota (claims and pods count
        # against it: the API server refuses them until the quota controller has written the quota's status).
        in_namespace = pulumi.ResourceOptions(depends_on=[tenancy.tenants[endpoint.tenant.name]])
        staging = ModelStaging(f"model-{endpoint.name}", ModelStagingArgs(
            endpoint=endpoint.name, tenant=endpoint.tenant.name, namespace=endpoint.namespace,
            model_name=model.name, source=model.source, revision=model.revision, model_class=model.model_class,
            backend=endpoint.endpoint.backend, image=endpoint.image, service_account=WORKLOAD_SERVICE_ACCOUNT,
            credentials_secret=model.credentials_secret, claim=claims[TenantStorage.MODEL_CLAIM],
            skip_await=skip_await,
            source_access=serving.model_staging,
            record={"sizing": endpoint.sizing_file, "image": endpoint.image, "mode": endpoint.mode,
                    "dynamoPlatform": matrix.pin("dynamoPlatform").version}, placement=placement), in_namespace)
        serving_endpoint = ServingEndpoint(f"endpoint-{endpoint.name}", EndpointArgs(
            plan=endpoint, runtime=runtime, gpus_per_node=plan.profile.gpu.per_node,
            gpu_product=plan.gpu_product_label,
            rdma_resource=(plan.profile.fabric.rdma_resource_name
                           if rdma_workers(endpoint, plan.network_enabled) else None),
            networks=network.networks if network else [], model_path=model_path(model.name, model.revision),
            model_cache=storage.model_cache, kv_offload=storage.kv_offload, model_express_url=model_express_url,
            pull_secret=pull_secret, api_server_egress=serving.api_server_egress or ApiServerEgress(),
            planner_image=runtime_image(matrix, runtime.planner.image, serving.image_digests),
            planner_prometheus_url=serving.planner_prometheus_url,
            planner_prometheus=serving.planner_prometheus(), signals=signals,
            selector_labels=telemetry.prometheus_selector_labels, scrape_interval=telemetry.scrape_interval,
            inference_pool=serving.gateway_inference_extension, topology=topology, placement=placement),
            pulumi.ResourceOptions(depends_on=[platform, staging, claims[TenantStorage.MODEL_CLAIM],
                                               *in_namespace.depends_on]))
        if serving.gateway_inference_extension:
            EndpointPicker(f"epp-{endpoint.name}", EndpointPickerArgs(
                endpoint=endpoint.name, tenant=endpoint.tenant.name, namespace=endpoint.namespace,
                pin=matrix.workload("endpointPicker"), platform_release=platform.release.name,
                platform_namespace=matrix.pin("dynamoPlatform").namespace, skip_await=skip_await), in_namespace)
        slo = endpoint.endpoint.slo
        Benchmark(f"benchmark-{endpoint.name}", BenchmarkArgs(
            endpoint=endpoint.name, tenant=endpoint.tenant.name, namespace=endpoint.namespace,
            image=serving.validation.benchmark_image, service_account=WORKLOAD_SERVICE_ACCOUNT,
            command=aiperf_command(
                model=model.name, url=serving_endpoint.url,
                tokenizer=model_path(model.name, model.revision) if model.tokenizer is None else model.tokenizer,
                isl=slo.isl, osl=slo.osl, concurrency=slo.concurrency, request_count=slo.request_count,
                artifact_dir=f"/results/{endpoint.name}"),
            thresholds=slo.thresholds.model_dump(by_alias=True, exclude_none=True), graph=serving_endpoint.graph,
            placement=placement), in_namespace)
        outputs[endpoint.name] = {"url": serving_endpoint.url, "mode": endpoint.mode, "gpus": endpoint.gpus,
                                  "tenant": endpoint.tenant.name, "sizing": endpoint.sizing_file}
    return outputs
