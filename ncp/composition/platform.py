"""Wire functions of the cluster-wide layers: baseline, network, GPU, scheduling, readiness, health, telemetry and
the validation suite. Each takes the wiring so far and sets its component; every fact comes resolved from the plan."""
import pulumi

from components.cluster_baseline import ClusterBaseline, ClusterBaselineArgs
from components.dashboards import site_dashboards
from components.gpu_enablement import GpuEnablement, GpuEnablementArgs
from components.health import Health, HealthArgs
from components.network_enablement import NetworkEnablement, NetworkEnablementArgs
from components.break_fix import BreakFix, BreakFixArgs
from components.readiness import Readiness, ReadinessArgs
from components.scheduling import Scheduling, SchedulingArgs
from components.telemetry import Telemetry, TelemetryArgs
from components.validation import ValidationSuite, ValidationSuiteArgs
from ncp.composition.wiring import Wiring, present
from ncp.plan.catalog import MONITORING_PEER, TENANTS_PEER, load_dynamo_runtime, load_signals, network_access
from ncp.plan.layers import BASELINE_LAYER, READINESS_LAYER, READINESS_NAMESPACE, VALIDATION_LAYER
from ncp.plan.names import TENANT_NAMESPACE_PREFIX


def wire_baseline(w: Wiring) -> None:
    plan = w.plan
    namespaces = list(plan.layers.namespaces)
    w.baseline = ClusterBaseline("baseline", ClusterBaselineArgs(
        site=plan.site.name, environment=plan.environment.value, profile=plan.profile.name,
        namespaces=namespaces, record=w.wired.baseline_documents, network=network_access(),
        peers={TENANTS_PEER: [spec.namespace for spec in plan.tenant_specs],
               MONITORING_PEER: [plan.settings.tenancy.monitoring_namespace],
               **{ns.layer: [ns.name] for ns in namespaces}},
        ngc_api_key=w.ngc_api_key, pull_secret_layers=[VALIDATION_LAYER]))


def wire_network(w: Wiring) -> None:
    plan, baseline = w.plan, w.required("baseline")
    if "networkOperator" not in plan.layers.charts:
        return
    net, fabric = plan.settings.network_operator, plan.profile.fabric
    w.network = NetworkEnablement("network", NetworkEnablementArgs(
        pin=w.wired.charts["networkOperator"], namespace=baseline.namespace("networkOperator"),
        namespace_name=plan.matrix.pin("networkOperator").namespace, rails=plan.rails,
        exposure=present(fabric.rdma_exposure, "the profile's RDMA exposure"),
        rdma_resource=present(fabric.rdma_resource_name, "the profile's RDMA resource name"),
        managed_nic_driver=plan.managed_nic_driver, doca_driver_version=net.doca_driver_version, mtu=net.mtu,
        per_node_block_size=net.per_node_block_size, gpu_node_selector=plan.gpu_node_selector,
        skip_await=plan.settings.skip_await, operator_metrics=load_signals()["networkOperator"],
        scrape_interval=plan.settings.telemetry.scrape_interval,
        monitor_labels=plan.settings.telemetry.prometheus_selector_labels), w.after("networkOperator"))
    w.install(("networkOperator",), w.network)


def wire_gpu(w: Wiring) -> None:
    plan, baseline, telemetry = w.plan, w.required("baseline"), w.plan.settings.telemetry
    w.gpu = GpuEnablement("gpu", GpuEnablementArgs(
        pin=w.wired.charts["gpuOperator"], namespace=baseline.namespace("gpuOperator"),
        namespace_name=plan.matrix.pin("gpuOperator").namespace,
        managed_driver=plan.managed_driver, mig_capable=plan.profile.gpu.mig.supported,
        mig=plan.mig, time_slicing=plan.time_slicing, gpudirect_rdma=plan.profile.has_gpudirect_rdma,
        host_mofed=plan.host_mofed, scrape_interval=telemetry.scrape_interval,
        driver_upgrade_policy=(plan.driver_upgrade_policy.model_dump(by_alias=True)
                               if plan.driver_upgrade_policy else None),
        monitor_labels=telemetry.prometheus_selector_labels, skip_await=plan.settings.skip_await),
        w.after("gpuOperator"))
    w.install(("gpuOperator",), w.gpu)


def wire_scheduling(w: Wiring) -> None:
    plan, baseline = w.plan, w.required("baseline")
    w.scheduling = Scheduling("scheduling", SchedulingArgs(
        kai_pin=w.wired.charts["kaiScheduler"], grove_pin=w.wired.charts["grove"],
        kai_namespace=baseline.namespace("kaiScheduler"), grove_namespace=baseline.namespace("grove"),
        site_gpus=plan.gpu_capacity, queues=plan.tenant_queues, platform_queues=plan.platform_queues,
        placement_strategy=plan.settings.scheduling.placement_strategy, topology_aware=plan.topology_aware,
        topology_levels=plan.topology_levels, skip_await=plan.settings.skip_await,
        queue_metrics=load_signals()["kai"], scrape_interval=plan.settings.telemetry.scrape_interval,
        monitor_labels=plan.settings.telemetry.prometheus_selector_labels), w.after("kaiScheduler"))
    w.install(("kaiScheduler", "grove"), w.scheduling)


