"""Kubernetes discovery in the serving twin (#24 Deliver 1): the real Dynamo 1.5.0 frontend and mocker workers of
the rendered chat-dense graph find each other through a local kube-apiserver, with the discovery backend the program
configures on the operator (dynamo-platform `dynamo-operator.discoveryBackend`), not through the file store.

The twin plays the kubelet's readiness probe and the EndpointSlice controller (ncp/twin/kube_discovery.py; what stands
in and why: data/serving-twin.yaml kubernetesDiscovery). Before any slice says a worker is ready the frontend serves
nothing although every worker has written its DynamoWorkerMetadata; once the slices follow the workers' readiness it
serves. The frontend and workers authenticate as the account the operator gives their pods (the graph's discovery
ServiceAccount and Role, a TokenRequest token mounted where a pod has it), under the rendered tenant namespace's
admission policies: with one rule of that Role taken away, discovery fails the way the process logs show.

Own control plane on ports 24101-24106 (NCP_E2E_* override them); skips where the engine is not built."""
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.cluster import own_control_plane
from tests.test_twin import CHAT, RUNTIME, prod_models, rendered, stack
from ncp.twin.graph import PortPool, graph_processes
from ncp.twin.kube_discovery import KubeDiscovery, settings
from ncp.twin.pod_account import without
from ncp.twin.run import Twin, TwinStartError, twin_python
from ncp.plan.names import MODELS_MOUNT

pytestmark = pytest.mark.engine  # the local control plane comes from the engine build

CONTROL_PLANE = {"NCP_E2E_API_PORT": "24101", "NCP_E2E_ETCD_PORT": "24102", "NCP_E2E_SCHEDULER_PORT": "24104",
                 "NCP_E2E_KCM_PORT": "24105", "NCP_E2E_KWOK_PORT": "24106"}  # etcd's peer port is ETCD_PORT + 1
PORTS = PortPool(int(os.environ.get("NCP_TWIN_PORT_BASE", "21000")) + 600)
MODEL = "Qwen/Qwen3-32B"


ADMISSION = ("Namespace", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory) -> Path:
    """The control plane with the rendered stack's tenant namespaces and admission policies in force: the discovery
    account's own writes (DynamoWorkerMetadata) are judged by them as in the cluster."""
    from ncp.readmodel.manifests import core_manifests
    from tests.e2e.test_hostile_tenant_e2e import _wait_for_policies
    from tests.e2e.test_rbac_e2e import Api
    with own_control_plane(tmp_path_factory.mktemp("control-plane"), CONTROL_PLANE) as env:
        path = Path(env["NCP_E2E_STATE"]) / "kubeconfig"
        admin = Api(path)
        manifests = [m for m in core_manifests(rendered(*stack(endpoints=(CHAT,)))[0]) if m["kind"] in ADMISSION]
        for manifest in sorted(manifests, key=lambda m: ADMISSION.index(m["kind"])):
            admin.apply(manifest)
        _wait_for_policies(admin)
        yield path


def as_pods(discovery: KubeDiscovery, processes, directory: Path, rules=None) -> Twin:
    """The twin of `processes` as the operator's pods: each authenticates with the graph's discovery account (or one
    narrowed to `rules`), its token mounted where a pod has it."""
    account = discovery.account(directory / "serviceaccount", rules)
    problem = account.mount_problem()
    if problem:
        pytest.skip(f"no private mount namespace here ({problem}): the processes would find no service account")
    return Twin(processes, directory, discovery=discovery.pods(processes, account),
                wrap={p.service: account.wrap for p in processes})


@pytest.fixture(scope="module")
def model_root(tmp_path_factory) -> Path:
    return prod_models(tmp_path_factory.mktemp("models"))


def _messages(log: Path, needle: str) -> list[str]:
    """The `message` of each JSONL record of a process log that contains `needle`."""
    return [json.loads(line)["message"] for line in log.read_text(errors="replace").splitlines()
            if needle in line and line.startswith("{")]


def _current_records(discovery: KubeDiscovery) -> set[str]:
    """Names of the DynamoWorkerMetadata owned by this twin's pods (an earlier twin's await the garbage collector)."""
    uids = set(discovery.uids.values())
    return {m["metadata"]["name"] for m in discovery.worker_metadata()
            if {o["uid"] for o in m["metadata"].get("ownerReferences", [])} & uids}


@dataclass
class ChatTwin:
    """The rendered chat-dense graph's processes as the operator's pods, their account narrowed to `rules`."""
    recording: object
    discovery: KubeDiscovery
    processes: list
    twin: Twin

    @classmethod
    def start(cls, kubeconfig: Path, model_root: Path, directory: Path, rules=None) -> "ChatTwin":
        recording, graphs = rendered(*stack(endpoints=(CHAT,)))
        graph = graphs[CHAT]
        processes = graph_processes(graph, RUNTIME, model_root, MODELS_MOUNT, PORTS, python=twin_python())
        discovery = KubeDiscovery(kubeconfig, graph["metadata"]["namespace"], graph["metadata"]["name"]).install()
        return cls(recording, discovery, processes, as_pods(discovery, processes, directory, rules))

    @property
    def workers(self) -> list:
        return [p for p in self.processes if p.component_type == "worker"]

    def refusal(self, verb: str, resource: str) -> str:
        """What the API server says when the graph's discovery account may not `verb` `resource`."""
        account = settings()["componentAccount"].format(graph=self.discovery.graph)
        return f'User "system:serviceaccount:{self.discovery.namespace}:{account}" cannot {verb} resource "{resource}"'


