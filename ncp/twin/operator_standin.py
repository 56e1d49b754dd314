"""The Dynamo operator's part for the SLA planner (#24 item 1), played against a local API server.

The planner's `kubernetes` connector (the pinned ai-dynamo wheel: dynamo/planner/connectors/kubernetes.py and
connectors/clients/kubernetes_api.py) reads the DynamoGraphDeployment at nvidia.com/v1beta1 and the replica status
only the operator writes, and scales by patching `spec.components[i].replicas`. The operator is not on any reachable
registry (the Go module proxy answers 403 for github.com/ai-dynamo/dynamo and its deploy/operator module), so this
module plays exactly the part the connector depends on, each step citing the operator's source at the pinned commit
(data/serving-twin.yaml operatorStandIn):

- the conversion webhook: the rendered v1alpha1 graph is converted to v1beta1 for the fields the planner reads
  (`v1beta1_graph`) and the CRD is installed with that version only, without its webhook;
- the controller: each component's desired replicas become twin processes (`scale`, a callback that starts or stops
  mocker replicas), and the status the connector reads (`status.components[<name>]`, the `Ready` condition,
  `status.observedGeneration`) is written from how many of those processes are ready."""
import copy
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from kubernetes import client

from ncp.cluster_api import connect
from ncp.twin.graph import twin_settings
from ncp.twin.kube_discovery import install_crd
from ncp.twin.pod_account import PodAccount, pod_account

RECONCILE_SECONDS = 1.0


def settings() -> dict:
    return twin_settings()["operatorStandIn"]


def _quantities(item: Optional[dict]) -> Optional[dict]:
    """itemToResourceList: cpu and memory by name, the GPU count under nvidia.com/gpu, custom keys as given."""
    if not item:
        return None
    out = {key: str(item[key]) for key in ("cpu", "memory") if item.get(key)}
    if item.get("gpu"):
        out[item.get("gpuType") or settings()["gpuResource"]] = str(item["gpu"])
    out.update({key: str(value) for key, value in (item.get("custom") or {}).items()})
    return out or None


def v1beta1_graph(dgd: dict) -> dict:
    """The rendered v1alpha1 graph as the operator's conversion webhook serves it at v1beta1, for the fields the planner
    reads: each `spec.services` entry becomes a `spec.components` item named by its key, its type promoted from
    subComponentType prefill/decode, its replicas, and a pod template whose `main` container is built from the
    dedicated fields (resources, envs) with extraPodSpec.mainContainer merged over them. Fields the planner does not
    read are left out rather than converted by guess."""
    spec = dgd["spec"]
    components = []
    for name, service in spec["services"].items():
        kind, sub = service["componentType"], service.get("subComponentType")
        main = {"name": settings()["mainContainer"]}
        resources = {key: _quantities((service.get("resources") or {}).get(key)) for key in ("requests", "limits")}
        if any(resources.values()):
            main["resources"] = {key: value for key, value in resources.items() if value}
        if service.get("envs"):
            main["env"] = copy.deepcopy(service["envs"])
        container = copy.deepcopy((service.get("extraPodSpec") or {}).get("mainContainer") or {})
        env = container.pop("env", [])
        main.update({key: value for key, value in container.items() if key != "name"})
        if env:
            main["env"] = [*main.get("env", []), *env]
        component = {"name": name, "type": sub if kind == "worker" and sub in ("prefill", "decode") else kind,
                     "podTemplate": {"spec": {"containers": [main]}}}
        if "replicas" in service:
            component["replicas"] = int(service["replicas"])
        components.append(component)
    out = {"apiVersion": f"{settings()['group']}/{settings()['hubVersion']}", "kind": dgd["kind"],
           "metadata": {key: dgd["metadata"][key] for key in ("name", "namespace")},
           "spec": {"components": components}}
    if spec.get("backendFramework"):
        out["spec"]["backendFramework"] = spec["backendFramework"]
    return out


