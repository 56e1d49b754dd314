"""Kubernetes discovery in the serving twin (#24 Deliver 1): the real Dynamo 1.5.0 frontend and mocker workers of
the rendered chat-dense graph find each other through a local kube-apiserver, with the discovery backend the program
configures on the operator (dynamo-platform `dynamo-operator.discoveryBackend`), not through the file store.

The twin plays the kubelet's readiness probe and the EndpointSlice controller (twin/kube_discovery.py; what stands in
and why: data/serving-twin.yaml kubernetesDiscovery). Before any slice says a worker is ready the frontend serves
nothing although every worker has written its DynamoWorkerMetadata; once the slices follow the workers' readiness it
serves.

Own control plane on ports 24101-24106 (NCP_E2E_* override them); skips where the engine is not built."""
import os
from pathlib import Path

import pytest

from tests.e2e.cluster import own_control_plane
from tests.test_twin import CHAT, RUNTIME, prod_models, rendered, stack
from twin.graph import PortPool, graph_processes
from twin.kube_discovery import KubeDiscovery, settings
from twin.run import Twin, TwinStartError, twin_python
from plan.names import MODELS_MOUNT

CONTROL_PLANE = {"NCP_E2E_API_PORT": "24101", "NCP_E2E_ETCD_PORT": "24102", "NCP_E2E_SCHEDULER_PORT": "24104",
                 "NCP_E2E_KCM_PORT": "24105", "NCP_E2E_KWOK_PORT": "24106"}  # etcd's peer port is ETCD_PORT + 1
PORTS = PortPool(int(os.environ.get("NCP_TWIN_PORT_BASE", "21000")) + 600)
MODEL = "Qwen/Qwen3-32B"


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory) -> Path:
    with own_control_plane(tmp_path_factory.mktemp("control-plane"), CONTROL_PLANE) as env:
        yield Path(env["NCP_E2E_STATE"]) / "kubeconfig"


@pytest.fixture(scope="module")
def model_root(tmp_path_factory) -> Path:
    return prod_models(tmp_path_factory.mktemp("models"))


def test_frontend_and_workers_discover_each_other_through_the_api_server(kubeconfig, model_root, tmp_path):
    recording, graphs = rendered(*stack(endpoints=(CHAT,)))
    operator = recording.releases()["dynamo-platform"].inputs["values"]["dynamo-operator"]
    assert operator["discoveryBackend"] == "kubernetes", "the twin runs the discovery the program configures"
    graph = graphs[CHAT]
    processes = graph_processes(graph, RUNTIME, model_root, MODELS_MOUNT, PORTS, python=twin_python())
    workers = [p for p in processes if p.component_type == "worker"]
    discovery = KubeDiscovery(kubeconfig, graph["metadata"]["namespace"], graph["metadata"]["name"]).install()
    twin = Twin(processes, tmp_path, discovery=discovery.pods(processes))
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
    selector = ",".join(f"{key}={value}" for key, value in settings()["sliceLabels"].items())
    slices = discovery.discovery.list_namespaced_endpoint_slice(graph["metadata"]["namespace"], label_selector=selector)
    assert {e.target_ref.name for s in slices.items for e in s.endpoints} == {p.env["POD_NAME"] for p in workers}
