"""Reference integrity of a rendered stack: every name an object refers to (ServiceAccount, Secret, ConfigMap, PVC,
PriorityClass, Service and port, KAI queue, network attachment, endpoint picker, a route's Gateway and pools, storage
class, namespace) exists in the same stack, is created from it by an operator the stack installs, is a Kubernetes
built-in, or is a site prerequisite the stack config declares (data/site-prerequisites.yaml). Every namespaced object
depends on its Namespace when the stack creates that Namespace."""
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator, Mapping, Optional

import yaml

from ncp.readmodel.recorder import Recording, Registration
from ncp.plan.catalog import ROOT, integration_points, load_dynamo_runtime
from ncp.plan.config import StackConfig
from ncp.plan.site_plan import SECRET_KEYS

PREREQUISITES_FILE = ROOT / "data" / "site-prerequisites.yaml"
CLUSTER_SCOPED = {"Namespace", "PriorityClass", "StorageClass", "ClusterRole", "ClusterRoleBinding", "Queue",
                  "NicClusterPolicy", "CustomResourceDefinition"}
# host[.namespace].svc[.cluster.local][:port] inside any string the program writes (URLs in env, args, values).
SERVICE_ADDRESS = re.compile(r"\b([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc"
                             r"(\.cluster\.local)?(:([0-9]+))?")
ANY = None  # a site-provided or built-in name that exists in every namespace


@dataclass(frozen=True)
class Ref:
    source: str  # the referring resource's Pulumi name
    where: str  # field path inside it
    kind: str
    namespace: Optional[str]
    name: str
    port: Optional[int] = None

    def __str__(self) -> str:
        target = f"{self.namespace}/{self.name}" if self.namespace else self.name
        port = f" port {self.port}" if self.port else ""
        return f"{self.source} {self.where} -> {self.kind} {target}{port}"


@lru_cache(maxsize=1)
def _prerequisites() -> dict:
    return yaml.safe_load(PREREQUISITES_FILE.read_text())


def _config_values(node: Any, path: list[str]) -> Iterator[Any]:
    if not path:
        yield node
        return
    head, rest = path[0], path[1:]
    if head == "*":
        children = node.values() if isinstance(node, Mapping) else node if isinstance(node, list) else []
        for child in children:
            yield from _config_values(child, rest)
    elif isinstance(node, Mapping) and head in node:
        yield from _config_values(node[head], rest)


def effective_config(raw: Mapping[str, Any]) -> dict:
    """The stack config with its defaults, camelCase as the user writes it: a default the site keeps (e.g. the
    gateway namespace) is as much its declaration as a value it writes."""
    plain = {key: value for key, value in raw.items() if key not in SECRET_KEYS}
    return StackConfig.model_validate(plain).model_dump(by_alias=True, mode="json")


def declared_by_site(config: Mapping[str, Any]) -> set[tuple[str, Optional[str], str]]:
    """(kind, namespace, name) the site provides: built-ins, and the names its config (effective_config) gives at
    the declared keys."""
    data = _prerequisites()
    provided: set[tuple[str, Optional[str], str]] = {
        (kind, ANY, name) for kind, names in data["builtin"].items() if kind != "source" for name in names}
    for kind, keys in data["siteProvided"].items():
        for key in keys:
            for value in _config_values(config, key.split(".")):
                if isinstance(value, str):
                    address = SERVICE_ADDRESS.search(value) if kind == "Service" else None
                    provided.add((kind, ANY, address.group(1) if address else value))
    return provided


def _meta(registration: Registration) -> dict:
    return registration.inputs.get("metadata") or {}


def _kind(registration: Registration) -> Optional[str]:
    if registration.type == "kubernetes:helm.sh/v3:Release":
        return "HelmRelease"
    return registration.inputs.get("kind")


def namespace_of(registration: Registration) -> Optional[str]:
    if _kind(registration) == "HelmRelease":
        return registration.inputs.get("namespace")
    return _meta(registration).get("namespace")


def _pod_spec_refs(spec: Mapping, namespace: Optional[str],
                   where: str) -> Iterator[tuple[str, str, Optional[str], str]]:
    """(where, kind, namespace, name) a pod spec refers to."""
    yield f"{where}.serviceAccountName", "ServiceAccount", namespace, spec.get("serviceAccountName") or "default"
    if spec.get("priorityClassName"):
        yield f"{where}.priorityClassName", "PriorityClass", None, spec["priorityClassName"]
    for secret in spec.get("imagePullSecrets") or []:
        yield f"{where}.imagePullSecrets", "Secret", namespace, secret["name"]
    for volume in spec.get("volumes") or []:
        at = f"{where}.volumes[{volume['name']}]"
        if "persistentVolumeClaim" in volume:
            yield at, "PersistentVolumeClaim", namespace, volume["persistentVolumeClaim"]["claimName"]
        if "configMap" in volume:
            yield at, "ConfigMap", namespace, volume["configMap"]["name"]
        if "secret" in volume and not volume["secret"].get("optional"):  # optional: made at run time, not a dependency
            yield at, "Secret", namespace, volume["secret"]["secretName"]
        template = (volume.get("ephemeral") or {}).get("volumeClaimTemplate")
        if template and template["spec"].get("storageClassName"):
            yield at, "StorageClass", None, template["spec"]["storageClassName"]
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    if "mainContainer" in spec:  # Dynamo's extraPodSpec
        containers.append(spec["mainContainer"])
    for container in containers:
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                if key in source:
                    yield f"{where}.env[{env['name']}]", kind, namespace, source[key]["name"]
        for env in container.get("envFrom") or []:
            for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                if key in env:
                    yield f"{where}.envFrom", kind, namespace, env[key]["name"]


