"""The serving twin (#24): the real Dynamo 1.5.0 frontend and the mocker engine started as local processes with the
command, args and environment of the DynamoGraphDeployment the program renders, for each endpoint shape
(aggregated with round-robin routing; aggregated with the KV router; disaggregated prefill/decode with the planner's
graph), then the endpoint's rendered AIPerf command against the twin, judged by evidence -> acceptance check ->
promotion gate. Stand-ins and why: data/serving-twin.yaml. Bounded: each twin stops within the test.

The twin's Python is .venv-twin (scripts/setup.sh). NCP_TWIN_PORT_BASE moves its ports (default 21000)."""
import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ncp.readmodel.recorder import run_program
from ncp.plan.catalog import ROOT, load_dynamo_runtime, load_matrix
from ncp.plan.names import MODELS_MOUNT
from ncp.plan.sources import read_stack_file
from ncp.twin.graph import PortPool, graph_processes, twin_settings
from ncp.twin.run import Twin, TwinStartError, http_text, synthesise_models, twin_python

RUNTIME = load_dynamo_runtime()
PORTS = PortPool(int(os.environ.get("NCP_TWIN_PORT_BASE", "21000")))
CHAT = "chat-dense"
DISAGG = "reasoning-large"
VALIDATION_JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="twin" tests="1" failures="0" errors="0" skipped="0">
<testcase classname="ServingTwin" name="frontend_serves_the_model"/></testsuite></testsuites>"""


def small_sizing(directory: Path, isl: int, osl: int) -> str:
    """chat-dense's sizing file re-stated for a small workload (the plan refuses a sizing of another ISL/OSL); the
    layout (one 8-GPU aggregated worker x 2) is unchanged."""
    sizing = yaml.safe_load((ROOT / "sites" / "prod" / "sizing" / "chat-dense.yaml").read_text())
    sizing["request"].update(isl=isl, osl=osl)
    path = directory / "chat-dense-small.yaml"
    path.write_text(yaml.safe_dump(sizing, sort_keys=False))
    return str(path)


def stack(router: str = "kv", slo: dict | None = None, endpoints: tuple[str, ...] = (CHAT, DISAGG),
          sizing: str | None = None) -> tuple:
    """prod's config with the endpoints named, chat-dense's router and (for the benchmark) a small SLO workload."""
    raw, secrets = read_stack_file("prod")
    raw = copy.deepcopy(raw)
    raw["ngcApiKey"] = "test"
    raw["endpoints"] = [e for e in raw["endpoints"] if e["name"] in endpoints]
    routes = raw["components"]["serving"]["gateway"]["routes"]
    raw["components"]["serving"]["gateway"]["routes"] = [
        r for r in routes if all(b["endpoint"] in endpoints for b in r["backends"])]
    chat = next(e for e in raw["endpoints"] if e["name"] == CHAT) if CHAT in endpoints else None
    if chat is not None:
        chat["router"] = router
        if slo is not None:
            chat["slo"] = {**chat["slo"], **slo}
        if sizing is not None:
            chat["sizing"] = sizing
    return raw, secrets | {"ngcApiKey"}


def rendered(raw, secrets) -> tuple:
    recording = run_program(raw, secrets, stack="prod")
    graphs = {r.inputs["metadata"]["name"]: r.inputs for r in recording.custom_resources("DynamoGraphDeployment")}
    return recording, graphs


@pytest.fixture(scope="module")
def model_root(tmp_path_factory) -> Path:
    return prod_models(tmp_path_factory.mktemp("models"))


def prod_models(root: Path) -> Path:
    """The model volume: a synthesised tokenizer/config per model the endpoints serve, at the rendered paths."""
    raw, _ = read_stack_file("prod")
    paths = [f"{MODELS_MOUNT}/{e['model']['name']}/{e['model']['revision']}" for e in raw["endpoints"]]
    return synthesise_models(root, paths, MODELS_MOUNT)


def twin_of(graph: dict, model_root: Path, directory: Path, services=None, wrap=None) -> Twin:
    processes = graph_processes(graph, RUNTIME, model_root, MODELS_MOUNT, PORTS, python=twin_python(),
                                services=services)
    return Twin(processes, directory, wrap=wrap or {})


# --- the processes are the rendered graph's ---------------------------------------------------------------------

def test_twin_processes_take_command_args_and_env_from_the_rendered_graph():
    recording, graphs = rendered(*stack())
    graph = graphs[DISAGG]
    processes = {p.service: p for p in graph_processes(graph, RUNTIME, Path("/m"), MODELS_MOUNT, PortPool(20000),
                                                       python="PY")}
    services = graph["spec"]["services"]
    frontend = services["Frontend"]["extraPodSpec"]["mainContainer"]
    twin_frontend = processes["Frontend"]
    port_at = frontend["args"].index(RUNTIME.frontend.http_port_flag) + 1
    assert twin_frontend.argv[1:port_at + 1] == frontend["args"][:port_at], "the rendered args, only the port moved"
    assert twin_frontend.argv[port_at + 1] == str(twin_frontend.http_port)
    for item in services["Frontend"]["envs"]:
        assert twin_frontend.env[item["name"]] == item["value"]
    assert twin_frontend.env["DYN_NAMESPACE"] == "tenant-globex-research-reasoning-large"
    for role in ("prefill", "decode"):
        name = f"TRTLLM{role.capitalize()}Worker"
        args = services[name]["extraPodSpec"]["mainContainer"]["args"]
        argv = processes[f"{name}-0"].argv
        assert argv[argv.index("--model-name") + 1] == args[args.index("--served-model-name") + 1]
        model_path = args[args.index("--model-path") + 1]
        assert argv[argv.index("--model-path") + 1] == "/m" + model_path[len(MODELS_MOUNT):]
        assert argv[argv.index("--disaggregation-mode") + 1] == role
        replicas = [p for p in processes.values() if p.service.startswith(name)]
        assert len(replicas) == int(services[name]["replicas"])
        assert len({p.system_port for p in replicas}) == len(replicas)
        for item in services[name]["envs"]:
            assert processes[f"{name}-0"].env[item["name"]] == item["value"]
    assert processes["Planner"].argv[1:] == services["Planner"]["extraPodSpec"]["mainContainer"]["args"]
    assert set(twin_settings()["standIns"]) >= {"discovery", "engine", "ports", "interpreter", "volumes"}


def test_twin_pins_the_dynamo_release_the_program_deploys():
    """tools/venvs/twin-nodeps.txt installs the release of data/compatibility-matrix.yaml workloads.dynamoRuntime;
    change both together."""
    pins = dict(line.split("==") for line in (ROOT / "tools/venvs/twin-nodeps.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    version = load_matrix().workload("dynamoRuntime").version
    assert pins == {"ai-dynamo": version, "ai-dynamo-runtime": version}
    out = subprocess.run([twin_python(), "-c", "import importlib.metadata as m; print(m.version('ai-dynamo'))"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    assert out == version


# --- each endpoint shape serves -----------------------------------------------------------------------------------

@pytest.mark.parametrize("router", ["round-robin", "kv"])
def test_aggregated_endpoint_serves_through_the_twin(router, model_root, tmp_path):
    """The frontend routes with the rendered DYN_ROUTER_MODE: the KV router indexes the mocker's KV events (its
    radix-tree indexer logs each worker it adds), round-robin has no KV indexer."""
    _, graphs = rendered(*stack(router=router, endpoints=(CHAT,)))
    model = "Qwen/Qwen3-32B"
    with twin_of(graphs[CHAT], model_root, tmp_path) as twin:
        twin.wait_for_model(model)
        reply = twin.chat(model, "the quick brown fox", max_tokens=8)
        assert reply["usage"]["completion_tokens"] == 8
        metrics = http_text(f"{twin.url}/metrics")
    assert 'dynamo_frontend_requests_total{' in metrics and 'status="success"' in metrics
    log = (tmp_path / "Frontend.log").read_text()
    assert ("dynamo_kv_router" in log) == (router == "kv")


def test_disaggregated_endpoint_serves_through_prefill_and_decode(model_root, tmp_path):
    """reasoning-large: TRT-LLM prefill and decode workers (mockers in the rendered disaggregation roles) behind the
    frontend. The planner is not started: its rendered environment is `kubernetes`, which scales the
    DynamoGraphDeployment through the operator (not run here)."""
    _, graphs = rendered(*stack(endpoints=(DISAGG,)))
    model = "Qwen/Qwen3-235B-A22B-FP8"
    with twin_of(graphs[DISAGG], model_root, tmp_path,
                 services={"Frontend", "TRTLLMPrefillWorker", "TRTLLMDecodeWorker"}) as twin:
        twin.wait_for_model(model)
        assert twin.chat(model, "inference serving on kubernetes", max_tokens=4)["usage"]["completion_tokens"] == 4
    prefill = (tmp_path / "TRTLLMPrefillWorker-0.log").read_text()
    assert "request received" in prefill or "prefill" in prefill.lower()


# --- #24 item 10: the model card reaches an air-gapped frontend ---------------------------------------------------

def _private_filesystem(*hidden: Path) -> list[str]:
    """A process in its own mount namespace with `hidden` directories covered, as a pod sees none of the model
    volume (the frontend has no models mount) nor another pod's filesystem (the workers' card caches)."""
    mounts = " && ".join(f'mount -t tmpfs twin-hidden "{path}"' for path in hidden)
    wrap = ["unshare", "-m", "sh", "-c", f'{mounts} && exec "$0" "$@"']
    probe = subprocess.run([*wrap, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here (unshare -m: {probe.stderr.strip()}); the frontend would see "
                    "the workers' files")
    return wrap


def _frontend_apart(graph: dict, model_root: Path, directory: Path) -> dict[str, list[str]]:
    workers = [f"{name}-{replica}" for name, service in graph["spec"]["services"].items()
               if service["componentType"] == "worker" for replica in range(int(service["replicas"]))]
    homes = [directory / "home" / worker for worker in workers]
    for home in homes:
        home.mkdir(parents=True, exist_ok=True)
    return {"Frontend": _private_filesystem(model_root, *homes)}


def test_an_offline_frontend_gets_the_model_card_from_the_worker(model_root, tmp_path):
    """The workers register the model by its Hugging Face name; the frontend pod has no model volume and no network.
    With the rendered DYN_SELF_HOST_METADATA each worker publishes its card as URLs of its system port (the
    operator's DYN_SYSTEM_PORT; in 1.5.0 self-hosting is on whenever that port is set, the variable turns it off with
    0) and the frontend serves the model; with it off the worker publishes its local paths, which the frontend pod
    cannot read: it tries Hugging Face by name and serves nothing."""
    _, graphs = rendered(*stack(endpoints=(CHAT,)))
    graph = graphs[CHAT]
    wrap = _frontend_apart(graph, model_root, tmp_path / "self-hosted")
    hidden = subprocess.run([*wrap["Frontend"], "ls", "-A", str(model_root)], capture_output=True, text=True,
                            check=True)
    assert hidden.stdout.strip() == "", "the frontend's filesystem must not show the model volume"
    model = "Qwen/Qwen3-32B"
    with twin_of(graph, model_root, tmp_path / "self-hosted", wrap=wrap) as twin:
        twin.wait_for_model(model)
        assert twin.chat(model, "hello world", max_tokens=2)["usage"]["completion_tokens"] == 2
    broken = copy.deepcopy(graph)
    worker = broken["spec"]["services"]["TRTLLMWorker"]
    worker["envs"] = [{**e, "value": "0"} if e["name"] == "DYN_SELF_HOST_METADATA" else e for e in worker["envs"]]
    wrap = _frontend_apart(broken, model_root, tmp_path / "shared-storage")
    with twin_of(broken, model_root, tmp_path / "shared-storage", wrap=wrap) as twin:
        with pytest.raises(TwinStartError, match="did not serve"):
            twin.wait_for_model(model, timeout=45)
    assert "huggingface" in (tmp_path / "shared-storage" / "Frontend.log").read_text().lower()


# --- acceptance through the twin ----------------------------------------------------------------------------------

SMALL = {"isl": 64, "osl": 16, "concurrency": 4, "requestCount": 24}


def _run_benchmark(recording, twin: Twin, model_root: Path, outputs: Path) -> None:
    """The endpoint's rendered `aiperf profile` (its acceptance ConfigMap), with the Service URL, the model volume and
    the results volume mapped onto the twin's."""
    config = next(r.inputs for r in recording.resources if r.inputs.get("kind") == "ConfigMap"
                  and r.inputs["metadata"]["name"] == f"{CHAT}-acceptance")
    argv = json.loads(config["data"]["command.json"])
    values = {"--url": twin.url, "--artifact-dir": str(outputs / CHAT)}
    tokenizer = argv[argv.index("--tokenizer") + 1]
    values["--tokenizer"] = str(model_root / tokenizer[len(MODELS_MOUNT) + 1:])
    for flag, value in values.items():
        argv[argv.index(flag) + 1] = value
    aiperf = shutil.which("aiperf", path=str(Path(os.sys.executable).parent))
    assert argv[0] == "aiperf" and aiperf
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HOME": str(outputs)}
    result = subprocess.run([aiperf, *argv[1:]], capture_output=True, text=True, timeout=300, env=env,
                            cwd=outputs)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def benchmark_outputs(recording, graph: dict, model_root: Path, directory: Path) -> Path:
    """<directory>/outputs as the validation Job leaves it: the suite's JUnit and the endpoint's AIPerf artifacts
    from a run through a twin of `graph`."""
    outputs = directory / "outputs"
    (outputs / "validation").mkdir(parents=True, exist_ok=True)
    (outputs / "validation" / "junit.xml").write_text(VALIDATION_JUNIT)
    with twin_of(graph, model_root, directory / "twin") as twin:
        twin.wait_for_model("Qwen/Qwen3-32B")
        _run_benchmark(recording, twin, model_root, outputs)
    return outputs


