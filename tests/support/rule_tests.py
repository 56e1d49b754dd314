"""Generate `promtool test rules` cases for every rule the program registered, from the same data it used.

Input series are shaped as Prometheus stores them: exporter labels (data/telemetry-signals.yaml), the target labels
the Prometheus Operator gives every scrape target, then the monitor's own relabelling as registered (the endpoint's
PodMonitor, the DCGM exporter's ServiceMonitor values), with colliding exporter labels kept as `exported_<name>`
(honorLabels false). Expected labels come from the plan (tenant, endpoint, model, SLO), never from the rules.

Per alert: one case where the series are bad in exactly the way the alert watches (it must fire with the expected
labels and annotations) and one with healthy series plus another tenant's bad series (nothing may fire). Per
recording rule: the exact set of output series and each value.
"""
import math
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

from components.serving.platform import DYNAMO_RELEASE
from components.serving.rules import meta_label
from ncp.readmodel.recorder import Recording
from ncp.plan.break_fix import NVSENTINEL_ALWAYS_ON
from ncp.plan.catalog import MetricSource, load_signals
from ncp.plan.endpoint_plan import EndpointPlan
from ncp.plan.inference_services import InferenceServicePlan
from ncp.plan.site_plan import SitePlan

INTERVAL = "1m"
STEPS = 400                  # samples per input series: 6h40m, enough for the 6h burn-rate window
EVAL_LONG = "6h30m"          # every window (5m..6h) is full and every `for` has elapsed
EVAL_SHORT = "1h30m"         # enough for rules without hour-long windows (the longest `for` is 1h)
# Rule evaluations are the cost of a case (inputs still have a sample per minute). Alerts read recording rules of
# another group, which promtool may evaluate first: the record they see is one interval old, so the interval must
# stay well inside Prometheus' 5m lookback.
EVALUATION_INTERVAL = "2m"
TOLERANCE = 1e-9             # recording-rule values are floats computed by Prometheus' rate/quantile arithmetic
OTHER_TENANT, OTHER_ENDPOINT = "other-tenant", "other-endpoint"  # neighbours whose series must not count


# --- Prometheus target labels and relabelling --------------------------------------------------------------------

def _expand(replacement: str, match: re.Match) -> str:
    return re.sub(r"\$\{?(\d+)\}?", lambda g: match.group(int(g.group(1))) or "", replacement)


def relabel(labels: dict[str, str], relabelings: list[dict]) -> dict[str, str]:
    """Apply `replace` relabelings the way Prometheus does (anchored regex, `;`-joined sources, empty result deletes
    the label). Any other action is refused, so a monitor using one fails the tests until it is modelled here."""
    result = dict(labels)
    for rule in relabelings:
        action = rule.get("action", "replace")
        if action != "replace":
            raise ValueError(f"relabel action {action!r} is not modelled by tests/support/rule_tests.py")
        value = rule.get("separator", ";").join(result.get(name, "") for name in rule.get("sourceLabels", []))
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if match is None:
            continue
        target = _expand(rule["targetLabel"], match)
        expanded = _expand(rule.get("replacement", "$1"), match)
        if expanded:
            result[target] = expanded
        else:
            result.pop(target, None)
    return result


def pod_meta(namespace: str, pod: str, pod_labels: dict[str, str]) -> dict[str, str]:
    return {"__meta_kubernetes_namespace": namespace, "__meta_kubernetes_pod_name": pod,
            **{meta_label(key): value for key, value in pod_labels.items()}}


def target_labels(meta: dict[str, str], base: dict[str, str], relabelings: list[dict]) -> dict[str, str]:
    """The Prometheus Operator's labels for a target (namespace, pod, container, job, endpoint, instance), then the
    monitor's relabelings; `__` labels are dropped after relabelling."""
    labelled = relabel({**meta, **base}, relabelings)
    return {key: value for key, value in labelled.items() if not key.startswith("__")}


def scraped(metric: str, exporter: dict[str, str], target: dict[str, str]) -> str:
    """A series as stored with honor_labels false: target labels win, the exporter's colliding ones get exported_."""
    labels = {(f"exported_{key}" if key in target else key): value for key, value in exporter.items()}
    labels.update(target)
    return series(metric, labels)


def series(metric: str, labels: dict[str, str]) -> str:
    inner = ", ".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def minutes(duration: str) -> int:
    """A Prometheus duration of hours and minutes (`1h30m`) in minutes."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?", duration)
    if parts is None:
        raise ValueError(f"{duration!r} is not a duration of hours and minutes")
    return int(parts.group(1) or 0) * 60 + int(parts.group(2) or 0)


def counter(per_minute: float) -> str:
    return f"0+{number(per_minute)}x{STEPS}"


def gauge(value: float) -> str:
    return f"{number(value)}x{STEPS}"


def le_text(bound: float, style: str) -> str:
    """`le` as stored: Prometheus 3 normalises to float text (1.0); Prometheus 2 keeps the exporter's (1)."""
    if math.isinf(bound):
        return "+Inf"
    text = repr(float(bound))
    return text[:-2] if style == "exporter" and text.endswith(".0") else text


# --- expectations -------------------------------------------------------------------------------------------------

def render(template: str, labels: dict[str, str], value: Optional[float] = None) -> str:
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)
    return text.replace("{{ $value }}", f"{value:g}" if value is not None else "")


def expected_alert(rule: dict, labels: dict[str, str], value: Optional[float] = None) -> dict:
    alert_labels = {**labels, **rule.get("labels", {})}
    return {"exp_labels": alert_labels,
            "exp_annotations": {key: render(text, alert_labels, value)
                                for key, text in rule.get("annotations", {}).items()}}


def eval_time(exprs: list[str]) -> str:
    """When to look: after the longest window an expression (or the recording rule it reads) spans."""
    return EVAL_LONG if any(re.search(r"\[\d+h\]|rate\d+h", expr) for expr in exprs) else EVAL_SHORT


def exact_outputs(record: str, expected: list[tuple[dict[str, str], float]]) -> list[dict]:
    """The record's exact output series (`* 0` keeps every series and its labels) and each value within TOLERANCE."""
    checks = [{"expr": f"{record} * 0", "eval_time": EVAL_LONG,
               "exp_samples": [{"labels": series("", labels), "value": 0} for labels, _ in expected]}]
    for labels, value in expected:
        selector = series(record, labels)
        checks.append({"expr": f"abs({selector} - {value!r}) < bool {TOLERANCE}", "eval_time": EVAL_LONG,
                       "exp_samples": [{"labels": series("", labels), "value": 1}]})
    return checks


@dataclass
class Scenario:
    """Input series for one test case."""
    name: str
    input_series: list[dict] = field(default_factory=list)

    def add(self, name: str, values: str) -> None:
        self.input_series.append({"series": name, "values": values})


def alert_case(name: str, scenario: Scenario, alerts: dict[str, list[dict]], at: str) -> dict:
    return {"name": name, "interval": INTERVAL, "input_series": scenario.input_series,
            "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": expected}
                                for alert, expected in alerts.items()]}


def record_case(name: str, scenario: Scenario, checks: list[dict]) -> dict:
    return {"name": name, "interval": INTERVAL, "input_series": scenario.input_series, "promql_expr_test": checks}


def rules_of(groups: list[dict], kind: str) -> list[dict]:
    return [rule for group in groups for rule in group["rules"] if kind in rule]


def alert_cases(prefix: str, groups: list[dict], healthy: Scenario, bad: dict[str, Callable[[], Scenario]],
                expected: dict[str, Callable[[dict], list[dict]]]) -> list[dict]:
    """Per alert: a firing case on its bad series, and the healthy case in which no alert may fire."""
    alerts = rules_of(groups, "alert")
    cases = [alert_case(f"{prefix}: healthy series, no alert", healthy, {a["alert"]: [] for a in alerts}, EVAL_LONG)]
    for rule in alerts:
        name = rule["alert"]
        if name not in bad:
            raise KeyError(f"no bad-series scenario for alert {name}: add one to tests/support/rule_tests.py")
        cases.append(alert_case(f"{prefix}: {name} fires", bad[name](), {name: expected[name](rule)},
                                eval_time([rule["expr"]])))
    return cases


