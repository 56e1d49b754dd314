"""The SLA planner acts on load (#24 Deliver 4): Dynamo 1.5.0's planner, started with the command, args and
environment of the rendered reasoning-large Planner service, authenticated as the operator's planner service account
(a TokenRequest token, the chart's planner role), reads the real Prometheus (#25) scraping the twin's real
frontend and mocker workers through the rendered PodMonitor, and scales the graph through its `kubernetes`
connector against a local API server, where ncp/twin/operator_standin.py plays the Dynamo operator (conversion to
v1beta1, replicas -> twin processes, the status the connector reads; sources in data/serving-twin.yaml
operatorStandIn).

Asserted: under load the planner patches the prefill/decode replicas up, within the plan's GPU budget; at idle it
brings them back to the minimum; through a monitor without the frontend's dynamo_namespace relabeling (#24 item 3)
it sees no traffic and does not scale up. Its decision timeline is recorded in the test's log.

Time is compressed: the rendered throughput_adjustment_interval_seconds (180) is the one value replaced
(PLANNER_INTERVAL), as the mocker's speedup ratio compresses the engine's time. Own control plane on ports 24301-24306
(NCP_E2E_* override them); twin ports from NCP_TWIN_PORT_BASE + 900; skips where the engine is not built."""
import contextlib
import copy
import json
import os
import re
import subprocess
import time
import urllib.error
from pathlib import Path
from typing import Optional

import pytest
import yaml

from tests.e2e.cluster import UPSTREAM, own_control_plane
from tests.e2e.kube_api import only_version, without_descriptions
from tests.test_telemetry_twin import SIGNALS, _named, prometheus_binary  # noqa: F401 (prometheus_binary: fixture)
from tests.test_twin import DISAGG, RUNTIME, prod_models, rendered, stack
from ncp.plan.names import MODELS_MOUNT
from ncp.twin.behaviour import Clients
from ncp.twin.graph import PortPool, graph_processes
from ncp.twin.operator_standin import OperatorStandIn, v1beta1_graph
from ncp.twin.prometheus import PrometheusServer, pod_monitor_jobs, twin_targets
from ncp.twin.run import Twin, http_json, twin_python

pytestmark = pytest.mark.engine  # the local control plane and the Prometheus server come from the engine build

CONTROL_PLANE = {"NCP_E2E_API_PORT": "24301", "NCP_E2E_ETCD_PORT": "24302", "NCP_E2E_SCHEDULER_PORT": "24304",
                 "NCP_E2E_KCM_PORT": "24305", "NCP_E2E_KWOK_PORT": "24306"}  # etcd's peer port is ETCD_PORT + 1
PORTS = PortPool(int(os.environ.get("NCP_TWIN_PORT_BASE", "21000")) + 900)
MODEL = "Qwen/Qwen3-235B-A22B-FP8"
PLANNER_INTERVAL = int(os.environ.get("NCP_TWIN_PLANNER_INTERVAL", "20"))
CLIENTS = int(os.environ.get("NCP_TWIN_PLANNER_CLIENTS", "64"))
MAX_TOKENS = int(os.environ.get("NCP_TWIN_PLANNER_MAX_TOKENS", "64"))
SPEEDUP = float(os.environ.get("NCP_TWIN_PLANNER_SPEEDUP", "0.3"))


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory) -> Path:
    existing = os.environ.get("NCP_TWIN_PLANNER_KUBECONFIG")  # a control plane already running (development)
    if existing:
        yield Path(existing)
        return
    with own_control_plane(tmp_path_factory.mktemp("control-plane"), CONTROL_PLANE) as env:
        yield Path(env["NCP_E2E_STATE"]) / "kubeconfig"


@pytest.fixture(scope="module")
def model_root(tmp_path_factory) -> Path:
    return prod_models(tmp_path_factory.mktemp("models"))


