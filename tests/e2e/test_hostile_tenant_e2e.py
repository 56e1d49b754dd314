"""A hostile tenant admin on the real kube-apiserver (1.35, ValidatingAdmissionPolicy GA): the prod stack's objects
(its admission policies and bindings, namespaces, RBAC, quotas, and the program's own workloads in tenant
namespaces) are applied to a local control plane of its own with the upstream CRDs, then each attack of issue 22 is
made as the tenant admin (impersonating the user and the group the program's RoleBinding names) and must be refused
with a message naming the guardrail, while the program's workloads and a normal tenant workload are admitted.
Attacks use dryRun=All: authorization and every admission plugin run, nothing is persisted. Guards are shown to
matter by removing them (a binding, a namespace's recorded exception) and seeing the outcome flip.

Needs etcd, kube-apiserver and kube-controller-manager from tools/e2e/bootstrap.sh and the upstream CRDs in
../shared/upstream (skipped with the reason when either is absent)."""
import copy
import os
import urllib.parse
from pathlib import Path
from typing import Optional

import pytest

from components.tenancy.admission import POLICY_PREFIX
from ncp.readmodel.manifests import core_manifests
from ncp.readmodel.recorder import run_stack_file
from ncp.plan.catalog import integration_points
from ncp.plan.names import ALLOWED_HOST_PATHS, BENCHMARK_CLAIM, ENDPOINT_LABEL, PART_OF_LABEL, PROJECT, READINESS_LABEL
from tests.e2e.crds import UPSTREAM, install as install_crds
from tests.e2e.cluster import own_control_plane
from tests.e2e.kube_api import KubeApi
from tests.e2e.simulated import GRAPH_LABEL, graph_standin_pods
from tests.e2e.test_rbac_e2e import Api, _eventually

# Own ports, so this control plane never meets another e2e's (override with the control plane's variables).
PORTS = {"NCP_E2E_ETCD_PORT": "25890", "NCP_E2E_API_PORT": "18543", "NCP_E2E_KCM_PORT": "12457",
         "NCP_E2E_SCHEDULER_PORT": "12459", "NCP_E2E_KWOK_PORT": "12347"}
NAMES = integration_points()
KAI, QUEUE_LABEL = NAMES.kai.scheduler_name, NAMES.kai.queue_label
NETWORKS, GPU = NAMES.multus.networks_annotation, NAMES.gpu.resource
# Dependencies first; the admission policies before any workload, so the program's own objects meet them too.
ORDER = ["Namespace", "PriorityClass", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ClusterRole",
         "ClusterRoleBinding", "ServiceAccount", "Role", "RoleBinding", "ResourceQuota", "LimitRange"]

# acme-chat: Pod Security privileged for its KV offload to disk (read-only /run/udev), no rails.
# globex-research: privileged for RDMA workers (IPC_LOCK, the rails) and KV offload to disk.
ACME, GLOBEX = "tenant-acme-chat", "tenant-globex-research"
ACME_ADMIN = ("alice@acme", ["acme-platform-admins"])
GLOBEX_ADMIN = ("mallory@globex", ["globex-ml-admins"])
DIGEST = "sha256:" + "a" * 64
IMAGE = f"nvcr.io/nvidia/cuda:12.8.0-base-ubuntu24.04@{DIGEST}"


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    """The prod stack's objects: built-in kinds and the custom resources whose CRDs the e2e installs."""
    kinds = {"DynamoGraphDeployment", "InferencePool", "PodMonitor", "PrometheusRule", "NetworkAttachmentDefinition"}
    chosen = [m for m in core_manifests(run_stack_file("prod"))
              if "/" not in m["apiVersion"] or m["apiVersion"].split("/")[0] in BUILT_IN or m["kind"] in kinds]
    return sorted(chosen, key=lambda m: ORDER.index(m["kind"]) if m["kind"] in ORDER else len(ORDER))


BUILT_IN = {"apps", "batch", "rbac.authorization.k8s.io", "networking.k8s.io", "scheduling.k8s.io", "policy",
            "storage.k8s.io", "admissionregistration.k8s.io"}


