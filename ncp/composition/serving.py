"""Wire functions of the tenant-facing layers: tenancy, the tenants' storage, the serving platform with its
endpoints and routes, and the Triton inference services."""
import pulumi

from components.model_data import ModelExpress, ModelExpressArgs, ModelStaging, ModelStagingArgs, TenantStorage, \
    TenantStorageArgs
from components.scheduling import TOPOLOGY_NAME
from components.serving import (
    EndpointArgs, EndpointPicker, EndpointPickerArgs, InferenceRoute, RouteArgs, ServingEndpoint, ServingPlatform,
    ServingPlatformArgs, TopologyPlacement,
)
from components.serving.triton import InferenceService, InferenceServiceArgs
from components.tenancy import PULL_SECRET, WORKLOAD_SERVICE_ACCOUNT, Tenancy, TenancyArgs
from components.validation import Benchmark, BenchmarkArgs
from ncp.composition.wiring import Serving, Wiring, present
from ncp.plan.catalog import load_dynamo_runtime, load_signals, network_access, tenant_access
from ncp.plan.endpoint_plan import EndpointPlan
from ncp.plan.inference_services import InferenceServicePlan
from ncp.plan.names import MODEL_CLAIM
from ncp.plan.wired import ServedEndpoint, ServedService


def wire_tenancy(w: Wiring) -> None:
    plan, settings = w.plan, w.plan.settings
    w.tenancy = Tenancy("tenancy", TenancyArgs(
        tenants=plan.tenant_specs, gateway_namespace=settings.tenancy.gateway_namespace,
        gateway_ports=plan.gateway_ports, monitoring_namespace=settings.tenancy.monitoring_namespace,
        platform_namespaces={ns.layer: ns.name for ns in plan.layers.namespaces}, network=network_access(),
        access=tenant_access(), storage_classes=plan.tenant_storage_classes,
        ngc_api_key=w.ngc_api_key if plan.tenant_pull_secret else None, admission=plan.admission,
        rail_attachments=w.network.attachments if w.network else (),
        signer_keys=tuple(settings.tenancy.image_signatures.public_keys) if settings.tenancy.image_signatures else ()),
        # The tenants' rail attachments need the Multus CRD, which the Network Operator applies.
        pulumi.ResourceOptions(depends_on=[w.network] if w.network else []))


def wire_tenant_storage(w: Wiring) -> None:
    """The model-artifacts and benchmark-output claims of every tenant that serves (endpoints or services)."""
    plan, tenancy = w.plan, w.required("tenancy")
    served: list[EndpointPlan | InferenceServicePlan] = [*plan.endpoints, *plan.inference_services]
    namespaces = {p.tenant.name: p.namespace for p in served}
    if not namespaces:
        return
    storage = present(plan.serving.storage, "storage tiers")
    w.claims = {tenant: TenantStorage(f"storage-{tenant}", TenantStorageArgs(
        tenant=tenant, namespace=namespace, model_artifacts=storage.model_artifacts,
        benchmark_output=storage.benchmark_output, skip_await=plan.settings.skip_await),
        # Claims count against the tenant's quota: the API server refuses them until the quota exists.
        pulumi.ResourceOptions(depends_on=[tenancy.tenants[tenant]]))
        for tenant, namespace in namespaces.items()}


def wire_serving(w: Wiring) -> None:
    """Dynamo's platform, a ModelExpress server in each serving tenant's namespace where the site runs ModelExpress
    (the pinned server has no authentication: docs/decisions/0005-model-express-per-tenant.md), every endpoint, then
    the gateway's HTTPRoutes after the pools they name."""
    plan = w.plan
    if "dynamoPlatform" not in plan.layers.charts:
        return
    namespace = w.required("baseline").namespace("dynamoPlatform")
    model_express_urls = {}
    if plan.serving.model_express:
        pin, tenancy = plan.matrix.workload("modelExpress"), w.required("tenancy")
        cache = present(plan.serving.storage, "storage tiers").model_cache
        for tenant, tenant_namespace in plan.model_express_namespaces.items():
            model_express_urls[tenant] = ModelExpress(f"model-express-{tenant}", ModelExpressArgs(
                namespace=tenant_namespace, image=pin.images["server"], port=pin.ports["grpc"], cache=cache,
                skip_await=plan.settings.skip_await),
                # Its pod and claim count against the tenant's quota, which must exist first.
                pulumi.ResourceOptions(depends_on=[tenancy.tenants[tenant]])).url
    platform = ServingPlatform("serving", ServingPlatformArgs(
        pin=w.wired.charts["dynamoPlatform"], namespace=namespace, skip_await=plan.settings.skip_await,
        monitor_labels=plan.settings.telemetry.prometheus_selector_labels),
        w.after("dynamoPlatform"))
    w.serving = Serving(platform, model_express_urls)
    graphs = {e.plan.name: _endpoint(w, e) for e in w.wired.endpoints}
    for route in plan.routes:
        InferenceRoute(f"route-{route.name}", RouteArgs(
            name=route.name, tenant=route.tenant, namespace=route.namespace, gateway=route.gateway,
            gateway_namespace=route.gateway_namespace, section_name=route.section_name, hostnames=route.hostnames,
            path_prefix=route.path_prefix, backends=tuple((b.pool, b.weight) for b in route.backends)),
            pulumi.ResourceOptions(depends_on=[graphs[b.pool] for b in route.backends]))


