"""Wire the validated plan into the RA layers. The only module that knows every component; each component only
knows its own args. Every fact comes resolved from the plan: this module decides nothing."""
from dataclasses import dataclass
from typing import Optional

import pulumi

from components.cluster_baseline import ClusterBaseline, ClusterBaselineArgs
from components.gpu_enablement import GpuEnablement, GpuEnablementArgs
from components.health import Health, HealthArgs
from components.network_enablement import NetworkEnablement, NetworkEnablementArgs
from components.model_data import (
    ModelExpress, ModelExpressArgs, ModelStaging, ModelStagingArgs, TenantStorage, TenantStorageArgs,
)
from components.scheduling import TOPOLOGY_NAME, Scheduling, SchedulingArgs
from components.serving.triton import InferenceService, InferenceServiceArgs
from components.serving.triton_repository import ENSEMBLE_INPUT
from components.dashboards import site_dashboards
from components.serving import (
    EndpointArgs, EndpointPicker, EndpointPickerArgs, InferenceRoute, RouteArgs, ServingEndpoint, ServingPlatform,
    ServingPlatformArgs, TopologyPlacement,
)
from components.telemetry import Telemetry, TelemetryArgs
from components.tenancy import PULL_SECRET, WORKLOAD_SERVICE_ACCOUNT, Tenancy, TenancyArgs
from components.validation import Benchmark, BenchmarkArgs, ValidationSuite, ValidationSuiteArgs, benchmark_artifacts
from components.readiness import Readiness, ReadinessArgs
from components.break_fix import BreakFix, BreakFixArgs
from plan.break_fix import gate_job, handover_job
from plan.readiness import readiness_plan
from acceptance.aiperf_args import aiperf_command, judged_artifacts, kserve_command
from acceptance.check import EXPORT_NAME
from plan.catalog import (
    MONITORING_PEER, TENANTS_PEER, load_dynamo_runtime, load_signals, network_access, tenant_access,
)
from plan.endpoint_plan import EndpointPlan
from plan.evidence_key import annotation_value, endpoint_key, service_key
from plan.inference_services import InferenceServicePlan
from plan.layers import BASELINE_LAYER, READINESS_LAYER, READINESS_NAMESPACE, VALIDATION_LAYER
from plan.names import MODEL_CLAIM, TENANT_NAMESPACE_PREFIX
from plan.record import baseline_record
from plan.site_plan import SitePlan