def _evidence(monkeypatch, raw, secrets, outputs: Path, index: Path) -> int:
    from ncp.evidence import cli as evidence_cli
    from ncp.plan.site_plan import build_plan
    site_plan = build_plan(raw, secrets, "Pulumi.prod.yaml")
    monkeypatch.setattr(evidence_cli, "plan_from_stack_file", lambda stack: site_plan)
    return evidence_cli.main(["--stack", "prod", "--outputs", str(outputs), "--cache-state", "warm",
                              "--evidence-dir", str(index.parent / "records"), "--index", str(index)])


def test_acceptance_through_the_twin_passes_and_an_unmeetable_slo_names_the_serving_layer(
        model_root, tmp_path, monkeypatch, evidence_keys):
    from ncp.evidence.record import read_index
    from tests.evidence_keys import gate_config, with_keys
    from ncp.offline.policy_check import PACK_DIR, read_pack_config
    from tests.policy_helpers import violations
    met = {"timeToFirstTokenP95Ms": 5000, "interTokenLatencyP95Ms": 1000, "outputTokenThroughputMin": 1,
           "errorRateMax": 0}
    sizing = small_sizing(tmp_path, SMALL["isl"], SMALL["osl"])
    raw, secrets = stack(slo={**SMALL, "thresholds": met}, endpoints=(CHAT,), sizing=sizing)
    raw = with_keys(raw, evidence_keys)
    recording, graphs = rendered(raw, secrets)
    outputs = benchmark_outputs(recording, graphs[CHAT], model_root, tmp_path)
    promotion = read_pack_config(PACK_DIR / "config" / "prod-promotion.json")

    passing = tmp_path / "pass" / "index.yaml"
    assert _evidence(monkeypatch, raw, secrets, outputs, passing) == 0
    [entry] = read_index(passing)
    assert entry["passed"] and entry["endpoint"] == CHAT
    gate = gate_config(promotion, passing, evidence_keys)
    assert [v.message for v in violations(recording, gate, "promotion-evidence")] == []

    unmeetable = stack(slo={**SMALL, "thresholds": {**met, "timeToFirstTokenP95Ms": 0.001}}, endpoints=(CHAT,),
                       sizing=sizing)
    unmeetable = (with_keys(unmeetable[0], evidence_keys), unmeetable[1])
    failing = tmp_path / "fail" / "index.yaml"
    assert _evidence(monkeypatch, *unmeetable, outputs, failing) == 1
    [entry] = read_index(failing)
    record = yaml.safe_load(Path(entry["record"]).read_text())
    assert record["passed"] is False
    assert record["failingLayers"] == ["Inference Serving Layer"]
    gate = gate_config(promotion, failing, evidence_keys)
    assert "chat-dense: no passed, signed and fresh evidence record" in "\n".join(
        v.message for v in violations(recording, gate, "promotion-evidence"))