def dgd_crd() -> dict:
    path = UPSTREAM / "dynamo" / "nvidia.com_dynamographdeployments.yaml"
    if not path.is_file():
        pytest.skip(f"{path} is absent: the DynamoGraphDeployment CRD is read from ../shared/upstream")
    return without_descriptions(only_version(yaml.safe_load(path.read_text()), "v1beta1"))


# --- the conversion, offline --------------------------------------------------------------------------------------

def test_the_v1beta1_graph_carries_what_the_planner_reads_from_the_rendered_graph():
    """What the connector reads (dgd_services.py) from the converted graph equals the rendered v1alpha1 service's:
    type (prefill/decode promoted), replicas, the main container's args and GPU count."""
    _, graphs = rendered(*stack(endpoints=(DISAGG,)))
    graph = graphs[DISAGG]
    beta = v1beta1_graph(graph)
    assert beta["apiVersion"] == "nvidia.com/v1beta1"
    components = {c["name"]: c for c in beta["spec"]["components"]}
    assert set(components) == set(graph["spec"]["services"])
    for name, service in graph["spec"]["services"].items():
        component, [main] = components[name], components[name]["podTemplate"]["spec"]["containers"]
        expected = service.get("subComponentType") or service["componentType"]
        assert component["type"] == expected and component["replicas"] == int(service["replicas"])
        assert main["name"] == "main" and main["args"] == service["extraPodSpec"]["mainContainer"]["args"]
        gpus = ((service.get("resources") or {}).get("limits") or {}).get("gpu")
        assert main.get("resources", {}).get("limits", {}).get("nvidia.com/gpu") == (str(gpus) if gpus else None)
        assert [e["name"] for e in main.get("env", [])] == [e["name"] for e in service.get("envs", [])]


def test_the_stand_in_writes_every_status_field_the_connector_reads_with_its_operator_source():
    """Contract: each status field the pinned connector reads is one the stand-in writes, each with the operator's
    file:line (data/serving-twin.yaml operatorStandIn.fields), and each is in the CRD's v1beta1 status schema."""
    from ncp.twin.operator_standin import component_status, settings
    from ncp.twin.run import TWIN_VENV
    planner = next(TWIN_VENV.glob("lib/python3*/site-packages/dynamo/planner"), None)
    if planner is None:
        pytest.skip(f"{TWIN_VENV} has no Dynamo planner")
    api = (planner / "connectors" / "clients" / "kubernetes_api.py").read_text()
    connector = (planner / "connectors" / "kubernetes.py").read_text()
    read = {"readyReplicas", "updatedReplicas", "componentKind", "componentNames", "observedGeneration"}
    for key in read:
        assert f'"{key}"' in api + connector, f"the pinned connector no longer reads {key}"
    written = component_status("PodClique", "g", "TRTLLMDecodeWorker", 2, 1)
    fields = settings()["fields"]
    assert {f"status.components[].{key}" for key in written} <= set(fields)
    assert all(entry.get("operator") for entry in fields.values())
    schema = dgd_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(written) <= set(schema["components"]["additionalProperties"]["properties"])
    assert {"observedGeneration", "conditions", "state", "components"} <= set(schema)


# --- the planner on the twin --------------------------------------------------------------------------------------

def _ready(port: int) -> bool:
    try:
        return http_json(f"http://127.0.0.1:{port}/health", timeout=2).get("status") == "ready"
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return False