@pytest.fixture(scope="module")
def api(manifests, tmp_path_factory):
    if not UPSTREAM.is_dir():
        pytest.skip(f"{UPSTREAM} is absent: the e2e installs the real upstream CRDs from there")
    state = os.environ.get("NCP_E2E_STATE") or tmp_path_factory.mktemp("hostile-tenant")
    with own_control_plane(Path(state), PORTS) as env:
        kubeconfig = Path(env["NCP_E2E_STATE"]) / "kubeconfig"
        install_crds(KubeApi(kubeconfig), say=lambda _: None)
        client = Api(kubeconfig)
        for manifest in manifests:
            if manifest["kind"] == "Namespace" or manifest["kind"] in ORDER[1:4]:
                client.apply(manifest)
        _wait_for_policies(client)
        for manifest in manifests:
            if not (manifest["kind"] == "Namespace" or manifest["kind"] in ORDER[1:4]):
                client.apply(manifest)  # the program's own objects: each must be admitted (apply asserts it)
        yield client


def _wait_for_policies(api: Api) -> None:
    """The API server enforces a policy once its informer has the policy and its binding: until a probe is refused."""
    probe = _secret(ACME, "probe-token", type_="kubernetes.io/service-account-token",
                    annotations={"kubernetes.io/service-account.name": "tenant-workload"})
    status, body = _eventually(lambda: _dry_run(api, probe, None), lambda status, _: status in (403, 422))
    assert status in (403, 422), f"the admission policies never took effect: {status} {body}"




def _dry_run(api: Api, manifest: dict, as_user, method: str = "POST") -> tuple[int, dict]:
    path = api.resource_path(manifest)
    if method != "POST":
        path = f"{path}/{manifest['metadata']['name']}"
    body = manifest if method != "DELETE" else None
    return api.call(method, f"{path}?dryRun=All", body, as_user,
                    content_type="application/merge-patch+json" if method == "PATCH" else "application/json")


# --- what tenants write ------------------------------------------------------------------------------------------

def _spec(**fields) -> dict:
    """A pod spec Pod Security restricted admits, with an allowlisted image pinned by digest."""
    spec = {"automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "main", "image": IMAGE,
                            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}
    spec.update(fields)
    return spec


def _gpu_spec(**fields) -> dict:
    """A pod spec asking for one GPU, on KAI unless `fields` say otherwise."""
    spec = _spec(**{"schedulerName": KAI, **fields})
    spec["containers"][0]["resources"]["limits"][GPU] = "1"
    return spec


def _pod(namespace: str, spec: Optional[dict] = None, labels: Optional[dict] = None,
         annotations: Optional[dict] = None, name: str = "probe") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": "probe"},
                         "annotations": annotations or {}},
            "spec": spec or _spec()}


def _container(pod: dict, **fields) -> dict:
    pod = copy.deepcopy(pod)
    pod["spec"]["containers"][0].update(fields)
    return pod


def _with_context(pod: dict, **context) -> dict:
    pod = copy.deepcopy(pod)
    pod["spec"]["containers"][0]["securityContext"].update(context)
    return pod


def _deployment(namespace: str, pod: dict, labels: Optional[dict] = None) -> dict:
    template = {"metadata": {"labels": pod["metadata"]["labels"], "annotations": pod["metadata"]["annotations"]},
                "spec": pod["spec"]}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "probe", "namespace": namespace, "labels": labels or {}},
            "spec": {"replicas": 1, "selector": {"matchLabels": pod["metadata"]["labels"]}, "template": template}}


def _cronjob(namespace: str, pod: dict) -> dict:
    template = {"metadata": {"labels": pod["metadata"]["labels"]}, "spec": {**pod["spec"], "restartPolicy": "Never"}}
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "probe", "namespace": namespace},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}


def _service(namespace: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "probe", "namespace": namespace},
            "spec": {"selector": {"app": "probe"}, "ports": [{"port": 80}], **spec}}


def _external_name(namespace: str, target: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "probe", "namespace": namespace},
            "spec": {"type": "ExternalName", "externalName": target}}


def _secret(namespace: str, name: str, type_: str = "Opaque", annotations: Optional[dict] = None) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": type_,
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
            "stringData": {} if type_ != "Opaque" else {"HF_TOKEN": "x"}}


def _program_graph(manifests, namespace: str) -> dict:
    return next(m for m in manifests if m["kind"] == "DynamoGraphDeployment"
                and m["metadata"]["namespace"] == namespace)


def _tenant_graph(manifests, namespace: str, change=None) -> dict:
    """The program's graph of the namespace as a tenant would write its own: another name, none of the platform's
    labels; `change(first_service)` makes it hostile."""
    graph = copy.deepcopy(_program_graph(manifests, namespace))
    graph["metadata"] = {"name": "tenant-graph", "namespace": namespace,
                         "annotations": {NAMES.dynamo.queue_annotation: namespace}}
    if change is not None:
        change(next(iter(graph["spec"]["services"].values())), graph)
    return graph


