"""Grafana dashboards, one per layer a site operator looks at, over the series the telemetry rules record.

Each dashboard ships as a ConfigMap carrying the label the Grafana dashboard sidecar loads (Grafana's
`sidecar.dashboards.label` / `labelValue`, default `grafana_dashboard: "1"`). Panels query the `ncp:*` recording
rules and the upstream metric names of data/telemetry-signals.yaml, so renaming a rule or a metric changes both.
"""
import re
from dataclasses import dataclass, field
from typing import Any

from ncp.plan.catalog import MetricSource
from ncp.plan.names import PROJECT

# Grafana variables the panels use, with the value a query is checked with (a variable is not PromQL).
VARIABLES = {"tenant": ".+", "endpoint": ".+"}
SCHEMA_VERSION = 39  # Grafana 10/11 dashboard JSON


@dataclass(frozen=True)
class Panel:
    """One Grafana panel of a dashboard.

    Attributes:
        title: the panel title.
        expr: the PromQL query it plots.
        legend: the legend format (Grafana `legendFormat`, e.g. `{{tenant}}`).
        unit: the Grafana unit id of the values (e.g. `percent`, `celsius`, `s`). Default: 'short'.
        kind: the Grafana panel type. Default: 'timeseries'.
    """

    title: str
    expr: str
    legend: str
    unit: str = "short"
    kind: str = "timeseries"