def _pod_specs(registration: Registration) -> Iterator[tuple[str, Mapping]]:
    kind, spec = _kind(registration), registration.inputs.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield "spec.template.spec", spec["template"]["spec"]
    if kind == "DynamoGraphDeployment":
        for service, body in spec.get("services", {}).items():
            yield f"spec.services.{service}.extraPodSpec", body.get("extraPodSpec") or {}


def _network_refs(value: str, namespace: Optional[str]) -> Iterator[tuple[Optional[str], str]]:
    for item in value.split(","):
        item = item.strip().split("@", 1)[0]
        ns, _, name = item.rpartition("/")
        yield ns or namespace, name


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")


def references(registration: Registration) -> Iterator[Ref]:
    """Every name this registration refers to."""
    names = integration_points()
    kind, meta, spec = _kind(registration), _meta(registration), registration.inputs.get("spec") or {}
    namespace = namespace_of(registration)
    source = registration.name

    def ref(where: str, target_kind: str, target_namespace: Optional[str], name: str, port: Optional[int] = None):
        return Ref(source, where, target_kind, target_namespace, name, int(port) if port is not None else None)

    if namespace:
        yield ref("namespace", "Namespace", None, namespace)
    for where, pod_spec in _pod_specs(registration):
        for at, target_kind, target_namespace, name in _pod_spec_refs(pod_spec, namespace, where):
            yield ref(at, target_kind, target_namespace, name)
    annotations, labels_ = meta.get("annotations") or {}, meta.get("labels") or {}
    if names.dynamo.queue_annotation in annotations:
        yield ref(f"metadata.annotations[{names.dynamo.queue_annotation}]", "Queue", None,
                  annotations[names.dynamo.queue_annotation])
    if names.kai.queue_label in labels_:
        yield ref(f"metadata.labels[{names.kai.queue_label}]", "Queue", None, labels_[names.kai.queue_label])
    if kind == "Queue" and spec.get("parentQueue"):
        yield ref("spec.parentQueue", "Queue", None, spec["parentQueue"])
    if kind == "PersistentVolumeClaim" and spec.get("storageClassName"):
        yield ref("spec.storageClassName", "StorageClass", None, spec["storageClassName"])
    if kind == "ServiceAccount":
        for secret in registration.inputs.get("imagePullSecrets") or []:
            yield ref("imagePullSecrets", "Secret", namespace, secret["name"])
    if kind in ("RoleBinding", "ClusterRoleBinding"):
        role = registration.inputs["roleRef"]
        yield ref("roleRef", role["kind"], namespace if role["kind"] == "Role" else None, role["name"])
        for subject in registration.inputs.get("subjects") or []:
            if subject["kind"] == "ServiceAccount":
                yield ref("subjects", "ServiceAccount", subject.get("namespace") or namespace, subject["name"])
    if kind == "NetworkPolicy":
        for rule in [*(spec.get("ingress") or []), *(spec.get("egress") or [])]:
            for peer in [*(rule.get("from") or []), *(rule.get("to") or [])]:
                selected = ((peer.get("namespaceSelector") or {}).get("matchLabels") or {})
                if "kubernetes.io/metadata.name" in selected:
                    yield ref("spec.*.namespaceSelector", "Namespace", None, selected["kubernetes.io/metadata.name"])
    if kind == "DynamoGraphDeployment":
        for claim in spec.get("pvcs") or []:
            if not claim.get("create"):
                yield ref("spec.pvcs", "PersistentVolumeClaim", namespace, claim["name"])
        for service, body in spec.get("services", {}).items():
            networks = ((body.get("extraPodMetadata") or {}).get("annotations") or {}).get(
                names.multus.networks_annotation)
            for network_namespace, network in _network_refs(networks or "", namespace) if networks else ():
                yield ref(f"spec.services.{service}.extraPodMetadata", "NetworkAttachmentDefinition",
                          network_namespace, network)
    if kind == "HTTPRoute":
        for parent in spec.get("parentRefs") or []:
            yield ref("spec.parentRefs", parent.get("kind", "Gateway"), parent.get("namespace") or namespace,
                      parent["name"])
        for rule in spec.get("rules") or []:
            for backend in rule.get("backendRefs") or []:
                yield ref("spec.rules.backendRefs", backend.get("kind", "Service"),
                          backend.get("namespace") or namespace, backend["name"], backend.get("port"))
    if kind == "InferencePool" and "endpointPickerRef" in spec:
        picker = spec["endpointPickerRef"]
        yield ref("spec.endpointPickerRef", "Service", namespace, picker["name"], picker.get("port", {}).get("number"))
    for where, text in _strings(registration.inputs):
        for match in SERVICE_ADDRESS.finditer(text):
            port = int(match.group(7)) if match.group(7) else None
            yield ref(where, "Service", match.group(3), match.group(1), port)


