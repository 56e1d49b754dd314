"""Kubernetes discovery for the serving twin (#24): the processes find each other through a (local) API server as
the Dynamo operator configures them (DYN_DISCOVERY_BACKEND=kubernetes), not through the file store.

What the runtime reads and what stands in for the cluster: data/serving-twin.yaml kubernetesDiscovery (sources
there). The twin creates a Pod object per process (its POD_NAME/POD_UID) and, playing the kubelet's readiness probe
and the EndpointSlice controller, keeps one EndpointSlice per DGD service whose endpoints are ready exactly when the
process's readiness endpoint says so. Each worker writes its own DynamoWorkerMetadata; the frontend's discovery
daemon routes to a worker only when both agree. The processes authenticate as the operator's discovery account for
the graph (`KubeDiscovery.account`), never with the twin's admin kubeconfig, which only the stand-ins use."""
import threading
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from kubernetes import client
from kubernetes.client.rest import ApiException

from ncp.cluster_api import connect
from ncp.plan.catalog import load_signals
from ncp.twin.graph import TwinProcess, twin_settings
from ncp.twin.pod_account import PodAccount, pod_account
from ncp.twin.run import http_json

PROBE_SECONDS = 0.5


def settings() -> dict:
    return twin_settings()["kubernetesDiscovery"]


def metadata_crd() -> dict:
    """The DynamoWorkerMetadata CRD: the runtime's type (crd.rs) with spec.data kept as written."""
    meta = settings()["metadata"]
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "data": {"x-kubernetes-preserve-unknown-fields": True}}}}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{meta['plural']}.{meta['group']}"},
            "spec": {"group": meta["group"], "scope": "Namespaced",
                     "names": {"kind": meta["kind"], "plural": meta["plural"], "singular": meta["kind"].lower(),
                               "listKind": meta["kind"] + "List"},
                     "versions": [{"name": meta["version"], "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": schema}}]}}


def install_crd(extensions: client.ApiextensionsV1Api, core: client.CoreV1Api, crd: dict, namespace: str) -> None:
    """Create `crd` (one already there is kept) and wait until it is established; create `namespace` likewise."""
    try:
        extensions.create_custom_resource_definition(crd)
    except ApiException as error:
        if error.status != 409:
            raise
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        conditions = extensions.read_custom_resource_definition(crd["metadata"]["name"]).status.conditions
        if any(c.type == "Established" and c.status == "True" for c in conditions or []):
            break
        time.sleep(0.5)
    try:
        core.create_namespace({"metadata": {"name": namespace}})
    except ApiException as error:
        if error.status != 409:
            raise


def _ready(process: TwinProcess) -> bool:
    try:
        return http_json(f"http://127.0.0.1:{process.system_port}/health", timeout=2).get("status") == "ready"
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return False


def _dgd_service(process: TwinProcess) -> str:
    """TRTLLMWorker-1 -> TRTLLMWorker (one process per replica); Frontend -> Frontend."""
    head, _, tail = process.service.rpartition("-")
    return head if process.component_type == "worker" and tail.isdigit() else process.service