class Replicas:
    """The operator's workload controller for the twin: a component's desired replicas become mocker processes
    (one per replica, as pods), started or stopped; the frontend and planner components are their one process
    each (the frontend's rendered replicas share one process: routing, not redundancy, is what the planner
    reads)."""

    def __init__(self, twin: Twin, graph: dict, model_root: Path, on_change):
        self.twin, self.graph, self.model_root, self.on_change = twin, graph, model_root, on_change

    def __call__(self, component: str, desired: int) -> int:
        spec = self.graph["spec"]["services"][component]
        if spec["componentType"] != "worker":
            return desired
        mine = [p for p in self.twin.processes if p.service.rsplit("-", 1)[0] == component]
        if len(mine) < desired:
            wanted = copy.deepcopy(self.graph)
            wanted["spec"]["services"][component]["replicas"] = desired
            fresh = graph_processes(wanted, RUNTIME, self.model_root, MODELS_MOUNT, PORTS, speedup_ratio=SPEEDUP,
                                    python=twin_python(), services={component})
            for process in fresh[len(mine):]:
                self.twin.processes.append(process)
                self.twin.launch(process)
            self.on_change()
        elif len(mine) > desired:
            for process in mine[desired:]:
                self.twin.kill(process.service)
                self.twin.running.pop(process.service)
                self.twin.processes.remove(process)
            self.on_change()
        mine = [p for p in self.twin.processes if p.service.rsplit("-", 1)[0] == component]
        return sum(_ready(p.system_port) for p in mine if p.system_port)


PLANNER_IMPORT = ("import dynamo.planner.core.planner_factory, dynamo.planner.core.adapters, "
                  "dynamo.planner.core.load.predictors")


def planner_env() -> dict[str, str]:
    """NCP_TWIN_PLANNER_PYTHONPATH: extra packages for a .venv-twin made before tools/venvs/twin.txt listed the
    planner's imports (scikit-learn, pmdarima, prophet, aiconfigurator-core, plotly, ...)."""
    extra = os.environ.get("NCP_TWIN_PLANNER_PYTHONPATH")
    return {"PYTHONPATH": extra} if extra else {}


def require_planner_imports() -> None:
    result = subprocess.run([twin_python(), "-c", PLANNER_IMPORT], capture_output=True, text=True, timeout=300,
                            env={"PATH": os.environ.get("PATH", ""), **planner_env()})
    if result.returncode != 0:
        pytest.skip("the planner cannot start in .venv-twin: "
                    f"{result.stderr.strip().splitlines()[-1]}\n  fix: `bash scripts/setup.sh` (tools/venvs/twin.txt)")


def planner_process(graph: dict, standin: OperatorStandIn, prometheus_url: str, directory: Path,
                    rules: Optional[list[dict]] = None):
    """The rendered Planner service's process: its --config with only the adjustment interval compressed, its
    environment plus where the pod would find Prometheus (the twin's server, not the cluster Service), and the pod's
    service account (the operator's planner account and role, a TokenRequest token) mounted where a pod has it, in a
    private mount namespace: the planner's own in-cluster configuration finds the API server, the namespace and the
    token there."""
    [planner] = graph_processes(graph, RUNTIME, Path("/unused"), MODELS_MOUNT, PORTS, python=twin_python(),
                                services={"Planner"})
    at = planner.argv.index("--config") + 1
    config = json.loads(planner.argv[at])
    assert config["environment"] == "kubernetes" and config["throughput_adjustment_interval_seconds"] > 0
    config["throughput_adjustment_interval_seconds"] = PLANNER_INTERVAL
    planner.argv[at] = json.dumps(config)
    account = standin.planner_account(directory / "serviceaccount", rules)
    planner.env.update({"PROMETHEUS_ENDPOINT": prometheus_url, **account.env, **planner_env()})
    problem = account.mount_problem()
    if problem:
        pytest.skip(f"no private mount namespace here ({problem}): the planner would find no service account")
    wrap = account.wrap
    return planner, wrap, config


def worker_replicas(standin: OperatorStandIn) -> dict[str, int]:
    graph = standin.read()
    return {c["name"]: int(c.get("replicas", 1)) for c in graph["spec"]["components"] if c["type"] in
            ("prefill", "decode")}


