"""The telemetry twin (#25): the real Prometheus 3 server (tools/e2e/bootstrap.sh, promtool's module version) scrapes
the
serving twin's real Dynamo 1.5.0 frontend and mocker processes through the scrape jobs the Prometheus Operator
generates from the endpoint's rendered PodMonitor, and evaluates the endpoint's rendered rules on those series.

- the scrape jobs follow the operator's generatePodMonitorConfig step by step (file and lines in
  data/serving-twin.yaml `telemetry.operatorSource`) and pass `promtool check config`;
- every twin process is a healthy target carrying the labels the rules select on (tenant, endpoint, model,
  component_type);
- every metric the endpoint's rules read has a scraped series with those labels (but those only a real engine
  exports, data/serving-twin.yaml telemetry.engineOnlySeries), every rule evaluates without error, and the recording
  rules yield series for the endpoint once it serves traffic;
- the planner's own traffic queries (Dynamo 1.5.0 PrometheusAPIClient, configured by the rendered planner) read the
  disaggregated endpoint's traffic from the server, and read nothing through a monitor without the frontend's
  dynamo_namespace relabeling (#24 item 3).

The twin's Python is .venv-twin; NCP_TWIN_PORT_BASE moves its ports (default 21000)."""
import copy
import json
import os
import re
import subprocess
import time

import pytest
import yaml

from tests.support.otlp import OtlpReceiver
from tests.support.promtool import find_promtool
from ncp.plan.catalog import integration_points, load_signals
from ncp.plan.names import RUNTIME_VERSION_LABEL
from tests.test_twin import CHAT, DISAGG, PORTS, model_root, rendered, stack, twin_of  # noqa: F401 (model_root: fixture)
from ncp.twin.prometheus import (PrometheusServer, find_prometheus, pod_monitor_jobs, prometheus_config,
                             telemetry_settings, twin_targets)

pytestmark = pytest.mark.engine  # the Prometheus server and promtool come from the engine build

SIGNALS = load_signals()["dynamo"]
MODEL = "Qwen/Qwen3-32B"
RULE_LABELS = ("tenant", "endpoint", "model")


def required(found: tuple, what: str):
    """An engine binary (engine_bin.find_engine_binary's answer), or skip naming why it is missing."""
    if found[0] is None:
        pytest.skip(f"{what} is not available: {found[1]}")
    return found[0]


@pytest.fixture(scope="module")
def prometheus_binary():
    return required(find_prometheus(), "the Prometheus server")


def _named(recording, kind: str, name: str) -> dict:
    [resource] = [r.inputs for r in recording.custom_resources(kind) if r.inputs["metadata"]["name"] == name]
    return resource


def chat_endpoint(router: str = "kv") -> tuple:
    """chat-dense's rendered DGD, PodMonitor and serving rules (aggregated, KV router: the router's hit-rate
    histogram is one of the rules' series)."""
    recording, graphs = rendered(*stack(router=router, endpoints=(CHAT,)))
    return graphs[CHAT], _named(recording, "PodMonitor", CHAT), _named(recording, "PrometheusRule", f"{CHAT}-serving")


# --- the operator's translation -----------------------------------------------------------------------------------