def _results_reader(namespace: str, read_only: bool) -> dict:
    """A pod mounting the platform's benchmark-output claim, which acceptance evidence is read from."""
    pod = _container(_pod(namespace, _spec(volumes=[{"name": "results", "persistentVolumeClaim": {
        "claimName": BENCHMARK_CLAIM}}])), volumeMounts=[{"name": "results", "mountPath": "/results",
                                                          "readOnly": read_only}])
    return pod


def _monitor(namespace: str, **endpoint) -> dict:
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
            "metadata": {"name": "probe", "namespace": namespace},
            "spec": {"selector": {"matchLabels": {"app": "probe"}},
                     "podMetricsEndpoints": [{"port": "metrics", **endpoint}]}}


# --- the program's own workloads and a normal tenant's are admitted -----------------------------------------------

def test_program_workloads_are_admitted(api, manifests):
    """The fixture applied every program object in the tenant namespaces (policies active first); here the pods the
    controllers and the Dynamo operator create from them: the Jobs' and the picker's pods exist (the controller
    manager created them through admission), and each graph's pods as the operator would create them are admitted."""
    workloads = [m for m in manifests if m["kind"] in ("Job", "Deployment")
                 and m["metadata"]["namespace"].startswith("tenant-") and not m["spec"].get("suspend")]
    assert workloads, "the prod stack runs Jobs and the endpoint picker in tenant namespaces"
    for workload in workloads:
        namespace, labels = workload["metadata"]["namespace"], workload["spec"]["template"]["metadata"]["labels"]
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        path = f"/api/v1/namespaces/{namespace}/pods?labelSelector={urllib.parse.quote(selector, safe='=,')}"
        status, body = _eventually(lambda: api.call("GET", path),  # noqa: B023 (called before the loop moves on)
                                   lambda status, body: bool(body.get("items")), timeout=90)
        assert body.get("items"), f"no pod of {workload['kind']} {namespace}/{workload['metadata']['name']} was " \
                                  f"admitted: {_events(api, namespace)}"
    graphs = [m for m in manifests if m["kind"] == "DynamoGraphDeployment"]
    assert {g["metadata"]["namespace"] for g in graphs} >= {ACME, GLOBEX}
    for graph in graphs:
        for pod in graph_standin_pods(_live(api, graph)):
            status, body = _dry_run(api, pod, None)
            assert status == 201, (pod["metadata"]["name"], body.get("message"))


def _live(api: Api, manifest: dict) -> dict:
    """The object as the API server holds it (its uid: the stand-in pods are owned by their graph)."""
    status, body = api.call("GET", f"{api.resource_path(manifest)}/{manifest['metadata']['name']}")
    assert status == 200, body
    return body


def _events(api: Api, namespace: str) -> list[str]:
    return [e.get("message", "") for e in api.call("GET", f"/api/v1/namespaces/{namespace}/events")[1].get("items", [])
            if e.get("reason") == "FailedCreate"]


NORMAL = [
    ("a restricted pod", lambda m: _pod(ACME)),
    ("a GPU pod on KAI in its queue", lambda m: _pod(ACME, _gpu_spec(), labels={"app": "probe", QUEUE_LABEL: ACME})),
    ("a Deployment of GPU pods in its queue",
     lambda m: _deployment(ACME, _pod(ACME, _gpu_spec(), labels={"app": "probe", QUEUE_LABEL: ACME}))),
    ("a ClusterIP Service", lambda m: _service(ACME)),
    ("an ExternalName outside the cluster", lambda m: _external_name(ACME, "api.example.com")),
    ("an ExternalName in its namespace", lambda m: _external_name(ACME, f"frontend.{ACME}.svc.cluster.local")),
    ("an Opaque Secret", lambda m: _secret(ACME, "hf-token")),
    ("a PodMonitor of its pods", lambda m: _monitor(ACME, relabelings=[{"targetLabel": "team", "replacement": "a"}])),
    ("its own graph", lambda m: _tenant_graph(m, ACME)),
    ("a graph on the rails it uses", lambda m: _tenant_graph(m, GLOBEX)),
    ("a pod reading the benchmark results", lambda m: _results_reader(ACME, read_only=True)),
    ("a pod on its rails, by name", lambda m: _pod(GLOBEX, annotations={NETWORKS: "rail-0, rail-1@net2"})),
    ("a pod on its rails, in its namespace", lambda m: _pod(GLOBEX, annotations={NETWORKS: f"{GLOBEX}/rail-0"})),
]