@dataclass
class KubeDiscovery:
    kubeconfig: Path
    namespace: str
    graph: str
    uids: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: Optional[threading.Thread] = None
    _published: dict[str, tuple] = field(default_factory=dict)
    error: Optional[BaseException] = None  # what stopped the publishing loop

    def __post_init__(self):
        self.api = api = connect(str(self.kubeconfig)).api_client
        self.core, self.discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
        self.extensions, self.custom = client.ApiextensionsV1Api(api), client.CustomObjectsApi(api)

    def install(self) -> "KubeDiscovery":
        """The DynamoWorkerMetadata CRD (established) and the graph's namespace."""
        install_crd(self.extensions, self.core, metadata_crd(), self.namespace)
        return self

    def account(self, directory: Path, rules: Optional[list[dict]] = None) -> PodAccount:
        """The account the operator gives the graph's frontend and worker pods (settings()["componentAccount"], with
        settings()["componentRules"], or `rules` to narrow them), its token mounted as a pod has it."""
        return pod_account(self.api, self.namespace, settings()["componentAccount"].format(graph=self.graph),
                           rules or settings()["componentRules"], directory)

    def pods(self, processes: list[TwinProcess], account: PodAccount) -> dict[str, dict[str, str]]:
        """One Pod object per process, never scheduled, running as `account`; each process's discovery environment
        (POD_UID is the object's, as the downward API gives it; the in-cluster configuration, no kubeconfig). Start
        each process under `account.wrap`, where the account's token is mounted."""
        environments, pod_labels = {}, load_signals()["dynamo"].pod_labels
        for process in processes:
            name = process.env["POD_NAME"]
            pod = {"metadata": {"name": name, "labels": {
                       pod_labels["graph"]: self.graph, pod_labels["componentType"]: process.component_type}},
                   "spec": {"schedulerName": settings()["unscheduled"], "serviceAccountName": account.name,
                            "containers": [{"name": "main", "image": "ncp-serving-twin"}]}}
            created = self._fresh_pod(name, pod)
            self.uids[process.service] = created.metadata.uid
            environments[process.service] = {"DYN_DISCOVERY_BACKEND": "kubernetes", **account.env,
                                             "POD_NAMESPACE": self.namespace, "POD_UID": created.metadata.uid}
        return environments

    def pod_status(self, process: TwinProcess, ready: bool, ip: str = "127.0.0.1") -> None:
        """The kubelet's report for `process`'s pod: running at `ip` (the processes share the host's address), ready
        or not. What selects pods by readiness (the endpoint picker's InferencePool) reads this."""
        status = "True" if ready else "False"
        self.core.patch_namespaced_pod_status(process.env["POD_NAME"], self.namespace, {"status": {
            "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": status}, {"type": "ContainersReady", "status": status}]}})

    def _fresh_pod(self, name: str, pod: dict):
        """Create the pod; one left by an earlier twin is deleted first (a new pod has a new uid)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                return self.core.create_namespaced_pod(self.namespace, pod)
            except ApiException as error:
                if error.status != 409 or time.monotonic() > deadline:
                    raise
            try:
                self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
            except ApiException as error:
                if error.status != 404:
                    raise
            time.sleep(0.5)

    def _slice(self, service: str, members: list[TwinProcess], ready: dict[str, bool]) -> dict:
        labels = {**settings()["sliceLabels"], "kubernetes.io/service-name": f"{self.graph}-{service.lower()}",
                  "endpointslice.kubernetes.io/managed-by": settings()["managedBy"]}
        endpoints = [{"addresses": [settings()["sliceAddress"]], "conditions": {"ready": ready[p.service]},
                      "targetRef": {"kind": "Pod", "name": p.env["POD_NAME"], "namespace": self.namespace,
                                    "uid": self.uids[p.service]}} for p in members]
        return {"metadata": {"name": f"{self.graph}-{service.lower()}-twin", "labels": labels},
                "addressType": "IPv4", "endpoints": endpoints,
                "ports": [{"name": "system", "port": members[0].system_port, "protocol": "TCP"}]}

    def publish(self, processes: list[TwinProcess]) -> dict[str, bool]:
        """Write each DGD service's EndpointSlice from its processes' readiness, where it changed."""
        workers = [p for p in processes if p.component_type == "worker" and p.system_port]
        ready = {p.service: _ready(p) for p in workers}
        groups: dict[str, list[TwinProcess]] = {}
        for process in workers:
            groups.setdefault(_dgd_service(process), []).append(process)
        for service, members in groups.items():
            state = tuple(ready[p.service] for p in members)
            if self._published.get(service) == state:
                continue
            body = self._slice(service, members, ready)
            try:
                self.discovery.replace_namespaced_endpoint_slice(body["metadata"]["name"], self.namespace, body)
            except ApiException as error:
                if error.status != 404:
                    raise
                self.discovery.create_namespaced_endpoint_slice(self.namespace, body)
            self._published[service] = state
        return ready

    def start(self, processes: list[TwinProcess]) -> None:
        """Keep the slices in step with the processes (the kubelet's probe period), until stop()."""
        def loop():
            try:
                while not self._stop.is_set():
                    self.publish(processes)
                    self._stop.wait(PROBE_SECONDS)
            except Exception as error:  # noqa: BLE001 - kept and raised by stop(): the twin must not hide it
                self.error = error
        self._stop.clear()
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.error is not None:
            raise RuntimeError(f"the twin stopped publishing EndpointSlices: {self.error}") from self.error

    def worker_metadata(self) -> list[dict]:
        """The DynamoWorkerMetadata objects the processes wrote."""
        meta = settings()["metadata"]
        return self.custom.list_namespaced_custom_object(meta["group"], meta["version"], self.namespace,
                                                         meta["plural"])["items"]