def compose(plan: SitePlan, ngc_api_key: Optional[pulumi.Output[str]]) -> dict:
    settings, matrix, layers = plan.settings, plan.matrix, plan.layers
    skip_await, telemetry = settings.skip_await, settings.telemetry
    installed: dict[str, pulumi.Resource] = {}  # matrix chart -> the component that installs it

    def after(chart: str) -> pulumi.ResourceOptions:
        """Install after the charts the matrix says this one depends on (dependsOn, with the reason there)."""
        return pulumi.ResourceOptions(depends_on=list(dict.fromkeys(installed[d] for d in layers.depends_on(chart))))

    tenant_namespaces = [spec.namespace for spec in plan.tenant_specs]
    namespaces = list(layers.namespaces)
    baseline = ClusterBaseline("baseline", ClusterBaselineArgs(
        site=plan.site.name, environment=plan.environment.value, profile=plan.profile.name,
        namespaces=namespaces, record=baseline_record(plan).documents(), network=network_access(),
        peers={TENANTS_PEER: tenant_namespaces, MONITORING_PEER: [settings.tenancy.monitoring_namespace],
               **{ns.layer: [ns.name] for ns in namespaces}},
        ngc_api_key=ngc_api_key, pull_secret_layers=[VALIDATION_LAYER]))

    network = None
    if "networkOperator" in layers.charts:
        net = settings.network_operator
        installed["networkOperator"] = network = NetworkEnablement("network", NetworkEnablementArgs(
            pin=plan.chart("networkOperator"), namespace=baseline.namespace("networkOperator"),
            namespace_name=matrix.pin("networkOperator").namespace, rails=plan.rails,
            exposure=plan.profile.fabric.rdma_exposure, rdma_resource=plan.profile.fabric.rdma_resource_name,
            managed_nic_driver=plan.managed_nic_driver, doca_driver_version=net.doca_driver_version, mtu=net.mtu,
            per_node_block_size=net.per_node_block_size, gpu_node_selector=plan.gpu_node_selector,
            skip_await=skip_await), after("networkOperator"))

    installed["gpuOperator"] = gpu = GpuEnablement("gpu", GpuEnablementArgs(
        pin=plan.chart("gpuOperator"), namespace=baseline.namespace("gpuOperator"),
        namespace_name=matrix.pin("gpuOperator").namespace,
        managed_driver=plan.managed_driver, mig_capable=plan.profile.gpu.mig.supported,
        mig=plan.mig, time_slicing=plan.time_slicing, gpudirect_rdma=plan.profile.has_gpudirect_rdma,
        host_mofed=plan.host_mofed, scrape_interval=telemetry.scrape_interval,
        driver_upgrade_policy=(plan.driver_upgrade_policy.model_dump(by_alias=True)
                               if plan.driver_upgrade_policy else None),
        monitor_labels=telemetry.prometheus_selector_labels, skip_await=skip_await), after("gpuOperator"))

    installed["kaiScheduler"] = installed["grove"] = scheduling = Scheduling("scheduling", SchedulingArgs(
        kai_pin=plan.chart("kaiScheduler"), grove_pin=plan.chart("grove"),
        kai_namespace=baseline.namespace("kaiScheduler"), grove_namespace=baseline.namespace("grove"),
        site_gpus=plan.gpu_capacity, queues=plan.tenant_queues, platform_queues=plan.platform_queues,
        placement_strategy=settings.scheduling.placement_strategy, topology_aware=plan.topology_aware,
        topology_levels=plan.topology_levels, skip_await=skip_await), after("kaiScheduler"))

    readiness = readiness_plan(plan)
    storage_image = settings.serving.validation.storage_image
    # Without a fabric only storage is made ready, which needs the site's fio image.
    if readiness is not None and (readiness.fabric and network is not None or storage_image and readiness.tiers):
        Readiness("readiness", ReadinessArgs(
            plan=readiness, namespace=baseline.namespace(READINESS_LAYER), nccl_pin=matrix.workload("ncclTests"),
            fio_image=storage_image, networks=network.networks if network else [],
            rdma_resource=plan.profile.fabric.rdma_resource_name or "",
            capabilities=load_dynamo_runtime().rdma_capabilities,
            gpu_product=plan.shared_gpu_product, queue=READINESS_NAMESPACE),
            pulumi.ResourceOptions(depends_on=[d for d in (network, gpu, scheduling) if d is not None]))

    # RA: Break-Fix Architecture: "Re-admit the resource only after it matches the accepted baseline."
    BreakFix("break-fix", BreakFixArgs(
        namespace=baseline.namespace(READINESS_LAYER), gate_job=gate_job(plan),
        handover_job=handover_job(plan, storage_image) if storage_image else None,
        health_namespace=matrix.pin("nvsentinel").namespace), after("nvsentinel"))

    installed["nvsentinel"] = health = Health("health", HealthArgs(
        pin=plan.chart("nvsentinel"), namespace=baseline.namespace("nvsentinel"), dcgm_endpoint=gpu.dcgm_endpoint,
        remediation=plan.remediation, nic_monitor=plan.network_enabled, tenant_namespaces=tenant_namespaces,
        drain_timeout_seconds=settings.health.drain_timeout_seconds, scrape_interval=telemetry.scrape_interval,
        monitor_labels=telemetry.prometheus_selector_labels,
        skip_await=skip_await, existing_datastore_secret=settings.health.datastore_secret), after("nvsentinel"))

    prometheus = "kubePrometheusStack" in layers.charts
    signals = load_signals()
    telemetry_layer = Telemetry("telemetry", TelemetryArgs(
        rules_namespace=baseline.namespace(BASELINE_LAYER),
        dcgm=signals["dcgm"], kai=signals["kai"], nvsentinel=signals["nvsentinel"],
        tenant_namespace_prefix=TENANT_NAMESPACE_PREFIX, selector_labels=telemetry.prometheus_selector_labels,
        gpu_temperature_celsius=telemetry.gpu_temperature_celsius, dashboards=site_dashboards(signals),
        dashboard_label=next(iter(telemetry.dashboard_label.items())),
        prometheus_pin=plan.chart("kubePrometheusStack") if prometheus else None,
        prometheus_namespace=baseline.namespace("kubePrometheusStack") if prometheus else None,
        prometheus_storage=plan.prometheus_storage, skip_await=skip_await,
        site_gpus=plan.gpu_capacity, gpus_per_node=-(-plan.gpu_capacity // plan.site.gpu_nodes)))

    if layers.validation_suite:
        suite = matrix.workload("validationSuite")
        ValidationSuite("validation", ValidationSuiteArgs(
            namespace=baseline.namespace(VALIDATION_LAYER), image=plan.serving.validation.suite_image,
            suite_file=suite.suite_file, gpu_operator_namespace=matrix.pin("gpuOperator").namespace,
            overrides=suite.overrides, mig_strategy=plan.mig.strategy if plan.mig else None, version=suite.version,
            results=plan.serving.storage.benchmark_output if plan.serving.storage else None,
            checks=suite.read_only_checks, reads=suite.reads, pull_secret=baseline.pull_secret(VALIDATION_LAYER),
            skip_await=skip_await))

    tenancy = Tenancy("tenancy", TenancyArgs(
        tenants=plan.tenant_specs, gateway_namespace=settings.tenancy.gateway_namespace,
        gateway_ports=plan.gateway_ports,
        monitoring_namespace=settings.tenancy.monitoring_namespace,
        platform_namespaces={ns.layer: ns.name for ns in namespaces}, network=network_access(),
        access=tenant_access(), storage_classes=plan.tenant_storage_classes,
        ngc_api_key=ngc_api_key if plan.tenant_pull_secret else None, admission=plan.admission,
        rail_networks=network.networks if network else []))
    claims = tenant_storage(plan, tenancy)
    serving = None
    if "dynamoPlatform" in layers.charts:
        serving = serving_platform(plan, baseline.namespace("dynamoPlatform"), network, tenancy, claims,
                                   after("dynamoPlatform"))
    return {
        "site": plan.site.name, "environment": plan.environment.value, "hardwareProfile": plan.profile.name,
        "kubernetesVersion": plan.kubernetes_version, "namespaces": {ns.layer: ns.name for ns in namespaces},
        "tenantNamespaces": tenancy.namespaces, "queues": scheduling.queues,
        "versions": {c: matrix.pin(c).version for c in layers.charts},
        "networks": network.networks if network else [], "remediation": plan.remediation,
        "telemetryRules": telemetry_layer.rules_name, "healthRelease": health.release.name,
        "endpoints": compose_endpoints(plan, serving) if serving else {},
        "inferenceServices": {s.name: compose_inference_service(plan, s, scheduling, tenancy, claims)
                              for s in plan.inference_services},
    }


def tenant_storage(plan: SitePlan, tenancy: Tenancy) -> dict[str, TenantStorage]:
    """The model-artifacts and benchmark-output claims of every tenant that serves (endpoints or services)."""
    storage = plan.serving.storage
    namespaces = {p.tenant.name: p.namespace for p in [*plan.endpoints, *plan.inference_services]}
    return {tenant: TenantStorage(f"storage-{tenant}", TenantStorageArgs(
        tenant=tenant, namespace=namespace, model_artifacts=storage.model_artifacts,
        benchmark_output=storage.benchmark_output, skip_await=plan.settings.skip_await),
        # Claims count against the tenant's quota: the API server refuses them until the quota exists.
        pulumi.ResourceOptions(depends_on=[tenancy.tenants[tenant]]))
        for tenant, namespace in namespaces.items()}


@dataclass(frozen=True)
class Serving:
    """What every endpoint is wired to: the platform, ModelExpress, the rails, its tenant's environment and claims."""

    platform: ServingPlatform
    model_express_url: Optional[pulumi.Output[str]]
    network: Optional[NetworkEnablement]
    tenancy: Tenancy
    claims: dict[str, TenantStorage]


def compose_endpoints(plan: SitePlan, wiring: Serving) -> dict:
    """Every endpoint, then the gateway's HTTPRoutes after the pools they name."""
    endpoints = {e.name: compose_endpoint(plan, e, wiring) for e in plan.endpoints}
    for route in plan.routes:
        InferenceRoute(f"route-{route.name}", RouteArgs(
            name=route.name, tenant=route.tenant, namespace=route.namespace, gateway=route.gateway,
            gateway_namespace=route.gateway_namespace, section_name=route.section_name, hostnames=route.hostnames,
            path_prefix=route.path_prefix, backends=tuple((b.pool, b.weight) for b in route.backends)),
            pulumi.ResourceOptions(depends_on=[endpoints[b.pool][1] for b in route.backends]))
    return {name: outputs for name, (outputs, _) in endpoints.items()}


def serving_platform(plan: SitePlan, namespace, network: Optional[NetworkEnablement], tenancy: Tenancy,
                     claims: dict[str, TenantStorage], opts: pulumi.ResourceOptions) -> Serving:
    """Dynamo's platform, with ModelExpress beside it where the site runs it."""
    model_express_url = None
    if plan.serving.model_express:
        pin = plan.matrix.workload("modelExpress")
        model_express_url = ModelExpress("model-express", ModelExpressArgs(
            namespace=namespace.metadata.name, image=pin.images["server"], port=pin.ports["grpc"],
            cache=plan.serving.storage.model_cache, skip_await=plan.settings.skip_await),
            pulumi.ResourceOptions(depends_on=[namespace])).url
    platform = ServingPlatform("serving", ServingPlatformArgs(
        pin=plan.chart("dynamoPlatform"), namespace=namespace, model_express_url=model_express_url,
        skip_await=plan.settings.skip_await), opts)
    return Serving(platform, model_express_url, network, tenancy, claims)


def compose_inference_service(plan: SitePlan, service: InferenceServicePlan, scheduling: Scheduling, tenancy: Tenancy,
                              storage: dict[str, TenantStorage]) -> dict:
    telemetry, tenant = plan.settings.telemetry, service.tenant.name
    server = InferenceService(f"inference-{service.name}", InferenceServiceArgs(
        plan=service, ports=plan.matrix.workload("triton").ports, signals=load_signals()["triton"],
        model_claim=storage[tenant].claims[MODEL_CLAIM], service_account=WORKLOAD_SERVICE_ACCOUNT,
        pull_secret=PULL_SECRET if plan.tenant_pull_secret else None,
        selector_labels=telemetry.prometheus_selector_labels, scrape_interval=telemetry.scrape_interval,
        skip_await=plan.settings.skip_await, source_access=plan.serving.model_staging,
        evidence_key=annotation_value(service_key(plan, service)), tenant_nodes=plan.placement(tenant)),
        # The tenant's queue schedules the build and the server; its environment holds the quota they count on.
        pulumi.ResourceOptions(depends_on=[scheduling, tenancy.tenants[tenant]]))
    slo = service.service.slo
    Benchmark(f"benchmark-{service.name}", BenchmarkArgs(
        endpoint=service.name, tenant=tenant, namespace=service.namespace,
        image=plan.serving.validation.benchmark_image, service_account=WORKLOAD_SERVICE_ACCOUNT,
        # With DALI preprocessing clients call the ensemble with an encoded image, so the preprocessing model the
        # thresholds judge runs; without it, the engine's model with its own input tensors.
        command=kserve_command(url=server.url, model=service.entry_model, inputs=service.service.engine.inputs,
                               image_input=ENSEMBLE_INPUT if service.preprocess_model else None,
                               concurrency=slo.concurrency, request_count=slo.request_count,
                               artifact_dir=benchmark_artifacts(service.name), server_metrics=server.metrics_url),
        export_file=f"{benchmark_artifacts(service.name)}/{EXPORT_NAME}",
        thresholds=service.acceptance_thresholds(), graph=server.deployment, placement=plan.placement(tenant)),
        pulumi.ResourceOptions(depends_on=[tenancy.tenants[tenant]]))
    return {"url": server.url, "gpus": service.gpu_units, "tenant": tenant, "engineDir": service.engine_dir}


def compose_endpoint(plan: SitePlan, endpoint: EndpointPlan, wiring: Serving) -> tuple[dict, ServingEndpoint]:
    serving, telemetry, skip_await = plan.serving, plan.settings.telemetry, plan.settings.skip_await
    model, tenant, placement = endpoint.endpoint.model, endpoint.tenant.name, plan.placement(endpoint.tenant.name)
    platform, network = wiring.platform, wiring.network
    model_claim = wiring.claims[tenant].claims[MODEL_CLAIM]
    # Tenant objects wait for the tenant's environment: its Namespace, and its quota (claims and pods count
    # against it: the API server refuses them until the quota controller has written the quota's status).
    in_namespace = pulumi.ResourceOptions(depends_on=[wiring.tenancy.tenants[tenant]])
    staging = ModelStaging(f"model-{endpoint.name}", ModelStagingArgs(
        endpoint=endpoint.name, tenant=tenant, namespace=endpoint.namespace, model_name=model.name,
        source=model.source, revision=model.revision, model_class=model.model_class,
        backend=endpoint.endpoint.backend, image=endpoint.image, service_account=WORKLOAD_SERVICE_ACCOUNT,
        credentials_secret=model.credentials_secret, claim=model_claim, skip_await=skip_await,
        source_access=serving.model_staging, placement=placement,
        record={"sizing": endpoint.sizing_file, "image": endpoint.image, "mode": endpoint.mode,
                "dynamoPlatform": plan.matrix.pin("dynamoPlatform").version}), in_namespace)
    pack_domain = plan.pack_domain
    serving_endpoint = ServingEndpoint(f"endpoint-{endpoint.name}", EndpointArgs(
        plan=endpoint, runtime=load_dynamo_runtime(), gpus_per_node=plan.profile.gpu.per_node,
        gpu_product=plan.gpu_product_for(endpoint.tenant.name), rdma_resource=plan.rdma_resource(endpoint),
        networks=network.networks if network else [], model_path=endpoint.model_path,
        model_cache=serving.storage.model_cache, kv_offload=serving.storage.kv_offload,
        model_express_url=wiring.model_express_url, pull_secret=PULL_SECRET if plan.tenant_pull_secret else None,
        api_server_egress=plan.api_server_egress, planner_image=plan.planner_image,
        planner_prometheus_url=serving.planner_prometheus_url, planner_prometheus=serving.planner_prometheus(),
        signals=load_signals()["dynamo"], selector_labels=telemetry.prometheus_selector_labels,
        scrape_interval=telemetry.scrape_interval, inference_pool=serving.gateway_inference_extension,
        evidence_key=annotation_value(endpoint_key(plan, endpoint)),
        topology=TopologyPlacement(TOPOLOGY_NAME, pack_domain) if pack_domain else None, placement=placement),
        pulumi.ResourceOptions(depends_on=[platform, staging, model_claim, *in_namespace.depends_on]))
    if serving.gateway_inference_extension:
        EndpointPicker(f"epp-{endpoint.name}", EndpointPickerArgs(
            endpoint=endpoint.name, tenant=tenant, namespace=endpoint.namespace,
            pin=plan.matrix.workload("endpointPicker"), image=plan.endpoint_picker_image,
            platform_release=platform.release.name,
            platform_namespace=plan.matrix.pin("dynamoPlatform").namespace,
            api_server_egress=plan.api_server_egress, skip_await=skip_await), in_namespace)
    slo = endpoint.endpoint.slo
    Benchmark(f"benchmark-{endpoint.name}", BenchmarkArgs(
        endpoint=endpoint.name, tenant=tenant, namespace=endpoint.namespace, image=serving.validation.benchmark_image,
        service_account=WORKLOAD_SERVICE_ACCOUNT,
        command=aiperf_command(model=model.name, url=serving_endpoint.url, tokenizer=endpoint.tokenizer, isl=slo.isl,
                               osl=slo.osl, concurrency=slo.concurrency, request_count=slo.request_count,
                               artifact_dir=benchmark_artifacts(endpoint.name), isl_stddev=slo.isl_stddev,
                               osl_stddev=slo.osl_stddev, sweep=slo.concurrency_sweep),
        export_file=f"{judged_artifacts(benchmark_artifacts(endpoint.name), slo.concurrency, slo.concurrency_sweep)}/"
                    f"{EXPORT_NAME}",
        thresholds=endpoint.acceptance_thresholds(), graph=serving_endpoint.graph, placement=placement), in_namespace)
    return {"url": serving_endpoint.url, "mode": endpoint.mode, "gpus": endpoint.gpus, "tenant": tenant,
            "sizing": endpoint.sizing_file}, serving_endpoint