@dataclass(frozen=True)
class Inventory:
    objects: set[tuple[str, Optional[str], str]]
    service_ports: dict[tuple[Optional[str], str], set[int]]  # (namespace, Service) -> ports; empty set: any port

    def has(self, ref: Ref) -> bool:
        namespace = None if ref.kind in CLUSTER_SCOPED else ref.namespace
        if (ref.kind, namespace, ref.name) not in self.objects and (ref.kind, ANY, ref.name) not in self.objects:
            return False
        if ref.kind == "Service" and ref.port is not None:
            ports = self.service_ports.get((ref.namespace, ref.name), set())
            return not ports or ref.port in ports
        return True


def _release_services(release: Registration) -> Iterator[tuple[str, int]]:
    """Services a Helm release of the stack brings, that the program refers to."""
    names, chart = integration_points(), release.inputs.get("chart", "").rstrip("/").rsplit("/", 1)[-1]
    if chart == "gpu-operator":  # the standalone DCGM host engine (dcgm.enabled)
        yield names.dcgm.service, names.dcgm.port
    values = release.inputs.get("values") or {}
    if chart == "dynamo-platform" and ((values.get("global") or {}).get("nats") or {}).get("install"):
        yield f"{release.inputs['name']}{names.dynamo.nats_service_suffix}", names.dynamo.nats_port


def inventory(recording: Recording, config: Mapping[str, Any]) -> Inventory:
    """What the stack creates, what operators it installs create from it, and what the site declares."""
    objects = set(declared_by_site(config))
    ports: dict[tuple[Optional[str], str], set[int]] = {}

    def service(namespace: Optional[str], name: str, *service_ports: int) -> None:
        objects.add(("Service", namespace, name))
        ports.setdefault((namespace, name), set()).update(service_ports)

    names, frontend = integration_points(), load_dynamo_runtime().frontend
    for registration in recording.resources:
        kind, meta, namespace = _kind(registration), _meta(registration), namespace_of(registration)
        if kind == "HelmRelease":
            for name, port in _release_services(registration):
                service(namespace, name, port)
            continue
        if not kind or "name" not in meta:
            continue
        objects.add((kind, None if kind in CLUSTER_SCOPED else namespace, meta["name"]))
        if kind == "Service":
            service(namespace, meta["name"], *(p["port"] for p in registration.inputs["spec"].get("ports") or []))
        if kind == "DynamoGraphDeployment":
            # The Dynamo operator creates the frontend Service <graph>-frontend of every graph.
            service(namespace, f"{meta['name']}{names.dynamo.frontend_service_suffix}", frontend.http_port)
    return Inventory(objects, ports)


def dangling_references(recording: Recording, config: Mapping[str, Any]) -> list[Ref]:
    found = inventory(recording, config)
    return [ref for registration in recording.resources for ref in references(registration) if not found.has(ref)]


def _closure(recording: Recording) -> dict[str, set[str]]:
    direct = {r.urn: set(r.dependencies) | {u for urns in r.property_dependencies.values() for u in urns}
              for r in recording.resources}
    closed: dict[str, set[str]] = {}

    def visit(urn: str) -> set[str]:
        if urn not in closed:
            closed[urn] = set()
            for dependency in direct.get(urn, ()):
                closed[urn] |= {dependency} | visit(dependency)
        return closed[urn]

    for urn in direct:
        visit(urn)
    return closed


def missing_namespace_dependencies(recording: Recording) -> list[str]:
    """Namespaced objects that do not depend (directly or through others) on the Namespace the stack creates for
    them: without the edge the engine may create them first and delete the Namespace under them."""
    namespaces = {_meta(r)["name"]: r.urn for r in recording.resources if _kind(r) == "Namespace"}
    closure = _closure(recording)
    missing = []
    for registration in recording.resources:
        namespace = namespace_of(registration)
        if registration.custom and namespace in namespaces and namespaces[namespace] not in closure[registration.urn]:
            missing.append(f"{registration.name} ({_kind(registration)} in {namespace})")
    return missing
