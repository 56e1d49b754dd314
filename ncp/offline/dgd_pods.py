"""The pods the Dynamo operator makes of each rendered DynamoGraphDeployment service, as Deployments the scanners
can judge (trivy, kube-score and checkov read pod templates of built-in kinds only, never a DGD's services).

The pod is the service's extraPodSpec with its mainContainer as the container `main`, plus what the operator adds
(data/serving-twin.yaml operatorPod: ports, probes, the shared memory volume) and the service's resources, volume
mounts and environment. The operator's injected environment and its own labels are left out: scanners judge
neither."""
import copy
from typing import Any, Iterator

from ncp.readmodel.manifests import as_written
from ncp.readmodel.recorder import Recording
from ncp.plan.catalog import load_signals, operator_pod

GPU_RESOURCE = "nvidia.com/gpu"


def _resources(resources: dict) -> dict:
    out = {}
    for side in ("requests", "limits"):
        values = dict(resources.get(side) or {})
        custom = values.pop("custom", None) or {}
        if "gpu" in values:
            values[GPU_RESOURCE] = values.pop("gpu")
        if values or custom:
            out[side] = {**values, **custom}
    return out


def _container(service: dict, operator: dict) -> dict:
    pod_spec = service.get("extraPodSpec") or {}
    container = copy.deepcopy(pod_spec.get("mainContainer") or {})
    container["name"] = operator["mainContainer"]
    container.update(copy.deepcopy(operator["containers"][service["componentType"]]))
    if service.get("envs"):
        container["env"] = list(service["envs"]) + container.get("env", [])
    if service.get("resources"):
        container["resources"] = _resources(service["resources"])
    mounts = [{"name": m["name"], "mountPath": m["mountPoint"]} for m in service.get("volumeMounts", [])]
    if service.get("sharedMemory"):
        mounts.append({"name": operator["sharedMemory"]["volume"], "mountPath": operator["sharedMemory"]["mountPath"]})
    container["volumeMounts"] = mounts + container.get("volumeMounts", [])
    return container


def _pod(service: dict, operator: dict) -> dict:
    spec = {k: copy.deepcopy(v) for k, v in (service.get("extraPodSpec") or {}).items() if k != "mainContainer"}
    spec["containers"] = [_container(service, operator)]
    volumes = [{"name": m["name"], "persistentVolumeClaim": {"claimName": m["name"]}}
               for m in service.get("volumeMounts", [])]
    if service.get("sharedMemory"):
        volumes.append({"name": operator["sharedMemory"]["volume"],
                        "emptyDir": {"medium": "Memory", "sizeLimit": service["sharedMemory"]["size"]}})
    spec["volumes"] = volumes + spec.get("volumes", [])
    return spec


def service_deployment(dgd: dict, name: str, service: dict) -> dict:
    """One DGD service as the Deployment-shaped workload the operator makes of it (<dgd>-<service lower case>)."""
    operator = operator_pod()
    meta = dgd["metadata"]
    pod_labels = load_signals()["dynamo"].pod_labels  # the labels the operator puts on each pod
    labels = {**meta.get("labels", {}), pod_labels["graph"]: meta["name"],
              pod_labels["componentType"]: service["componentType"]}
    if service.get("subComponentType"):
        labels[pod_labels["subComponentType"]] = service["subComponentType"]
    extra = service.get("extraPodMetadata") or {}
    pod_meta: dict[str, Any] = {"labels": {**extra.get("labels", {}), **labels}}
    annotations = extra.get("annotations")
    if annotations:
        pod_meta["annotations"] = dict(annotations)
    return as_written({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"{meta['name']}-{name.lower()}", "namespace": meta["namespace"], "labels": labels},
        "spec": {"replicas": service.get("replicas", 1), "selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": pod_meta, "spec": _pod(service, operator)}}})


def dgd_pod_manifests(recording: Recording) -> Iterator[dict]:
    for registration in recording.custom_resources("DynamoGraphDeployment"):
        for name, service in registration.inputs["spec"]["services"].items():
            yield service_deployment(registration.inputs, name, service)