# --- serving endpoints --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Traffic:
    """One endpoint's behaviour, per minute, constant over the whole input."""
    requests: float = 600
    error_fraction: float = 0.0
    ttft_miss: float = 0.0          # share of requests slower than the TTFT SLO (above its upper bucket)
    itl_miss: float = 0.0
    straddling: float = 0.0         # share between the buckets around the SLO, where the rules interpolate
    output_tokens: float = 6000
    queued: float = 0
    kv_hit_rate: float = 0.5
    kv_cache_usage: float = 0.5
    workers_up: bool = True
    non_max_overlap: float = 0.0    # share of the KV router's decisions that did not pick the most-overlap worker


@dataclass(frozen=True)
class Pod:
    name: str
    labels: dict
    port: str
    role: str


def endpoint_pods(graph_spec: dict, endpoint: str, signals: MetricSource, contract: str) -> list[Pod]:
    """The pods the Dynamo operator runs for the DGD spec, labelled by its contract: `native` stamps prefill/decode
    as the component type; `alpha` keeps component type `worker` and adds the sub-component type."""
    pod_labels, ports = signals.pod_labels, signals.ports
    pods = []
    for service, spec in graph_spec["services"].items():
        kind, sub = spec.get("componentType"), spec.get("subComponentType")
        labels = {**(spec.get("extraPodMetadata") or {}).get("labels", {}), pod_labels["graph"]: endpoint}
        if kind == "frontend":
            role, port = "frontend", ports["frontend"]
            labels[pod_labels["componentType"]] = kind
        elif kind == "worker":
            role, port = sub or "worker", ports["worker"]
            if contract == "alpha" and sub:
                labels.update({pod_labels["componentType"]: "worker", pod_labels["subComponentType"]: sub})
            else:
                labels[pod_labels["componentType"]] = role
        else:
            continue
        nodes = int((spec.get("multinode") or {}).get("nodeCount", 1))
        pods += [Pod(f"{endpoint}-{service.lower()}-{i}", labels, port, role)
                 for i in range(int(spec.get("replicas", 1)) * nodes)]
    return pods


@dataclass(frozen=True)
class EndpointFixture:
    plan: EndpointPlan
    monitor: dict         # the registered PodMonitor spec
    graph: dict           # the registered DGD spec
    groups: list[dict]    # the registered PrometheusRule groups
    signals: MetricSource

    @property
    def labels(self) -> dict[str, str]:
        return {"tenant": self.plan.tenant.name, "endpoint": self.plan.name, "model": self.plan.endpoint.model.name}

    def roles(self) -> list[str]:
        return sorted({pod.role for pod in endpoint_pods(self.graph, self.plan.name, self.signals, "native")} -
                      {"frontend"})

    def bounds(self, histogram: str, slo_ms: float) -> tuple[float, float, float]:
        """Where constructed observations land: met requests at or under the bucket bound below the SLO, missed
        ones in the bucket above the bound over it (so no missed request is interpolated as met)."""
        buckets = sorted(self.signals.buckets[histogram]) + [math.inf]
        lower, upper, _ = self.signals.buckets_around(histogram, slo_ms / 1000)
        return lower, upper, buckets[buckets.index(upper) + 1]


def _monitor_for(fixture: EndpointFixture, tenant: str, endpoint: str) -> dict:
    """The registered PodMonitor, or for the other tenant the same relabelling with its own names."""
    if (tenant, endpoint) == (fixture.plan.tenant.name, fixture.plan.name):
        return fixture.monitor
    swapped = {fixture.plan.tenant.name: tenant, fixture.plan.name: endpoint}
    return {**fixture.monitor, "podMetricsEndpoints": [
        {**pme, "relabelings": [{**rule, "replacement": swapped.get(rule["replacement"], rule["replacement"])}
                                if "replacement" in rule else rule for rule in pme["relabelings"]]}
        for pme in fixture.monitor["podMetricsEndpoints"]]}


def endpoint_series(fixture: EndpointFixture, traffic: Traffic, scenario: Scenario, contract: str = "native",
                    le_style: str = "prometheus3", tenant: Optional[str] = None,
                    endpoint: Optional[str] = None) -> Scenario:
    """Add the series every scraped pod of the endpoint yields under `traffic`."""
    tenant, endpoint = tenant or fixture.plan.tenant.name, endpoint or fixture.plan.name
    namespace = f"tenant-{OTHER_TENANT}" if tenant == OTHER_TENANT else fixture.plan.namespace
    monitor, signals, m = _monitor_for(fixture, tenant, endpoint), fixture.signals, fixture.signals.metrics
    slo = fixture.plan.endpoint.slo
    served = {"model": fixture.plan.endpoint.model.name}
    pods = endpoint_pods(fixture.graph, endpoint, signals, contract)
    # The endpoint's traffic is spread over its frontend replicas: each serves its share, the rules sum them.
    frontends = max(1, sum(pod.role == "frontend" for pod in pods))
    share = replace(traffic, requests=traffic.requests / frontends,
                    output_tokens=traffic.output_tokens / frontends, queued=traffic.queued / frontends)
    for pod in pods:
        weight = worker_weight(pods, pod)
        for pme in monitor["podMetricsEndpoints"]:
            if pme["port"] != pod.port:
                continue
            base = {"namespace": namespace, "pod": pod.name, "container": "main", "endpoint": pod.port,
                    "job": f"{namespace}/{endpoint}", "instance": f"{pod.name}:{pod.port}"}
            target = target_labels(pod_meta(namespace, pod.name, pod.labels), base, pme["relabelings"])
            is_worker = pod.role != "frontend"
            up = traffic.workers_up or not is_worker
            scenario.add(series("up", target), gauge(1 if up else 0))
            if not up:
                continue
            if is_worker:
                scenario.add(scraped(m["gpuCacheUsage"], {**served, "dynamo_component": pod.role, "dp_rank": "0"},
                                     target), gauge(traffic.kv_cache_usage))
                handler = {"dynamo_component": "backend", "dynamo_namespace": "ns"}
                for name, requests in ((signals.label_values["generateEndpoint"], traffic.requests * weight),
                                       ("clear_kv_blocks", 1.0)):  # another endpoint of the worker: not routed
                    scenario.add(scraped(m["workerRequests"], {**handler, signals.labels["workerEndpoint"]: name},
                                         target), counter(requests))
                continue
            _frontend_series(fixture, share, scenario, target, served, slo, le_style)
    return scenario


def _frontend_series(fixture: EndpointFixture, traffic: Traffic, scenario: Scenario, target: dict, served: dict,
                     slo, le_style: str) -> None:
    signals, m = fixture.signals, fixture.signals.metrics
    status = signals.labels["requestStatus"]
    errors = traffic.requests * traffic.error_fraction
    request = {**served, "endpoint": "chat_completions", "request_type": "stream"}
    scenario.add(scraped(m["requestsTotal"], {**request, status: "success", "error_type": ""}, target),
                 counter(traffic.requests - errors))
    if errors:  # the frontend creates a label set's counter at its first request: no failure, no error series
        scenario.add(scraped(m["requestsTotal"], {**request, status: signals.label_values["requestError"],
                                                  "error_type": "internal"}, target), counter(errors))
    scenario.add(scraped(m["outputTokensTotal"], served, target), counter(traffic.output_tokens))
    scenario.add(scraped(m["queuedRequests"], served, target), gauge(traffic.queued))
    router = {"dynamo_namespace": f"{target['namespace']}-{target['endpoint']}", "dynamo_component": "router",
              "dynamo_endpoint": "generate"}
    scenario.add(scraped(m["kvHitRate"] + "_sum", router, target), counter(traffic.requests * traffic.kv_hit_rate))
    scenario.add(scraped(m["kvHitRate"] + "_count", router, target), counter(traffic.requests))
    scenario.add(scraped(m["routerRequests"], router, target), counter(traffic.requests))
    scenario.add(scraped(m["routerNonMaxOverlap"], {**router, "worker_type": "prefill"}, target),
                 counter(traffic.requests * traffic.non_max_overlap))
    scenario.add(scraped(m["modelReady"], served, target), gauge(1))
    for histogram, slo_ms, miss in (("timeToFirstToken", slo.ttft_ms, traffic.ttft_miss),
                                    ("interTokenLatency", slo.tpot_ms, traffic.itl_miss)):
        for le, count in bucket_counts(fixture, histogram, slo_ms, traffic.requests, miss, traffic.straddling):
            scenario.add(scraped(m[histogram] + "_bucket", {**served, "le": le_text(le, le_style)}, target),
                         counter(count))
        scenario.add(scraped(m[histogram] + "_count", served, target), counter(traffic.requests))
        # Not read by the rules; present because the exporter writes it.
        scenario.add(scraped(m[histogram] + "_sum", served, target), counter(slo_ms / 1000 * traffic.requests))