def test_frontend_and_workers_discover_each_other_through_the_api_server(kubeconfig, model_root, tmp_path):
    chat = ChatTwin.start(kubeconfig, model_root, tmp_path)
    operator = chat.recording.releases()["dynamo-platform"].inputs["values"]["dynamo-operator"]
    assert operator["discoveryBackend"] == "kubernetes", "the twin runs the discovery the program configures"
    discovery, processes, workers, twin = chat.discovery, chat.processes, chat.workers, chat.twin
    with twin:
        with pytest.raises(TwinStartError, match="did not serve"):  # no slice: no worker is routable
            twin.wait_for_model(MODEL, timeout=25)
        records = {m["metadata"]["name"]: m for m in discovery.worker_metadata()}
        assert {p.env["POD_NAME"] for p in workers} <= set(records), "each worker wrote its DynamoWorkerMetadata"
        for worker in workers:
            [owner] = records[worker.env["POD_NAME"]]["metadata"]["ownerReferences"]
            assert (owner["kind"], owner["uid"]) == ("Pod", discovery.uids[worker.service])
        discovery.start(processes)
        try:
            twin.wait_for_model(MODEL, timeout=120)
            assert twin.chat(MODEL, "the quick brown fox", max_tokens=4)["usage"]["completion_tokens"] == 4
        finally:
            discovery.stop()
    assert not (tmp_path / "discovery").exists() or not any((tmp_path / "discovery").iterdir()), \
        "nothing went through the file store"
    log = (tmp_path / "Frontend.log").read_text()
    assert "Daemon watching EndpointSlices (pod mode)" in log
    assert "forbidden" not in log, "the discovery account's Role grants what the frontend asks"
    selector = ",".join(f"{key}={value}" for key, value in settings()["sliceLabels"].items())
    slices = discovery.discovery.list_namespaced_endpoint_slice(discovery.namespace, label_selector=selector)
    assert {e.target_ref.name for s in slices.items for e in s.endpoints} == {p.env["POD_NAME"] for p in workers}



def test_a_worker_refused_its_dynamoworkermetadata_exits_and_nothing_is_routed(kubeconfig, model_root, tmp_path):
    """The workers run as the operator's discovery account: with `create` on dynamoworkermetadatas taken off its
    Role, the API server refuses each worker's record (403 naming the account), the runtime rolls its registration
    back and the worker exits (code 0: the kubelet restarts it, a crash loop); no record exists, so the frontend
    has nothing to route to. With the admin kubeconfig this passed unnoticed."""
    chat = ChatTwin.start(kubeconfig, model_root, tmp_path,
                          without(settings()["componentRules"], "dynamoworkermetadatas", {"create"}))
    with chat.twin:
        chat.discovery.start(chat.processes)
        try:
            with pytest.raises(TwinStartError, match=r"TRTLLMWorker-\d exited with 0"):
                chat.twin.wait_for_model(MODEL, timeout=120)
        finally:
            chat.discovery.stop()
    refused = [m for w in chat.workers for m in _messages(tmp_path / f"{w.service}.log", "Failed to persist metadata")]
    assert refused and all(chat.refusal("create", "dynamoworkermetadatas") in m for m in refused), refused[:2]
    assert not _current_records(chat.discovery) & {w.env["POD_NAME"] for w in chat.workers}


def test_a_frontend_refused_endpointslices_never_routes(kubeconfig, model_root, tmp_path):
    """With the EndpointSlice rule taken off the discovery Role, every worker still writes its record and every
    slice says it is ready, but the frontend's discovery daemon cannot list the slices (403 naming the account, the
    error it logs and retries) and never routes to a worker: no model is served."""
    chat = ChatTwin.start(kubeconfig, model_root, tmp_path,
                          without(settings()["componentRules"], "endpointslices", {"get", "list", "watch"}))
    with chat.twin:
        chat.discovery.start(chat.processes)
        try:
            with pytest.raises(TwinStartError, match="did not serve"):
                chat.twin.wait_for_model(MODEL, timeout=45)
            assert all(chat.discovery.publish(chat.processes).values()), "every worker is ready and its slice says so"
            assert {w.env["POD_NAME"] for w in chat.workers} <= _current_records(chat.discovery)
        finally:
            chat.discovery.stop()
    errors = _messages(tmp_path / "Frontend.log", "EndpointSlice reflector error")
    assert errors and all(chat.refusal("list", "endpointslices") in m for m in errors), errors[:2]


