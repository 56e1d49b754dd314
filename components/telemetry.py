"""Telemetry layer: site rules (GPU health with stable tenant/node/GPU labels, tenant GPU usage against KAI quota,
NVSentinel break-fix state), one Grafana dashboard per operator layer, and an optional Prometheus stack that is a
recorded local (non-NVIDIA) decision."""
import json
from dataclasses import dataclass, field
from typing import Callable, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import Layer, helm_release, labels, required
from components.dashboards import Dashboard
from ncp.plan.break_fix import break_fix
from ncp.plan.catalog import ChartPin, MetricSource
from ncp.plan.names import SERIES_COMPONENT_TYPE, SERIES_ENDPOINT, SERIES_MODEL, SERIES_TENANT, runbook_url
from ncp.plan.serving import StorageTier

RULES_NAME = "ncp-gpu-health"
XID_WINDOW = "15m"  # how long a new XID code keeps NcpGpuXidError firing


@dataclass(frozen=True)
class TelemetryArgs:
    """Arguments of Telemetry: the site's recording and alerting rules, dashboards and, when the site
    records that decision, its own Prometheus stack.

    Attributes:
        rules_namespace: the namespace of the site rules and dashboards.
        dcgm: the DCGM exporter's metric names and labels (data/telemetry-signals.yaml `dcgm`).
        kai: the KAI Scheduler's metric names and labels.
        nvsentinel: NVSentinel's metric names and labels.
        kube_state: kube-state-metrics' pod state series (data/telemetry-signals.yaml `kubeStateMetrics`).
        node_exporter: node_exporter's RDMA NIC port state (data/telemetry-signals.yaml `nodeExporter`).
        gpu_operator: the GPU Operator's status gauges (data/telemetry-signals.yaml `gpuOperator`); None renders no GPU
            Operator health rules. Default: None.
        operator_namespaces: the namespace of each installed operator whose health the rules watch, by chart key
            (`gpuOperator`, `nvsentinel`, `kaiScheduler`, `dynamoPlatform`, `networkOperator`); an operator not
            installed gets no rule. Default: {}.
        controller_runtime: controller-runtime's reconcile counters (data/telemetry-signals.yaml `controllerRuntime`),
            which the Dynamo and Network operators export; None renders no reconcile-error rule. Default: None.
        dynamo_operator: how the Dynamo operator's metrics are scraped (its chart's ServiceMonitor's job;
            data/telemetry-signals.yaml `dynamoOperator`); None renders no Dynamo operator rule. Default: None.
        network_operator: how the Network Operator's metrics are scraped (the program's ServiceMonitor's job;
            data/telemetry-signals.yaml `networkOperator`); None renders no Network Operator rule. Default: None.
        nvsentinel_modules: the NVSentinel modules the site runs, by their chart toggle (`faultQuarantine`, ...,
            `platformConnector`); each gets its own down rule. Default: ().
        worker_component_types: the Dynamo worker component types as a regex alternation (`worker|prefill|decode`).
        tenant_namespace_prefix: tenant namespaces and their KAI leaf queues are both `<prefix><tenant>`.
        selector_labels: the labels the site's Prometheus selects rules by.
        gpu_temperature_celsius: the GPU temperature above which the temperature alert fires. Unit: degrees Celsius.
        dashboards: the site dashboards.
        dashboard_label: the label (key, value) the site's Grafana dashboard sidecar loads ConfigMaps by.
        prometheus_pin: the kube-prometheus-stack chart, set only when the site records the Prometheus stack decision;
            None installs none.
        prometheus_namespace: the layer namespace of that Prometheus stack; None without it.
        prometheus_storage: the telemetry-retention tier backing the stack's Prometheus; None keeps no volume.
        skip_await: whether Pulumi skips waiting for the resources to become ready.
        site_gpus: the GPUs the site's queues share (capacity follows health); 0 renders no capacity rules. Unit:
            GPUs in the scheduler's units (MIG devices on partitioned nodes). Default: 0.
        gpus_per_node: what one quarantined GPU node takes away. Unit: GPUs in the scheduler's units. Default: 0.
        rdma_ports_per_node: the RDMA NICs (rails) of a GPU node (the profile's fabric.nicsPerNode); 0 renders no
            NIC link rules. Unit: NIC ports. Default: 0.
    """

    rules_namespace: k8s.core.v1.Namespace
    dcgm: MetricSource
    kai: MetricSource
    nvsentinel: MetricSource
    kube_state: MetricSource
    node_exporter: MetricSource
    worker_component_types: str
    tenant_namespace_prefix: str
    selector_labels: dict[str, str]
    gpu_temperature_celsius: int
    dashboards: list[Dashboard]
    dashboard_label: tuple[str, str]
    prometheus_pin: Optional[ChartPin]
    prometheus_namespace: Optional[k8s.core.v1.Namespace]
    prometheus_storage: Optional[StorageTier]
    skip_await: bool
    site_gpus: int = 0
    gpus_per_node: int = 0
    rdma_ports_per_node: int = 0
    gpu_operator: Optional[MetricSource] = None
    operator_namespaces: dict[str, str] = field(default_factory=dict)
    controller_runtime: Optional[MetricSource] = None
    dynamo_operator: Optional[MetricSource] = None
    network_operator: Optional[MetricSource] = None
    nvsentinel_modules: tuple[str, ...] = ()