def worker_weight(pods: list[Pod], pod: Pod) -> float:
    """The share of its role's requests the router sends to a worker pod: unequal on purpose (1, 2, 3 ... parts), so
    a per-pod share that ignored the pod would be caught."""
    same = [p.name for p in pods if p.role == pod.role]
    return (same.index(pod.name) + 1) / (len(same) * (len(same) + 1) / 2)


def bucket_counts(fixture: EndpointFixture, histogram: str, slo_ms: float, requests: float, miss: float,
                  straddling: float) -> list[tuple[float, float]]:
    """Cumulative bucket counts: met requests at or under the bucket below the SLO, `straddling` ones in the bucket
    around it (met ones when the SLO is a bucket bound), missed ones in the bucket above it."""
    bound, upper, above = fixture.bounds(histogram, slo_ms)
    met, between, missed = requests * (1 - miss - straddling), requests * straddling, requests * miss
    return [(le, met * (le >= bound) + between * (le >= upper) + missed * (le >= above))
            for le in fixture.signals.buckets[histogram] + [math.inf]]


def expected_miss(fixture: EndpointFixture, histogram: str, slo_ms: float, miss: float, straddling: float) -> float:
    """The share the rules estimate: straddling requests count as met in proportion to where the SLO sits between
    the two buckets (none are misses when the SLO is itself a bucket bound)."""
    _, _, weight = fixture.signals.buckets_around(histogram, slo_ms / 1000)
    lower, upper, _ = fixture.bounds(histogram, slo_ms)
    return miss + (straddling * (1 - weight) if upper > lower else 0.0)


def neighbours(fixture: EndpointFixture, traffic: Traffic, scenario: Scenario) -> Scenario:
    """Another tenant's endpoint of the same name, and another endpoint of the same tenant."""
    endpoint_series(fixture, traffic, scenario, tenant=OTHER_TENANT)
    return endpoint_series(fixture, traffic, scenario, endpoint=OTHER_ENDPOINT)


def _quantile(fixture: EndpointFixture, histogram: str, slo_ms: float, traffic: Traffic, miss: float,
              q: float = 0.95) -> float:
    """histogram_quantile (classic buckets) over the constructed counts: linear within the bucket holding the rank,
    the second-highest bound when that bucket is +Inf."""
    counts = bucket_counts(fixture, histogram, slo_ms, traffic.requests, miss, traffic.straddling)
    rank = q * counts[-1][1]
    index = next(i for i, (_, count) in enumerate(counts) if count >= rank)
    if math.isinf(counts[index][0]):
        return counts[index - 1][0]
    start, below = counts[index - 1] if index else (0.0, 0.0)
    return start + (counts[index][0] - start) * ((rank - below) / (counts[index][1] - below))


def endpoint_cases(fixture: EndpointFixture) -> list[dict]:
    slo, prefix = fixture.plan.endpoint.slo, f"endpoint {fixture.plan.name}"
    healthy = Traffic()

    def scenario(traffic: Traffic, with_other_tenant: bool = False) -> Callable[[], Scenario]:
        def build() -> Scenario:
            built = endpoint_series(fixture, traffic, Scenario(prefix))
            if with_other_tenant:
                neighbours(fixture, other_bad, built)
            return built
        return build

    # The other tenant's endpoint is bad in every way at once: none of it may reach this endpoint's alerts.
    other_bad = Traffic(error_fraction=0.5, ttft_miss=0.9, itl_miss=0.9, queued=slo.concurrency * 10,
                        kv_cache_usage=1.0)
    labels = fixture.labels
    per_role = lambda rule: [expected_alert(rule, {**labels, "component_type": role})  # noqa: E731
                             for role in fixture.roles()]
    whole = lambda rule: [expected_alert(rule, labels)]  # noqa: E731
    burning = {"ttft": Traffic(ttft_miss=0.8), "itl": Traffic(itl_miss=0.8)}
    bad = {"NcpEndpointErrorRateHigh": scenario(Traffic(error_fraction=0.25)),
           "NcpEndpointQueueBacklog": scenario(Traffic(queued=slo.concurrency + 5)),
           "NcpEndpointKvCacheSaturated": scenario(Traffic(kv_cache_usage=0.95)),
           "NcpEndpointNoReadyWorkers": scenario(Traffic(workers_up=False))}
    expected = {name: whole for name in bad}
    expected.update({"NcpEndpointKvCacheSaturated": per_role, "NcpEndpointNoReadyWorkers": per_role})
    for signal, traffic in burning.items():
        for burn in ("Fast", "Slow"):
            bad[f"NcpEndpoint{signal.capitalize()}SloBurn{burn}"] = scenario(traffic)
            expected[f"NcpEndpoint{signal.capitalize()}SloBurn{burn}"] = whole
    cases = alert_cases(prefix, fixture.groups, scenario(healthy, with_other_tenant=True)(), bad, expected)
    # A moderate TTFT burn (50% of requests, 10x budget) pages only on the slow window.
    slow_only = scenario(Traffic(ttft_miss=0.5))()
    fast, slow = (next(r for r in rules_of(fixture.groups, "alert") if r["alert"] == f"NcpEndpointTtftSloBurn{b}")
                  for b in ("Fast", "Slow"))
    cases.append(alert_case(f"{prefix}: a 10x TTFT burn is slow, not fast", slow_only,
                            {fast["alert"]: [], slow["alert"]: [expected_alert(slow, labels)]}, EVAL_LONG))
    return cases + endpoint_record_cases(fixture)


def endpoint_record_cases(fixture: EndpointFixture) -> list[dict]:
    slo, labels, prefix = fixture.plan.endpoint.slo, fixture.labels, f"endpoint {fixture.plan.name}"
    traffic = Traffic(error_fraction=0.25, ttft_miss=0.25, itl_miss=0.5, straddling=0.2, queued=3,
                      kv_hit_rate=0.75, kv_cache_usage=0.5, non_max_overlap=0.125)
    pods = endpoint_pods(fixture.graph, fixture.plan.name, fixture.signals, "native")
    per_role = {role: sum(pod.role == role for pod in pods) for role in fixture.roles()}
    values = {
        "ncp:endpoint_requests:rate5m": traffic.requests / 60,
        "ncp:endpoint_errors:ratio_rate5m": traffic.error_fraction,
        "ncp:endpoint_output_tokens:rate5m": traffic.output_tokens / 60,
        "ncp:endpoint_ttft_p95:seconds": _quantile(fixture, "timeToFirstToken", slo.ttft_ms, traffic,
                                                   traffic.ttft_miss),
        "ncp:endpoint_itl_p95:seconds": _quantile(fixture, "interTokenLatency", slo.tpot_ms, traffic, traffic.itl_miss),
        "ncp:endpoint_kv_hit_rate:ratio": traffic.kv_hit_rate,
        "ncp:endpoint_queue_depth:requests": traffic.queued,
        "ncp:endpoint_model_ready:bool": 1,
        "ncp:endpoint_routing_decisions:rate5m": traffic.requests / 60,
        "ncp:endpoint_routing_non_max_overlap:ratio_rate5m": traffic.non_max_overlap,
    }
    expected = {record: [(labels, value)] for record, value in values.items()}
    expected["ncp:endpoint_kv_cache_usage:ratio"] = [({**labels, "component_type": role}, traffic.kv_cache_usage)
                                                     for role in per_role]
    expected["ncp:endpoint_workers_ready:count"] = [({**labels, "component_type": role}, count)
                                                    for role, count in per_role.items()]
    running = {"backend": fixture.plan.endpoint.backend, "runtime_version": fixture.plan.runtime_version}
    expected["ncp:endpoint_backend:info"] = [({**labels, "component_type": role, **running}, 1)
                                             for role in ["frontend", *per_role]]
    expected["ncp:endpoint_worker_requests:share_rate5m"] = [
        ({**labels, "component_type": pod.role, "pod": pod.name}, worker_weight(pods, pod))
        for pod in pods if pod.role != "frontend"]
    for record in (r["record"] for r in rules_of(fixture.groups, "record")):
        miss = re.fullmatch(r"ncp:endpoint_(ttft|itl)_slo_miss:ratio_rate\w+", record)
        if miss:
            histogram, slo_ms, share = (("timeToFirstToken", slo.ttft_ms, traffic.ttft_miss)
                                        if miss.group(1) == "ttft" else
                                        ("interTokenLatency", slo.tpot_ms, traffic.itl_miss))
            expected[record] = [(labels, expected_miss(fixture, histogram, slo_ms, share, traffic.straddling))]
    cases = []
    for contract, le_style in (("native", "prometheus3"), ("alpha", "exporter")):
        scenario = endpoint_series(fixture, traffic, Scenario(prefix), contract=contract, le_style=le_style)
        neighbours(fixture, Traffic(requests=1200, error_fraction=0.5, ttft_miss=0.9, itl_miss=0.9, queued=50,
                                    kv_cache_usage=1.0), scenario)
        cases.append(record_case(f"{prefix}: recording rules ({contract} pod labels, {le_style} le)", scenario,
                                 [check for record in _records(fixture.groups, expected)
                                  for check in exact_outputs(record, expected[record])]))
    return cases + [before_first_failure(fixture, prefix)]


