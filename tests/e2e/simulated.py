"""A simulated GPU cluster for the e2e: KWOK nodes built from the hardware profile and what the stack deployed, a
stand-in for the site's volume provisioner, stand-in pods for what the Dynamo operator would create from a
DynamoGraphDeployment, and the checks that every pod was admitted and landed on a node its selectors and
tolerations allow. The real kube-scheduler places the pods; KWOK runs them (Running, Job pods Succeeded)."""
import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import yaml

from ncp.acceptance.readiness import NCCL_LOG
from components.kube import PRIORITY_SYSTEM
from ncp.evidence import readiness as readiness_evidence
from ncp.evidence import readiness_run
from ncp.cluster_api import connect
from ncp.plan.catalog import ROOT, integration_points
from ncp.plan.layers import READINESS_NAMESPACE
from ncp.plan.names import NCCL_JOB, READINESS_LABEL, TENANT_KEY
from ncp.plan.readiness import readiness_plan
from ncp.plan.site_plan import SitePlan
from tests.e2e.kube_api import KubeApi

KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}
POOL_LABEL = "ncp-e2e.io/pool"  # gpu or cpu: which simulated pool a node belongs to
CPU_NODES = 2
SIMULATED_PROVISIONER = "ncp-e2e.local/simulated"
# Labels the Dynamo operator puts on the pods of a graph (ai-dynamo/dynamo deploy/operator consts).
GRAPH_LABEL, COMPONENT_TYPE_LABEL = "nvidia.com/dynamo-graph-deployment-name", "nvidia.com/dynamo-component-type"
DGD_RESOURCES = {"gpu": integration_points().gpu.resource, "cpu": "cpu", "memory": "memory"}


def _node(name: str, pool: str, labels: dict, capacity: dict, taints: list) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": dict(KWOK_ANNOTATION),
                         "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64", "type": "kwok", POOL_LABEL: pool, **labels}},
            "spec": {"taints": taints},
            "status": {"capacity": capacity, "allocatable": capacity}}


def rdma_devices_per_node(api: KubeApi, plan: SitePlan) -> Optional[int]:
    """What the shared RDMA device plugin the stack configured advertises per node (its NicClusterPolicy)."""
    if not plan.network_enabled:
        return None
    names = integration_points().network_operator
    policy = api.get(f"/apis/mellanox.com/v1alpha1/nicclusterpolicies/{names.nic_cluster_policy_name}")
    plugin = policy["spec"].get("rdmaSharedDevicePlugin")
    assert plugin, "the simulated nodes model the shared RDMA device plugin the e2e profiles use"
    return json.loads(plugin["config"])["configList"][0]["rdmaHcaMax"]


def nodes_for(plan: SitePlan, rdma_devices: Optional[int]) -> list[dict]:
    """site.gpuNodes GPU nodes of the profile (GFD labels, GPU count, RDMA resource, GPU taint, topology labels, the
    tenant pools' label and taint) and CPU-only nodes for the control-plane pods (plus one per pooled tenant)."""
    gpu, names, topology = plan.profile.gpu, integration_points().gpu, plan.profile.topology_labels
    # Tenants with dedicated node pools own the first GPU nodes in config order, as the site labels and taints them.
    pool_owners = [t.name for t in plan.tenants if t.node_pool for _ in range(t.node_pool.nodes)]
    nodes = []
    for index in range(plan.site.gpu_nodes):
        labels = {names.product_label: gpu.product_label, names.present_label: "true"}
        for key, value in ((topology.zone, "zone-a"), (topology.rack, f"rack-{index // 4}"),
                           (topology.nvlink_domain,
                            f"nvl-{index // max(plan.profile.nvlink.domain_size // gpu.per_node, 1)}")):
            if key:
                labels[key] = value
        capacity = {"cpu": "112", "memory": "2048Gi", "pods": "110", "ephemeral-storage": "30Ti",
                    names.resource: str(gpu.per_node)}
        if rdma_devices is not None:
            capacity[plan.profile.fabric.rdma_resource_name] = str(rdma_devices)
        taints = [{"key": names.taint_key, "value": "present", "effect": "NoSchedule"}]
        owner = pool_owners[index] if index < len(pool_owners) else None
        if owner:
            labels[TENANT_KEY] = owner
            taints.append({"key": TENANT_KEY, "value": owner, "effect": "NoSchedule"})
        nodes.append(_node(f"gpu-{index}", "gpu", labels, capacity, taints))
    cpu_capacity = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "1Ti"}
    for index in range(CPU_NODES):
        nodes.append(_node(f"cpu-{index}", "cpu", {"topology.kubernetes.io/zone": "zone-a"}, cpu_capacity, []))
    for tenant in dict.fromkeys(pool_owners):  # each pooled tenant's own CPU node (checklist: its CPU pods)
        nodes.append(_node(f"cpu-{tenant}", "cpu", {"topology.kubernetes.io/zone": "zone-a", TENANT_KEY: tenant},
                           cpu_capacity, [{"key": TENANT_KEY, "value": tenant, "effect": "NoSchedule"}]))
    return nodes


