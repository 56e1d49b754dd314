"""The finished plan composition wires: every fact a layer hands a component that is derived from more than one
plan object (the baseline record, the readiness plan, the break-fix Jobs, each endpoint's and service's placement,
evidence key and benchmark command), derived here once, so `ncp.composition` reads facts and decides nothing
(tests/test_layering.py fails on a composition module that calls a plan derivation)."""
from dataclasses import dataclass
from typing import Optional

from ncp.plan.aiperf_args import aiperf_command, judged_artifacts, kserve_command
from ncp.plan.break_fix import NVSENTINEL_ALWAYS_ON, gate_job, handover_job, nvsentinel_modules
from ncp.plan.catalog import ChartPin
from ncp.plan.endpoint_plan import EndpointPlan
from ncp.plan.evidence_key import annotation_value, endpoint_key, service_key
from ncp.plan.inference_services import InferenceServicePlan
from ncp.plan.names import AIPERF_EXPORT, ENSEMBLE_INPUT, RESULTS_MOUNT
from ncp.plan.readiness import ReadinessPlan, readiness_plan
from ncp.plan.record import baseline_record
from ncp.plan.site_plan import NodePlacement, SitePlan

# The operators whose health the telemetry rules watch where the site installs them (matrix chart keys).
HEALTH_WATCHED_OPERATORS = ("gpuOperator", "nvsentinel", "kaiScheduler", "dynamoPlatform", "networkOperator")


@dataclass(frozen=True)
class BenchmarkPlan:
    """The acceptance benchmark Job of one endpoint or service: its command, where it writes the export the judge
    reads, and the thresholds it records."""

    command: list[str]
    export_file: str
    thresholds: dict


@dataclass(frozen=True)
class ServedEndpoint:
    plan: EndpointPlan
    placement: Optional[NodePlacement]  # the tenant's dedicated nodes, or None on shared GPU nodes
    gpu_product: str  # the GPU product label value its workers select nodes by
    rdma_resource: Optional[str]  # the rail resource its workers request; None without RDMA
    evidence_key: str  # the like-for-like key its evidence must match, as the graph's annotation holds it
    benchmark: BenchmarkPlan
    staging_record: dict  # what the model staging Job records beside the staged model


@dataclass(frozen=True)
class ServedService:
    plan: InferenceServicePlan
    placement: Optional[NodePlacement]
    evidence_key: str
    url: str
    metrics_url: str
    benchmark: BenchmarkPlan


@dataclass(frozen=True)
class WiredPlan:
    site: SitePlan
    charts: dict[str, ChartPin]  # every chart the site installs, from its chart mirror where it has one
    chart_after: dict[str, tuple[str, ...]]  # chart -> the charts it installs after (the matrix's dependsOn)
    versions: dict[str, str]  # installed chart -> its pinned version
    baseline_documents: dict  # the baseline record's ConfigMap documents (key -> value, one YAML document each)
    readiness: Optional[ReadinessPlan]
    gate_job: dict  # the return-to-service gate Job template
    handover_job: Optional[dict]  # the node handover Job template; None without the site's storage image
    planner_prometheus: Optional[tuple[str, int]]  # (namespace, port) the planners' egress opens
    gpus_per_node: int  # the site's GPUs over its GPU nodes, rounded up (the capacity alerts' per-node figure)
    rdma_ports_per_node: int  # the NIC-link alert's expected active ports per node: 0 where the site has no RDMA
    operator_namespaces: dict[str, str]  # chart key -> namespace of each installed operator whose health rules watch
    nvsentinel_modules: tuple[str, ...]  # NVSentinel's running modules (their global.<key> toggles) the rules watch
    endpoints: tuple[ServedEndpoint, ...]
    services: tuple[ServedService, ...]


def service_url(service: InferenceServicePlan, port: int, path: str = "") -> str:
    """The in-cluster URL of a Triton service's server (components/serving/triton.py names its Service so)."""
    return f"http://{service.name}.{service.namespace}.svc:{port}{path}"


def benchmark_artifacts(name: str) -> str:
    """Where an endpoint's benchmark writes its artifacts, on the tenant's benchmark-output claim."""
    return f"{RESULTS_MOUNT}/{name}"