@dataclass(frozen=True)
class Dashboard:
    """A Grafana dashboard the site's dashboard sidecar loads from a ConfigMap.

    Attributes:
        uid: the dashboard uid (stable across updates).
        title: the dashboard title.
        panels: its panels, laid out two to a row.
        variables: Grafana template variable -> the series its values come from. Default: {}.
    """

    uid: str
    title: str
    panels: list[Panel]
    variables: dict[str, str] = field(default_factory=dict)

    def model(self) -> dict:
        """The dashboard JSON Grafana imports."""
        width, height = 12, 8
        panels: list[dict[str, Any]] = [{
            "id": index + 1, "type": panel.kind, "title": panel.title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"x": (index % 2) * width, "y": (index // 2) * height, "w": width, "h": height},
            "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
            "targets": [{"refId": "A", "expr": panel.expr, "legendFormat": panel.legend,
                         "datasource": {"type": "prometheus", "uid": "${datasource}"}}],
        } for index, panel in enumerate(self.panels)]
        templating: list[dict[str, Any]] = [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
        templating += [{"name": name, "type": "query", "label": name.capitalize(), "includeAll": True,
                        "multi": True, "allValue": VARIABLES[name], "refresh": 2,
                        "datasource": {"type": "prometheus", "uid": "${datasource}"},
                        "query": {"query": f"label_values({source}, {name})", "refId": "variable"},
                        "definition": f"label_values({source}, {name})"}
                       for name, source in self.variables.items()]
        return {"uid": self.uid, "title": self.title, "tags": [PROJECT], "editable": False,
                "schemaVersion": SCHEMA_VERSION, "time": {"from": "now-6h", "to": "now"}, "refresh": "1m",
                "templating": {"list": templating}, "panels": panels}

    def queries(self) -> list[str]:
        """Every PromQL query of the dashboard: panel targets and variable queries' series selectors."""
        return [panel.expr for panel in self.panels] + list(self.variables.values())


def checkable(query: str) -> str:
    """The query with each Grafana variable replaced by a value, so the PromQL parser can judge it."""
    return re.sub(r"\$(\w+)", lambda m: VARIABLES[m.group(1)], query)


def gpu_fleet(dcgm: MetricSource) -> Dashboard:
    m = dcgm.metrics
    return Dashboard("ncp-gpu-fleet", "NCP / GPU fleet health", [
        Panel("GPUs reporting, by model", f"count by (modelName) ({m['utilization']})", "{{modelName}}"),
        Panel("GPU utilisation", "ncp:gpu_utilization:percent", "{{node}} GPU {{gpu}}", "percent"),
        Panel("GPU temperature", "ncp:gpu_temperature:celsius", "{{node}} GPU {{gpu}}", "celsius"),
        Panel("GPU power", "ncp:gpu_power:watts", "{{node}} GPU {{gpu}}", "watt"),
        Panel("Framebuffer in use", "ncp:gpu_framebuffer_used:ratio", "{{node}} GPU {{gpu}}", "percentunit"),
        Panel("Last XID error", "ncp:gpu_xid_errors:last > 0", "{{node}} GPU {{gpu}}", kind="table"),
        Panel("Allocated GPUs under 5% utilisation",
              'count by (tenant) (ncp:gpu_utilization:percent{tenant!=""} < 5)', "{{tenant}}"),
        Panel("Firing GPU alerts", 'sum by (alertname, severity) (ALERTS{alertstate="firing", layer="gpu"})',
              "{{alertname}} ({{severity}})", kind="table"),
    ])


def tenant_usage() -> Dashboard:
    selected = '{tenant=~"$tenant"}'
    return Dashboard("ncp-tenant-usage", "NCP / Tenant usage vs quota", [
        Panel("GPUs allocated (KAI queue)", f"ncp:tenant_gpu_allocated:count{selected}", "{{tenant}}"),
        Panel("Guaranteed GPU quota (KAI deserved)", f"ncp:tenant_gpu_quota:count{selected}", "{{tenant}}"),
        Panel("Allocated / quota", f"ncp:tenant_gpu_allocated:count{selected} / ncp:tenant_gpu_quota:count{selected}",
              "{{tenant}}", "percentunit"),
        Panel("Mean utilisation of the tenant's GPUs",
              f"avg by (tenant) (ncp:gpu_utilization:percent{selected})", "{{tenant}}", "percent"),
        Panel("Requests per second", f"sum by (tenant) (ncp:endpoint_requests:rate5m{selected})", "{{tenant}}",
              "reqps"),
        Panel("Output tokens per second", f"sum by (tenant) (ncp:endpoint_output_tokens:rate5m{selected})",
              "{{tenant}}"),
    ], variables={"tenant": "ncp:tenant_gpu_quota:count"})


# RA: Telemetry And Observability: "those signals must be correlated with model, endpoint, tenant"
def slow_endpoint_gpus(selected: str = "") -> str:
    """Endpoint slow -> which GPU on which node: every GPU serving the endpoint (ncp:endpoint_gpu:info, endpoint ->
    worker pod -> node -> GPU) valued with the endpoint's TTFT p95."""
    return (f"ncp:endpoint_gpu:info{selected} * on (tenant, endpoint) group_left "
            f"ncp:endpoint_ttft_p95:seconds{selected}")


def endpoint_slos(dynamo: MetricSource) -> Dashboard:
    m = dynamo.metrics
    selected = '{tenant=~"$tenant", endpoint=~"$endpoint"}'
    by_endpoint = "{{tenant}}/{{endpoint}}"
    duration = (f"histogram_quantile(0.95, sum by (tenant, endpoint, le) "
                f"(rate({m['requestDuration']}_bucket{selected}[5m])))")
    return Dashboard("ncp-endpoint-slos", "NCP / Endpoint SLOs", [
        Panel("TTFT p95", f"ncp:endpoint_ttft_p95:seconds{selected}", by_endpoint, "s"),
        Panel("Inter-token latency p95", f"ncp:endpoint_itl_p95:seconds{selected}", by_endpoint, "s"),
        Panel("Requests over the TTFT SLO (1h)", f"ncp:endpoint_ttft_slo_miss:ratio_rate1h{selected}", by_endpoint,
              "percentunit"),
        Panel("Requests over the ITL SLO (1h)", f"ncp:endpoint_itl_slo_miss:ratio_rate1h{selected}", by_endpoint,
              "percentunit"),
        Panel("Requests per second", f"ncp:endpoint_requests:rate5m{selected}", by_endpoint, "reqps"),
        Panel("Error ratio", f"ncp:endpoint_errors:ratio_rate5m{selected}", by_endpoint, "percentunit"),
        Panel("Output tokens per second", f"ncp:endpoint_output_tokens:rate5m{selected}", by_endpoint),
        Panel("Queued requests", f"ncp:endpoint_queue_depth:requests{selected}", by_endpoint),
        Panel("KV cache in use, prefill vs decode", f"ncp:endpoint_kv_cache_usage:ratio{selected}",
              "{{endpoint}} {{component_type}}", "percentunit"),
        Panel("KV cache hit rate (router)", f"ncp:endpoint_kv_hit_rate:ratio{selected}", by_endpoint, "percentunit"),
        Panel("Requests in flight per worker role, prefill vs decode",
              f"sum by (tenant, endpoint, component_type) ({m['workerInflightRequests']}{selected})",
              "{{endpoint}} {{component_type}}"),
        Panel("Requests in flight at the frontend", f"sum by (tenant, endpoint) ({m['inflightRequests']}{selected})",
              by_endpoint),
        Panel("Request duration p95", duration, by_endpoint, "s"),
        Panel("Workers with the model loaded", f"ncp:endpoint_workers_ready:count{selected}",
              "{{endpoint}} {{component_type}}"),
        Panel("Model routable at the frontend", f"ncp:endpoint_model_ready:bool{selected}", by_endpoint),
        Panel("Backend and runtime release per role", f"ncp:endpoint_backend:info{selected}",
              "{{endpoint}} {{component_type}} {{backend}} {{runtime_version}}", kind="table"),
        Panel("Routing decisions per second (KV router)", f"ncp:endpoint_routing_decisions:rate5m{selected}",
              by_endpoint, "reqps"),
        Panel("Routing decisions not to the most-overlap worker",
              f"ncp:endpoint_routing_non_max_overlap:ratio_rate5m{selected}", by_endpoint, "percentunit"),
        Panel("Share of requests per worker pod", f"ncp:endpoint_worker_requests:share_rate5m{selected}",
              "{{endpoint}} {{pod}}", "percentunit"),
        Panel("TTFT p95 by serving GPU (endpoint, pod, node, GPU)", slow_endpoint_gpus(selected),
              "{{endpoint}} {{node}} GPU {{gpu}}", "s", kind="table"),
    ], variables={"tenant": "ncp:endpoint_requests:rate5m", "endpoint": "ncp:endpoint_requests:rate5m"})


def break_fix(nvsentinel: MetricSource) -> Dashboard:
    m = nvsentinel.metrics
    return Dashboard("ncp-break-fix", "NCP / Break-fix state", [
        Panel("Nodes quarantined", "ncp:nodes_quarantined:count", "quarantined", kind="stat"),
        Panel("Quarantined nodes", "ncp:node_quarantined:bool > 0", "{{node}}", kind="table"),
        Panel("Node drains waiting", "ncp:drain_queue:depth", "drain queue"),
        Panel("Quarantine changes (1h)", f"sum(changes({m['quarantinedNodes']}[1h]))", "changes"),
        Panel("GPUs with an XID error", "count(ncp:gpu_xid_errors:last > 0)", "GPUs", kind="stat"),
        Panel("Firing health and GPU alerts",
              'sum by (alertname, node) (ALERTS{alertstate="firing", layer=~"gpu|health"})',
              "{{alertname}} {{node}}", kind="table"),
    ])


def site_dashboards(signals: dict[str, MetricSource]) -> list[Dashboard]:
    return [gpu_fleet(signals["dcgm"]), tenant_usage(), endpoint_slos(signals["dynamo"]),
            break_fix(signals["nvsentinel"])]