def storage_classes(plan: SitePlan) -> list[dict]:
    """The site-provided classes the storage tiers name (data/site-prerequisites.yaml), provisioned by the test."""
    tiers = plan.config.components.serving.storage
    return [{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
             "metadata": {"name": tier.storage_class}, "provisioner": SIMULATED_PROVISIONER,
             "volumeBindingMode": "Immediate", "reclaimPolicy": "Delete"}
            for _, tier in (tiers.named() if tiers else [])]


def provision_pending_claims(api: KubeApi, namespaces: list[str]) -> int:
    """Act as the site's provisioner: a pre-bound PersistentVolume for every claim still pending (the real
    persistent-volume binder controller then binds them)."""
    made = 0
    for namespace in namespaces:
        for claim in api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims")["items"]:
            if claim["status"].get("phase") == "Bound" or claim["spec"].get("volumeName"):
                continue
            name = f"pv-{namespace}-{claim['metadata']['name']}"[:63]
            if api.get(f"/api/v1/persistentvolumes/{name}"):
                continue
            spec = claim["spec"]
            api.create("/api/v1/persistentvolumes", {
                "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
                "spec": {"capacity": {"storage": spec["resources"]["requests"]["storage"]},
                         "accessModes": spec["accessModes"], "storageClassName": spec.get("storageClassName"),
                         "persistentVolumeReclaimPolicy": "Delete", "hostPath": {"path": f"/simulated/{name}"},
                         "claimRef": {"namespace": namespace, "name": claim["metadata"]["name"]}}})
            made += 1
    return made


def _dgd_container(service: dict, pvcs: set[str]) -> tuple[dict, list[dict]]:
    spec = service.get("extraPodSpec") or {}
    container = {"name": "main", **spec.get("mainContainer", {})}
    limits = {}
    for key, value in ((service.get("resources") or {}).get("limits") or {}).items():
        if key == "custom":
            limits.update(value)
        else:
            limits[DGD_RESOURCES[key]] = value
    if limits:
        container["resources"] = {"limits": limits}
    env = [*({"name": e["name"], "value": e["value"]} for e in service.get("envs") or [])]
    if env:
        container["env"] = env
    mounts, volumes = list(container.get("volumeMounts") or []), []
    for mount in service.get("volumeMounts") or []:
        assert mount["name"] in pvcs, f"volume {mount['name']} is not one of the graph's pvcs"
        mounts.append({"name": mount["name"], "mountPath": mount["mountPoint"]})
        volumes.append({"name": mount["name"], "persistentVolumeClaim": {"claimName": mount["name"]}})
    if service.get("sharedMemory"):
        mounts.append({"name": "shared-memory", "mountPath": "/dev/shm"})
        volumes.append({"name": "shared-memory",
                        "emptyDir": {"medium": "Memory", "sizeLimit": service["sharedMemory"]["size"]}})
    if mounts:
        container["volumeMounts"] = mounts
    return container, volumes


