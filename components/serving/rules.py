"""Serving telemetry of one endpoint: the PodMonitor relabelling that gives its Dynamo series stable labels, and
the recording and alerting rules over those series.

Pod labels such as `nvidia.com/dynamo-graph-deployment-name` are not series labels: the PodMonitor copies what the
rules need into `tenant`, `endpoint`, `model` and `component_type`, and the rules select on those alone.
"""
from dataclasses import dataclass
from typing import Optional

from ncp.plan.catalog import MetricSource
from ncp.plan.endpoint_plan import EndpointPlan
from ncp.plan.names import (BACKEND_LABEL, RUNTIME_VERSION_LABEL, SERIES_BACKEND, SERIES_COMPONENT_TYPE,
                            SERIES_ENDPOINT, SERIES_MODEL, SERIES_RUNTIME_VERSION, SERIES_TENANT, runbook_url)

TENANT, ENDPOINT, MODEL, COMPONENT_TYPE = SERIES_TENANT, SERIES_ENDPOINT, SERIES_MODEL, SERIES_COMPONENT_TYPE
KEEP = f"{TENANT}, {ENDPOINT}, {MODEL}"

# Multiwindow, multi-burn-rate SLO alerts (Google SRE workbook, "Alerting on SLOs", table 5-8): a fast burn spends
# 2% of a 30-day budget in 1h, a slow burn 5% in 6h; each long window is confirmed by a short one so alerts resolve
# soon after the burn stops.
SLO_OBJECTIVE = 0.95  # share of requests within the endpoint's ttftMs / tpotMs (its p95 SLO)
BURNS = {"fast": (14.4, "1h", "5m", "critical"), "slow": (6.0, "6h", "30m", "warning")}
WINDOWS = sorted({w for _, long, short, _ in BURNS.values() for w in (long, short)})
SERVING_LAYER = "serving"  # the owning-layer label of the serving alerts (Inference Serving Layer)
KV_CACHE_SATURATED = 0.9  # fraction of KV blocks in use above which requests queue for cache


def meta_label(pod_label: str) -> str:
    """Kubernetes service discovery's name for a pod label (every character outside [a-zA-Z0-9_] becomes `_`)."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() or c == "_" else "_" for c in pod_label)


# RA: Telemetry And Observability: "those signals must be correlated with model, endpoint, tenant"
def pod_monitor_relabelings(plan: EndpointPlan, signals: MetricSource) -> list[dict]:
    """Stable series labels for every scraped pod of the endpoint: who it serves, and which role the pod has.

    The role comes from the component type the Dynamo operator stamps on the pod, overridden by the sub-component
    type where the operator keeps the alpha-era type `worker` for prefill/decode workers.
    """
    pod_labels = signals.pod_labels
    return [
        {"targetLabel": TENANT, "replacement": plan.tenant.name, "action": "replace"},
        {"targetLabel": ENDPOINT, "replacement": plan.name, "action": "replace"},
        {"targetLabel": MODEL, "replacement": plan.endpoint.model.name, "action": "replace"},
        {"sourceLabels": [meta_label(pod_labels["componentType"])], "targetLabel": COMPONENT_TYPE,
         "action": "replace"},
        {"sourceLabels": [meta_label(pod_labels["subComponentType"])], "regex": "(.+)",
         "targetLabel": COMPONENT_TYPE, "replacement": "$1", "action": "replace"},
        # What the pod runs (components/serving/graph.py runtime_pod_labels): backend version as series labels.
        {"sourceLabels": [meta_label(BACKEND_LABEL)], "targetLabel": SERIES_BACKEND, "action": "replace"},
        {"sourceLabels": [meta_label(RUNTIME_VERSION_LABEL)], "targetLabel": SERIES_RUNTIME_VERSION,
         "action": "replace"},
    ]


def frontend_relabelings(signals: MetricSource) -> list[dict]:
    """The frontend's series carry the graph's Dynamo namespace, which the SLA planner selects them by (the frontend
    does not export it). Only on the frontend port: worker and router series export their own, in the planner's
    underscore form, which a target label would overwrite."""
    return [{"sourceLabels": [meta_label(signals.pod_labels["dynamoNamespace"])],
             "targetLabel": signals.labels["dynamoNamespace"], "action": "replace"}]


def pod_monitor_spec(plan: EndpointPlan, signals: MetricSource, scrape_interval: str) -> dict:
    frontend_port = signals.ports["frontend"]
    return {
        "selector": {"matchLabels": {signals.pod_labels["graph"]: plan.name}},
        "podMetricsEndpoints": [{"port": port, "interval": scrape_interval,
                                 "relabelings": pod_monitor_relabelings(plan, signals) + (
                                     frontend_relabelings(signals) if port == frontend_port else [])}
                                for port in signals.ports.values()],
    }


def le_matcher(bound: float) -> str:
    """Match a histogram bucket whatever float format the scraper stored: the exporter writes `1`, Prometheus 3
    normalises it to `1.0` (a regex alternation, because `le` is a string label)."""
    text = repr(float(bound))
    if text.endswith(".0"):
        return f'le=~"{text[:-2]}|{text[:-2]}[.]0"'
    return f'le="{text}"'


def roles(plan: EndpointPlan) -> list[str]:
    """The component types the endpoint's workers carry: `worker` aggregated, `prefill` and `decode` disaggregated."""
    return sorted({group.role for group in plan.workers})