def tenant_from(expr: str, source_label: str, prefix: str) -> str:
    """Add a stable `tenant` label derived from a namespace or queue name (<prefix><tenant> -> <tenant>)."""
    return f'label_replace({expr}, "tenant", "$1", "{source_label}", "{prefix}(.+)")'


def _alert(name: str, expr: str, for_: str, severity: str, layer: str, summary: str, description: str) -> dict:
    """An alert whose `layer` label is its owning layer by the documented mapping (data/break-fix.yaml alertLayers;
    `layer` only for alerts it does not list yet), with its fault class's runbook where it has one, else its layer's
    (docs/runbooks/<layer>.md)."""
    facts = break_fix()
    runbook = facts.runbook_of(name)
    annotations = {"summary": summary, "description": description,
                   "runbook_url": str(runbook) if runbook else runbook_url(layer, name)}
    return {"alert": name, "expr": expr, "for": for_,
            "labels": {"severity": severity, "layer": facts.alert_layers.get(name, layer)}, "annotations": annotations}


def new_xid(per_gpu: Callable[[str], str], xid: str) -> str:
    """DCGM_FI_DEV_XID_ERRORS is a last-value gauge (dcgm-exporter default-counters.csv: "Value of the last XID error
    encountered"): it keeps the code of an XID long past, so `> 0` alone fires until the exporter restarts. A new
    non-zero code is a change of the value within the window."""
    return f"{per_gpu(f'changes({xid}[{XID_WINDOW}])')} > 0 and {per_gpu(xid)} > 0"