def component_status(kind: str, graph: str, name: str, desired: int, ready: int) -> dict:
    """One entry of status.components, the fields the operator writes for a component (PodClique: grove.go;
    Deployment: dynamocomponentdeployment_controller.go); every replica is at the current revision."""
    status = {"componentKind": kind, "componentNames": [f"{graph}-0-{name.lower()}"], "replicas": desired,
              "updatedReplicas": desired, "readyReplicas": ready}
    if kind == "Deployment":
        status["availableReplicas"] = ready
    return status


@dataclass
class OperatorStandIn:
    """Reconciles one graph: desired replicas -> twin processes (via `scale`) -> status."""
    kubeconfig: Path
    namespace: str
    graph: str
    scale: Callable[[str, int], int]  # (component, desired replicas) -> ready replicas
    component_kind: str = "PodClique"
    timeline: list[dict] = field(default_factory=list)  # each change: t, desired and ready per component
    error: Optional[BaseException] = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: Optional[threading.Thread] = None
    _started: float = 0.0

    def __post_init__(self):
        self.api = connect(str(self.kubeconfig)).api_client
        self.custom, self.extensions = client.CustomObjectsApi(self.api), client.ApiextensionsV1Api(self.api)
        self.core = client.CoreV1Api(self.api)

    @property
    def _path(self) -> tuple[str, str, str, str]:
        return settings()["group"], settings()["hubVersion"], self.namespace, settings()["plural"]

    def install(self, crd: dict, graph: dict) -> dict:
        """The CRD (given with v1beta1 only and no conversion webhook: no operator serves /convert here), established,
        the namespace and the graph at v1beta1; returns the created object."""
        install_crd(self.extensions, self.core, crd, self.namespace)
        return self.custom.create_namespaced_custom_object(*self._path, v1beta1_graph(graph))

    def planner_account(self, directory: Path, rules: Optional[list[dict]] = None) -> PodAccount:
        """The planner pod's service account as the operator sets it up: the account, the chart's planner ClusterRole
        (settings()["plannerRules"], or `rules` to narrow it) bound in the graph's namespace, its token mounted as a
        pod has it (ncp/twin/pod_account.py)."""
        return pod_account(self.api, self.namespace, settings()["plannerAccount"], rules or settings()["plannerRules"],
                           directory, cluster_role=f"ncp-twin-planner-{self.namespace}")

    def read(self) -> dict:
        return self.custom.get_namespaced_custom_object(*self._path, self.graph)

    def reconcile(self) -> dict[str, tuple[int, int]]:
        """One pass: for each component, desired replicas from the spec, ready ones from the twin; the status written
        as the operator writes it (dgd_workload_program.go applyReconcileResult)."""
        graph = self.read()
        counts = {}
        for component in graph["spec"]["components"]:
            desired = int(component.get("replicas", 1))
            counts[component["name"]] = (desired, self.scale(component["name"], desired))
        done = all(desired == ready for desired, ready in counts.values())
        generation = graph["metadata"]["generation"]
        status = {"observedGeneration": generation,
                  "state": settings()["states"]["ready" if done else "pending"],
                  "components": {name: component_status(self.component_kind, self.graph, name, desired, ready)
                                 for name, (desired, ready) in counts.items()},
                  "conditions": [{"type": "Ready", "status": "True" if done else "False",
                                  "observedGeneration": generation, "reason": "all_resources_are_ready" if done
                                  else "some_resources_are_not_ready", "message": "",
                                  "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]}
        previous = graph.get("status") or {}
        if {k: previous.get(k) for k in ("observedGeneration", "components")} != \
                {k: status[k] for k in ("observedGeneration", "components")}:
            self.custom.patch_namespaced_custom_object_status(*self._path, self.graph, {"status": status})
            self.timeline.append({"t": round(time.monotonic() - self._started, 1),
                                  **{name: {"desired": d, "ready": r} for name, (d, r) in counts.items()}})
        return counts

    def start(self) -> "OperatorStandIn":
        def loop():
            try:
                while not self._stop.is_set():
                    self.reconcile()
                    self._stop.wait(RECONCILE_SECONDS)
            except Exception as error:  # noqa: BLE001 - kept and raised by stop(): the twin must not hide it
                self.error = error
        self._started = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.error is not None:
            raise RuntimeError(f"the operator stand-in stopped reconciling: {self.error}") from self.error