# --- #24 item 3 through the planner's own code --------------------------------------------------------------------

PLANNER_READS = """
import json, sys
from dynamo.planner.monitoring.traffic_metrics import PrometheusAPIClient
labels, namespace, model = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
client = PrometheusAPIClient(url="http://127.0.0.1:1", dynamo_namespace=namespace)
client.prom.custom_query = lambda query: [{"metric": labels, "value": [0, "0.25"]}]
print(client._get_average_metric("dynamo_frontend_time_to_first_token_seconds", "1m", "ttft", model))
"""


def test_the_planner_reads_the_frontend_series_the_podmonitor_labels(prod):
    """The Dynamo 1.5.0 planner's own query path (PrometheusAPIClient._get_average_metric, frontend source) given
    the series labels our PodMonitor produces for a frontend: it reads the value; without the dynamo_namespace
    relabelling it reads 0 (the planner then sees no traffic)."""
    from tests.test_dynamo_pods import frontend_series_labels
    namespace, graph, model = "tenant-globex-research", DISAGG, "Qwen/Qwen3-235B-A22B-FP8"
    planner_namespace = f"{namespace}-{graph}"

    def planner_reads(labels: dict) -> float:
        result = subprocess.run([twin_python(), "-c", PLANNER_READS, json.dumps(labels), planner_namespace, model],
                                capture_output=True, text=True, timeout=120, check=True)
        return float(result.stdout.strip().splitlines()[-1])

    assert planner_reads(frontend_series_labels(prod, graph, namespace)) == 0.25
    assert planner_reads(frontend_series_labels(prod, graph, namespace, with_frontend_relabelings=False)) == 0