def gpu_health_groups(args: TelemetryArgs) -> list[dict]:
    m = args.dcgm.metrics
    keep = ", ".join(["node", *args.dcgm.gpu_labels, "tenant"])
    namespace = required(args.dcgm.workload_namespace_label, "data/telemetry-signals.yaml dcgm.workloadNamespaceLabel")

    def per_gpu(expr: str) -> str:
        return f"max by ({keep}) ({tenant_from(expr, namespace, args.tenant_namespace_prefix)})"

    def alert(name, expr, for_, severity, summary, action):
        return _alert(name, expr, for_, severity, "gpu", summary,
                      f"{summary} on node {{{{ $labels.node }}}} GPU {{{{ $labels.gpu }}}} "
                      f"(tenant {{{{ $labels.tenant }}}}). {action}")

    # Full GPUs only: on a MIG instance the utilisation field reads 0 or is missing (data/telemetry-signals.yaml).
    allocated = f'{{{namespace}=~"{args.tenant_namespace_prefix}.+", {args.dcgm.labels["migInstance"]}=""}}'
    recording = [
        {"record": "ncp:gpu_utilization:percent", "expr": per_gpu(m["utilization"])},
        {"record": "ncp:gpu_temperature:celsius", "expr": per_gpu(m["temperature"])},
        {"record": "ncp:gpu_power:watts", "expr": per_gpu(m["powerUsage"])},
        # Both sides of the ratio carry the same labels; the tenant is added to the result.
        {"record": "ncp:gpu_framebuffer_used:ratio",
         "expr": per_gpu(f"{m['framebufferUsed']} / ({m['framebufferUsed']} + {m['framebufferFree']})")},
        {"record": "ncp:gpu_xid_errors:last", "expr": per_gpu(m["xidErrors"])},
    ]
    alerts = [
        alert("NcpGpuXidError", new_xid(per_gpu, m["xidErrors"]), "0m", "critical", "GPU reported a new XID error",
              "NVSentinel classifies and quarantines per its rules; repeated XIDs need operator-domain handling."),
        alert("NcpGpuRowRemapFailure", f"{per_gpu(m['rowRemapFailure'])} > 0", "0m", "critical",
              "GPU row remapping failed", "Drain the node and reset or replace the GPU."),
        alert("NcpGpuUncorrectableRemappedRows",
              f"{per_gpu('increase(' + m['uncorrectableRemappedRows'] + '[1h])')} > 0", "0m", "warning",
              "GPU remapped rows after uncorrectable memory errors", "Schedule a GPU reset at the next drain."),
        alert("NcpGpuTemperatureHigh", f"{per_gpu(m['temperature'])} > {args.gpu_temperature_celsius}", "5m",
              "warning", f"GPU temperature above {args.gpu_temperature_celsius} C", "Check cooling and power capping."),
        # Only GPUs attributed to a pod in a tenant namespace count as allocated.
        alert("NcpGpuAllocatedButIdle", f"{per_gpu(m['utilization'] + allocated)} < 5", "30m", "info",
              "GPU allocated to a tenant workload but idle", "Review the workload's sizing or queue quota."),
    ]
    return [{"name": f"{RULES_NAME}.rules", "rules": recording}, {"name": f"{RULES_NAME}.alerts", "rules": alerts}]


def tenant_usage_groups(args: TelemetryArgs) -> list[dict]:
    """GPUs each tenant's KAI leaf queue holds against its guaranteed quota."""
    m, queue = args.kai.metrics, args.kai.labels["queue"]

    def per_tenant(metric: str) -> str:
        selected = f'{metric}{{{queue}=~"{args.tenant_namespace_prefix}.+"}}'
        return f"max by (tenant) ({tenant_from(selected, queue, args.tenant_namespace_prefix)})"

    records = [
        {"record": "ncp:tenant_gpu_allocated:count", "expr": per_tenant(m["queueAllocatedGpus"])},
        {"record": "ncp:tenant_gpu_quota:count", "expr": per_tenant(m["queueDeservedGpus"])},
    ]
    alerts = [_alert(
        "NcpTenantAboveGpuQuota", "ncp:tenant_gpu_allocated:count > ncp:tenant_gpu_quota:count", "30m", "info",
        "scheduling", "Tenant runs above its guaranteed GPU quota",
        "Tenant {{ $labels.tenant }} holds {{ $value }} GPUs, more than its guaranteed quota; the excess is "
        "preemptible by other tenants' in-quota work (KAI over-quota weight).")]
    return [{"name": "ncp-tenant-usage.rules", "rules": records},
            {"name": "ncp-tenant-usage.alerts", "rules": alerts}]


