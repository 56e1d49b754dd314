"""One inference service of the RA's traditional ML and vision path: the engine-build Job with its provenance record,
the Triton model repository (ConfigMap), the server Deployment and Service, its PodMonitor and rules."""
import json
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import (
    container_resources,
    PRIORITY_SERVING, TENANT_LABEL, Layer, await_annotations, claim_volume, labels, pod_placement, restricted_job,
    restricted_pod, scratch, scratch_volume,
)
from components.network_policy import model_source_access, source_env
from components.serving.triton_repository import build_script, expected_provenance, repository_files, verify_script
from components.serving.triton_rules import inference_rules, pod_monitor_spec
from ncp.plan.catalog import MetricSource, integration_points
from ncp.plan.inference_services import InferenceServicePlan
from ncp.plan.names import (ENDPOINT_LABEL, EVIDENCE_KEY_ANNOTATION, MODEL_CLAIM, MODEL_REVISION, MODEL_SOURCE,
                            MODELS_MOUNT)
from ncp.plan.serving import ModelStagingSettings
from ncp.plan.site_plan import NodePlacement, gpu_toleration
from ncp.plan.wired import service_url

REPOSITORY, CONFIG_DIR = "/repository", "/model-config"
BUILD_TIMEOUT_SECONDS = 2 * 3600
# app.kubernetes.io/component of the server Deployment and its engine-build Job (the policy pack finds them by it)
SERVER_COMPONENT, ENGINE_BUILD_COMPONENT = "inference-service", "engine-build"


@dataclass(frozen=True)
class InferenceServiceArgs:
    """Arguments of InferenceService: one Triton server with its TensorRT engine build, Service, monitor and rules.

    Attributes:
        plan: the service's plan: model, engine, GPUs, tenant and namespace.
        ports: Triton's http, grpc and metrics ports (compatibility matrix `triton`), each a TCP port number.
        signals: Triton's metric names and labels (data/telemetry-signals.yaml `triton`).
        model_claim: the tenant's model-artifacts claim holding the model repository and engines.
        service_account: the tenant workload ServiceAccount the pods run as.
        pull_secret: the registry Secret in the tenant namespace; None pulls without one.
        selector_labels: the labels the site's Prometheus selects PodMonitors and rules by.
        scrape_interval: how often Prometheus scrapes the server (a Prometheus duration, e.g. `30s`).
        skip_await: whether Pulumi skips waiting for the Deployment to become ready.
        source_access: the site's route to the model source (components.serving.modelStaging): the engine build
            fetches its ONNX file by it.
        evidence_key: the like-for-like key its acceptance evidence must match (ncp/plan/evidence_key.py
            annotation_value), stamped on the server Deployment for the promotion gate.
        tenant_nodes: the tenant's dedicated nodes, where it has them. Default: None.
    """

    plan: InferenceServicePlan
    ports: dict[str, int]
    signals: MetricSource
    model_claim: k8s.core.v1.PersistentVolumeClaim
    service_account: str
    pull_secret: Optional[str]
    selector_labels: dict[str, str]
    scrape_interval: str
    skip_await: bool
    source_access: ModelStagingSettings
    evidence_key: str
    tenant_nodes: Optional[NodePlacement] = None


def placement(args: InferenceServiceArgs) -> dict:
    """The tenant's KAI queue and the site's GPU nodes (the tenant's own, where it has them), as PodSpecArgs
    keywords (server and build alike)."""
    names = integration_points()
    return pod_placement(args.tenant_nodes, scheduler_name=names.kai.scheduler_name,
                         node_selector={names.gpu.product_label: args.plan.gpu_product},
                         tolerations=[gpu_toleration()])


def gpu_resources(plan: InferenceServicePlan, container: str) -> k8s.core.v1.ResourceRequirementsArgs:
    """The container's host resources (data/tenant-pods.yaml) and the service's GPUs. Limits equal requests there:
    the pod is Guaranteed QoS, so CPU pinning and eviction order treat it as serving."""
    gpus = {integration_points().gpu.resource: str(plan.service.gpus.count)}
    return container_resources(container, gpus)


def server_args(ports: dict[str, int]) -> list[str]:
    """tritonserver flags (src/command_line_parser.cc @v2.68.0): the laid-out repository, every model loaded at
    start, exit when one fails, metrics with per-model latency summaries for the p95 rules."""
    return [f"--model-repository={REPOSITORY}", "--model-control-mode=none", "--exit-on-error=true",
            "--strict-readiness=true", f"--http-port={ports['http']}", f"--grpc-port={ports['grpc']}",
            "--allow-metrics=true", "--allow-gpu-metrics=true", f"--metrics-port={ports['metrics']}",
            "--metrics-config=summary_latencies=true"]