def before_first_failure(fixture: EndpointFixture, prefix: str) -> dict:
    """No request has failed yet: the frontend has no error series (seen in the telemetry twin), the ratio is 0."""
    clean = endpoint_series(fixture, Traffic(), Scenario(prefix))
    return record_case(f"{prefix}: error ratio before the first failure", clean,
                       exact_outputs("ncp:endpoint_errors:ratio_rate5m", [(fixture.labels, 0.0)]))


def _records(groups: list[dict], expected: dict) -> list[str]:
    records = [rule["record"] for rule in rules_of(groups, "record")]
    missing = [record for record in records if record not in expected]
    if missing:
        raise KeyError(f"no expected output for recording rules {missing}: add them to tests/support/rule_tests.py")
    return records


# --- inference services (Triton) ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Load:
    """One inference service's behaviour per server pod, constant over the whole input."""
    requests: int = 600             # per minute at the model clients call
    error_fraction: float = 0.0
    request_p95_s: float = 0.02
    queue_p95_s: float = 0.001
    batch: float = 4.0              # inferences per engine execution
    preprocess_s: float = 0.002     # DALI compute time per request
    gpu_utilization: float = 0.6
    pending: int = 0
    servers_up: bool = True


@dataclass(frozen=True)
class InferenceFixture:
    plan: InferenceServicePlan
    monitor: dict
    groups: list[dict]
    signals: MetricSource

    @property
    def labels(self) -> dict[str, str]:
        return {"tenant": self.plan.tenant.name, "endpoint": self.plan.name, "model": self.plan.service.model}


def inference_series(fixture: InferenceFixture, load: Load, scenario: Scenario, tenant: Optional[str] = None,
                     name: Optional[str] = None) -> Scenario:
    """Every server pod's series as Triton exports them (per Triton model, labels model and version)."""
    plan, m = fixture.plan, fixture.signals.metrics
    tenant, name = tenant or plan.tenant.name, name or plan.name
    namespace = f"tenant-{tenant}"
    swapped = {plan.tenant.name: tenant, plan.name: name}
    relabelings = [{**rule, "replacement": swapped.get(rule["replacement"], rule["replacement"])}
                   for rule in fixture.monitor["podMetricsEndpoints"][0]["relabelings"]]
    port = fixture.monitor["podMetricsEndpoints"][0]["port"]
    labels = fixture.signals.labels
    for index in range(plan.service.replicas):
        pod = f"{name}-{index}"
        base = {"namespace": namespace, "pod": pod, "container": "tritonserver", "endpoint": port,
                "job": f"{namespace}/{name}", "instance": f"{pod}:{port}"}
        target = target_labels(pod_meta(namespace, pod, {}), base, relabelings)
        scenario.add(series("up", target), gauge(1 if load.servers_up else 0))
        if not load.servers_up:
            continue

        def model(triton_model: str) -> dict[str, str]:
            return {labels["model"]: triton_model, labels["version"]: "1"}

        entry, engine = model(plan.entry_model), model(plan.engine_model)
        errors = load.requests * load.error_fraction
        scenario.add(scraped(m["requestSuccess"], entry, target), counter(load.requests - errors))
        scenario.add(scraped(m["requestFailure"], {**entry, labels["failureReason"]: "BACKEND"}, target),
                     counter(errors))
        for quantile, scale in (("0.5", 0.5), ("0.95", 1.0)):
            scenario.add(scraped(m["requestSummary"], {**entry, "quantile": quantile}, target),
                         gauge(load.request_p95_s * 1e6 * scale))
            scenario.add(scraped(m["queueSummary"], {**engine, "quantile": quantile}, target),
                         gauge(load.queue_p95_s * 1e6 * scale))
        if plan.preprocess_model:
            dali = model(plan.preprocess_model)
            scenario.add(scraped(m["requestSuccess"], engine, target), counter(load.requests - errors))
            scenario.add(scraped(m["requestSuccess"], dali, target), counter(load.requests))
            scenario.add(scraped(m["computeInferDuration"], dali, target),
                         counter(load.requests * load.preprocess_s * 1e6))
        scenario.add(scraped(m["pendingRequests"], engine, target), gauge(load.pending))
        scenario.add(scraped(m["inferenceCount"], engine, target), counter(load.requests))
        scenario.add(scraped(m["executionCount"], engine, target), counter(load.requests / load.batch))
        scenario.add(scraped(m["gpuUtilization"], {}, target), gauge(load.gpu_utilization))
    return scenario


def inference_cases(fixture: InferenceFixture) -> list[dict]:
    plan, labels, prefix = fixture.plan, fixture.labels, f"inference service {fixture.plan.name}"
    slo = plan.service.slo
    other_bad = Load(error_fraction=0.5, request_p95_s=10.0, queue_p95_s=10.0, servers_up=True)

    def scenario(load: Load, with_other_tenant: bool = False) -> Callable[[], Scenario]:
        def build() -> Scenario:
            built = inference_series(fixture, load, Scenario(prefix))
            if with_other_tenant:
                inference_series(fixture, other_bad, built, tenant=OTHER_TENANT)
                inference_series(fixture, other_bad, built, name=OTHER_ENDPOINT)
            return built
        return build

    bad = {"NcpInferenceErrorRateHigh": scenario(Load(error_fraction=0.25)),
           "NcpInferenceLatencyHigh": scenario(Load(request_p95_s=slo.request_p95_ms / 1000 * 2)),
           "NcpInferenceQueueTimeHigh": scenario(Load(queue_p95_s=slo.queue_p95_ms / 1000 * 2)),
           "NcpInferenceNoReadyServers": scenario(Load(servers_up=False))}
    expected = {name: (lambda rule: [expected_alert(rule, labels)]) for name in bad}
    cases = alert_cases(prefix, fixture.groups, scenario(Load(), with_other_tenant=True)(), bad, expected)

    load = Load(error_fraction=0.25, request_p95_s=0.03, queue_p95_s=0.004, batch=8, preprocess_s=0.003,
                gpu_utilization=0.7, pending=2)
    replicas = plan.service.replicas
    values = {
        "ncp:inference_requests:rate5m": replicas * load.requests / 60,
        "ncp:inference_errors:ratio_rate5m": load.error_fraction,
        "ncp:inference_request_p95:seconds": load.request_p95_s,
        "ncp:inference_queue_p95:seconds": load.queue_p95_s,
        "ncp:inference_pending_requests:count": replicas * load.pending,
        "ncp:inference_batch_size:avg": load.batch,
        "ncp:inference_gpu_utilization:ratio": load.gpu_utilization,
        "ncp:inference_servers_ready:count": replicas,
        "ncp:inference_preprocess_time_avg:seconds": load.preprocess_s,
    }
    records = inference_series(fixture, load, Scenario(prefix))
    inference_series(fixture, other_bad, records, tenant=OTHER_TENANT)
    inference_series(fixture, other_bad, records, name=OTHER_ENDPOINT)
    expected_records = {record: [(labels, value)] for record, value in values.items()}
    cases.append(record_case(f"{prefix}: recording rules", records,
                             [check for record in _records(fixture.groups, expected_records)
                              for check in exact_outputs(record, expected_records[record])]))
    return cases