def graph_standin_pods(graph: dict) -> list[dict]:
    """The pods the Dynamo operator would create from a DynamoGraphDeployment: per service, replicas x nodeCount
    pods with the service's extraPodSpec, main container, resources, envs, claims, shared memory and pod metadata.
    Scheduled by the default scheduler here (KAI is not running)."""
    name, namespace = graph["metadata"]["name"], graph["metadata"]["namespace"]
    pvcs = {claim["name"] for claim in graph["spec"].get("pvcs") or []}
    pods = []
    for service_name, service in graph["spec"]["services"].items():
        extra = {k: v for k, v in (service.get("extraPodSpec") or {}).items() if k != "mainContainer"}
        container, volumes = _dgd_container(service, pvcs)
        metadata = service.get("extraPodMetadata") or {}
        count = int(service.get("replicas", 1)) * int((service.get("multinode") or {}).get("nodeCount", 1))
        for index in range(count):
            pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": f"{name}-{service_name.lower()}-{index}", "namespace": namespace,
                # Owned by the graph, as the operator's pods are (through its DCDs): deleting the graph removes them.
                "ownerReferences": [{"apiVersion": graph["apiVersion"], "kind": graph["kind"], "name": name,
                                     "uid": graph["metadata"].get("uid", "")}],
                "labels": {GRAPH_LABEL: name, COMPONENT_TYPE_LABEL: service["componentType"],
                           **(metadata.get("labels") or {})},
                "annotations": metadata.get("annotations") or {}},
                "spec": {**extra, "volumes": [*(extra.get("volumes") or []), *volumes], "containers": [container]}})
    return pods


def remove_graph_standins(api: KubeApi) -> None:
    """What the Dynamo operator does when its graph goes: it deletes the graph's pods. The stand-ins are ours, so the
    test removes them before `pulumi destroy` rather than leaving them to the garbage collector, whose foreground
    deletion of a custom owner's dependents can take minutes on this control plane."""
    selector = f"?labelSelector={GRAPH_LABEL.replace('/', '%2F')}"
    pods = api.get(f"/api/v1/pods{selector}")["items"]
    for pod in pods:
        meta = pod["metadata"]
        api.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                    {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                     "propagationPolicy": "Background"})
    for pod in pods:
        api.wait_gone(f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}")


def _tolerates(tolerations: list, taint: dict) -> bool:
    for toleration in tolerations or []:
        if toleration.get("effect") not in (None, "", taint["effect"]):
            continue
        if toleration.get("operator") == "Exists" and toleration.get("key") in (None, "", taint["key"]):
            return True
        if toleration.get("key") == taint["key"] and toleration.get("value") == taint.get("value"):
            return True
    return False


def gpu_request(pod: dict) -> int:
    resource = integration_points().gpu.resource
    return sum(int((c.get("resources") or {}).get("limits", {}).get(resource, 0)) for c in pod["spec"]["containers"])


@dataclass
class Placement:
    admitted: dict = field(default_factory=lambda: defaultdict(int))  # namespace -> pods admitted
    scheduled: dict = field(default_factory=lambda: defaultdict(int))  # namespace -> pods on a node
    phases: dict = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))  # namespace -> phase -> n
    owners: dict = field(default_factory=lambda: defaultdict(set))  # namespace -> Jobs/Deployments whose pods ran
    rejections: list = field(default_factory=list)  # (what, reason)
    problems: list = field(default_factory=list)
    readiness: Optional[readiness_evidence.ReadinessRecord] = None  # the readiness run's record (RDMA profiles)

    def report(self, title: str) -> str:
        lines = [f"simulated cluster ({title}): pods admitted/scheduled per namespace"]
        for namespace in sorted(self.admitted):
            phases = ", ".join(f"{phase} {n}" for phase, n in sorted(self.phases[namespace].items()))
            lines.append(f"  {namespace}: admitted {self.admitted[namespace]}, scheduled "
                         f"{self.scheduled[namespace]} ({phases})")
        lines += [f"  rejected: {what}: {reason}" for what, reason in self.rejections]
        return "\n".join(lines)


