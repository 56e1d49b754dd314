"""Reading Kubernetes resources as the engine hands them to a policy: type tokens, pod specs, images, the record."""
from functools import lru_cache
from typing import Any, Iterator, Optional

import yaml

from ncp_guardrails.data import names

RELEASE = "kubernetes:helm.sh/v3:Release"
COMPONENT_LABEL = "app.kubernetes.io/component"
# Names the program defines (program.yaml, generated from their homes by `ncp sync-pins`).
RECORD_NAME, KAI_SCHEDULER, GPU = (names()["names"][key] for key in ("baselineRecord", "kaiScheduler", "gpuResource"))
TENANT_LABEL, STORAGE_TIER_LABEL, ENDPOINT_LABEL, KAI_QUEUE_LABEL = (
    names()["labels"][key] for key in ("tenant", "storageTier", "endpoint", "kaiQueue"))
DGD_QUEUE_ANNOTATION = names()["annotations"]["dgdQueue"]
WORKLOADS = names()["components"]  # app.kubernetes.io/component of the program's workloads

# Workload kind -> path from the object to its pod spec.
POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def plain(obj: Any) -> Any:
    """A plain dict/list copy of the analyzer's read-only property proxies (for searching or serialising)."""
    if hasattr(obj, "items"):
        return {key: plain(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)) or (hasattr(obj, "__iter__") and hasattr(obj, "__getitem__")
                                          and not isinstance(obj, str)):
        return [plain(value) for value in obj]
    return obj


def get(obj: Any, *path, default=None):
    for key in path:
        if not isinstance(obj, dict) and not hasattr(obj, "get"):
            return default
        obj = obj.get(key)
        if obj is None:
            return default
    return obj


def kind_of(props) -> Optional[str]:
    return get(props, "kind")


def name_of(props) -> str:
    return get(props, "metadata", "name", default="")


def namespace_of(props) -> str:
    return get(props, "metadata", "namespace", default="")


def labels_of(props) -> dict:
    return dict(get(props, "metadata", "labels", default={}) or {})


def is_dgd(props) -> bool:
    return kind_of(props) == "DynamoGraphDeployment"


# The program's inference-service workloads (components/serving/triton.py): the Triton server and its engine build.
INFERENCE_WORKLOADS = {"Deployment": WORKLOADS["inferenceServer"], "Job": WORKLOADS["engineBuild"]}
ENDPOINT_PICKER = WORKLOADS["endpointPicker"]


def is_inference_workload(props) -> bool:
    component = INFERENCE_WORKLOADS.get(kind_of(props) or "")
    return component is not None and labels_of(props).get(COMPONENT_LABEL) == component


def is_endpoint_picker(props) -> bool:
    """The Gateway API Inference Extension endpoint picker the program runs per InferencePool: it decides which
    worker serves each request, so prod pins its image like the serving images."""
    return kind_of(props) == "Deployment" and labels_of(props).get(COMPONENT_LABEL) == ENDPOINT_PICKER


def is_inference_server(props) -> bool:
    return kind_of(props) == "Deployment" and is_inference_workload(props)


def dgd_services(props) -> Iterator[tuple[str, dict]]:
    for name, service in (get(props, "spec", "services", default={}) or {}).items():
        yield name, service


def pod_specs(props) -> Iterator[tuple[str, dict]]:
    """(where, pod spec) for every pod template the object carries, including DGD services."""
    kind = kind_of(props)
    if kind in POD_SPEC_PATHS:
        spec = get(props, *POD_SPEC_PATHS[kind])
        if spec:
            yield kind, spec
    elif is_dgd(props):
        for name, service in dgd_services(props):
            extra = get(service, "extraPodSpec", default={}) or {}
            containers = [c for c in [get(extra, "mainContainer")] if c] + list(get(extra, "containers", default=[]))
            yield f"service {name}", {**extra, "containers": containers}


def containers(pod_spec: dict) -> Iterator[dict]:
    for key in ("initContainers", "containers"):
        for container in get(pod_spec, key, default=[]) or []:
            yield container


def images(props) -> Iterator[tuple[str, str]]:
    for where, spec in pod_specs(props):
        for container in containers(spec):
            if get(container, "image"):
                yield f"{where}/{get(container, 'name', default='main')}", container["image"]


def requests_gpu(container: dict) -> bool:
    resources = get(container, "resources", default={}) or {}
    return any(GPU in (get(resources, part, default={}) or {}) for part in ("limits", "requests"))


def dgd_service_gpus(service: dict) -> int:
    value = get(service, "resources", "limits", "gpu") or get(service, "resources", "requests", "gpu") or 0
    return int(value)


def parse_image(image: str) -> tuple[str, Optional[str], Optional[str]]:
    """(repository, tag, digest) of an image reference."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        image, tag = image.rsplit(":", 1)
    return image, tag, digest


def find_record(resources) -> Optional[dict]:
    """The baseline record ConfigMap, each key parsed from YAML (read-only: several policies of one stack read it)."""
    for resource in resources:
        props = resource.props
        if kind_of(props) == "ConfigMap" and name_of(props) == RECORD_NAME:
            return {key: parsed_value(value) for key, value in (get(props, "data", default={}) or {}).items()}
    return None


@lru_cache(maxsize=64)
def parsed_value(text: str) -> Any:
    """One record key parsed from YAML, once per text: each stack policy that reads the record asked for it again,
    and parsing it was a tenth of the pack's time per stack (`ncp fleet status`, tools/bench/fleet.py)."""
    return yaml.safe_load(text)


def environment(record: Optional[dict]) -> Optional[str]:
    return get(record or {}, "site", "environment")


def of_kind(resources, kind: str) -> list:
    return [r for r in resources if kind_of(r.props) == kind]


def releases(resources) -> list:
    return [r for r in resources if r.resource_type == RELEASE]