def break_fix_groups(args: TelemetryArgs) -> list[dict]:
    """NVSentinel's quarantine and drain state: nodes taken out of service and work waiting to be drained."""
    m, node = args.nvsentinel.metrics, args.nvsentinel.labels["node"]
    records = [
        {"record": "ncp:node_quarantined:bool", "expr": f"max by ({node}) ({m['quarantinedNodes']})"},
        {"record": "ncp:nodes_quarantined:count", "expr": f"sum(max by ({node}) ({m['quarantinedNodes']}))"},
        {"record": "ncp:drain_queue:depth", "expr": f"sum({m['drainQueueDepth']})"},
    ]
    alerts = [
        _alert("NcpNodeQuarantined", "ncp:node_quarantined:bool > 0", "1h", "warning", "health",
               "Node quarantined by NVSentinel for over an hour",
               "Node {{ $labels.node }} is cordoned for a GPU or system fault; finish its break-fix (remediation, "
               "reset or RMA) and return it to service."),
        _alert("NcpDrainBacklog", "ncp:drain_queue:depth > 0", "30m", "warning", "health",
               "NVSentinel node drains pending for over 30 minutes",
               "{{ $value }} drain events wait in the node drainer's queue; check blocked evictions."),
    ]
    return [{"name": "ncp-break-fix.rules", "rules": records}, {"name": "ncp-break-fix.alerts", "rules": alerts}]


def tenant_pod_groups(args: TelemetryArgs) -> list[dict]:
    """Tenant pods the scheduler cannot place (quota, pool capacity, a selector no node matches) and containers in
    a crash loop, from kube-state-metrics; each series exists only while the state holds."""
    m, lb, prefix = args.kube_state.metrics, args.kube_state.labels, args.tenant_namespace_prefix
    tenant_ns = f'{lb["namespace"]}=~"{prefix}.+"'
    crash = f'{lb["reason"]}="{args.kube_state.label_values["crashLoop"]}"'

    def per_pod(selector: str, *extra: str) -> str:
        keep = ", ".join(["tenant", lb["namespace"], lb["pod"], *extra])
        return f"max by ({keep}) ({tenant_from(selector, lb['namespace'], prefix)})"

    return [{"name": "ncp-tenant-pods.alerts", "rules": [
        _alert("NcpTenantPodUnschedulable", f"{per_pod(m['podUnschedulable'] + '{' + tenant_ns + '}')} > 0", "15m",
               "warning", "scheduling", "Tenant pod unschedulable for 15 minutes",
               "Pod {{ $labels.namespace }}/{{ $labels.pod }} of tenant {{ $labels.tenant }} cannot be placed: "
               "check its events (quota, pool capacity, node selector, tolerations)."),
        _alert("NcpTenantPodCrashLooping",
               f"{per_pod(m['containerWaitingReason'] + '{' + tenant_ns + ', ' + crash + '}', lb['container'])} > 0",
               "15m", "warning", "serving", "Tenant container in CrashLoopBackOff for 15 minutes",
               "Container {{ $labels.container }} of {{ $labels.namespace }}/{{ $labels.pod }} (tenant "
               "{{ $labels.tenant }}) keeps crashing: read its previous logs."),
    ]}]


# RA: Telemetry And Observability: "those signals must be correlated with model, endpoint, tenant"
def correlation_groups(args: TelemetryArgs) -> list[dict]:
    """Which GPUs on which nodes serve each endpoint: the endpoint's worker targets (`up`, labelled by its PodMonitor
    with tenant/endpoint/model/component_type and the target's namespace/pod) joined on namespace and pod to the DCGM
    exporter's pod attribution (exported_namespace/exported_pod). "Endpoint slow -> which GPU": multiply a serving
    record by it (components/dashboards.py slow_endpoint_gpus, a panel of the endpoint dashboard)."""
    dcgm, keep = args.dcgm, [SERIES_TENANT, SERIES_ENDPOINT, SERIES_MODEL, SERIES_COMPONENT_TYPE]
    gpu = ["node", *dcgm.gpu_labels]
    workers = f'up{{{SERIES_ENDPOINT}!="", {SERIES_COMPONENT_TYPE}=~"{args.worker_component_types}"}} == 1'
    exported = f'{dcgm.metrics["utilization"]}{{{dcgm.workload_namespace_label}!=""}}'
    for label in ("namespace", "pod"):
        exported = f'label_replace({exported}, "{label}", "$1", "exported_{label}", "(.+)")'
    join = (f"group by ({', '.join(keep)}, namespace, pod) ({workers}) * on (namespace, pod) "
            f"group_right ({', '.join(keep)}) group by (namespace, pod, {', '.join(gpu)}) ({exported})")
    return [{"name": "ncp-correlation.rules", "rules": [
        {"record": "ncp:endpoint_gpu:info", "expr": f"max by ({', '.join(keep + gpu)}) ({join})"}]}]