def wire_readiness(w: Wiring) -> None:
    plan, network, readiness = w.plan, w.network, w.wired.readiness
    storage_image = plan.settings.serving.validation.storage_image
    # Without a fabric only storage is made ready, which needs the site's fio image.
    if readiness is None or not (readiness.fabric and network is not None or storage_image and readiness.tiers):
        return
    Readiness("readiness", ReadinessArgs(
        plan=readiness, namespace=w.required("baseline").namespace(READINESS_LAYER),
        nccl_pin=plan.matrix.workload("ncclTests"), nccl_image=plan.settings.serving.validation.nccl_image,
        fio_image=storage_image,
        rail_attachments=network.attachments if network else (),
        rdma_resource=plan.profile.fabric.rdma_resource_name or "",
        capabilities=load_dynamo_runtime().rdma_capabilities,
        gpu_product=plan.shared_gpu_product, queue=READINESS_NAMESPACE),
        pulumi.ResourceOptions(depends_on=[d for d in (network, w.gpu, w.scheduling) if d is not None]))


# RA: Break-Fix Architecture: "Re-admit the resource only after it matches the accepted baseline."
def wire_break_fix(w: Wiring) -> None:
    """The return-to-service gate and the node handover Jobs, suspended, and the guard that keeps NVSentinel from
    returning a node to service by itself."""
    BreakFix("break-fix", BreakFixArgs(
        namespace=w.required("baseline").namespace(READINESS_LAYER), gate_job=w.wired.gate_job,
        handover_job=w.wired.handover_job, health_namespace=w.plan.matrix.pin("nvsentinel").namespace),
        w.after("nvsentinel"))


def wire_health(w: Wiring) -> None:
    plan, settings = w.plan, w.plan.settings
    w.health = Health("health", HealthArgs(
        pin=w.wired.charts["nvsentinel"], namespace=w.required("baseline").namespace("nvsentinel"),
        dcgm_endpoint=w.required("gpu").dcgm_endpoint, remediation=plan.remediation,
        nic_monitor=plan.network_enabled, tenant_namespaces=[spec.namespace for spec in plan.tenant_specs],
        drain_timeout_seconds=settings.health.drain_timeout_seconds,
        scrape_interval=settings.telemetry.scrape_interval,
        monitor_labels=settings.telemetry.prometheus_selector_labels, skip_await=settings.skip_await,
        existing_datastore_secret=settings.health.datastore_secret), w.after("nvsentinel"))
    w.install(("nvsentinel",), w.health)


def wire_telemetry(w: Wiring) -> None:
    plan, baseline, telemetry = w.plan, w.required("baseline"), w.plan.settings.telemetry
    prometheus = "kubePrometheusStack" in plan.layers.charts
    signals = load_signals()
    w.telemetry = Telemetry("telemetry", TelemetryArgs(
        rules_namespace=baseline.namespace(BASELINE_LAYER),
        dcgm=signals["dcgm"], kai=signals["kai"], nvsentinel=signals["nvsentinel"],
        kube_state=signals["kubeStateMetrics"], node_exporter=signals["nodeExporter"],
        worker_component_types="|".join(signals["dynamo"].component_types["worker"]),
        tenant_namespace_prefix=TENANT_NAMESPACE_PREFIX, selector_labels=telemetry.prometheus_selector_labels,
        gpu_temperature_celsius=telemetry.gpu_temperature_celsius, dashboards=site_dashboards(signals),
        dashboard_label=next(iter(telemetry.dashboard_label.items())),
        prometheus_pin=w.wired.charts["kubePrometheusStack"] if prometheus else None,
        prometheus_namespace=baseline.namespace("kubePrometheusStack") if prometheus else None,
        prometheus_storage=plan.prometheus_storage, skip_await=plan.settings.skip_await,
        site_gpus=plan.gpu_capacity, gpus_per_node=w.wired.gpus_per_node,
        rdma_ports_per_node=w.wired.rdma_ports_per_node, gpu_operator=signals["gpuOperator"],
        operator_namespaces=w.wired.operator_namespaces, controller_runtime=signals["controllerRuntime"],
        dynamo_operator=signals["dynamoOperator"], network_operator=signals["networkOperator"],
        nvsentinel_modules=w.wired.nvsentinel_modules))


def wire_validation(w: Wiring) -> None:
    plan = w.plan
    if not plan.layers.validation_suite:
        return
    suite, baseline = plan.matrix.workload("validationSuite"), w.required("baseline")
    ValidationSuite("validation", ValidationSuiteArgs(
        namespace=baseline.namespace(VALIDATION_LAYER),
        image=present(plan.serving.validation.suite_image, "the validation suite image"),
        suite_file=present(suite.suite_file, "the validation suite file"),
        gpu_operator_namespace=plan.matrix.pin("gpuOperator").namespace,
        overrides=suite.overrides, mig_strategy=plan.mig.strategy if plan.mig else None, version=suite.version,
        results=plan.serving.storage.benchmark_output if plan.serving.storage else None,
        checks=suite.read_only_checks, reads=suite.reads, pull_secret=baseline.pull_secret(VALIDATION_LAYER),
        skip_await=plan.settings.skip_await))
