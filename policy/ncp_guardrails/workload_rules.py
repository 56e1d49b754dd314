"""Guardrails on what runs: image references, secret hygiene, GPU workloads through KAI."""
import re

from ncp_guardrails.data import allowlists
from ncp_guardrails.framework import resource_policy, stack_policy
from ncp_guardrails.kube import (
    DGD_QUEUE_ANNOTATION, GPU, KAI_QUEUE_LABEL, KAI_SCHEDULER, containers, dgd_service_gpus, dgd_services, get,
    images, is_dgd, is_endpoint_picker, is_inference_workload, kind_of, labels_of, name_of, namespace_of, of_kind,
    parse_image, pod_specs, requests_gpu,
)

SECRET_NAME = re.compile(r"(pass(word|wd)?|secret|token|api[-_]?key|credential|private[-_]?key)", re.IGNORECASE)
SYSTEM_NAMESPACES = ("default", "kube-system")


def _image_references(args, report):
    config = args.get_config() or {}
    registries = allowlists()["imageRegistries"]
    for where, image in images(args.props):
        repository, tag, digest = parse_image(image)
        if not tag and not digest:
            report(f"{where}: image {image!r} has no tag or digest")
        elif tag == "latest":
            report(f"{where}: image {image!r} uses the mutable tag latest")
        if not any(repository.startswith(prefix) for prefix in registries):
            report(f"{where}: image {image!r} is not from an allowlisted registry ({', '.join(registries)})")
        serving = is_dgd(args.props) or is_inference_workload(args.props) or is_endpoint_picker(args.props)
        if config.get("requireDigestForServing") and serving and not digest:
            report(f"{where}: production serving image {image!r} must be pinned by digest (@sha256:...)")


image_references = resource_policy(
    "image-references",
    "Images carry a tag or digest and never `latest`, come from allowlisted registries, and prod serving images are "
    "pinned by digest.",
    "Isolation And Security: Security And Compliance (container image origins)",
    "Pin images by tag in data/compatibility-matrix.yaml; for prod serving set the runtime digest per backend (and "
    "planner, epp, tritonserver, tensorrt) with "
    "`pulumi config set --path ncp-inference:components.serving.imageDigests.<backend> sha256:...`; pull from an "
    "allowlisted registry (data/allowlists.yaml).",
    _image_references,
    config={"requireDigestForServing": {"type": "boolean", "default": False}},
)


# RA: Security And Compliance: "Secrets must be scoped by namespace and service account."
def _secret_hygiene(args, report):
    props = args.props
    kind = kind_of(props)
    if kind == "ConfigMap":
        for key in (get(props, "data", default={}) or {}):
            if SECRET_NAME.search(key):
                report(f"ConfigMap key {key!r} looks like a credential: keep it in a Secret")
    if kind == "Secret" and namespace_of(props) in SYSTEM_NAMESPACES:
        report(f"Secret {name_of(props)!r} is in {namespace_of(props)}: scope secrets to the namespace that uses them")
    for where, spec in pod_specs(props):
        for container in containers(spec):
            for env in get(container, "env", default=[]) or []:
                if SECRET_NAME.search(env.get("name", "")) and "value" in env:
                    report(f"{where}: env {env['name']!r} holds a literal value; use valueFrom.secretKeyRef")
    if is_dgd(props):
        for name, service in dgd_services(props):
            for env in get(service, "envs", default=[]) or []:
                if SECRET_NAME.search(env.get("name", "")) and "value" in env:
                    report(f"service {name}: env {env['name']!r} holds a literal value; use envFromSecret")


secret_hygiene = resource_policy(
    "secret-hygiene",
    "Nothing secret in ConfigMaps or plain env values; no program Secret in default or kube-system.",
    "Isolation And Security: Security And Compliance (secrets scoped by namespace and service account)",
    "Move the value into a Secret in the consuming namespace and reference it (secretKeyRef / envFromSecret).",
    _secret_hygiene,
)


def _namespace_queues(resources) -> dict:
    return {name_of(ns.props): labels_of(ns.props).get(KAI_QUEUE_LABEL) for ns in of_kind(resources, "Namespace")}


def _gpu_workloads_through_kai(args, report):
    queues = _namespace_queues(args.resources)
    for resource in args.resources:
        props = resource.props
        namespace = namespace_of(props)
        expected = queues.get(namespace)
        if is_dgd(props):
            gpu_services = [name for name, service in dgd_services(props) if dgd_service_gpus(service)]
            if not gpu_services:
                continue
            queue = get(props, "metadata", "annotations", DGD_QUEUE_ANNOTATION)
            if not queue:
                report(f"{name_of(props)}: GPU services {gpu_services} do not name a KAI queue "
                       f"({DGD_QUEUE_ANNOTATION})", resource.urn)
            elif expected and queue != expected:
                report(f"{name_of(props)}: uses KAI queue {queue!r}, not its tenant's queue {expected!r}", resource.urn)
            for name, service in dgd_services(props):
                if get(service, "resources", "requests", "gpu") and not get(service, "resources", "limits", "gpu"):
                    report(f"{name_of(props)}: service {name} requests GPUs without a GPU limit", resource.urn)
            continue
        for where, spec in pod_specs(props):
            gpu_containers = [c for c in containers(spec) if requests_gpu(c)]
            if not gpu_containers:
                continue
            for container in gpu_containers:
                if GPU not in (get(container, "resources", "limits", default={}) or {}):
                    report(f"{name_of(props)} {where}: container {container.get('name')!r} has no {GPU} limit",
                           resource.urn)
            if spec.get("schedulerName") != KAI_SCHEDULER:
                report(f"{name_of(props)} {where}: GPU pods must use schedulerName {KAI_SCHEDULER}", resource.urn)
            template_labels = get(props, "spec", "template", "metadata", "labels", default=None) or labels_of(props)
            queue = template_labels.get(KAI_QUEUE_LABEL)
            if not queue:
                report(f"{name_of(props)} {where}: GPU pods need the {KAI_QUEUE_LABEL} label", resource.urn)
            elif expected and queue != expected:
                report(f"{name_of(props)} {where}: uses KAI queue {queue!r}, not its tenant's queue {expected!r}",
                       resource.urn)


gpu_workloads_through_kai = stack_policy(
    "gpu-workloads-through-kai",
    "Every GPU workload sets GPU limits and schedules through KAI with its tenant's queue.",
    "Operator View: Placement And Scheduling; Isolation And Security: Workload Isolation",
    f"Set resources.limits {GPU}, schedulerName {KAI_SCHEDULER} and the {KAI_QUEUE_LABEL} label (DGDs: the "
    f"{DGD_QUEUE_ANNOTATION} annotation) to the tenant's queue.",
    _gpu_workloads_through_kai,
)

POLICIES = [image_references, secret_hygiene, gpu_workloads_through_kai]