# --- site rules: GPU health, tenant usage, break-fix --------------------------------------------------------------

@dataclass(frozen=True)
class Gpu:
    node: str
    index: int
    tenant: Optional[str]       # the tenant whose pod holds the GPU, None when unallocated
    utilization: float = 80
    temperature: float = 60
    power: float = 400
    fb_used: float = 1024
    fb_free: float = 3072
    xid: float = 0
    xid_at_minute: int = 0      # the XID gauge holds 0 until this minute, then the code (a last-value gauge)
    row_remap_failure: float = 0
    remapped_rows_per_minute: float = 0
    mig_instance: Optional[str] = None  # a MIG instance's GPU_I_ID (its series also carry GPU_I_PROFILE)
    pod: Optional[str] = None   # the tenant pod holding the GPU; default <tenant>-worker-0


def dcgm_series(plan: SitePlan, recording: Recording, gpus: list[Gpu], scenario: Scenario) -> Scenario:
    dcgm = load_signals()["dcgm"]
    assert dcgm.workload_namespace_label, "data/telemetry-signals.yaml `dcgm` names its workload namespace label"
    m = dcgm.metrics
    monitor = recording.releases()["gpu-operator"].inputs["values"]["dcgmExporter"]["serviceMonitor"]
    namespace = plan.matrix.pin("gpuOperator").namespace
    for gpu in gpus:
        pod = f"nvidia-dcgm-exporter-{gpu.node}"
        base = {"namespace": namespace, "pod": pod, "container": "nvidia-dcgm-exporter",
                "service": "nvidia-dcgm-exporter", "endpoint": "gpu-metrics", "job": "nvidia-dcgm-exporter",
                "instance": f"{pod}:9400"}
        target = target_labels({"__meta_kubernetes_pod_node_name": gpu.node}, base, monitor.get("relabelings", []))
        exporter = {"gpu": str(gpu.index), "UUID": f"GPU-{gpu.node}-{gpu.index}", "device": f"nvidia{gpu.index}",
                    "modelName": plan.profile.gpu.model, "Hostname": gpu.node, "pci_bus_id": "00000000:1B:00.0",
                    "DCGM_FI_DRIVER_VERSION": "580.95.05"}
        if gpu.mig_instance is not None:
            exporter.update({dcgm.labels["migInstance"]: gpu.mig_instance, "GPU_I_PROFILE": "1g.18gb"})
        if gpu.tenant is not None:
            # dcgm-exporter's pod attribution (kubelet pod-resources API): pod, namespace, container
            # (NVIDIA/dcgm-exporter internal/pkg/transformation/const.go:21-23 @07c87278)
            exporter.update({dcgm.workload_namespace_label.removeprefix("exported_"): f"tenant-{gpu.tenant}",
                             "pod": gpu.pod or f"{gpu.tenant}-worker-0", "container": "main"})
        for key, value in (("utilization", gpu.utilization), ("temperature", gpu.temperature),
                           ("powerUsage", gpu.power), ("framebufferUsed", gpu.fb_used),
                           ("framebufferFree", gpu.fb_free), ("rowRemapFailure", gpu.row_remap_failure)):
            scenario.add(scraped(m[key], exporter, target), gauge(value))
        xid = (f"0x{gpu.xid_at_minute - 1} {number(gpu.xid)}x{STEPS - gpu.xid_at_minute}" if gpu.xid_at_minute
               else gauge(gpu.xid))
        scenario.add(scraped(m["xidErrors"], exporter, target), xid)
        scenario.add(scraped(m["uncorrectableRemappedRows"], exporter, target), counter(gpu.remapped_rows_per_minute))
    return scenario


def gpu_labels(plan: SitePlan, gpu: Gpu) -> dict[str, str]:
    labels = {"node": gpu.node, "gpu": str(gpu.index), "UUID": f"GPU-{gpu.node}-{gpu.index}",
              "modelName": plan.profile.gpu.model}
    return {**labels, "tenant": gpu.tenant} if gpu.tenant else labels