def spread_over_hosts(selector: dict[str, str], replicas: int) -> Optional[k8s.core.v1.AffinityArgs]:
    """Replicas preferably on different nodes, so one node's failure takes one server; preferred, not required,
    since a MIG-partitioned pool may be a single node holding every slice."""
    if replicas < 2:
        return None
    return k8s.core.v1.AffinityArgs(pod_anti_affinity=k8s.core.v1.PodAntiAffinityArgs(
        preferred_during_scheduling_ignored_during_execution=[k8s.core.v1.WeightedPodAffinityTermArgs(
            weight=100, pod_affinity_term=k8s.core.v1.PodAffinityTermArgs(
                topology_key=integration_points().kubernetes.hostname_label,
                label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector)))]))


class InferenceService(Layer):
    def __init__(self, name: str, args: InferenceServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("InferenceService", name, opts)
        plan, child = args.plan, self.child()
        names = integration_points()
        artifact = plan.service.artifact
        annotations = {MODEL_SOURCE: artifact.source, MODEL_REVISION: artifact.revision}
        meta = labels(SERVER_COMPONENT, plan.name, **{ENDPOINT_LABEL: plan.name, TENANT_LABEL: plan.tenant.name})
        pod_labels = {**meta, names.kai.queue_label: plan.queue}
        self.provenance = k8s.core.v1.ConfigMap(
            f"{name}-provenance",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{plan.name}-engine-provenance", namespace=plan.namespace,
                                                labels=meta, annotations=annotations),
            data={"provenance.json": json.dumps({
                **expected_provenance(plan), "engineDir": plan.engine_dir, "builderImage": plan.builder_image,
                "serverImage": plan.server_image, "versions": plan.versions,
                "note": "the build writes the measured GPU, TensorRT version and engine sha256 beside the engine",
            }, indent=2, sort_keys=True)},
            opts=child)
        build = self._engine_build(name, args, pod_labels, annotations)
        config = k8s.core.v1.ConfigMap(
            f"{name}-repository",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{plan.name}-model-repository", namespace=plan.namespace,
                                                labels=meta),
            data=repository_files(plan), opts=child)
        self.deployment = self._server(name, args, pod_labels, annotations, [build, config])
        self._telemetry(name, args, meta)
        self.url = service_url(plan, args.ports["http"])
        self.metrics_url = service_url(plan, args.ports["metrics"], "/metrics")
        self.register_outputs({"url": self.url, "engineDir": plan.engine_dir, "gpus": plan.gpu_units})

    def _engine_build(self, name: str, args: InferenceServiceArgs, pod_labels: dict,
                      annotations: dict) -> k8s.batch.v1.Job:
        """The Job that builds the engine from the pinned artifact on the site's GPU, with its route to the source."""
        plan = args.plan
        build_await = await_annotations(args.skip_await) or {"pulumi.com/timeoutSeconds": str(BUILD_TIMEOUT_SECONDS)}
        # The build fetches its source the way model staging does: the site's route only, for the build pods only.
        source = model_source_access(f"{name}-source-egress", owner=plan.name, tenant=plan.tenant.name,
                                     namespace=plan.namespace, component=ENGINE_BUILD_COMPONENT,
                                     access=args.source_access, opts=self.child())
        return restricted_job(
            f"{name}-engine-build", name=f"{plan.name}-engine-build", namespace=plan.namespace,
            labels={**pod_labels, "app.kubernetes.io/component": ENGINE_BUILD_COMPONENT},
            annotations={**annotations, **build_await},
            container=k8s.core.v1.ContainerArgs(
                name="build", image=plan.builder_image, command=["/bin/bash", "-c", build_script(plan)],
                env=[k8s.core.v1.EnvVarArgs(name=key, value=value)
                     for key, value in source_env(args.source_access).items()],
                volume_mounts=[k8s.core.v1.VolumeMountArgs(name="models", mount_path=MODELS_MOUNT)],
                resources=gpu_resources(plan, "engineBuild")),
            volumes=[claim_volume("models", MODEL_CLAIM)],
            service_account=args.service_account, backoff_limit=2, ttl_seconds=86400, placement=placement(args),
            opts=self.child(args.model_claim, source))

    def _server(self, name: str, args: InferenceServiceArgs, pod_labels: dict, annotations: dict,
                after: list) -> k8s.apps.v1.Deployment:
        plan, ports = args.plan, args.ports
        selector = {"app.kubernetes.io/name": plan.name, "app.kubernetes.io/component": SERVER_COMPONENT}
        mounts = [k8s.core.v1.VolumeMountArgs(name="models", mount_path=MODELS_MOUNT, read_only=True),
                  k8s.core.v1.VolumeMountArgs(name="repository", mount_path=REPOSITORY)]
        probe = lambda path: k8s.core.v1.ProbeArgs(  # noqa: E731
            http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port="http"), period_seconds=10, failure_threshold=6)
        deployment = k8s.apps.v1.Deployment(
            f"{name}-server",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=plan.name, namespace=plan.namespace, labels=pod_labels,
                                                annotations={**annotations, EVIDENCE_KEY_ANNOTATION: args.evidence_key,
                                                             **await_annotations(args.skip_await)}),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=plan.service.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels={**pod_labels, **selector}),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=args.service_account, automount_service_account_token=False,
                        priority_class_name=PRIORITY_SERVING, security_context=restricted_pod(),
                        image_pull_secrets=[k8s.core.v1.LocalObjectReferenceArgs(name=args.pull_secret)]
                        if args.pull_secret else None,
                        init_containers=[scratch(k8s.core.v1.ContainerArgs(
                            name="verify-engine", image=plan.server_image,
                            command=["/bin/bash", "-c", verify_script(plan, REPOSITORY, CONFIG_DIR)],
                            resources=container_resources("tritonVerify"),
                            volume_mounts=mounts + [k8s.core.v1.VolumeMountArgs(
                                name="config", mount_path=CONFIG_DIR, read_only=True)]))[0]],
                        containers=[scratch(k8s.core.v1.ContainerArgs(
                            name="tritonserver", image=plan.server_image, command=["tritonserver"],
                            args=server_args(ports),
                            ports=[k8s.core.v1.ContainerPortArgs(name=port, container_port=number)
                                   for port, number in ports.items()],
                            readiness_probe=probe("/v2/health/ready"), liveness_probe=probe("/v2/health/live"),
                            resources=gpu_resources(plan, "tritonServer"),
                            volume_mounts=mounts + [k8s.core.v1.VolumeMountArgs(name="dshm",
                                                                                mount_path="/dev/shm")]))[0]],
                        volumes=[scratch_volume(), claim_volume("models", MODEL_CLAIM, read_only=True),
                                 k8s.core.v1.VolumeArgs(name="repository",
                                                        empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()),
                                 k8s.core.v1.VolumeArgs(name="config", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                                     name=f"{plan.name}-model-repository")),
                                 # DALI and the Python backend exchange tensors through shared memory.
                                 k8s.core.v1.VolumeArgs(name="dshm", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                                     medium="Memory", size_limit="1Gi"))],
                        affinity=spread_over_hosts(selector, plan.service.replicas),
                        **placement(args)))),
            opts=self.child(*after))
        if plan.service.replicas > 1:
            # Node drains and upgrades take one server at a time, so the service keeps answering during them.
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-disruption-budget",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=plan.name, namespace=plan.namespace, labels=pod_labels),
                spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                    max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector)),
                opts=self.child())
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=plan.name, namespace=plan.namespace, labels=pod_labels),
            spec=k8s.core.v1.ServiceSpecArgs(selector=selector, ports=[
                k8s.core.v1.ServicePortArgs(name=port, port=number, target_port=port)
                for port, number in ports.items()]),
            opts=self.child())
        self.selector = selector
        return deployment

    def _telemetry(self, name: str, args: InferenceServiceArgs, meta: dict) -> None:
        plan = args.plan
        monitor_labels = {**meta, **args.selector_labels}
        k8s.apiextensions.CustomResource(
            f"{name}-podmonitor", api_version="monitoring.coreos.com/v1", kind="PodMonitor",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=plan.name, namespace=plan.namespace, labels=monitor_labels),
            spec=pod_monitor_spec(plan, self.selector, args.signals, args.scrape_interval), opts=self.child())
        k8s.apiextensions.CustomResource(
            f"{name}-rules", api_version="monitoring.coreos.com/v1", kind="PrometheusRule",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{plan.name}-inference", namespace=plan.namespace,
                                                labels=monitor_labels),
            spec={"groups": inference_rules(plan, args.signals)}, opts=self.child())