@pytest.mark.parametrize("what,make", NORMAL, ids=[n for n, _ in NORMAL])
def test_normal_tenant_workloads_are_admitted(api, manifests, what, make):
    manifest = make(manifests)
    who = GLOBEX_ADMIN if manifest["metadata"]["namespace"] == GLOBEX else ACME_ADMIN
    status, body = _dry_run(api, manifest, who)
    assert status == 201, f"{what}: {status} {body.get('message')}"


# --- the attacks --------------------------------------------------------------------------------------------------

def _hostile_graph(change):
    return lambda m: _tenant_graph(m, GLOBEX, change)


def _set(path: list[str], value):
    def change(service, graph):
        target = service
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    return change


def _main(**fields):
    def change(service, graph):
        service["extraPodSpec"]["mainContainer"].update(fields)
    return change


ROOT_PATH = {"name": "root", "hostPath": {"path": "/"}}
# (issue item, attack, the manifest, the policy that must refuse it, words of its message)
ATTACKS = [
    ("1", "privileged container in a privileged namespace",
     lambda m: _with_context(_pod(GLOBEX), privileged=True, allowPrivilegeEscalation=True), "pod-security",
     "privileged"),
    ("1", "hostPID", lambda m: _pod(GLOBEX, _spec(hostPID=True)), "pod-security", "PID"),
    ("1", "hostNetwork", lambda m: _pod(GLOBEX, _spec(hostNetwork=True)), "pod-security", "network"),
    ("1", "hostPath /", lambda m: _container(_pod(GLOBEX, _spec(volumes=[ROOT_PATH])),
                                             volumeMounts=[{"name": "root", "mountPath": "/host"}]),
     "pod-security", "hostPath"),
    ("1", "the recorded /run/udev writable",
     lambda m: _container(_pod(GLOBEX, _spec(volumes=[{"name": "udev", "hostPath": {"path": "/run/udev"}}])),
                          volumeMounts=[{"name": "udev", "mountPath": "/run/udev"}]), "pod-security", "read-only"),
    ("1", "a node path beside the recorded one",
     lambda m: _container(_pod(ACME, _spec(volumes=[{"name": "run", "hostPath": {"path": "/run"}}])),
                          volumeMounts=[{"name": "run", "mountPath": "/run", "readOnly": True}]),
     "pod-security", "hostPath"),
    ("1", "hostPort", lambda m: _container(_pod(GLOBEX), ports=[{"containerPort": 22, "hostPort": 22}]),
     "pod-security", "hostPorts"),
    ("1", "CAP_SYS_ADMIN", lambda m: _with_context(_pod(GLOBEX), capabilities={"add": ["SYS_ADMIN"]}),
     "pod-security", "capability"),
    ("1", "IPC_LOCK where no RDMA exception is recorded",
     lambda m: _with_context(_pod(ACME), capabilities={"add": ["IPC_LOCK"]}), "pod-security", "capability"),
    ("1", "seccomp Unconfined",
     lambda m: _pod(GLOBEX, _spec(securityContext={"seccompProfile": {"type": "Unconfined"}})), "pod-security",
     "seccomp"),
    ("1", "privileged through a Deployment", lambda m: _deployment(GLOBEX, _pod(GLOBEX, _spec(hostPID=True))),
     "pod-security", "PID"),
    ("1", "privileged through a CronJob",
     lambda m: _cronjob(GLOBEX, _with_context(_pod(GLOBEX), privileged=True, allowPrivilegeEscalation=True)),
     "pod-security", "privileged"),
    ("1", "privileged through a DynamoGraphDeployment",
     _hostile_graph(_main(securityContext={"privileged": True})), "dynamo-graphs", "privileged"),
    ("1", "hostPath / through a DynamoGraphDeployment",
     _hostile_graph(lambda s, g: s["extraPodSpec"]["volumes"].append(ROOT_PATH)), "dynamo-graphs", "hostPath"),
    ("2", "delete the platform's endpoint picker", lambda m: _picker(m, ACME),
     "platform-owned", "read-only"),
    ("2", "change the platform's picker Service", lambda m: _relabelled(_program_owned(m, "Service", ACME)),
     "platform-owned", "read-only"),
    ("2", "delete the platform's graph", lambda m: _program_owned(m, "DynamoGraphDeployment", ACME),
     "platform-owned", "read-only"),
    ("4", "join the rails without RDMA workers",
     lambda m: _pod(ACME, annotations={NETWORKS: "nvidia-network-operator/rail-0"}), "networks", "attach"),
    ("4", "another tenant's network", lambda m: _pod(GLOBEX, annotations={NETWORKS: f"{ACME}/secret-net"}),
     "networks", "attach"),
    ("4", "a rail its namespace is not granted",
     lambda m: _pod(ACME, annotations={NETWORKS: "rail-0"}), "networks", "granted"),
    ("4", "the shared namespace's copy of a granted rail",
     lambda m: _pod(GLOBEX, annotations={NETWORKS: "rail-0,nvidia-network-operator/rail-1"}), "networks", "granted"),
    ("4", "another tenant's copy of a granted rail",
     lambda m: _pod(ACME, annotations={NETWORKS: f"{GLOBEX}/rail-0"}), "networks", "granted"),
    ("4", "a network in the JSON form behind a space",
     lambda m: _pod(GLOBEX, annotations={NETWORKS: ' {"name":"rail-0","namespace":"tenant-acme-chat"}'}),
     "networks", "name form"),
    ("4", "a network in the JSON form",
     lambda m: _pod(ACME, annotations={NETWORKS: '[{"name":"rail-0","namespace":"nvidia-network-operator"}]'}),
     "networks", "name form"),
    ("4", "replace the cluster network",
     lambda m: _pod(ACME, annotations={NAMES.multus.default_network_annotation: "kube-system/host"}),
     "networks", "cluster network"),
    ("4", "the rails through another tenant's graph",
     _hostile_graph(_set(["extraPodMetadata", "annotations", NETWORKS], f"{ACME}/secret-net")),
     "dynamo-graphs", "attach"),
    ("5", "a monitor over every namespace",
     lambda m: {**_monitor(ACME), "spec": {**_monitor(ACME)["spec"], "namespaceSelector": {"any": True}}},
     "monitors", "own namespace"),
    ("5", "relabel another tenant's series",
     lambda m: _monitor(ACME, relabelings=[{"targetLabel": "tenant", "replacement": "globex-research"}]),
     "monitors", "series labels"),
    ("6", "the label the model-source egress selects on",
     lambda m: _pod(ACME, labels={"app.kubernetes.io/component": "model-staging", ENDPOINT_LABEL: "chat"}),
     "platform-labels", "labels"),
    ("6", "the graph label the API server egress selects on", lambda m: _pod(ACME, labels={GRAPH_LABEL: "chat"}),
     "platform-labels", "labels"),
    ("6", "the platform's part-of label", lambda m: _pod(ACME, labels={PART_OF_LABEL: PROJECT}),
     "platform-labels", "labels"),
    ("2", "a pod running as the endpoint picker's ServiceAccount",
     lambda m: _pod(ACME, _spec(serviceAccountName=_picker(m, ACME)["metadata"]["name"])),
     "service-accounts", "ServiceAccount"),
    ("2", "a graph running as the planner's ServiceAccount",
     _hostile_graph(lambda s, g: s["extraPodSpec"].update(serviceAccountName="planner-serviceaccount")),
     "dynamo-graphs", "ServiceAccount"),
    ("14", "write the benchmark results", lambda m: _results_reader(ACME, read_only=False), "results-claim",
     "read-only"),
    ("14", "swap the results through a graph",
     lambda m: {**(g := _tenant_graph(m, ACME)), "spec": {**g["spec"], "pvcs": [{"name": BENCHMARK_CLAIM,
                                                                                 "create": False}]}},
     "dynamo-graphs", "results claims"),
    ("14", "a Job labelled as a readiness Job",
     lambda m: {**_cronjob(ACME, _pod(ACME))["spec"]["jobTemplate"], "apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "nccl-tests", "namespace": ACME, "labels": {READINESS_LABEL: "nccl"}}},
     "platform-labels", "claim"),
    ("8", "a GPU pod off KAI", lambda m: _pod(ACME, _gpu_spec(schedulerName="default-scheduler"),
                                              labels={QUEUE_LABEL: ACME}), "gpu-queue", KAI),
    ("8", "a GPU pod in another tenant's queue",
     lambda m: _pod(ACME, _gpu_spec(), labels={QUEUE_LABEL: GLOBEX}), "gpu-queue", "queue"),
    ("8", "a workload labelled with another tenant's queue",
     lambda m: _deployment(ACME, _pod(ACME, _gpu_spec(), labels={"app": "p", QUEUE_LABEL: ACME}),
                           labels={QUEUE_LABEL: GLOBEX}), "gpu-queue", "queue"),
    ("8", "a graph in another tenant's queue",
     lambda m: {**_tenant_graph(m, ACME), "metadata": {"name": "tenant-graph", "namespace": ACME, "annotations": {
         NAMES.dynamo.queue_annotation: GLOBEX}}}, "dynamo-graphs", "queue"),
    ("8", "a pod bound to a node past the scheduler", lambda m: _pod(ACME, _spec(nodeName="gpu-node-0")),
     "gpu-queue", "nodeName"),
    ("8", "a graph pod bound to a node", _hostile_graph(lambda s, g: s["extraPodSpec"].update(nodeName="gpu-node-0")),
     "dynamo-graphs", "nodeName"),
    ("8", "a graph in the global Dynamo namespace", _hostile_graph(_set(["globalDynamoNamespace"], True)),
     "dynamo-graphs", "Dynamo namespace"),
    ("6", "platform labels through the graph's propagated labels",
     lambda m: {**(g := _tenant_graph(m, ACME)), "spec": {**g["spec"], "labels": {ENDPOINT_LABEL: "chat"}}},
     "dynamo-graphs", "labels"),
    ("4", "another tenant's network through a graph's service annotations",
     _hostile_graph(_set(["annotations", NETWORKS], f"{ACME}/secret-net")), "dynamo-graphs", "attach"),
    ("8", "a graph with ingress", _hostile_graph(_set(["ingress"], {"enabled": True, "host": "x.example.com"})),
     "dynamo-graphs", "ingress"),
    ("8", "a graph off KAI", _hostile_graph(lambda s, g: s["extraPodSpec"].update(schedulerName="default-scheduler")),
     "dynamo-graphs", KAI),
    ("9", "Service externalIPs", lambda m: _service(ACME, externalIPs=["10.0.0.10"]), "services", "externalIPs"),
    ("9", "ExternalName into kube-system",
     lambda m: _external_name(ACME, "kube-dns.kube-system.svc.cluster.local"), "services", "another namespace"),
    ("9", "ExternalName into another tenant", lambda m: _external_name(ACME, f"frontend.{GLOBEX}"),
     "services", "another namespace"),
    ("13", "an image from an unlisted registry",
     lambda m: _container(_pod(ACME), image=f"docker.io/library/busybox@{DIGEST}"), "images", "allowlisted"),
    ("13", "an image by tag in prod", lambda m: _container(_pod(ACME), image=IMAGE.split("@")[0]), "images", "digest"),
    ("13", "a graph image from an unlisted registry",
     _hostile_graph(_main(image=f"docker.io/library/busybox@{DIGEST}")), "dynamo-graphs", "allowlisted"),
    ("15", "a service-account token Secret",
     lambda m: _secret(ACME, "forever", "kubernetes.io/service-account-token",
                       {"kubernetes.io/service-account.name": "tenant-workload"}), "token-secrets", "token"),
]


def _program_owned(manifests, kind: str, namespace: str) -> dict:
    found = next(m for m in manifests if m["kind"] == kind and m["metadata"]["namespace"] == namespace)
    return {"apiVersion": found["apiVersion"], "kind": kind,
            "metadata": {"name": found["metadata"]["name"], "namespace": namespace}}


def _picker(manifests, namespace: str) -> dict:
    """The endpoint picker's Deployment (its ServiceAccount has its name), not the tenant's ModelExpress server."""
    found = next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["namespace"] == namespace
                 and m["metadata"]["name"].endswith("-epp"))
    return {"apiVersion": found["apiVersion"], "kind": "Deployment",
            "metadata": {"name": found["metadata"]["name"], "namespace": namespace}}