def site_cases(plan: SitePlan, recording: Recording, groups: list[dict]) -> list[dict]:
    over = plan.tenants[0].name   # the tenant whose pod holds the GPU and whose queue runs over quota
    allocated, spare = Gpu("gpu-node-0", 0, over), Gpu("gpu-node-0", 1, None, utilization=0)
    temperature = plan.config.components.telemetry.gpu_temperature_celsius

    def gpus(*changed: Gpu) -> Callable[[], Scenario]:
        return lambda: dcgm_series(plan, recording, list(changed) + [spare], Scenario("gpu"))

    # A new XID shortly before the alert is evaluated (EVAL_SHORT: its window is minutes); the healthy series hold
    # an XID code from hours earlier, which the last-value gauge still shows.
    recent_xid = minutes(EVAL_SHORT) - 5
    bad = {"NcpGpuXidError": gpus(replace(allocated, xid=79, xid_at_minute=recent_xid)),
           "NcpGpuRowRemapFailure": gpus(replace(allocated, row_remap_failure=1)),
           "NcpGpuUncorrectableRemappedRows": gpus(replace(allocated, remapped_rows_per_minute=1)),
           "NcpGpuTemperatureHigh": gpus(replace(allocated, temperature=temperature + 5)),
           "NcpGpuAllocatedButIdle": gpus(replace(allocated, utilization=2))}
    on_gpu = lambda rule: [expected_alert(rule, gpu_labels(plan, allocated))]  # noqa: E731
    queues = recording.outputs["queues"]
    quota = {tenant.name: tenant.gpu_quota for tenant in plan.tenants}
    bad["NcpTenantAboveGpuQuota"] = lambda: kai_series(recording, {over: quota[over] + 4}, Scenario("kai"))
    bad["NcpNodeQuarantined"] = lambda: nvsentinel_series(plan, {"gpu-node-0": 1}, 0, Scenario("nvsentinel"))
    bad["NcpDrainBacklog"] = lambda: nvsentinel_series(plan, {}, 3, Scenario("nvsentinel"))
    stuck = f"tenant-{over}/{over}-worker-0"
    bad["NcpTenantPodUnschedulable"] = lambda: kube_state_series([stuck], [], Scenario("pods"))
    bad["NcpTenantPodCrashLooping"] = lambda: kube_state_series([], [stuck], Scenario("pods"))
    # Capacity follows health: enough nodes quarantined that the rest no longer cover the guaranteed quotas.
    per_node = -(-plan.gpu_capacity // plan.site.gpu_nodes)
    guaranteed = sum(quota[tenant] for tenant in queues)
    out = {f"gpu-node-{i}": 1 for i in range((plan.gpu_capacity - guaranteed) // per_node + 1)}
    bad["NcpQuotaExceedsHealthyCapacity"] = lambda: nvsentinel_series(plan, out, 0, kai_series(
        recording, {}, Scenario("capacity")))
    expected = {name: on_gpu for name in bad if name.startswith("NcpGpu")}
    expected["NcpTenantAboveGpuQuota"] = lambda rule: [expected_alert(rule, {"tenant": over}, quota[over] + 4)]
    expected["NcpNodeQuarantined"] = lambda rule: [expected_alert(rule, {"node": "gpu-node-0"})]
    expected["NcpDrainBacklog"] = lambda rule: [expected_alert(rule, {}, 3)]
    pod_labels = {"tenant": over, "namespace": f"tenant-{over}", "pod": f"{over}-worker-0"}
    expected["NcpTenantPodUnschedulable"] = lambda rule: [expected_alert(rule, pod_labels)]
    expected["NcpTenantPodCrashLooping"] = lambda rule: [expected_alert(rule, {**pod_labels, "container": "main"})]
    expected["NcpQuotaExceedsHealthyCapacity"] = lambda rule: [expected_alert(rule, {}, guaranteed)]
    rails = plan.profile.fabric.nics_per_node
    bad["NcpNicLinkDown"] = lambda: nic_series({"gpu-node-0": 1}, rails, Scenario("nic"))
    expected["NcpNicLinkDown"] = lambda rule: [expected_alert(rule, {"node": "gpu-node-0"}, rails - 1)]
    for name, operators in (("NcpGpuOperatorDown", Operators(gpu_operator_status=None)),
                            ("NcpGpuOperatorReconcileFailing", Operators(gpu_operator_status=-2)),
                            ("NcpNvsentinelDown", Operators(nvsentinel_up=False)),
                            ("NcpNvsentinelModuleDown", Operators(nvsentinel_gone=FAILING_MODULE)),
                            ("NcpNvsentinelProcessingErrors", Operators(nvsentinel_failing=FAILING_MODULE)),
                            ("NcpNvsentinelNodeMonitorDown", Operators(nvsentinel_node_down=NODE_MODULE)),
                            ("NcpKaiQueueControllerDown", Operators(kai_up=False)),
                            ("NcpDynamoOperatorDown", Operators(dynamo_up=False)),
                            ("NcpDynamoOperatorReconcileErrors", Operators(dynamo_failing=True)),
                            ("NcpNetworkOperatorDown", Operators(network_up=False)),
                            ("NcpNetworkOperatorReconcileErrors", Operators(network_failing=True))):
        bad[name] = lambda operators=operators: operator_series(plan, recording, operators, Scenario("operators"))
    gpu_ns = plan.matrix.pin("gpuOperator").namespace
    container = load_signals()["nvsentinel"].label_values[FAILING_MODULE]
    expected["NcpGpuOperatorDown"] = lambda rule: [expected_alert(rule, {"namespace": gpu_ns})]
    expected["NcpGpuOperatorReconcileFailing"] = lambda rule: [expected_alert(rule, {}, -2)]
    expected["NcpNvsentinelDown"] = lambda rule: [expected_alert(rule, {})]
    expected["NcpNvsentinelModuleDown"] = lambda rule: [expected_alert(rule, {"container": container})]
    expected["NcpNvsentinelProcessingErrors"] = lambda rule: [expected_alert(rule, {"container": container})]
    monitor = load_signals()["nvsentinel"].label_values[NODE_MODULE]
    expected["NcpNvsentinelNodeMonitorDown"] = lambda rule: [expected_alert(rule, {"container": monitor,
                                                                                   "pod": f"{monitor}-1"})]
    expected["NcpKaiQueueControllerDown"] = lambda rule: [expected_alert(rule, {})]
    for part in ("Dynamo", "Network"):
        expected[f"Ncp{part}OperatorDown"] = lambda rule: [expected_alert(rule, {})]
        expected[f"Ncp{part}OperatorReconcileErrors"] = lambda rule: [
            expected_alert(rule, {"controller": FAILING_CONTROLLER})]
    # Healthy too: an XID code from hours ago (the gauge still holds it), a busy MIG slice (its utilisation reads 0)
    old_xid = Gpu("gpu-node-1", 0, None, xid=79, xid_at_minute=10)
    mig_slice = Gpu("gpu-node-2", 0, over, utilization=0, mig_instance="7")
    healthy = dcgm_series(plan, recording, [allocated, spare, old_xid, mig_slice], Scenario("site"))
    kai_series(recording, {}, healthy)
    nvsentinel_series(plan, {}, 0, healthy)
    # a platform pod pending and crash-looping outside the tenant namespaces is not a tenant's alert
    kube_state_series(["kube-system/pending-0"], ["kube-system/pending-0"], healthy)
    nic_series({}, rails, healthy)  # every rail active; each node's uncabled spare port is down, not a rail
    # operators running, the GPU Operator reconciled; old and one-off reconcile and processing errors
    operator_series(plan, recording, Operators(), healthy)
    cases = alert_cases("site", groups, healthy, bad, expected)
    per_module = {"NcpNvsentinelModuleDown", "NcpNvsentinelNodeMonitorDown"} & {r["alert"] for r in rules_of(
        groups, "alert")}
    if per_module:
        # NVSentinel wholly down is one alert (NcpNvsentinelDown), not one more per module or per node.
        cases.append(alert_case("site: NVSentinel down, no per-module alert", bad["NcpNvsentinelDown"](),
                                dict.fromkeys(sorted(per_module), []), EVAL_SHORT))

    records = dcgm_series(plan, recording, [allocated, spare], Scenario("site"))
    kai_series(recording, {over: quota[over] + 4}, records)
    nvsentinel_series(plan, {"gpu-node-0": 1}, 2, records)
    nic_series({"gpu-node-0": 1, "gpu-node-2": rails}, rails, records)
    served = worker_target(allocated, records)
    per_gpu = lambda attr: [(gpu_labels(plan, g), getattr(g, attr)) for g in (allocated, spare)]  # noqa: E731
    expected_records: dict[str, list[tuple[dict[str, str], float]]] = {
        "ncp:gpu_utilization:percent": per_gpu("utilization"),
        "ncp:gpu_temperature:celsius": per_gpu("temperature"),
        "ncp:gpu_power:watts": per_gpu("power"),
        "ncp:gpu_framebuffer_used:ratio": [(gpu_labels(plan, g), g.fb_used / (g.fb_used + g.fb_free))
                                           for g in (allocated, spare)],
        "ncp:gpu_xid_errors:last": per_gpu("xid"),
        "ncp:tenant_gpu_allocated:count": [({"tenant": t}, quota[t] + 4 * (t == over)) for t in queues],
        "ncp:tenant_gpu_quota:count": [({"tenant": t}, quota[t]) for t in queues],
        "ncp:node_quarantined:bool": [({"node": "gpu-node-0"}, 1), ({"node": "gpu-node-1"}, 0)],
        "ncp:nodes_quarantined:count": [({}, 1)],
        "ncp:drain_queue:depth": [({}, 2)],
        "ncp:endpoint_gpu:info": [({**served, **gpu_labels(plan, allocated)}, 1)],
        "ncp:site_gpus_healthy:count": [({}, plan.gpu_capacity - per_node)],
        "ncp:site_gpus_guaranteed:count": [({}, guaranteed)],
        "ncp:nic_port_state:id": [({"node": node, "device": f"mlx5_{port}", "port": "1"},
                                   1 if port == rails or port < down else 4)
                                  for node, down in (("gpu-node-0", 1), ("gpu-node-1", 0), ("gpu-node-2", rails))
                                  for port in range(rails + 1)],
        "ncp:node_nic_ports_active:count": [({"node": "gpu-node-0"}, rails - 1), ({"node": "gpu-node-1"}, rails),
                                            ({"node": "gpu-node-2"}, 0)],
    }
    cases.append(record_case("site: recording rules", records,
                             [check for record in _records(groups, expected_records)
                              for check in exact_outputs(record, expected_records[record])]))
    return cases


def worker_target(gpu: Gpu, scenario: Scenario) -> dict[str, str]:
    """The `up` series of the endpoint worker pod that holds `gpu` (its PodMonitor's labels, the pod dcgm_series
    attributes the GPU to) and a frontend pod of the endpoint, which holds no GPU; returns the endpoint's labels."""
    served = {"tenant": gpu.tenant or "", "endpoint": "chat", "model": "m", "component_type": "worker"}
    base = {"namespace": f"tenant-{gpu.tenant}", "job": f"tenant-{gpu.tenant}/chat", "container": "main"}
    scenario.add(series("up", {**base, **served, "pod": f"{gpu.tenant}-worker-0", "endpoint": "chat"}), gauge(1))
    scenario.add(series("up", {**base, **served, "component_type": "frontend", "pod": f"{gpu.tenant}-frontend-0"}),
                 gauge(1))
    return served


FAILING_MODULE = "faultQuarantine"  # the NVSentinel module the bad cases take down or make fail
NODE_MODULE = "gpuHealthMonitor"  # the per-node NVSentinel module whose pod on one node stops answering
FAILING_CONTROLLER = "dynamographdeployment"  # the controller whose reconciles keep failing
BACKOFF_MINUTES = 17  # a failing object's retry period once client-go's controller rate limiter reaches its 1000 s cap


@dataclass(frozen=True)
class Operators:
    """How the platform operators behave: the GPU Operator's reconciliation status (None: it exports nothing, i.e.
    not running or not scraped), whether NVSentinel's, KAI's queue controller's, the Dynamo operator's and the Network
    Operator's targets answer, which NVSentinel module has no target or keeps failing, and whether an operator's
    controller keeps failing its reconciles."""
    gpu_operator_status: Optional[int] = 1
    nvsentinel_up: bool = True
    nvsentinel_gone: Optional[str] = None
    nvsentinel_failing: Optional[str] = None
    nvsentinel_node_down: Optional[str] = None  # a per-node module whose pod on the second node answers 0
    kai_up: bool = True
    dynamo_up: bool = True
    dynamo_failing: bool = False
    network_up: bool = True
    network_failing: bool = False


def every(period: int) -> str:
    """A counter that steps by one every `period` minutes over the whole input."""
    return " ".join(f"{k}x{period - 1}" for k in range(STEPS // period + 1))


def once_at(minute: int) -> str:
    """A counter that steps by one once, at `minute` (a retried conflict): 0 before, 1 after."""
    return f"0x{minute - 1} 1x{STEPS - minute}"


def nvsentinel_running(recording: Recording) -> list[str]:
    """The modules the rendered NVSentinel release runs: its enabled global.<module> toggles the signals name, and the
    platform connector, which always runs."""
    toggles = recording.releases()["nvsentinel"].inputs["values"]["global"]
    known = load_signals()["nvsentinel"].label_values
    return [m for m in known if m == NVSENTINEL_ALWAYS_ON or toggles.get(m, {}).get("enabled") is True]


def controller_series(target: dict[str, str], failing: bool, scenario: Scenario) -> None:
    """controller-runtime's reconcile-error counters of two controllers as the manager exports them (each created at 0
    when its controller starts): the failing one errors every BACKOFF_MINUTES; healthy, the second had one conflict
    20 minutes before the evaluation, which must not fire."""
    errors = load_signals()["controllerRuntime"].metrics["reconcileErrors"]
    scenario.add(series(errors, {**target, "controller": FAILING_CONTROLLER}), every(BACKOFF_MINUTES) if failing
                 else gauge(0))
    scenario.add(series(errors, {**target, "controller": "other"}), once_at(minutes(EVAL_LONG) - 20))


def operator_series(plan: SitePlan, recording: Recording, operators: Operators, scenario: Scenario) -> Scenario:
    """The operators' series as their monitors scrape them: the GPU Operator's own gauges through its own
    ServiceMonitor (Service gpu-operator, port gpu-operator-metrics; no label of their own), `up` of NVSentinel's
    modules through its chart's one PodMonitor (job <namespace>/nvsentinel-pod-monitor, the module in `container`) and
    their processing-error counters, KAI's queue controller through the program's ServiceMonitor (job: the Service
    name), the Dynamo operator through its chart's ServiceMonitor (job: the Service <release>-dynamo-operator) and the
    Network Operator through the program's rendered ServiceMonitor (job: its Service's name)."""
    signals = load_signals()
    gpu_ns, nvs_ns, kai_ns, dyn_ns, net_ns = (plan.matrix.pin(chart).namespace for chart in (
        "gpuOperator", "nvsentinel", "kaiScheduler", "dynamoPlatform", "networkOperator"))
    if operators.gpu_operator_status is not None:
        gpu = signals["gpuOperator"].metrics
        target = {"namespace": gpu_ns, "pod": "gpu-operator-7d9f", "container": "gpu-operator",
                  "service": "gpu-operator", "endpoint": "gpu-operator-metrics", "job": "gpu-operator",
                  "instance": "10.0.0.5:8080"}
        scenario.add(series(gpu["reconciliationStatus"], target), gauge(operators.gpu_operator_status))
        scenario.add(series(gpu["lastSuccess"], target), gauge(1.7e9))
    nvs = signals["nvsentinel"]
    for index, module in enumerate(nvsentinel_running(recording)):
        if module == operators.nvsentinel_gone:
            continue
        container = nvs.label_values[module]
        target = {"namespace": nvs_ns, "pod": f"{container}-0", nvs.labels["module"]: container,
                  "endpoint": "metrics", "job": f"{nvs_ns}/nvsentinel-pod-monitor", "instance": f"10.0.1.{index}:2112"}
        scenario.add(series("up", target), gauge(1 if operators.nvsentinel_up else 0))
        if module in nvs.component_types["perNode"]:  # a DaemonSet: its pod on a second node
            node_up = operators.nvsentinel_up and module != operators.nvsentinel_node_down
            scenario.add(series("up", {**target, "pod": f"{container}-1", "instance": f"10.0.2.{index}:2112"}),
                         gauge(1 if node_up else 0))
        errors = {"faultQuarantine": "faultQuarantineErrors", "nodeDrainer": "nodeDrainerErrors",
                  "faultRemediation": "faultRemediationErrors"}.get(module)
        if errors:
            failing = every(10) if module == operators.nvsentinel_failing else once_at(minutes(EVAL_LONG) - 20)
            scenario.add(series(nvs.metrics[errors], {**target, "error_type": "datastore"}), failing)
    job = signals["kai"].label_values["queueControllerJob"]
    scenario.add(series("up", {"namespace": kai_ns, "pod": "queue-controller-0", "container": "queue-controller",
                               "service": job, "endpoint": "metrics", "job": job}), gauge(1 if operators.kai_up else 0))
    dynamo_job = f"{DYNAMO_RELEASE}-dynamo-operator"  # the chart's Service (templates/_helpers.tpl fullname)
    target = {"namespace": dyn_ns, "pod": f"{dynamo_job}-controller-manager-5c7d", "container": "manager",
              "service": dynamo_job, "endpoint": "metrics", "job": dynamo_job, "instance": "10.0.2.7:8080"}
    scenario.add(series("up", target), gauge(1 if operators.dynamo_up else 0))
    controller_series(target, operators.dynamo_failing, scenario)
    monitors = [r.inputs for r in recording.custom_resources("ServiceMonitor")
                if r.inputs["metadata"]["namespace"] == net_ns]
    for monitor in monitors:  # the network layer renders its Service and ServiceMonitor on RDMA profiles only
        service = monitor["metadata"]["name"]  # the Service of the same name, which the monitor selects
        target = {"namespace": net_ns, "pod": "network-operator-6b9c", "container": "network-operator",
                  "service": service, "endpoint": monitor["spec"]["endpoints"][0]["port"], "job": service,
                  "instance": "10.0.3.4:8080"}
        scenario.add(series("up", target), gauge(1 if operators.network_up else 0))
        controller_series(target, operators.network_failing, scenario)
    return scenario


def correlation_suite(plan: SitePlan, recording: Recording, query: str) -> tuple[dict[str, list[dict]], list[dict]]:
    """Endpoint slow -> which GPU on which node, from the exporters' own labels: the site rules with an aggregated
    endpoint's rules; its series through its rendered PodMonitor with a slow TTFT, and DCGM series of the two GPUs the
    kubelet maps to its first worker pod, one GPU of another tenant's pod and an unallocated one. `query` must give
    each of the endpoint's two GPUs, with node and GPU labels, valued with the endpoint's TTFT p95."""
    files = rule_files(recording)
    fixture = next(f for f in endpoint_fixtures(plan, recording) if f.plan.mode == "aggregated")
    worker = next(pod for pod in endpoint_pods(fixture.graph, fixture.plan.name, fixture.signals, "native")
                  if pod.role != "frontend")
    tenant = fixture.plan.tenant.name
    serving = [Gpu("gpu-node-3", index, tenant, pod=worker.name) for index in (0, 1)]
    others = [Gpu("gpu-node-4", 0, OTHER_TENANT), Gpu("gpu-node-4", 1, None, utilization=0)]
    traffic = Traffic(ttft_miss=0.5)
    scenario = endpoint_series(fixture, traffic, Scenario("correlation"))
    dcgm_series(plan, recording, serving + others, scenario)
    ttft = _quantile(fixture, "timeToFirstToken", fixture.plan.endpoint.slo.ttft_ms, traffic, traffic.ttft_miss)
    rows = [series("", {**fixture.labels, "component_type": worker.role, **gpu_labels(plan, gpu)})
            for gpu in serving]
    checks = [{"expr": f"({query}) * 0", "eval_time": EVAL_LONG,
               "exp_samples": [{"labels": row, "value": 0} for row in rows]},
              {"expr": f"abs(({query}) - {ttft!r}) < bool {TOLERANCE}", "eval_time": EVAL_LONG,
               "exp_samples": [{"labels": row, "value": 1} for row in rows]}]
    site = {name: groups for name, groups in files.items() if name.endswith(".ncp-gpu-health")}
    return ({**site, fixture.plan.name: fixture.groups},
            [record_case(f"endpoint {fixture.plan.name} slow -> its GPUs and nodes", scenario, checks)])


def kai_series(recording: Recording, allocated: dict[str, int], scenario: Scenario) -> Scenario:
    """Every registered KAI queue (the root too) as the queue controller exports it; tenants at quota by default."""
    kai = load_signals()["kai"]
    base = {"namespace": "kai-scheduler", "pod": "queue-controller-0", "container": "queue-controller",
            "service": "queue-controller", "endpoint": "metrics", "job": "queue-controller",
            "instance": "queue-controller-0:8080"}
    tenant_of = {queue: tenant for tenant, queue in recording.outputs["queues"].items()}
    for queue in recording.custom_resources("Queue"):
        name = queue.inputs["metadata"]["name"]
        quota = max(queue.inputs["spec"]["resources"]["gpu"]["quota"], 0)
        exporter = {kai.labels["queue"]: name, "queue_metadata_name": name, "queue_display_name": ""}
        tenant = tenant_of.get(name)
        used = allocated.get(tenant, quota) if tenant is not None else quota
        scenario.add(scraped(kai.metrics["queueDeservedGpus"], exporter, base), gauge(quota))
        scenario.add(scraped(kai.metrics["queueAllocatedGpus"], exporter, base), gauge(used))
    return scenario


def kube_state_series(unschedulable: list[str], crash_looping: list[str], scenario: Scenario) -> Scenario:
    """kube-state-metrics' series for pods `<namespace>/<pod>`, as they exist only while the state holds (honorLabels
    true: namespace and pod are the pod's own)."""
    ksm = load_signals()["kubeStateMetrics"]
    target = {"job": "kube-state-metrics", "instance": "kube-state-metrics-0:8080", "endpoint": "http"}
    for name in unschedulable:
        namespace, pod = name.split("/")
        scenario.add(series(ksm.metrics["podUnschedulable"], {**target, "namespace": namespace, "pod": pod,
                                                             "uid": f"uid-{pod}"}), gauge(1))
    for name in crash_looping:
        namespace, pod = name.split("/")
        scenario.add(series(ksm.metrics["containerWaitingReason"], {
            **target, "namespace": namespace, "pod": pod, "uid": f"uid-{pod}", "container": "main",
            "reason": ksm.label_values["crashLoop"]}), gauge(1))
    return scenario


def nvsentinel_series(plan: SitePlan, quarantined: dict[str, int], drain_queue: int, scenario: Scenario) -> Scenario:
    """Fault quarantine's per-node gauge for two GPU nodes and the node drainer's queue, scraped by the chart's
    PodMonitor (port 2112)."""
    nvsentinel = load_signals()["nvsentinel"]
    namespace = plan.matrix.pin("nvsentinel").namespace

    def target(component: str) -> dict[str, str]:
        return {"namespace": namespace, "pod": f"{component}-0", "container": component, "endpoint": "metrics",
                "job": f"{namespace}/{component}", "instance": f"{component}-0:2112"}

    for node in sorted({"gpu-node-0", "gpu-node-1", *quarantined}):
        scenario.add(scraped(nvsentinel.metrics["quarantinedNodes"], {nvsentinel.labels["node"]: node},
                             target("fault-quarantine")), gauge(quarantined.get(node, 0)))
    scenario.add(scraped(nvsentinel.metrics["drainQueueDepth"], {}, target("node-drainer")), gauge(drain_queue))
    return scenario


def nic_series(down: dict[str, int], rails: int, scenario: Scenario) -> Scenario:
    """node_exporter on GPU nodes gpu-node-0, gpu-node-1 and those in `down`: `rails` RDMA ports each (mlx5_<i>
    port 1), active (4) but the first `down[node]` (1, down), plus one spare port never cabled (1); and each node's
    node_uname_info, whose nodename names the node (the series carry only the scrape target's instance)."""
    exporter = load_signals()["nodeExporter"]
    nodes = sorted({"gpu-node-0", "gpu-node-1", *down})
    for index, node in enumerate(nodes):
        target = {"job": "node-exporter", "instance": f"10.0.0.{index + 1}:9100", "namespace": "monitoring",
                  "pod": f"node-exporter-{index}", "container": "node-exporter", "endpoint": "http-metrics",
                  "service": "node-exporter"}
        scenario.add(scraped(exporter.metrics["unameInfo"], {exporter.labels["nodename"]: node, "sysname": "Linux",
                                                             "machine": "x86_64"}, target), gauge(1))
        for port in range(rails + 1):
            state = 1 if port == rails or port < down.get(node, 0) else 4
            scenario.add(scraped(exporter.metrics["portState"], {exporter.labels["device"]: f"mlx5_{port}",
                                                                 exporter.labels["port"]: "1"}, target), gauge(state))
    return scenario


# --- the whole program --------------------------------------------------------------------------------------------

def rule_files(recording: Recording) -> dict[str, list[dict]]:
    """Every registered PrometheusRule's groups, by <namespace>.<name>."""
    return {f"{r.inputs['metadata']['namespace']}.{r.inputs['metadata']['name']}": r.inputs["spec"]["groups"]
            for r in recording.custom_resources("PrometheusRule")}


def _registered(recording: Recording, kind: str, name: str, namespace: str) -> dict:
    for r in recording.custom_resources(kind):
        if r.inputs["metadata"]["name"] == name and r.inputs["metadata"]["namespace"] == namespace:
            return r.inputs["spec"]
    raise KeyError(f"no {kind} {namespace}/{name} was registered")


def endpoint_fixtures(plan: SitePlan, recording: Recording) -> list[EndpointFixture]:
    signals = load_signals()["dynamo"]
    return [EndpointFixture(e, _registered(recording, "PodMonitor", e.name, e.namespace),
                            _registered(recording, "DynamoGraphDeployment", e.name, e.namespace),
                            _registered(recording, "PrometheusRule", f"{e.name}-serving", e.namespace)["groups"],
                            signals)
            for e in plan.endpoints]


def rule_test_suites(plan: SitePlan, recording: Recording) -> list[tuple[dict[str, list[dict]], list[dict]]]:
    """(rule files, test cases) pairs: the site rules, and each endpoint's rules on their own."""
    files = rule_files(recording)
    site = {name: groups for name, groups in files.items() if name.endswith(".ncp-gpu-health")}
    if len(site) != 1:
        raise KeyError(f"expected one site PrometheusRule ncp-gpu-health, found {sorted(files)}")
    suites = [(site, site_cases(plan, recording, next(iter(site.values()))))]
    for endpoint in endpoint_fixtures(plan, recording):
        suites.append(({endpoint.plan.name: endpoint.groups}, endpoint_cases(endpoint)))
    signals = load_signals()["triton"]
    for service in plan.inference_services:
        monitor = _registered(recording, "PodMonitor", service.name, service.namespace)
        groups = _registered(recording, "PrometheusRule", f"{service.name}-inference", service.namespace)["groups"]
        suites.append(({service.name: groups}, inference_cases(InferenceFixture(service, monitor, groups, signals))))
    return suites