def _endpoint(w: Wiring, served: ServedEndpoint) -> ServingEndpoint:
    plan, serving, telemetry, skip_await = w.plan, w.plan.serving, w.plan.settings.telemetry, w.plan.settings.skip_await
    endpoint, placement, benchmark = served.plan, served.placement, served.benchmark
    model, tenant = endpoint.endpoint.model, endpoint.tenant.name
    platform, model_claim = w.required("serving").platform, w.claims[tenant].claims[MODEL_CLAIM]
    # Tenant objects wait for the tenant's environment: its Namespace, and its quota (claims and pods count
    # against it: the API server refuses them until the quota controller has written the quota's status).
    environment = w.required("tenancy").tenants[tenant]
    in_namespace = pulumi.ResourceOptions(depends_on=[environment])
    storage = present(serving.storage, "storage tiers")
    benchmark_image = present(serving.validation.benchmark_image, "the benchmark image")
    staging = ModelStaging(f"model-{endpoint.name}", ModelStagingArgs(
        endpoint=endpoint.name, tenant=tenant, namespace=endpoint.namespace, model_name=model.name,
        source=model.source, revision=model.revision, model_class=model.model_class,
        backend=endpoint.endpoint.backend, image=endpoint.image, service_account=WORKLOAD_SERVICE_ACCOUNT,
        credentials_secret=model.credentials_secret, claim=model_claim, skip_await=skip_await,
        source_access=serving.model_staging, placement=placement,
        record=served.staging_record), in_namespace)
    pack_domain = plan.pack_domain
    graph = ServingEndpoint(f"endpoint-{endpoint.name}", EndpointArgs(
        plan=endpoint, runtime=load_dynamo_runtime(), gpus_per_node=plan.profile.gpu.per_node,
        gpu_product=served.gpu_product, rdma_resource=served.rdma_resource,
        networks=w.networks, model_path=endpoint.model_path,
        model_cache=storage.model_cache, kv_offload=storage.kv_offload,
        model_express_url=w.required("serving").model_express_urls.get(tenant),
        pull_secret=PULL_SECRET if plan.tenant_pull_secret else None,
        api_server_egress=plan.api_server_egress, planner_image=plan.planner_image,
        planner_prometheus_url=serving.planner_prometheus_url, planner_prometheus=w.wired.planner_prometheus,
        signals=load_signals()["dynamo"], selector_labels=telemetry.prometheus_selector_labels,
        scrape_interval=telemetry.scrape_interval, inference_pool=serving.gateway_inference_extension,
        evidence_key=served.evidence_key,
        topology=TopologyPlacement(TOPOLOGY_NAME, pack_domain) if pack_domain else None, placement=placement,
        otlp_endpoint=telemetry.otlp_endpoint, otlp_collector=telemetry.otlp_collector()),
        pulumi.ResourceOptions(depends_on=[platform, staging, model_claim, environment]))
    if serving.gateway_inference_extension:
        EndpointPicker(f"epp-{endpoint.name}", EndpointPickerArgs(
            endpoint=endpoint.name, tenant=tenant, namespace=endpoint.namespace,
            pin=plan.matrix.workload("endpointPicker"), image=plan.endpoint_picker_image,
            api_server_egress=plan.api_server_egress, skip_await=skip_await), in_namespace)
    Benchmark(f"benchmark-{endpoint.name}", BenchmarkArgs(
        endpoint=endpoint.name, tenant=tenant, namespace=endpoint.namespace, image=benchmark_image,
        service_account=WORKLOAD_SERVICE_ACCOUNT, command=benchmark.command, export_file=benchmark.export_file,
        thresholds=benchmark.thresholds, graph=graph.graph, placement=placement), in_namespace)
    w.endpoints[endpoint.name] = {"url": graph.url, "mode": endpoint.mode, "gpus": endpoint.gpus, "tenant": tenant,
                                  "sizing": endpoint.sizing_file}
    return graph


def wire_inference_services(w: Wiring) -> None:
    for served in w.wired.services:
        w.inference_services[served.plan.name] = _inference_service(w, served)


def _inference_service(w: Wiring, served: ServedService) -> dict:
    service, benchmark = served.plan, served.benchmark
    plan, telemetry, tenant = w.plan, w.plan.settings.telemetry, service.tenant.name
    tenant_environment = w.required("tenancy").tenants[tenant]
    server = InferenceService(f"inference-{service.name}", InferenceServiceArgs(
        plan=service, ports=plan.matrix.workload("triton").ports, signals=load_signals()["triton"],
        model_claim=w.claims[tenant].claims[MODEL_CLAIM], service_account=WORKLOAD_SERVICE_ACCOUNT,
        pull_secret=PULL_SECRET if plan.tenant_pull_secret else None,
        selector_labels=telemetry.prometheus_selector_labels, scrape_interval=telemetry.scrape_interval,
        skip_await=plan.settings.skip_await, source_access=plan.serving.model_staging,
        evidence_key=served.evidence_key, tenant_nodes=served.placement),
        # The tenant's queue schedules the build and the server; its environment holds the quota they count on.
        pulumi.ResourceOptions(depends_on=[w.required("scheduling"), tenant_environment]))
    Benchmark(f"benchmark-{service.name}", BenchmarkArgs(
        endpoint=service.name, tenant=tenant, namespace=service.namespace,
        image=present(plan.serving.validation.benchmark_image, "the benchmark image"),
        service_account=WORKLOAD_SERVICE_ACCOUNT, command=benchmark.command, export_file=benchmark.export_file,
        thresholds=benchmark.thresholds, graph=server.deployment, placement=served.placement),
        pulumi.ResourceOptions(depends_on=[tenant_environment]))
    return {"url": server.url, "gpus": service.gpu_units, "tenant": tenant, "engineDir": service.engine_dir}