def _relabelled(manifest: dict) -> dict:
    return {**manifest, "metadata": {**manifest["metadata"], "labels": {"app": "mine"}}}


def _method(what: str) -> str:
    if what.startswith("delete"):
        return "DELETE"
    return "PATCH" if what.startswith("change") else "POST"


@pytest.mark.parametrize("item,what,make,policy,words", ATTACKS, ids=[f"{a[0]}-{a[1]}" for a in ATTACKS])
def test_hostile_tenant_admin_is_refused(api, manifests, item, what, make, policy, words):
    manifest = make(manifests)
    who = GLOBEX_ADMIN if manifest["metadata"]["namespace"] == GLOBEX else ACME_ADMIN
    status, body = _dry_run(api, manifest, who, _method(what))
    message = body.get("message", "")
    assert status in (403, 422), f"item {item}, {what}: admitted ({status})"
    assert f"ValidatingAdmissionPolicy '{POLICY_PREFIX}{policy}'" in message and words in message, message


def test_the_platform_is_not_held_to_what_it_keeps_from_tenants(api, manifests):
    """The platform may label its own pods (NetworkPolicies select them) and change its own objects: the same
    requests the tenant admin is refused, made as the deployer, are admitted."""
    labelled = _pod(ACME, labels={ENDPOINT_LABEL: "chat", PART_OF_LABEL: PROJECT})
    assert _dry_run(api, labelled, None)[0] == 201
    assert _dry_run(api, labelled, ACME_ADMIN)[0] == 403
    picker = {**_picker(manifests, ACME), "spec": {"replicas": 1}}
    assert _dry_run(api, picker, None, "PATCH")[0] == 200