OPERATOR_DOWN_FOR = "15m"  # a restart or a leader handover takes well under this


def operator_health_groups(args: TelemetryArgs) -> list[dict]:
    """The operators the serving platform depends on: the GPU Operator reconciles (its own status gauges, which its
    own ServiceMonitor scrapes), NVSentinel runs (its chart's PodMonitor targets; with none up, faults go
    unquarantined; and each of its modules), KAI's queue controller runs (the program's ServiceMonitor; without it the
    quota rules read nothing), the Dynamo operator and the Network Operator run and reconcile (controller-runtime's
    counters). A silent exporter is "down", not "healthy": `absent` on what each always exports while it runs."""
    ns, alerts = args.operator_namespaces, []
    if "gpuOperator" in ns and args.gpu_operator is not None:
        m, own = args.gpu_operator.metrics, f'{{namespace="{ns["gpuOperator"]}"}}'
        reconciled = args.gpu_operator.label_values["reconciled"]
        alerts += [
            _alert("NcpGpuOperatorDown", f"absent({m['reconciliationStatus']}{own})", OPERATOR_DOWN_FOR, "critical",
                   "gpu", "GPU Operator not running or not scraped",
                   "No GPU Operator status has been scraped for 15 minutes: drivers, device plugin and DCGM exporter "
                   "are not reconciled; check the gpu-operator Deployment and its ServiceMonitor."),
            _alert("NcpGpuOperatorReconcileFailing", f"max({m['reconciliationStatus']}{own}) < {reconciled}", "30m",
                   "warning", "gpu", "GPU Operator has not reconciled for 30 minutes",
                   "gpu_operator_reconciliation_status is {{ $value }} (0 operands not ready, -1 no ClusterPolicy, "
                   "-2 operator error): read the ClusterPolicy status and the operator's log."),
        ]
    if "nvsentinel" in ns:
        alerts.append(_alert(
            "NcpNvsentinelDown", f'absent(up{{namespace="{ns["nvsentinel"]}"}} == 1)', OPERATOR_DOWN_FOR, "critical",
            "health", "NVSentinel not running", "No NVSentinel module answers its metrics scrape: GPU and node "
            "faults are neither quarantined nor drained; check the pods in the NVSentinel namespace."))
        alerts += nvsentinel_module_alerts(args, ns["nvsentinel"])
    for chart, source in (("dynamoPlatform", args.dynamo_operator), ("networkOperator", args.network_operator)):
        if chart in ns and source is not None:
            alerts += controller_alerts(args, chart, ns[chart], source)
    if "kaiScheduler" in ns:
        job = args.kai.label_values["queueControllerJob"]
        alerts.append(_alert(
            "NcpKaiQueueControllerDown", f'absent(up{{namespace="{ns["kaiScheduler"]}", job="{job}"}} == 1)',
            OPERATOR_DOWN_FOR, "warning", "scheduling", "KAI queue controller not running or not scraped",
            "Tenant GPU allocation and quota series are missing, so quota alerts and dashboards read nothing; check "
            "the queue-controller pod in the KAI namespace."))
    return [{"name": "ncp-operator-health.alerts", "rules": alerts}] if alerts else []