@contextlib.contextmanager
def planner_twin(kubeconfig: Path, model_root: Path, directory: Path, prometheus_binary: Path,  # noqa: F811
                 monitor_edit=None, rules: Optional[list[dict]] = None):
    """The disaggregated endpoint's twin, its Prometheus, the operator stand-in and the planner, all running."""
    require_planner_imports()
    recording, graphs = rendered(*stack(endpoints=(DISAGG,)))
    graph, monitor = graphs[DISAGG], copy.deepcopy(_named(recording, "PodMonitor", DISAGG))
    if monitor_edit is not None:
        monitor_edit(monitor)
    namespace = graph["metadata"]["namespace"]
    processes = graph_processes(graph, RUNTIME, model_root, MODELS_MOUNT, PORTS, speedup_ratio=SPEEDUP,
                                python=twin_python(), services={n for n, s in graph["spec"]["services"].items()
                                          if s["componentType"] != "planner"})
    twin = Twin(processes, directory / "twin")
    dynamo_namespace = processes[0].env["DYN_NAMESPACE"]
    server = PrometheusServer(prometheus_binary, directory / "prometheus", PORTS.take(),
                              pod_monitor_jobs(monitor, directory / "prometheus" / "targets.json", interval="1s"))

    def retarget():
        server.write_targets(twin_targets(graph, twin.processes, SIGNALS, dynamo_namespace))
    standin = OperatorStandIn(kubeconfig, namespace, graph["metadata"]["name"], Replicas(twin, graph, model_root,
                                                                                        retarget))
    try:
        standin.custom.delete_namespaced_custom_object("nvidia.com", "v1beta1", namespace, "dynamographdeployments",
                                                       graph["metadata"]["name"])
        time.sleep(2)
    except Exception:  # noqa: BLE001 - nothing left by an earlier run
        pass
    standin.install(dgd_crd(), graph)
    planner, wrap, config = planner_process(graph, standin, server.url, directory, rules)
    with twin, server.start(twin_targets(graph, processes, SIGNALS, dynamo_namespace)):
        twin.wait_for_model(MODEL)
        standin.start()
        twin.processes.append(planner)
        twin.wrap[planner.service] = wrap
        twin.launch(planner)
        try:
            yield twin, standin, config, graph
        finally:
            standin.stop()


def wait_until(predicate, timeout: float, what: str, twin: Twin, standin: OperatorStandIn):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # before liveness: a planner refused by the API server logs the 403, then exits
            return
        twin._check_alive()
        time.sleep(2)
    planner_log = (twin.directory / "Planner.log").read_text(errors="replace").splitlines()[-40:]
    raise AssertionError(f"{what} within {timeout:.0f}s; timeline {standin.timeline}\n" + "\n".join(planner_log))


def gpus(graph: dict, replicas: dict[str, int]) -> int:
    services = graph["spec"]["services"]
    return sum(int(services[name]["resources"]["limits"]["gpu"]) * count for name, count in replicas.items())


def decisions(log: Path) -> list[str]:
    """The planner's own record: each throughput interval's observed load and each decision that is not a hold."""
    keep = re.compile(r"Observed num_req: [0-9.]+|\[summary\] SCALE_\w+ \| current: [^|]+\| recommended: [^|]+")
    out = []
    for line in log.read_text(errors="replace").splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        found = keep.search(line)
        if found:
            out.append(f"{line[11:19]} {found.group(0)}")
    return out


def scaled_up(standin: OperatorStandIn, start: dict[str, int]) -> bool:
    return any(n > start[name] for name, n in worker_replicas(standin).items())