def _endpoint(plan: SitePlan, endpoint: EndpointPlan) -> ServedEndpoint:
    model, slo, artifacts = endpoint.endpoint.model, endpoint.endpoint.slo, benchmark_artifacts(endpoint.name)
    command = aiperf_command(model=model.name, url=endpoint.url, tokenizer=endpoint.tokenizer, isl=slo.isl,
                             osl=slo.osl, concurrency=slo.concurrency, request_count=slo.request_count,
                             artifact_dir=artifacts, isl_stddev=slo.isl_stddev, osl_stddev=slo.osl_stddev,
                             sweep=slo.concurrency_sweep)
    export = f"{judged_artifacts(artifacts, slo.concurrency, slo.concurrency_sweep)}/{AIPERF_EXPORT}"
    return ServedEndpoint(
        plan=endpoint, placement=plan.placement(endpoint.tenant.name),
        gpu_product=plan.gpu_product_for(endpoint.tenant.name), rdma_resource=plan.rdma_resource(endpoint),
        evidence_key=annotation_value(endpoint_key(plan, endpoint)),
        benchmark=BenchmarkPlan(command, export, endpoint.acceptance_thresholds()),
        staging_record={"sizing": endpoint.sizing_file, "image": endpoint.image, "mode": endpoint.mode,
                        "dynamoPlatform": plan.matrix.pin("dynamoPlatform").version})


def _service(plan: SitePlan, service: InferenceServicePlan) -> ServedService:
    ports, slo, artifacts = plan.matrix.workload("triton").ports, service.service.slo, benchmark_artifacts(service.name)
    url, metrics_url = service_url(service, ports["http"]), service_url(service, ports["metrics"], "/metrics")
    # With DALI preprocessing clients call the ensemble with an encoded image, so the preprocessing model the
    # thresholds judge runs; without it, the engine's model with its own input tensors.
    command = kserve_command(url=url, model=service.entry_model, inputs=service.service.engine.inputs,
                             image_input=ENSEMBLE_INPUT if service.preprocess_model else None,
                             concurrency=slo.concurrency, request_count=slo.request_count,
                             artifact_dir=artifacts, server_metrics=metrics_url)
    return ServedService(
        plan=service, placement=plan.placement(service.tenant.name),
        evidence_key=annotation_value(service_key(plan, service)), url=url, metrics_url=metrics_url,
        benchmark=BenchmarkPlan(command, f"{artifacts}/{AIPERF_EXPORT}", service.acceptance_thresholds()))


def _nvsentinel_running(plan: SitePlan) -> tuple[str, ...]:
    """The NVSentinel modules the site runs: those its values enable, and the platform connector (always)."""
    return (*(module for module, on in nvsentinel_modules(plan.network_enabled).items() if on), NVSENTINEL_ALWAYS_ON)


def wired_plan(plan: SitePlan) -> WiredPlan:
    """Every derived fact composition hands a component, from the validated plan."""
    storage_image = plan.settings.serving.validation.storage_image
    return WiredPlan(
        site=plan, charts={chart: plan.chart(chart) for chart in plan.layers.charts},
        chart_after={chart: plan.layers.depends_on(chart) for chart in plan.layers.charts},
        versions={chart: plan.matrix.pin(chart).version for chart in plan.layers.charts},
        baseline_documents=baseline_record(plan).documents(), readiness=readiness_plan(plan),
        gate_job=gate_job(plan), handover_job=handover_job(plan, storage_image) if storage_image else None,
        planner_prometheus=plan.serving.planner_prometheus(),
        gpus_per_node=-(-plan.gpu_capacity // plan.site.gpu_nodes),
        rdma_ports_per_node=plan.profile.fabric.nics_per_node if plan.network_enabled else 0,
        operator_namespaces={chart: plan.matrix.pin(chart).namespace for chart in HEALTH_WATCHED_OPERATORS
                             if chart in plan.layers.charts},
        nvsentinel_modules=_nvsentinel_running(plan) if "nvsentinel" in plan.layers.charts else (),
        endpoints=tuple(_endpoint(plan, e) for e in plan.endpoints),
        services=tuple(_service(plan, s) for s in plan.inference_services))