# chart key -> (alert name part, display name, owning layer, where its scrape comes from, what stops while it is down)
CONTROLLER_OPERATORS = {
    "dynamoPlatform": ("DynamoOperator", "Dynamo operator", "serving",
                       "the chart's ServiceMonitor (https, the Prometheus service account's token)",
                       "DynamoGraphDeployments are not reconciled: new, scaled or changed endpoints do not roll out"),
    "networkOperator": ("NetworkOperator", "Network Operator", "network", "the program's ServiceMonitor",
                        "the NicClusterPolicy and the rails' networks are not reconciled: new GPU nodes get no RDMA"),
}
RECONCILE_WINDOW, RECONCILE_FOR = "30m", "1h"


def controller_alerts(args: TelemetryArgs, chart: str, namespace: str, source: MetricSource) -> list[dict]:
    """A controller-runtime operator: down (its target does not answer or is not discovered) and failing to reconcile.
    A failing object is requeued with backoff capped at 1000 s, so it errors within every 30-minute window while it
    fails; a one-off conflict leaves the window within 30 minutes and never lasts the hour."""
    part, display, layer, scrape, stops = CONTROLLER_OPERATORS[chart]
    own = f'namespace="{namespace}", job="{source.label_values["job"]}"'
    alerts = [_alert(
        f"Ncp{part}Down", f"absent(up{{{own}}} == 1)", OPERATOR_DOWN_FOR, "critical", layer,
        f"{display} not running or not scraped",
        f"No {display} target has answered its metrics scrape ({scrape}) for 15 minutes: {stops}; check its pod in "
        f"{namespace} and the target's error in Prometheus.")]
    if args.controller_runtime is not None:
        cr = args.controller_runtime
        controller = cr.labels["controller"]
        errors = f"sum by ({controller}) (increase({cr.metrics['reconcileErrors']}{{{own}}}[{RECONCILE_WINDOW}]))"
        alerts.append(_alert(
            f"Ncp{part}ReconcileErrors", f"{errors} > 0", RECONCILE_FOR, "warning", layer,
            f"{display} keeps failing to reconcile",
            f"Controller {{{{ $labels.{controller} }}}} of the {display} has returned reconcile errors in every "
            f"{RECONCILE_WINDOW} for an hour: {stops}; read the operator's log for 'Reconciler error'."))
    return alerts


def nvsentinel_module_alerts(args: TelemetryArgs, namespace: str) -> list[dict]:
    """Each NVSentinel module the site runs: down while the others answer (all down is NcpNvsentinelDown), and the
    pipeline modules' processing errors. The modules share one PodMonitor, so the target's container names the module
    (a module whose pods are all gone has no target: `absent`, labelled with the module's container)."""
    if not args.nvsentinel_modules:
        return []
    nvs = args.nvsentinel
    module = nvs.labels["module"]
    any_up = f'absent(up{{namespace="{namespace}"}} == 1)'
    down = " or ".join(
        f'label_replace(absent(up{{namespace="{namespace}", {module}="{nvs.label_values[m]}"}} == 1), '
        f'"{module}", "{nvs.label_values[m]}", "", "")' for m in args.nvsentinel_modules)
    errors = " or ".join(
        f'sum by ({module}) (increase({nvs.metrics[key]}{{namespace="{namespace}"}}[{RECONCILE_WINDOW}]))'
        for m, key in (("faultQuarantine", "faultQuarantineErrors"), ("nodeDrainer", "nodeDrainerErrors"),
                       ("faultRemediation", "faultRemediationErrors")) if m in args.nvsentinel_modules)
    alerts = [_alert(
        "NcpNvsentinelModuleDown", f"({down}) unless on () {any_up}", OPERATOR_DOWN_FOR, "critical", "health",
        "NVSentinel module not running",
        f"NVSentinel's {{{{ $labels.{module} }}}} answers no metrics scrape while other modules do: the break-fix "
        "stage it runs (detection, quarantine, drain or remediation) stops; check its pods in the NVSentinel "
        "namespace.")]
    per_node = "|".join(nvs.label_values[m] for m in nvs.component_types["perNode"] if m in args.nvsentinel_modules)
    if per_node:
        pods = f'max by ({module}, pod) (up{{namespace="{namespace}", {module}=~"{per_node}"}})'
        answering = f'max by ({module}) (up{{namespace="{namespace}", {module}=~"{per_node}"}}) == 1'
        alerts.append(_alert(
            "NcpNvsentinelNodeMonitorDown", f"{pods} == 0 and on ({module}) {answering}", OPERATOR_DOWN_FOR,
            "warning", "health", "NVSentinel per-node module not answering on one node",
            f"Pod {{{{ $labels.pod }}}} of NVSentinel's {{{{ $labels.{module} }}}} has not answered its metrics scrape "
            "for 15 minutes while the module's other pods do: faults on its node may go undetected; check the pod "
            "and its node."))
    if errors:
        alerts.append(_alert(
            "NcpNvsentinelProcessingErrors", f"({errors}) > 0", RECONCILE_WINDOW, "warning", "health",
            "NVSentinel module failing to process health events",
            f"NVSentinel's {{{{ $labels.{module} }}}} has failed to process health events in every "
            f"{RECONCILE_WINDOW} for {RECONCILE_WINDOW}: those faults are not acted on; read its log (error_type) and "
            f"its datastore's state."))
    return alerts