def test_inference_pools_are_read_only_to_tenants(api, manifests):
    """The gateway routes to what the pool and its picker say: tenants read the program's pools but create, change
    or delete none (RBAC; the picker's Deployment and Service are held by the platform-owned policy)."""
    pool = _program_owned(manifests, "InferencePool", ACME)
    assert api.call("GET", f"{api.resource_path(pool)}/{pool['metadata']['name']}", as_user=ACME_ADMIN)[0] == 200
    assert _dry_run(api, pool, ACME_ADMIN, "DELETE")[0] == 403
    assert _dry_run(api, {**pool, "metadata": {"name": "mine", "namespace": ACME}}, ACME_ADMIN)[0] == 403


# --- each guard matters --------------------------------------------------------------------------------------------

POLICIES = sorted({attack[3] for attack in ATTACKS})


@pytest.mark.parametrize("policy", POLICIES)
def test_each_policy_is_what_refuses_its_attacks(api, manifests, policy):
    """Without the policy's binding, every attack it refused above is admitted: no other plugin (Pod Security in a
    privileged namespace, RBAC, quota) would have stopped it."""
    attacks = [a for a in ATTACKS if a[3] == policy]
    binding = next(m for m in manifests if m["kind"] == "ValidatingAdmissionPolicyBinding"
                   and m["metadata"]["name"] == f"{POLICY_PREFIX}{policy}")
    assert api.call("DELETE", f"{api.resource_path(binding)}/{binding['metadata']['name']}")[0] == 200
    try:
        for _, what, make, _, _ in attacks:
            manifest = make(manifests)
            who = GLOBEX_ADMIN if manifest["metadata"]["namespace"] == GLOBEX else ACME_ADMIN
            status, body = _eventually(lambda: _dry_run(api, manifest, who, _method(what)),  # noqa: B023
                                       lambda status, _: status < 400)
            assert status < 400, f"{what}: still refused without {policy}: {body.get('message')}"
    finally:
        api.apply(binding)
    first = attacks[0]
    manifest = first[2](manifests)
    who = GLOBEX_ADMIN if manifest["metadata"]["namespace"] == GLOBEX else ACME_ADMIN
    assert _eventually(lambda: _dry_run(api, manifest, who, _method(first[1])),
                       lambda status, _: status in (403, 422))[0] in (403, 422)