def wait_for_placement(api: KubeApi, namespaces: list[str], expected: dict[str, int], timeout: float = 180
                       ) -> list[dict]:
    """Provision claims as they appear until every expected pod (namespace -> count) is bound to a node and KWOK
    has moved it to Running or Succeeded; returns the pods."""
    deadline = time.monotonic() + timeout
    while True:
        provision_pending_claims(api, namespaces)
        pods = [p for ns in namespaces for p in api.get(f"/api/v1/namespaces/{ns}/pods")["items"]]
        counts = defaultdict(int)
        for pod in pods:
            counts[pod["metadata"]["namespace"]] += 1
        settled = all(p["spec"].get("nodeName") and p["status"].get("phase") in ("Running", "Succeeded")
                      for p in pods)
        if settled and all(counts[ns] >= n for ns, n in expected.items()):
            return pods
        if time.monotonic() > deadline:
            waiting = [f"{p['metadata']['namespace']}/{p['metadata']['name']}: node "
                       f"{p['spec'].get('nodeName')}, phase {p['status'].get('phase')}, "
                       f"{[c.get('message') for c in p['status'].get('conditions') or [] if c.get('message')]}"
                       for p in pods if not (p["spec"].get("nodeName") and p["status"].get("phase") in
                                             ("Running", "Succeeded"))]
            events = [f"{e['involvedObject']['kind']}/{e['involvedObject']['name']}: {e['message']}"
                      for ns in namespaces for e in api.get(f"/api/v1/namespaces/{ns}/events")["items"]
                      if e["type"] == "Warning"]
            raise AssertionError(f"pods not placed within {timeout}s; expected {expected}, have {dict(counts)}\n"
                                 + "\n".join(waiting + events[-20:]))
        time.sleep(1)


def _owner(pod: dict) -> str:
    """The Job, Deployment (through its ReplicaSet <deployment>-<hash>) or graph that made the pod."""
    (owner,) = pod["metadata"].get("ownerReferences") or [{"kind": "Pod", "name": pod["metadata"]["name"]}]
    return owner["name"].rsplit("-", 1)[0] if owner["kind"] == "ReplicaSet" else owner["name"]


def check_placement(api: KubeApi, pods: list[dict], placement: Placement) -> None:
    """Every pod sits on a node whose labels satisfy its nodeSelector and whose taints it tolerates; a pod without
    GPUs never sits on a GPU node."""
    nodes = {n["metadata"]["name"]: n for n in api.get("/api/v1/nodes")["items"]}
    for pod in pods:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        node = nodes[pod["spec"]["nodeName"]]
        placement.admitted[namespace] += 1
        placement.scheduled[namespace] += 1
        placement.phases[namespace][pod["status"]["phase"]] += 1
        placement.owners[namespace].add(_owner(pod))
        labels = node["metadata"]["labels"]
        for key, value in (pod["spec"].get("nodeSelector") or {}).items():
            if labels.get(key) != value:
                placement.problems.append(f"{namespace}/{name} on {node['metadata']['name']}: {key}!={value}")
        for taint in node["spec"].get("taints") or []:
            if taint["effect"] in ("NoSchedule", "NoExecute") and not _tolerates(pod["spec"].get("tolerations"),
                                                                                 taint):
                placement.problems.append(f"{namespace}/{name} on {node['metadata']['name']}: untolerated {taint}")
        # A storage readiness pod reads the tier from a GPU node on purpose: node-local tiers exist only there.
        storage_check = (pod["metadata"].get("labels") or {}).get(READINESS_LABEL) == "storage"
        if gpu_request(pod) == 0 and labels[POOL_LABEL] == "gpu" and not storage_check:
            placement.problems.append(f"{namespace}/{name}: a pod without GPUs landed on GPU node "
                                      f"{node['metadata']['name']}")
        if gpu_request(pod) > 0 and labels[POOL_LABEL] != "gpu":
            placement.problems.append(f"{namespace}/{name}: a GPU pod on CPU node {node['metadata']['name']}")


