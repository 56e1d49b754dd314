"""Serving telemetry of one endpoint: the rules over its Dynamo frontend and worker series."""
from plan.catalog import MetricSource
from plan.endpoint_plan import EndpointPlan


def serving_rules(plan: EndpointPlan, signals: MetricSource) -> list[dict]:
    m = signals.metrics
    graph = signals.pod_labels["graph"]
    select = f'{{{graph}="{plan.name}"}}'
    slo = plan.endpoint.slo

    def labelled(expr: str) -> str:
        return (f'label_replace(label_replace(label_replace({expr}, "tenant", "{plan.tenant.name}", "", ""), '
                f'"endpoint", "{plan.name}", "", ""), "model", "{plan.endpoint.model.name}", "", "")')

    def quantile(metric: str) -> str:
        return labelled(f"histogram_quantile(0.95, sum by (le) (rate({metric}_bucket{select}[5m])))")

    records = [
        {"record": "ncp:endpoint_ttft_p95:seconds", "expr": quantile(m["timeToFirstToken"])},
        {"record": "ncp:endpoint_itl_p95:seconds", "expr": quantile(m["interTokenLatency"])},
        {"record": "ncp:endpoint_kv_hit_rate:ratio", "expr": labelled(f"avg({m['kvHitRate']}{select})")},
        {"record": "ncp:endpoint_queue_depth:requests", "expr": labelled(f"sum({m['queuedRequests']}{select})")},
        {"record": "ncp:endpoint_worker_saturation:ratio",
         "expr": labelled(f"max({m['gpuCacheUsage']}{select}) / 100")},
        # Model-load state: workers that serve metrics have loaded the model and joined the graph.
        {"record": "ncp:endpoint_workers_ready:count",
         "expr": labelled(f'count(up{{{graph}="{plan.name}",{signals.pod_labels["componentType"]}="worker"}} == 1)')},
    ]
    alerts = [
        {"alert": "NcpEndpointTtftSloBurn", "expr": f'ncp:endpoint_ttft_p95:seconds{{endpoint="{plan.name}"}} > '
                                                    f"{slo.ttft_ms / 1000}",
         "for": "10m", "labels": {"severity": "warning", "layer": "serving"},
         "annotations": {"summary": f"{plan.name}: p95 TTFT above the {slo.ttft_ms} ms SLO"}},
        {"alert": "NcpEndpointItlSloBurn", "expr": f'ncp:endpoint_itl_p95:seconds{{endpoint="{plan.name}"}} > '
                                                   f"{slo.tpot_ms / 1000}",
         "for": "10m", "labels": {"severity": "warning", "layer": "serving"},
         "annotations": {"summary": f"{plan.name}: p95 inter-token latency above the {slo.tpot_ms} ms SLO"}},
        {"alert": "NcpEndpointQueueBacklog",
         "expr": f'ncp:endpoint_queue_depth:requests{{endpoint="{plan.name}"}} > {slo.concurrency}',
         "for": "5m", "labels": {"severity": "warning", "layer": "serving"},
         "annotations": {"summary": f"{plan.name}: more queued requests than the profiled concurrency"}},
        {"alert": "NcpEndpointNoReadyWorkers",
         "expr": f'absent(ncp:endpoint_workers_ready:count{{endpoint="{plan.name}"}})',
         "for": "15m", "labels": {"severity": "critical", "layer": "serving"},
         "annotations": {"summary": f"{plan.name}: no worker has loaded the model"}},
    ]
    return [{"name": f"{plan.name}.serving.rules", "rules": records},
            {"name": f"{plan.name}.serving.alerts", "rules": alerts}]