def capacity_groups(args: TelemetryArgs) -> list[dict]:
    """Capacity follows health: the site's GPUs less those of quarantined nodes against the sum of guaranteed
    quotas (the per-tenant and per-node series of the groups above; `ncp node capacity` names the short tenants).
    The site's size is the plan's, not a count of GPU series: a dead node's exporter stops reporting."""
    if not args.site_gpus:
        return []
    records = [
        {"record": "ncp:site_gpus_healthy:count",
         "expr": f"{args.site_gpus} - {args.gpus_per_node} * ncp:nodes_quarantined:count"},
        {"record": "ncp:site_gpus_guaranteed:count", "expr": "sum(ncp:tenant_gpu_quota:count)"},
    ]
    alerts = [_alert(
        "NcpQuotaExceedsHealthyCapacity", "ncp:site_gpus_guaranteed:count > ncp:site_gpus_healthy:count", "10m",
        "warning", "node", "Guaranteed GPU quotas exceed the healthy GPUs",
        "Quarantined nodes leave {{ $value }} healthy GPUs, fewer than the tenants' guaranteed quotas: "
        "`ncp node capacity --stack <stack>` names the short tenants; the profile's spare policy says what to do.")]
    return [{"name": "ncp-capacity.rules", "rules": records}, {"name": "ncp-capacity.alerts", "rules": alerts}]


def nic_link_groups(args: TelemetryArgs) -> list[dict]:
    """RDMA NIC links per GPU node: fewer active ports than the profile's rails is a rail down (layer network).
    A node whose ports are all down keeps a series (0) through the `or` branch."""
    if not args.rdma_ports_per_node:
        return []
    m, lb = args.node_exporter.metrics, args.node_exporter.labels
    named = (f'label_replace({m["portState"]} * on ({lb["instance"]}) group_left ({lb["nodename"]}) '
             f'{m["unameInfo"]}, "node", "$1", "{lb["nodename"]}", "(.+)")')
    state = "ncp:nic_port_state:id"
    active = args.node_exporter.label_values["portActive"]
    records = [
        {"record": state, "expr": f"max by (node, {lb['device']}, {lb['port']}) ({named})"},
        {"record": "ncp:node_nic_ports_active:count",
         "expr": f"count by (node) ({state} >= {active}) or count by (node) ({state}) * 0"},
    ]
    alerts = [_alert(
        "NcpNicLinkDown", f"ncp:node_nic_ports_active:count < {args.rdma_ports_per_node}", "2m", "critical",
        "network", "RDMA NIC link down on a GPU node",
        f"Node {{{{ $labels.node }}}} has {{{{ $value }}}} active RDMA NIC ports of the profile's "
        f"{args.rdma_ports_per_node} rails: a rail is down; its RDMA workers lose bandwidth or fail.")]
    return [{"name": "ncp-nic-link.rules", "rules": records}, {"name": "ncp-nic-link.alerts", "rules": alerts}]