# Latency SLOs: record name part -> (histogram in the signals file, SLO field of the endpoint, what it measures).
LATENCIES = {"ttft": ("timeToFirstToken", "ttft_ms", "time to first token"),
             "itl": ("interTokenLatency", "tpot_ms", "inter-token latency")}


@dataclass(frozen=True)
class _Selection:
    """PromQL over one endpoint's series: selected by its tenant and endpoint, aggregated to tenant/endpoint/model."""
    plan: EndpointPlan
    signals: MetricSource

    @property
    def own(self) -> str:
        return f'{TENANT}="{self.plan.tenant.name}", {ENDPOINT}="{self.plan.name}"'

    def rate(self, metric: str, window: str = "5m", extra: str = "") -> str:
        return f"sum by ({KEEP}) (rate({metric}{{{self.own}{extra}}}[{window}]))"

    def quantile(self, metric: str) -> str:
        return f"histogram_quantile(0.95, sum by ({KEEP}, le) (rate({metric}_bucket{{{self.own}}}[5m])))"

    def slo_ms(self, short: str) -> float:
        return getattr(self.plan.endpoint.slo, LATENCIES[short][1])

    def slo_miss(self, short: str, window: str) -> str:
        """Share of requests over the SLO in the window, from the histogram: 1 - (requests within the SLO) / all,
        interpolating between the buckets around the SLO when it is not itself a bucket bound."""
        histogram = LATENCIES[short][0]
        metric = self.signals.metrics[histogram]
        lower, upper, weight = self.signals.buckets_around(histogram, self.slo_ms(short) / 1000)

        def bucket(le: float) -> str:
            return self.rate(metric + "_bucket", window, ", " + le_matcher(le))

        within = bucket(lower) if weight == 0 else f"({bucket(lower)} * {1 - weight!r} + {bucket(upper)} * {weight!r})"
        return f"1 - ({within} / {self.rate(metric + '_count', window)})"

    def counted_at(self, short: str) -> str:
        lower, upper, weight = self.signals.buckets_around(LATENCIES[short][0], self.slo_ms(short) / 1000)
        if weight == 0:
            return f"the {lower * 1000:g} ms bucket"
        return f"the {lower * 1000:g} and {upper * 1000:g} ms buckets, interpolated"


# RA: Telemetry And Observability: "Cache-hit-rate, prefill saturation, decode saturation, model-load state"
def _records(select: _Selection) -> list[dict]:
    m, signals = select.signals.metrics, select.signals
    own, workers = select.own, "|".join(signals.component_types["worker"])
    failed = f', {signals.labels["requestStatus"]}="{signals.label_values["requestError"]}"'
    records = [
        {"record": "ncp:endpoint_requests:rate5m", "expr": select.rate(m["requestsTotal"])},
        # The frontend creates its error series at the first failed request: until then the failed side is 0, not
        # absent (an absent ratio would read "no data" on the dashboard and hide the endpoint from the alert).
        {"record": "ncp:endpoint_errors:ratio_rate5m",
         "expr": f'({select.rate(m["requestsTotal"], extra=failed)} or {select.rate(m["requestsTotal"])} * 0)'
                 f' / {select.rate(m["requestsTotal"])}'},
        {"record": "ncp:endpoint_output_tokens:rate5m", "expr": select.rate(m["outputTokensTotal"])},
        {"record": "ncp:endpoint_ttft_p95:seconds", "expr": select.quantile(m["timeToFirstToken"])},
        {"record": "ncp:endpoint_itl_p95:seconds", "expr": select.quantile(m["interTokenLatency"])},
        {"record": "ncp:endpoint_kv_hit_rate:ratio",
         "expr": f'{select.rate(m["kvHitRate"] + "_sum")} / {select.rate(m["kvHitRate"] + "_count")}'},
        {"record": "ncp:endpoint_queue_depth:requests", "expr": f"sum by ({KEEP}) ({m['queuedRequests']}{{{own}}})"},
        # Per role, so a disaggregated endpoint shows prefill and decode saturation apart.
        {"record": "ncp:endpoint_kv_cache_usage:ratio",
         "expr": f'max by ({KEEP}, {COMPONENT_TYPE}) ({m["gpuCacheUsage"]}{{{own}, {COMPONENT_TYPE}=~"{workers}"}})'},
        # Model-load state: worker pods whose metrics endpoint answers have loaded the model and joined the graph.
        {"record": "ncp:endpoint_workers_ready:count",
         "expr": f'count by ({KEEP}, {COMPONENT_TYPE}) (up{{{own}, {COMPONENT_TYPE}=~"{workers}"}} == 1)'},
    ]
    return records + _routing_records(select) + [
        {"record": f"ncp:endpoint_{short}_slo_miss:ratio_rate{window}", "expr": select.slo_miss(short, window)}
        for short in LATENCIES for window in WINDOWS]


