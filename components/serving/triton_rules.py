"""Serving telemetry of one inference service (Triton): the PodMonitor relabelling to tenant/endpoint/model, and the
recording and alerting rules over Triton's own series (data/telemetry-signals.yaml `triton`).

Triton labels every per-model series with its `model`; our target label `model` wins (honorLabels false), so
Triton's arrives as `exported_model`. The rules pick the Triton model each signal belongs to: requests, errors and
request latency at the model clients call (the ensemble with DALI), queue time and batching at the TensorRT model,
preprocessing time at the DALI model.
"""
from components.serving.rules import ENDPOINT, KEEP, MODEL, TENANT, alert
from ncp.plan.catalog import MetricSource
from ncp.plan.inference_services import InferenceServicePlan

EXPORTED_MODEL = "exported_model"
ERROR_BUDGET = 0.05  # share of failed requests above which the service pages
QUANTILE = "0.95"    # Triton's default summary quantiles include 0.95 (metrics.md "summary_quantiles")


def pod_monitor_spec(plan: InferenceServicePlan, selector: dict[str, str], signals: MetricSource,
                     scrape_interval: str) -> dict:
    relabelings = [{"targetLabel": TENANT, "replacement": plan.tenant.name, "action": "replace"},
                   {"targetLabel": ENDPOINT, "replacement": plan.name, "action": "replace"},
                   {"targetLabel": MODEL, "replacement": plan.service.model, "action": "replace"}]
    return {"selector": {"matchLabels": selector},
            "podMetricsEndpoints": [{"port": signals.ports["metrics"], "interval": scrape_interval,
                                     "relabelings": relabelings}]}


def _own(plan: InferenceServicePlan, model: str = "") -> str:
    selector = f'{TENANT}="{plan.tenant.name}", {ENDPOINT}="{plan.name}"'
    return selector + (f', {EXPORTED_MODEL}="{model}"' if model else "")


def _rate(metric: str, selector: str) -> str:
    return f"sum by ({KEEP}) (rate({metric}{{{selector}}}[5m]))"


def _records(plan: InferenceServicePlan, signals: MetricSource) -> list[dict]:
    m = signals.metrics
    entry, engine = _own(plan, plan.entry_model), _own(plan, plan.engine_model)
    requests = f'{{__name__=~"{m["requestSuccess"]}|{m["requestFailure"]}", {entry}}}'
    records = [
        {"record": "ncp:inference_requests:rate5m", "expr": f"sum by ({KEEP}) (rate({requests}[5m]))"},
        {"record": "ncp:inference_errors:ratio_rate5m",
         "expr": f"{_rate(m['requestFailure'], entry)} / sum by ({KEEP}) (rate({requests}[5m]))"},
        # Summaries are per pod and cannot be merged: the worst pod's p95 bounds the service's.
        {"record": "ncp:inference_request_p95:seconds",
         "expr": f'max by ({KEEP}) ({m["requestSummary"]}{{{entry}, quantile="{QUANTILE}"}}) / 1e6'},
        {"record": "ncp:inference_queue_p95:seconds",
         "expr": f'max by ({KEEP}) ({m["queueSummary"]}{{{engine}, quantile="{QUANTILE}"}}) / 1e6'},
        {"record": "ncp:inference_pending_requests:count",
         "expr": f"sum by ({KEEP}) ({m['pendingRequests']}{{{engine}}})"},
        # Inferences per execution: how full dynamic batching makes the engine's batches.
        {"record": "ncp:inference_batch_size:avg",
         "expr": f"{_rate(m['inferenceCount'], engine)} / {_rate(m['executionCount'], engine)}"},
        # Triton reports the GPUs its pod sees; one model per pod, so this is the model's GPU utilisation.
        {"record": "ncp:inference_gpu_utilization:ratio",
         "expr": f"avg by ({KEEP}) ({m['gpuUtilization']}{{{_own(plan)}}})"},
        {"record": "ncp:inference_servers_ready:count", "expr": f"count by ({KEEP}) (up{{{_own(plan)}}} == 1)"},
    ]
    if plan.preprocess_model:
        dali = _own(plan, plan.preprocess_model)
        records.append({"record": "ncp:inference_preprocess_time_avg:seconds",
                        "expr": f"{_rate(m['computeInferDuration'], dali)} / {_rate(m['requestSuccess'], dali)} "
                                "/ 1e6"})
    return records


def _alerts(plan: InferenceServicePlan) -> list[dict]:
    own, slo, name = _own(plan), plan.service.slo, plan.name
    return [
        alert("NcpInferenceErrorRateHigh", f"ncp:inference_errors:ratio_rate5m{{{own}}} > {ERROR_BUDGET}", "10m",
               "warning", f"{name}: more than {ERROR_BUDGET:.0%} of inference requests fail"),
        alert("NcpInferenceLatencyHigh",
               f"ncp:inference_request_p95:seconds{{{own}}} > {slo.request_p95_ms / 1000!r}", "10m", "warning",
               f"{name}: p95 request time at the server is over {slo.request_p95_ms:g} ms"),
        alert("NcpInferenceQueueTimeHigh",
               f"ncp:inference_queue_p95:seconds{{{own}}} > {slo.queue_p95_ms / 1000!r}", "10m", "warning",
               f"{name}: p95 time in the batching queue is over {slo.queue_p95_ms:g} ms"),
        alert("NcpInferenceNoReadyServers",
               f'absent(ncp:inference_servers_ready:count{{{own}, {MODEL}="{plan.service.model}"}})', "15m",
               "critical", f"{name}: no Triton server answers its metrics endpoint"),
    ]


def inference_rules(plan: InferenceServicePlan, signals: MetricSource) -> list[dict]:
    return [{"name": f"{plan.name}.inference.rules", "rules": _records(plan, signals)},
            {"name": f"{plan.name}.inference.alerts", "rules": _alerts(plan)}]