# --- #24 Deliver 3: the real endpoint picker over the twin --------------------------------------------------------

def _named(recording, kind: str, name: str) -> dict:
    return next(r.inputs for r in recording.resources
                if r.inputs.get("kind") == kind and r.inputs["metadata"]["name"] == name)


def _picked(port: int, timeout: float = 60) -> set[str]:
    """Route a request through the picker until it names an endpoint (it first syncs the pool and its pods)."""
    import time

    import grpc
    from ncp.twin.picker import route
    deadline, picked = time.monotonic() + timeout, set()
    while time.monotonic() < deadline:
        try:
            picked, _ = route(port, MODEL, "the quick brown fox")
        except grpc.RpcError:
            picked = set()
        if picked:
            return picked
        time.sleep(1)
    return picked


def test_the_endpoint_picker_resolves_its_pool_to_the_twin_and_routes_to_a_worker(kubeconfig, model_root, tmp_path):
    """The runner (bootstrap component epp, tests/test_endpoint_picker.py _runner) with the rendered args and config,
    watching the rendered InferencePool on the API server: a request's headers and body sent through its ext_proc
    stream come back with the destination of the twin's frontend pod (pod IP : the pool's target port); the gateway's
    request to that pod (the twin's frontend process) reaches a worker. Once the pod is not ready the picker names
    nothing. Before #24 Deliver 3 the rendered config's empty data layer made the runner exit at start."""
    from tests.e2e.crds import UPSTREAM
    from tests.e2e.kube_api import KubeApi, only_version, without_descriptions
    from tests.test_endpoint_picker import _runner
    from ncp.twin.behaviour import served_requests
    from ncp.twin.picker import picker_args, start_picker
    runner = _runner()
    crd_file = UPSTREAM / "gateway-api-inference-extension" / "inference.networking.k8s.io_inferencepools.yaml"
    if not crd_file.is_file():
        pytest.skip(f"{crd_file} is absent: the InferencePool CRD is read from ../shared/upstream")
    import yaml
    KubeApi(kubeconfig).apply_crd(without_descriptions(only_version(yaml.safe_load(crd_file.read_text()), "v1")))
    recording, graphs = rendered(*stack(endpoints=(CHAT,)))
    graph, pool = graphs[CHAT], _named(recording, "InferencePool", CHAT)
    namespace = graph["metadata"]["namespace"]
    processes = graph_processes(graph, RUNTIME, model_root, MODELS_MOUNT, PORTS, python=twin_python())
    frontend = next(p for p in processes if p.component_type == "frontend")
    workers = [p for p in processes if p.component_type == "worker"]
    discovery = KubeDiscovery(kubeconfig, namespace, graph["metadata"]["name"]).install()
    twin = as_pods(discovery, processes, tmp_path / "twin")
    discovery.pod_status(frontend, ready=True)
    body = {key: pool[key] for key in ("apiVersion", "kind", "spec")} | {"metadata": {"name": CHAT}}
    body["spec"]["targetPorts"] = [{"number": int(p["number"])} for p in pool["spec"]["targetPorts"]]
    body["spec"]["endpointPickerRef"]["port"]["number"] = int(body["spec"]["endpointPickerRef"]["port"]["number"])
    KubeApi(kubeconfig).create(f"/apis/inference.networking.k8s.io/v1/namespaces/{namespace}/inferencepools", body)
    config = tmp_path / "epp-config.yaml"
    config.write_text(_named(recording, "ConfigMap", f"{CHAT}-epp")["data"][config.name])
    deployment = _named(recording, "Deployment", f"{CHAT}-epp")
    grpc_port = PORTS.take()
    args = picker_args(deployment["spec"]["template"]["spec"]["containers"][0]["args"], config,
                       {"grpc-port": grpc_port, "grpc-health-port": PORTS.take(), "metrics-port": PORTS.take()})
    target = f"127.0.0.1:{body['spec']['targetPorts'][0]['number']}"
    with twin:
        discovery.start(processes)
        picker = start_picker(runner, args, kubeconfig, tmp_path / "picker")
        try:
            twin.wait_for_model(MODEL, timeout=120)
            picked = _picked(grpc_port)
            log = (tmp_path / "picker" / "epp.log").read_text()
            assert picked == {target}, f"picker exited {picker.poll()}\n{log[-3000:]}"
            before = sum(served_requests(w.system_port) for w in workers)
            assert target == f"127.0.0.1:{8000}" and frontend.http_port  # that pod is the twin's frontend process
            assert twin.chat(MODEL, "the quick brown fox", max_tokens=4)["usage"]["completion_tokens"] == 4
            assert sum(served_requests(w.system_port) for w in workers) > before
            discovery.pod_status(frontend, ready=False)
            assert _picked(grpc_port, timeout=15) == set(), "a pod that is not ready must not be picked"
        finally:
            discovery.stop()
            picker.terminate()
            picker.wait(timeout=30)