def test_without_the_binding_a_privileged_namespace_admits_node_root(api, manifests):
    """Pod Security `privileged` (the recorded RDMA/KVBM exception) admits hostPID and hostPath /: only the
    binding of the pod-security policy stands between the tenant admin and the node."""
    attack = _container(_pod(GLOBEX, _spec(hostPID=True, volumes=[ROOT_PATH])),
                        volumeMounts=[{"name": "root", "mountPath": "/host"}])
    binding = next(m for m in manifests if m["kind"] == "ValidatingAdmissionPolicyBinding"
                   and m["metadata"]["name"] == f"{POLICY_PREFIX}pod-security")
    path = f"{api.resource_path(binding)}/{binding['metadata']['name']}"
    assert api.call("DELETE", path)[0] == 200
    try:
        status, body = _eventually(lambda: _dry_run(api, attack, GLOBEX_ADMIN), lambda status, _: status == 201)
        assert status == 201, body
    finally:
        api.apply(binding)
    status, _ = _eventually(lambda: _dry_run(api, attack, GLOBEX_ADMIN), lambda status, _: status == 403)
    assert status == 403


def test_the_recorded_exception_is_what_admits_the_programs_kv_offload_workers(api, manifests):
    """The program's KVBM workers mount /run/udev read-only because the namespace records that exception; without
    the namespace's annotation the same pods are refused."""
    graph = _live(api, _program_graph(manifests, ACME))
    pod = next(p for p in graph_standin_pods(graph) if any("hostPath" in v for v in p["spec"]["volumes"]))
    assert _dry_run(api, pod, None)[0] == 201
    namespace = next(m for m in manifests if m["kind"] == "Namespace" and m["metadata"]["name"] == ACME)
    annotations = {k: v for k, v in namespace["metadata"]["annotations"].items() if k != ALLOWED_HOST_PATHS}
    stripped = {**namespace, "metadata": {**namespace["metadata"], "annotations": annotations}}
    api.call("PUT", f"/api/v1/namespaces/{ACME}", {**stripped, "metadata": {
        **stripped["metadata"], "resourceVersion": api.call("GET", f"/api/v1/namespaces/{ACME}")[1]["metadata"][
            "resourceVersion"]}})
    try:
        status, body = _eventually(lambda: _dry_run(api, pod, None), lambda status, _: status == 403)
        assert status == 403 and "hostPath" in body["message"], body
    finally:
        api.apply(namespace)
    assert _eventually(lambda: _dry_run(api, pod, None), lambda status, _: status == 201)[0] == 201