def test_the_planner_scales_up_under_load_and_down_at_idle(kubeconfig, model_root, tmp_path,
                                                          prometheus_binary):  # noqa: F811
    with planner_twin(kubeconfig, model_root, tmp_path, prometheus_binary) as (twin, standin, config, graph):
        floor = {"prefill": config["prefill_min_endpoint"], "decode": config["decode_min_endpoint"]}
        start = worker_replicas(standin)
        with Clients(twin, MODEL, count=CLIENTS, max_tokens=MAX_TOKENS):
            wait_until(lambda: scaled_up(standin, start), PLANNER_INTERVAL * 8,
                       "the planner scaled nothing up under load", twin, standin)
            peak = worker_replicas(standin)
        assert gpus(graph, peak) <= config["max_gpu_budget"], (peak, standin.timeline)
        types = {c["name"]: c["type"] for c in standin.read()["spec"]["components"]}
        wait_until(lambda: all(n <= floor[types[name]] for name, n in worker_replicas(standin).items()),
                   PLANNER_INTERVAL * 10, "the planner did not come back to the minimum at idle", twin, standin)
    print("planner decision timeline:", json.dumps(standin.timeline), *decisions(twin.directory / "Planner.log"),
          sep="\n  ")


def test_without_the_dynamo_namespace_relabeling_the_planner_sees_no_load_and_does_not_scale(
        kubeconfig, model_root, tmp_path, prometheus_binary):  # noqa: F811
    """#24 item 3 through the planner's decisions: the same load, scraped through the PodMonitor without the
    frontend's dynamo_namespace relabeling, leaves the planner reading no requests; it holds at the minimum."""
    from components.serving.rules import frontend_relabelings

    def blind(monitor: dict) -> None:
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            endpoint["relabelings"] = [r for r in endpoint["relabelings"] if r not in frontend_relabelings(SIGNALS)]
    with planner_twin(kubeconfig, model_root, tmp_path, prometheus_binary, monitor_edit=blind) as \
            (twin, standin, config, graph):
        start = worker_replicas(standin)
        log = twin.directory / "Planner.log"
        with Clients(twin, MODEL, count=CLIENTS, max_tokens=MAX_TOKENS) as load:
            deadline = time.monotonic() + PLANNER_INTERVAL * 8  # as long as the loaded planner above may take
            while time.monotonic() < deadline:
                twin._check_alive()
                assert not scaled_up(standin, start), standin.timeline
                time.sleep(2)
        decisions = [line for line in log.read_text(errors="replace").splitlines() if "[summary]" in line]
        assert decisions, "the planner made no decision at all"
        assert not any("SCALE_UP" in line for line in decisions)
        traffic = [line for line in log.read_text(errors="replace").splitlines() if "Observed num_req" in line]
        assert len(traffic) >= 3 and load.sent > 100, (load.sent, traffic)
        assert not any(re.search(r"num_req: [1-9]", line) for line in traffic), traffic[-3:]


def test_a_planner_role_without_patch_is_refused_and_nothing_scales(kubeconfig, model_root, tmp_path,
                                                                    prometheus_binary):  # noqa: F811
    """#24 item 3: the planner runs with its service account's token, not the control plane's admin credentials;
    with `patch` removed from the planner role, its scale-up is refused by the API server (403) and the graph keeps
    its replicas, under the same load that scales it above."""
    from ncp.twin.operator_standin import settings
    from ncp.twin.pod_account import without
    narrow = without(settings()["plannerRules"], "dynamographdeployments", {"patch"})
    with planner_twin(kubeconfig, model_root, tmp_path, prometheus_binary, rules=narrow) as \
            (twin, standin, config, graph):
        start = worker_replicas(standin)
        log = twin.directory / "Planner.log"
        # the status code as a word: a log timestamp's fraction (".403910Z") is no refusal
        def refused() -> list[str]:
            return [line for line in log.read_text(errors="replace").splitlines()
                    if re.search(r"(?<![\d.])403(?!\d)", line) and "orbidden" in line]
        with Clients(twin, MODEL, count=CLIENTS, max_tokens=MAX_TOKENS):
            wait_until(refused, PLANNER_INTERVAL * 8, "the planner's patch was not refused", twin, standin)
        assert worker_replicas(standin) == start, standin.timeline
        account = f"system:serviceaccount:{graph['metadata']['namespace']}:{settings()['plannerAccount']}"
        assert any(account in line and "patch" in line for line in refused()), refused()[:3]