def site_rule_groups(args: TelemetryArgs) -> list[dict]:
    return (gpu_health_groups(args) + tenant_usage_groups(args) + break_fix_groups(args) + tenant_pod_groups(args)
            + correlation_groups(args) + capacity_groups(args) + nic_link_groups(args)
            + operator_health_groups(args))


def prometheus_stack_values(storage: Optional[StorageTier], dashboard_label: tuple[str, str]) -> dict:
    # Select monitors and rules from every release, not only this chart's own (upstream gotcha).
    spec: dict[str, object] = {
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
        "ruleSelectorNilUsesHelmValues": False,
    }
    if storage is not None:
        spec["storageSpec"] = {"volumeClaimTemplate": {"spec": {
            "storageClassName": storage.storage_class, "accessModes": [storage.access_mode],
            "resources": {"requests": {"storage": storage.size}}}}}
        # Prometheus stops ingesting when its volume is full; delete old blocks before that happens.
        spec["retentionSize"] = retention_size(storage.size)
    # The chart's Grafana sidecar loads dashboards from every namespace (searchNamespace: ALL) by one label
    # (kube-prometheus-stack values.yaml:1384-1390 at the version the matrix pins): the site's label, which our
    # ConfigMaps carry.
    key, value = dashboard_label
    grafana = {"sidecar": {"dashboards": {"label": key, "labelValue": value}}}
    return {"prometheus": {"prometheusSpec": spec}, "grafana": grafana}


def retention_size(size: str) -> str:
    """90% of a Kubernetes quantity (Mi/Gi/Ti) in Prometheus' base-2 units (MB/GB/TB mean MiB/GiB/TiB)."""
    units = {"Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}
    mebibytes = int(size[:-2]) * units[size[-2:]]
    return f"{mebibytes * 9 // 10}MB"


class Telemetry(Layer):
    def __init__(self, name: str, args: TelemetryArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("Telemetry", name, opts)
        pin, namespace = args.prometheus_pin, args.prometheus_namespace
        self.refuse(["prometheus_pin is set without prometheus_namespace (the Prometheus stack's layer namespace)"]
                    if pin is not None and namespace is None else [])
        depends_on: list[pulumi.Resource] = [args.rules_namespace]
        self.prometheus: Optional[k8s.helm.v3.Release] = None
        if pin is not None and namespace is not None:
            values = prometheus_stack_values(args.prometheus_storage, args.dashboard_label)
            self.prometheus = helm_release("kube-prometheus-stack", pin, values,
                                           namespace.metadata.name, self, args.skip_await, depends_on=[namespace])
            depends_on.append(self.prometheus)
        k8s.apiextensions.CustomResource(
            f"{name}-gpu-health-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=RULES_NAME, namespace=args.rules_namespace.metadata.name,
                labels={**labels("telemetry", RULES_NAME), **args.selector_labels}),
            spec={"groups": site_rule_groups(args)},
            opts=self.child(*depends_on),
        )
        key, value = args.dashboard_label
        for dashboard in args.dashboards:
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{dashboard.uid}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=f"ncp-dashboard-{dashboard.uid}", namespace=args.rules_namespace.metadata.name,
                    labels={**labels("telemetry", f"ncp-dashboard-{dashboard.uid}"), key: value}),
                data={f"{dashboard.uid}.json": json.dumps(dashboard.model(), indent=1, sort_keys=True)},
                opts=self.child(args.rules_namespace),
            )
        self.rules_name = RULES_NAME
        self.register_outputs({
            "gpuRules": RULES_NAME,
            "dashboards": [dashboard.uid for dashboard in args.dashboards],
            "prometheusStack": self.prometheus.name if self.prometheus else None,
        })