# RA: Telemetry And Observability: "backend version" and "routing decisions" as context of the serving signals
def _routing_records(select: _Selection) -> list[dict]:
    """What serves the endpoint and how the router spread it: the backend and runtime release of each running role
    (pod labels copied by the PodMonitor), whether the frontend can route the model, the router's decisions and the
    share of them that did not pick the worker with the most KV overlap, and each worker pod's share of requests."""
    m, signals, own = select.signals.metrics, select.signals, select.own
    generate = f'{signals.labels["workerEndpoint"]}="{signals.label_values["generateEndpoint"]}"'
    per_role = f"{KEEP}, {COMPONENT_TYPE}"
    worker_rate = f"rate({m['workerRequests']}{{{own}, {generate}}}[5m])"
    return [
        {"record": "ncp:endpoint_backend:info",
         "expr": f"group by ({per_role}, {SERIES_BACKEND}, {SERIES_RUNTIME_VERSION}) (up{{{own}}} == 1)"},
        {"record": "ncp:endpoint_model_ready:bool", "expr": f"max by ({KEEP}) ({m['modelReady']}{{{own}}})"},
        {"record": "ncp:endpoint_routing_decisions:rate5m", "expr": select.rate(m["routerRequests"])},
        {"record": "ncp:endpoint_routing_non_max_overlap:ratio_rate5m",
         "expr": f'{select.rate(m["routerNonMaxOverlap"])} / {select.rate(m["routerRequests"])}'},
        {"record": "ncp:endpoint_worker_requests:share_rate5m",
         "expr": f"sum by ({per_role}, pod) ({worker_rate}) / on ({per_role}) group_left "
                 f"sum by ({per_role}) ({worker_rate})"},
    ]


def alert(name: str, expr: str, for_: str, severity: str, summary: str, extra: Optional[dict] = None) -> dict:
    return {"alert": name, "expr": expr, "for": for_,
            "labels": {"severity": severity, "layer": SERVING_LAYER, **(extra or {})},
            "annotations": {"summary": summary,
                            "description": f"{summary} (tenant {{{{ $labels.tenant }}}}, endpoint "
                                           f"{{{{ $labels.endpoint }}}}, model {{{{ $labels.model }}}}).",
                            "runbook_url": runbook_url(SERVING_LAYER, name)}}


def _burn_alerts(select: _Selection) -> list[dict]:
    name, own, budget = select.plan.name, select.own, round(1 - SLO_OBJECTIVE, 6)
    alerts = []
    for short, (_, _, title) in LATENCIES.items():
        record = f"ncp:endpoint_{short}_slo_miss:ratio_rate"
        for burn, (factor, long, short_window, severity) in BURNS.items():
            limit = round(factor * budget, 6)
            alerts.append(alert(
                f"NcpEndpoint{short.capitalize()}SloBurn{burn.capitalize()}",
                f"{record}{long}{{{own}}} > {limit} and {record}{short_window}{{{own}}} > {limit}", "2m", severity,
                f"{name}: {title} SLO ({select.slo_ms(short):g} ms for {SLO_OBJECTIVE:.0%} of requests; counted at "
                f"{select.counted_at(short)}) burning its error budget {factor:g}x over {long}", {"burn": burn}))
    return alerts


def _alerts(select: _Selection) -> list[dict]:
    plan, own, budget = select.plan, select.own, round(1 - SLO_OBJECTIVE, 6)
    concurrency = plan.endpoint.slo.concurrency
    return _burn_alerts(select) + [
        alert("NcpEndpointErrorRateHigh", f"ncp:endpoint_errors:ratio_rate5m{{{own}}} > {budget}", "10m", "warning",
               f"{plan.name}: more than {budget:.0%} of requests fail"),
        alert("NcpEndpointQueueBacklog", f"ncp:endpoint_queue_depth:requests{{{own}}} > {concurrency}", "5m",
               "warning", f"{plan.name}: more queued requests than the profiled concurrency {concurrency}"),
        alert("NcpEndpointKvCacheSaturated", f"ncp:endpoint_kv_cache_usage:ratio{{{own}}} > {KV_CACHE_SATURATED}",
               "10m", "warning",
               f"{plan.name}: {{{{ $labels.component_type }}}} workers use over {KV_CACHE_SATURATED:.0%} of KV cache"),
        alert("NcpEndpointNoReadyWorkers", " or ".join(
            f'absent(ncp:endpoint_workers_ready:count{{{own}, {MODEL}="{plan.endpoint.model.name}", '
            f'{COMPONENT_TYPE}="{role}"}})' for role in roles(plan)), "15m", "critical",
               f"{plan.name}: no {{{{ $labels.component_type }}}} worker has loaded the model"),
    ]


def serving_rules(plan: EndpointPlan, signals: MetricSource) -> list[dict]:
    select = _Selection(plan, signals)
    return [{"name": f"{plan.name}.serving.rules", "rules": _records(select)},
            {"name": f"{plan.name}.serving.alerts", "rules": _alerts(select)}]