def test_scrape_jobs_follow_the_operators_pod_monitor_translation(tmp_path):
    """promcfg.go at the pinned operator module: job name podMonitor/<ns>/<name>/<i> (:1294-1298), honor_labels
    written (:447-453), the job kept as __tmp_prometheus_job_name (:1081-1089), non-running pods dropped
    (:2080-2086), the selector's matchLabels kept on label;labelpresent (:1371-1378), the named port kept
    (:1412-1418), namespace/container/pod (:1445-1458), job and endpoint (:1476-1493), then the monitor's own
    relabelings in order (:1504-1505), then the shard filter (:2128-2148)."""
    _, monitor, _ = chat_endpoint()
    jobs = pod_monitor_jobs(monitor, tmp_path / "targets.json")
    spec = monitor["spec"]
    assert [job["job_name"] for job in jobs] == [f"podMonitor/{monitor['metadata']['namespace']}/{CHAT}/{i}"
                                                 for i in range(len(spec["podMetricsEndpoints"]))]
    for job, endpoint in zip(jobs, spec["podMetricsEndpoints"], strict=False):
        steps = job["relabel_configs"]
        assert job["honor_labels"] is False and job["scrape_interval"] == endpoint["interval"]
        assert steps[0] == {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}
        assert steps[1]["action"] == "drop" and steps[1]["regex"] == "(Failed|Succeeded)"
        [(key, value)] = spec["selector"]["matchLabels"].items()
        assert steps[2]["regex"] == f"({value});true" and steps[2]["source_labels"][1].endswith(
            re.sub(r"[^a-zA-Z0-9_]", "_", key))
        assert steps[3] == {"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                            "regex": endpoint["port"]}
        assert [s["target_label"] for s in steps[4:9]] == ["namespace", "container", "pod", "job", "endpoint"]
        own = steps[9:9 + len(endpoint["relabelings"])]
        assert [s["target_label"] for s in own] == [r["targetLabel"] for r in endpoint["relabelings"]]
        assert all(s["action"] == r["action"].lower() for s, r in zip(own, endpoint["relabelings"], strict=False))
        assert [s["action"] for s in steps[-3:]] == ["replace", "hashmod", "keep"]
        assert steps[-1]["regex"] == f"{telemetry_settings()['shard']};|.+;.+"
    assert set(telemetry_settings()["operatorSource"]) >= {"jobName", "selector", "port", "userRelabelings"}


def test_a_monitor_field_the_translation_does_not_model_is_refused(tmp_path):
    _, monitor, _ = chat_endpoint()
    extended = copy.deepcopy(monitor)
    extended["spec"]["podMetricsEndpoints"][0]["metricRelabelings"] = [{"action": "drop", "regex": "x"}]
    with pytest.raises(ValueError, match="metricRelabelings"):
        pod_monitor_jobs(extended, tmp_path / "t.json")


def test_the_generated_configuration_passes_promtool(tmp_path):
    promtool = required(find_promtool(), "promtool")
    _, monitor, rules = chat_endpoint()
    (tmp_path / "targets.json").write_text("[]")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rules["spec"]["groups"]}))
    config = prometheus_config(pod_monitor_jobs(monitor, tmp_path / "targets.json"), ["rules.yaml"], "30s")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = subprocess.run([str(promtool), "check", "config", "prometheus.yml"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the real server on the real processes ------------------------------------------------------------------------

def rule_metrics(groups: list[dict]) -> set[str]:
    """The exporter metrics the rules read (the names of data/telemetry-signals.yaml that occur in an expression),
    plus `up`."""
    exprs = " ".join(rule["expr"] for group in groups for rule in group["rules"])
    used = set()
    for name in SIGNALS.metrics.values():
        if re.search(rf"\b{re.escape(name)}(_bucket|_sum|_count)?\b", exprs):
            used.add(name)
    return used | {"up"} if re.search(r"\bup\{", exprs) else used


def telemetry_twin(graph, monitor, rules, model_root, directory, prometheus_binary):  # noqa: F811
    twin = twin_of(graph, model_root, directory / "twin")
    namespace = integration_points().dynamo.dynamo_namespace(graph["metadata"]["namespace"], graph["metadata"]["name"])
    targets = twin_targets(graph, twin.processes, SIGNALS, namespace)
    jobs = pod_monitor_jobs(monitor, directory / "prometheus" / "targets.json", interval="1s")
    server = PrometheusServer(prometheus_binary, directory / "prometheus", PORTS.take(), jobs,
                              {f"{CHAT}-serving": rules["spec"]["groups"]})
    return twin, server, targets


def send_traffic(twin, server, own: str, requests: int = 8, model: str = MODEL) -> None:
    """Requests spread over several scrapes after the first one: the frontend creates its request counters at the
    first request, so a rate needs samples before and after later ones."""
    twin.chat(model, "first request", max_tokens=2)
    server.wait_for(f'{SIGNALS.metrics["requestsTotal"]}{{{own}}}')
    for i in range(requests):
        assert twin.chat(model, f"request {i} through the frontend", max_tokens=8)["usage"]["completion_tokens"]
        time.sleep(0.5)


def test_prometheus_scrapes_the_twin_and_evaluates_the_endpoints_rules(model_root, tmp_path,  # noqa: F811
                                                                     prometheus_binary):
    graph, monitor, rules = chat_endpoint()
    twin, server, targets = telemetry_twin(graph, monitor, rules, model_root, tmp_path, prometheus_binary)
    groups = rules["spec"]["groups"]
    own = f'tenant="{monitor["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["replacement"]}", endpoint="{CHAT}"'
    with twin, server.start(targets):
        twin.wait_for_model(MODEL)
        up = server.wait_for(f"up{{{own}}} == 1", at_least=len(targets))
        send_traffic(twin, server, own)
        assert {s["metric"]["component_type"] for s in up} == {"frontend", "worker"}
        assert all(s["metric"]["model"] == MODEL for s in up)
        missing = {}
        for metric in sorted(rule_metrics(groups)):
            found = server.query(f"{metric}{{{own}}}") or server.query(f"{metric}_count{{{own}}}")
            if not found:
                missing[metric] = [s["__name__"] for s in server.series(f'{{__name__=~"{metric}.*"}}')][:5]
            else:
                assert all(s["metric"].get(label) for s in found for label in RULE_LABELS), (metric, found[0])
        engine_only = set(telemetry_settings()["engineOnlySeries"])
        assert set(missing) == engine_only, (
            f"series the rules read that the real processes do not export: {missing} (only {sorted(engine_only)}, "
            "which a real engine's publisher sets and the mocker does not, may be missing)")
        server.wait_for(f"ncp:endpoint_requests:rate5m{{{own}}} > 0", timeout=30)
        unhealthy = [(r["name"], r.get("lastError")) for r in server.rules() if r["health"] != "ok"]
        assert unhealthy == []
        records = {r["name"] for r in server.rules() if r["type"] == "recording"}
        empty = sorted(r for r in records if not server.query(f"{r}{{{own}}}"))
        assert empty == engine_only_records(groups, engine_only), (
            f"recording rules with no series for the endpoint under traffic: {empty}")
        assert_backend_and_routing(server, own, graph)


def assert_backend_and_routing(server, own: str, graph: dict) -> None:
    """Backend version and routing decisions as series (#25): what each running role is (the DGD's pod labels through
    the PodMonitor), the real KV router's decision count, and each real worker's share of them."""
    [labels] = {tuple(sorted(s["extraPodMetadata"]["labels"].items())) for s in graph["spec"]["services"].values()}
    version = dict(labels)
    running = server.query(f"ncp:endpoint_backend:info{{{own}}}")
    assert {(s["metric"]["component_type"], s["metric"]["backend"], s["metric"]["runtime_version"])
            for s in running} == {(role, graph["spec"]["backendFramework"], version[RUNTIME_VERSION_LABEL])
                                  for role in ("frontend", "worker")}
    assert float(server.query(f"ncp:endpoint_model_ready:bool{{{own}}}")[0]["value"][1]) == 1
    assert float(server.query(f"ncp:endpoint_routing_decisions:rate5m{{{own}}}")[0]["value"][1]) > 0
    [non_max] = server.query(f"ncp:endpoint_routing_non_max_overlap:ratio_rate5m{{{own}}}")
    assert 0 <= float(non_max["value"][1]) <= 1
    shares = server.query(f"ncp:endpoint_worker_requests:share_rate5m{{{own}}}")
    assert len({s["metric"]["pod"] for s in shares}) == len(shares) >= 1
    assert abs(sum(float(s["value"][1]) for s in shares) - 1) < 1e-6, shares


def engine_only_records(groups: list[dict], engine_only: set[str]) -> list[str]:
    """The recording rules that read only series the mocker does not export."""
    return sorted(rule["record"] for group in groups for rule in group["rules"]
                  if "record" in rule and rule_metrics([{"rules": [rule]}]) and rule_metrics([{"rules": [rule]}])
                  <= engine_only)


# --- the planner's queries, answered by the real server ---------------------------------------------------------

PLANNER_QUERIES = """
import json, sys
from dynamo.planner.config.planner_config import PlannerConfig
from dynamo.planner.monitoring.traffic_metrics import PrometheusAPIClient
config = PlannerConfig.from_config_arg(sys.argv[1])
client = PrometheusAPIClient(config.metric_pulling_prometheus_endpoint, config.namespace,
                             metrics_source=config.throughput_metrics_source)
interval, model = f"{config.throughput_adjustment_interval_seconds}s", sys.argv[2]
print(json.dumps({"namespace": config.namespace, "endpoint": config.metric_pulling_prometheus_endpoint,
                  "requests": client.get_avg_request_count(interval, model),
                  "ttft": client.get_avg_time_to_first_token(interval, model),
                  "itl": client.get_avg_inter_token_latency(interval, model),
                  "isl": client.get_avg_input_sequence_tokens(interval, model),
                  "osl": client.get_avg_output_sequence_tokens(interval, model)}))
"""
PLANNER_READS = ("requests", "ttft", "itl", "isl", "osl")


def planner_reads(planner, prometheus_url: str, model: str) -> dict:
    """The Dynamo 1.5.0 planner's own traffic queries (PrometheusAPIClient, the PrometheusTrafficProvider's client,
    dynamo/planner/environment/metrics_provider/prometheus_traffic_provider.py:33-73), configured by the rendered
    planner's --config and environment; only PROMETHEUS_ENDPOINT points at the twin's server instead of the
    cluster Service."""
    from ncp.twin.run import twin_python
    config = planner.argv[planner.argv.index("--config") + 1]
    env = {**planner.env, "PATH": os.environ.get("PATH", ""), "PROMETHEUS_ENDPOINT": prometheus_url}
    result = subprocess.run([twin_python(), "-c", PLANNER_QUERIES, config, model], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_planners_queries_read_the_disaggregated_endpoint_from_the_real_server(model_root, tmp_path,  # noqa: F811
                                                                                   prometheus_binary):
    """reasoning-large: frontend, prefill and decode mockers, the planner's queries against the server scraping them
    through the rendered PodMonitor. The same twin scraped through the monitor without the frontend's
    dynamo_namespace relabeling (#24 item 3) leaves the planner reading nothing, as it would in a cluster."""
    from components.serving.rules import frontend_relabelings
    recording, graphs = rendered(*stack(endpoints=(DISAGG,)))
    graph, monitor = graphs[DISAGG], _named(recording, "PodMonitor", DISAGG)
    model = "Qwen/Qwen3-235B-A22B-FP8"
    broken = copy.deepcopy(monitor)
    for endpoint in broken["spec"]["podMetricsEndpoints"]:
        endpoint["relabelings"] = [r for r in endpoint["relabelings"] if r not in frontend_relabelings(SIGNALS)]
    twin = twin_of(graph, model_root, tmp_path / "twin")
    [planner] = [p for p in twin.processes if p.component_type == "planner"]
    twin.processes = [p for p in twin.processes if p.component_type != "planner"]  # its decisions: not run here
    namespace = planner.env["DYN_NAMESPACE"]
    targets = twin_targets(graph, twin.processes, SIGNALS, namespace)
    servers = {name: PrometheusServer(prometheus_binary, tmp_path / name, PORTS.take(),
                                      pod_monitor_jobs(pme, tmp_path / name / "targets.json", interval="1s"))
               for name, pme in (("rendered", monitor), ("without-relabeling", broken))}
    own = f'endpoint="{DISAGG}"'
    with twin, servers["rendered"].start(targets), servers["without-relabeling"].start(targets):
        twin.wait_for_model(model)
        servers["rendered"].wait_for(f"up{{{own}}} == 1", at_least=len(targets))
        send_traffic(twin, servers["rendered"], own, model=model)
        servers["without-relabeling"].wait_for(f'{SIGNALS.metrics["requestsTotal"]}{{{own}}}')
        reads = planner_reads(planner, servers["rendered"].url, model)
        blind = planner_reads(planner, servers["without-relabeling"].url, model)
    assert reads["namespace"] == namespace and reads["endpoint"] == servers["rendered"].url
    assert all(reads[key] and reads[key] > 0 for key in PLANNER_READS), reads
    assert not any(blind[key] for key in PLANNER_READS), blind


# --- logs and traces: one request through gateway -> frontend -> worker ------------------------------------------

GATEWAY_TRACE, GATEWAY_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
COLLECTOR = "http://otel-collector.ncp-observability.svc:4317"  # the site's collector (components.telemetry)


def traced_twin(graph: dict, model_root, directory, receiver: OtlpReceiver):  # noqa: F811
    """The twin with the rendered OTLP settings, the collector's address swapped for the test's receiver."""
    from ncp.plan.catalog import load_dynamo_runtime
    export = load_dynamo_runtime().telemetry_export
    twin = twin_of(graph, model_root, directory)
    for process in twin.processes:
        for env in (export.traces_endpoint_env, export.logs_endpoint_env):
            assert process.env.get(env) == COLLECTOR, f"{process.service}: the rendered graph sets no {env}"
            process.env[env] = receiver.url
    return twin


def test_otlp_export_is_rendered_only_with_the_sites_collector_and_egress_to_it():
    """Without components.telemetry.otlpEndpoint the pods export nothing (JSONL logs only); with it every Dynamo
    service exports to it, and the graph's pods get egress to the collector's namespace and port (the tenant namespace
    denies other egress)."""
    from ncp.plan.catalog import load_dynamo_runtime
    export = load_dynamo_runtime().telemetry_export
    for collector in (None, COLLECTOR):
        raw, secrets = stack(endpoints=(CHAT,))
        if collector:
            raw["components"]["telemetry"]["otlpEndpoint"] = collector
        recording, graphs = rendered(raw, secrets)
        for name, service in graphs[CHAT]["spec"]["services"].items():
            env = {e["name"]: e["value"] for e in service.get("envs", [])}
            assert env[export.json_logs_env] == "true", name
            assert env.get(export.traces_endpoint_env) == collector and env.get(export.logs_endpoint_env) == collector
        policies = [r.inputs["spec"] for r in recording.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
                    if r.inputs["metadata"]["name"] == f"{CHAT}-otlp-egress"]
        if collector is None:
            assert policies == []
        else:
            [policy] = policies
            [rule] = policy["egress"]
            assert rule["ports"] == [{"protocol": "TCP", "port": 4317}]
            assert rule["to"][0]["namespaceSelector"]["matchLabels"] == {
                "kubernetes.io/metadata.name": "ncp-observability"}


def test_one_requests_trace_spans_the_frontend_and_the_worker(model_root, tmp_path):  # noqa: F811
    """The rendered Dynamo OTLP settings (data/dynamo-backends.yaml telemetryExport) on the real frontend and mocker:
    a request carrying the gateway's W3C traceparent is one trace with the frontend's http-request span (child of
    the gateway's span) and a worker's handle_payload span, both under service names that name the tenant and the
    endpoint; the spans carry Dynamo's request_id, the caller's x-request-id, the model and the routing decision;
    the OTLP log records and the JSONL logs carry the trace id and the request ids."""
    from components.serving.graph import otel_service_name
    from ncp.plan.site_plan import build_plan
    raw, secrets = stack(endpoints=(CHAT,))
    raw["components"]["telemetry"]["otlpEndpoint"] = COLLECTOR
    _, graphs = rendered(raw, secrets)
    graph, model = graphs[CHAT], MODEL
    [plan] = [e for e in build_plan(raw, secrets, "prod").endpoints if e.name == CHAT]
    frontend, worker = otel_service_name(plan, "Frontend"), otel_service_name(plan, "TRTLLMWorker")
    headers = {"traceparent": f"00-{GATEWAY_TRACE}-{GATEWAY_SPAN}-01", "x-request-id": "gateway-request-1"}
    with OtlpReceiver(PORTS.take()) as receiver:
        twin = traced_twin(graph, model_root, tmp_path / "twin", receiver)
        with twin:
            twin.wait_for_model(model)
            twin.chat(model, "one traced request", max_tokens=4, headers=headers)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not {frontend, worker} <= services_in(receiver.spans):
                time.sleep(0.5)
    trace = [span for span in receiver.spans if span.trace_id == GATEWAY_TRACE]
    assert services_in(trace) == {frontend, worker}, services_in(trace)
    assert frontend.split(".")[:2] == [plan.tenant.name, CHAT]
    [root] = [s for s in trace if s.resource["service.name"] == frontend and s.name == "http-request"]
    [handled] = [s for s in trace if s.resource["service.name"] == worker and s.name == "handle_payload"]
    [routed] = [s for s in trace if s.name == "kv_router.route_request"]
    assert root.parent_span_id == GATEWAY_SPAN
    request_id = dict(root.attributes)["request_id"]
    assert dict(root.attributes)["x_request_id"] == headers["x-request-id"] and dict(root.attributes)["model"] == model
    assert dict(handled.attributes)["request_id"] == request_id and dict(handled.attributes)["x_request_id"] == \
        headers["x-request-id"]
    assert dict(handled.attributes)["namespace"] == twin.processes[0].env["DYN_NAMESPACE"]
    assert dict(routed.attributes)["worker_id"]  # the routing decision, on the request's trace
    logged = [r for r in receiver.logs if r.trace_id == GATEWAY_TRACE]
    assert {r.resource["service.name"] for r in logged} == {frontend, worker}
    lines = [json.loads(line) for line in (tmp_path / "twin" / "Frontend.log").read_text().splitlines()
             if line.startswith("{")]
    ours = [line for line in lines if line.get("trace_id") == GATEWAY_TRACE]
    assert ours and all(line["x_request_id"] == headers["x-request-id"] and line["request_id"] == request_id
                        for line in ours if line.get("span_name") == "http-request")


def services_in(spans) -> set[str]:
    return {span.resource.get("service.name", "") for span in spans if span.trace_id == GATEWAY_TRACE}