def _test_pod(name: str, namespace: str, gpus: int, **spec) -> dict:
    """A pod that passes PSA restricted, tolerates the GPU taint and asks `gpus` GPUs."""
    names = integration_points().gpu
    container = {"name": "main", "image": "nvcr.io/nvidia/cuda:12.9.1-base-ubuntu24.04",
                 "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                 "resources": {"limits": {names.resource: str(gpus)}} if gpus else {}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "tolerations": [{"key": names.taint_key, "operator": "Exists", "effect": "NoSchedule"}],
                     "containers": [container], **spec}}


def _stack_namespaces(api: KubeApi) -> list[str]:
    items = api.get("/api/v1/namespaces?labelSelector=app.kubernetes.io%2Fpart-of%3Dncp-inference")["items"]
    return sorted(n["metadata"]["name"] for n in items)


def _expected_pods(api: KubeApi, namespaces: list[str], standins: list[dict]) -> dict[str, int]:
    expected = defaultdict(int)
    for namespace in namespaces:
        expected[namespace] += sum(1 for job in api.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
                                   if not job["spec"].get("suspend"))
        expected[namespace] += sum(int(d["spec"]["replicas"]) for d in
                                   api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments")["items"])
    for pod in standins:
        expected[pod["metadata"]["namespace"]] += 1
    return dict(expected)


# What the simulated readiness pods print (tests/fixtures/readiness: a real nccl-tests footer and fio JSON report),
# by container name; KWOK serves it as each pod's log in the CRI log format the API server's pods/log reads.
READINESS_LOGS = {NCCL_JOB: ROOT / "tests" / "fixtures" / "readiness" / NCCL_LOG,
                  "fio": ROOT / "tests" / "fixtures" / "readiness" / "fio-read.json"}


def kwok_logs_config(directory: Path) -> Path:
    """A KWOK ClusterLogs config (NCP_E2E_KWOK_CONFIG) that gives the readiness pods their logs."""
    directory.mkdir(parents=True, exist_ok=True)
    logs = []
    for container, source in READINESS_LOGS.items():
        cri = directory / f"{container}.log"
        cri.write_text("".join(f"2026-01-01T00:00:00.000000000Z stdout F {line}\n"
                               for line in source.read_text().splitlines()))
        logs.append({"containers": [container], "logsFile": str(cri)})
    config = directory / "kwok-logs.yaml"
    config.write_text(yaml.safe_dump({"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterLogs",
                                      "metadata": {"name": "readiness"},
                                      "spec": {"selector": {"matchNamespaces": [READINESS_NAMESPACE]}, "logs": logs}}))
    return config


def run_readiness(api: KubeApi, plan: SitePlan, namespaces: list[str], outputs: Path,
                  timeout: float = 240) -> Optional[readiness_evidence.ReadinessRecord]:
    """The readiness Jobs run as an operator runs them (evidence.readiness_run: the run's ssh key, a Job from each
    suspended template, waited for, each log read back through the API server), while this thread provisions their
    claims; then judged into a readiness record. None on profiles without RDMA."""
    if readiness_plan(plan) is None:
        return None
    failures: list[BaseException] = []

    def run() -> None:
        try:
            readiness_run.run(connect(str(api.kubeconfig)), "e2e", plan, outputs, "e2e", timeout, 1, print)
        except BaseException as error:  # re-raised in the test's thread
            failures.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while thread.is_alive():
        provision_pending_claims(api, namespaces)
        thread.join(2)
    if failures:
        raise failures[0]
    return readiness_evidence.build_record("e2e", plan, outputs, run_id="e2e",
                                           now=datetime(2026, 1, 1, tzinfo=timezone.utc))


def prove_workloads(api: KubeApi, plan: SitePlan, outputs: Path) -> Placement:
    """Nodes and storage as the site would have them, the readiness Jobs run by the readiness run (their logs saved
    to outputs), every other Job unsuspended, stand-ins for every graph's pods; then every pod is admitted and placed
    where its selectors and tolerations allow, and the tenant guardrails refuse what they must. Returns the placement
    (printed by the caller)."""
    placement = Placement()
    for storage_class in storage_classes(plan):
        api.create("/apis/storage.k8s.io/v1/storageclasses", storage_class)
    for node in nodes_for(plan, rdma_devices_per_node(api, plan)):
        api.create("/api/v1/nodes", node)
    namespaces = _stack_namespaces(api)
    # The readiness Jobs run first, as before serving (the NCCL test takes whole GPU nodes).
    placement.readiness = run_readiness(api, plan, namespaces, outputs)
    for namespace in namespaces:
        for job in api.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]:
            if job["spec"].get("suspend") and READINESS_LABEL not in job["metadata"].get("labels", {}):
                api.patch(f"/apis/batch/v1/namespaces/{namespace}/jobs/{job['metadata']['name']}",
                          {"spec": {"suspend": False}})
    graphs = api.get("/apis/nvidia.com/v1alpha1/dynamographdeployments")["items"]
    standins = [pod for graph in graphs for pod in graph_standin_pods(graph)]
    for pod in standins:
        status, message = api.try_create(f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods", pod)
        assert status == 201, f"stand-in {pod['metadata']['name']} refused: {message}"
    pods = wait_for_placement(api, namespaces, _expected_pods(api, namespaces, standins))
    check_placement(api, pods, placement)
    assert graphs and standins, "the stack has a graph whose pods must be proven"
    return placement


def try_tenant_pod(api: KubeApi, placement: Placement, what: str, pod: dict) -> tuple[int, str]:
    status, message = api.try_create(f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods", pod)
    if status >= 400:
        placement.rejections.append((what, message))
    return status, message


def over_quota_pod(namespace: str, gpu_limit: int) -> dict:
    return _test_pod("over-quota", namespace, gpu_limit + 1)


def platform_priority_pod(namespace: str, priority_class: str) -> dict:
    return _test_pod("platform-priority", namespace, 0, priorityClassName=priority_class)


def privileged_pod(namespace: str) -> dict:
    pod = _test_pod("privileged", namespace, 0)
    pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    return pod


def prove_tenant_guardrails(api: KubeApi, plan: SitePlan, placement: Placement, title: str) -> None:
    """Pod Security refuses a privileged tenant pod; quota admission refuses more GPUs than the tenant's limit."""
    tenant = plan.tenants[0]
    namespace = plan.tenant_namespace(tenant)
    status, message = try_tenant_pod(api, placement, f"privileged pod in {namespace} (Pod Security)",
                                     privileged_pod(namespace))
    assert status == 403 and "violates PodSecurity" in message, message
    status, message = try_tenant_pod(api, placement, f"{tenant.gpu_limit + 1} GPUs in {namespace} "
                                     f"(GPU limit {tenant.gpu_limit})", over_quota_pod(namespace, tenant.gpu_limit))
    assert status == 403 and "exceeded quota" in message, message
    print(placement.report(f"{title}: rejections"))


def prove_platform_priority_refused(api: KubeApi, plan: SitePlan, placement: Placement) -> None:
    namespace = plan.tenant_namespace(plan.tenants[0])
    status, message = try_tenant_pod(api, placement, f"priorityClassName {PRIORITY_SYSTEM} in {namespace}",
                                     platform_priority_pod(namespace, PRIORITY_SYSTEM))
    assert status == 403, f"a tenant pod was admitted at the platform priority {PRIORITY_SYSTEM}"