# --- the platform's pods: no exec or attach -----------------------------------------------------------------------

def _connect(api: Api, namespace: str, pod: str, who, subresource: str = "exec") -> tuple[int, dict]:
    """A CONNECT request as kubectl exec makes it (admission runs before the upgrade and the kubelet)."""
    return api.call("POST", f"/api/v1/namespaces/{namespace}/pods/{pod}/{subresource}?command=sh&stdin=true"
                            f"&stdout=true&tty=true", None, who)


def _picker_pod(api: Api, manifests) -> str:
    picker = next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["namespace"] == ACME
                  and m["metadata"]["name"].endswith("-epp"))
    selector = ",".join(f"{k}={v}" for k, v in picker["spec"]["template"]["metadata"]["labels"].items())
    path = f"/api/v1/namespaces/{ACME}/pods?labelSelector={urllib.parse.quote(selector, safe='=,')}"
    _, body = _eventually(lambda: api.call("GET", path), lambda status, body: bool(body.get("items")), timeout=90)
    return body["items"][0]["metadata"]["name"]


def test_tenant_admins_cannot_exec_into_the_platforms_pods(api, manifests):
    """The picker's pod (the controller manager created it) refuses the tenant admin's exec with the policy's
    message; the tenant's own pod does not (the request passes admission and fails only at the node, which
    this control plane does not run); without the policy's binding the platform's pod is entered like the tenant's."""
    platform_pod = _picker_pod(api, manifests)
    own = _pod(ACME, name="debug-shell")
    assert api.call("POST", f"/api/v1/namespaces/{ACME}/pods", own, ACME_ADMIN)[0] == 201
    policy = f"ValidatingAdmissionPolicy '{POLICY_PREFIX}platform-pods'"
    status, body = _connect(api, ACME, platform_pod, ACME_ADMIN)
    assert status == 403 and policy in body.get("message", ""), (status, body)
    assert _connect(api, ACME, platform_pod, ACME_ADMIN, "attach")[0] == 403  # RBAC grants no attach to begin with
    status, body = _connect(api, ACME, "debug-shell", ACME_ADMIN)
    assert status != 403 and policy not in body.get("message", ""), body
    assert _connect(api, ACME, platform_pod, None)[0] != 403  # the platform team still can
    binding = next(m for m in manifests if m["kind"] == "ValidatingAdmissionPolicyBinding"
                   and m["metadata"]["name"] == f"{POLICY_PREFIX}platform-pods")
    assert api.call("DELETE", f"{api.resource_path(binding)}/{binding['metadata']['name']}")[0] == 200
    try:
        status, body = _eventually(lambda: _connect(api, ACME, platform_pod, ACME_ADMIN),
                                   lambda status, _: status != 403)
        assert status != 403, f"still refused without the platform-pods policy: {body}"
    finally:
        api.apply(binding)
    assert _eventually(lambda: _connect(api, ACME, platform_pod, ACME_ADMIN),
                       lambda status, _: status == 403)[0] == 403
