"""Serving layer: the Dynamo platform, and per endpoint a DynamoGraphDeployment laid out from its sizing file,
an optional Gateway API Inference Extension InferencePool, and the endpoint's serving telemetry."""
import math
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.kube import PRIORITY_SERVING, TENANT_LABEL, Layer, helm_release, labels
from components.model_data import ENDPOINT_LABEL, MODEL_REVISION, MODEL_SOURCE, MODELS_MOUNT, TenantStorage
from plan.catalog import BackendRuntime, ChartPin, DynamoRuntime, MetricSource, integration_points
from plan.endpoint_plan import EndpointPlan, WorkerGroup
from plan.serving import StorageTier

ENGINE_CONFIG_MOUNT = "/etc/ncp-engine"
CACHE_MOUNT = "/cache"
KV_OFFLOAD_MOUNT = "/kv-offload"
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


@dataclass(frozen=True)
class ServingPlatformArgs:
    pin: ChartPin
    namespace: k8s.core.v1.Namespace
    model_express_url: Optional[pulumi.Input[str]]
    skip_await: bool


def dynamo_platform_values(model_express_url: Optional[str]) -> dict:
    operator = {"upgradeCRD": True, "discoveryBackend": "kubernetes"}
    if model_express_url:
        operator["modelExpressURL"] = model_express_url
    return {
        "global": {
            # Pinned explicitly: Dynamo 1.4 flips the NATS default; etcd is not needed with Kubernetes discovery.
            "nats": {"install": True},
            "etcd": {"install": False},
            # KAI Scheduler and Grove are installed separately by the scheduling layer (upstream advice for prod).
            "kai-scheduler": {"install": False, "enabled": True},
            "grove": {"install": False, "enabled": True},
        },
        "dynamo-operator": operator,
    }


class ServingPlatform(Layer):
    def __init__(self, name: str, args: ServingPlatformArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("ServingPlatform", name, opts)
        values = pulumi.Output.from_input(args.model_express_url).apply(dynamo_platform_values)
        self.release = helm_release("dynamo-platform", args.pin, values, args.namespace.metadata.name, self,
                                    args.skip_await, depends_on=[args.namespace])
        self.register_outputs({"release": self.release.name, "chartVersion": args.pin.version})


@dataclass(frozen=True)
class EndpointArgs:
    plan: EndpointPlan
    runtime: DynamoRuntime
    gpus_per_node: int
    gpu_product: str
    rdma_resource: Optional[str]
    networks: list[str]
    model_path: str
    model_cache: StorageTier
    kv_offload: Optional[StorageTier]
    model_express_url: Optional[pulumi.Input[str]]
    pull_secret: Optional[str]
    service_account: str
    signals: MetricSource
    selector_labels: dict[str, str]
    scrape_interval: str
    inference_pool: bool


def _parallel_flags(backend: BackendRuntime, group: WorkerGroup) -> list[str]:
    sizes = {"tensorParallel": group.tensor_parallel, "pipelineParallel": group.pipeline_parallel,
             "expertParallel": group.expert_parallel}
    flags = []
    for key, flag in backend.parallel_flags.items():
        flags += [flag, str(sizes[key])]
    return flags


def engine_config(backend: BackendRuntime, group: WorkerGroup) -> Optional[str]:
    if not backend.engine_args:
        return None
    sizes = {"tensorParallel": group.tensor_parallel, "pipelineParallel": group.pipeline_parallel,
             "expertParallel": group.expert_parallel}
    return yaml.safe_dump({key: sizes[name] for name, key in backend.engine_args.items()}, sort_keys=True)


def worker_args(runtime: DynamoRuntime, backend_name: str, group: WorkerGroup, model_path: str,
                served_name: str) -> list[str]:
    backend = runtime.backends[backend_name]
    args = ["-m", backend.module, backend.model_path_flag, model_path, backend.served_model_name_flag, served_name]
    args += _parallel_flags(backend, group)
    if backend.engine_args_flag:
        args += [backend.engine_args_flag, f"{ENGINE_CONFIG_MOUNT}/{group.role}.yaml"]
    if group.role in ("prefill", "decode"):
        if backend.disaggregation_flag:
            args += [backend.disaggregation_flag, group.role]
        elif backend.prefill_worker_flag and group.role == "prefill":
            args.append(backend.prefill_worker_flag)
    if backend.model_streamer:
        args += [runtime.model_streamer.load_format_flag, runtime.model_streamer.load_format]
    return args


def _ephemeral(name: str, tier: StorageTier, tier_name: str) -> dict:
    return {"name": name, "ephemeral": {"volumeClaimTemplate": {
        "metadata": {"labels": {"ncp-inference.io/storage-tier": tier_name}},
        "spec": {"storageClassName": tier.storage_class, "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": tier.size}}}}}}


def _env(values: dict) -> list[dict]:
    return [{"name": key, "value": value} for key, value in values.items()]


def dgd_spec(args: EndpointArgs, model_express_url: Optional[str]) -> dict:
    plan, runtime = args.plan, args.runtime
    names = integration_points()
    backend = runtime.backends[plan.endpoint.backend]
    frontend = runtime.frontend
    pod_common = {
        "serviceAccountName": args.service_account,
        "automountServiceAccountToken": False,
        "priorityClassName": PRIORITY_SERVING,
        "securityContext": POD_SECURITY,
    }
    if args.pull_secret:
        pod_common["imagePullSecrets"] = [{"name": args.pull_secret}]
    services = {
        "Frontend": {
            "componentType": "frontend",
            "replicas": 1,
            "envs": _env({frontend.router_mode_env: plan.endpoint.router}),
            "extraPodSpec": {**pod_common, "mainContainer": {
                "image": plan.image, "command": ["python3"],
                "args": ["-m", frontend.module, frontend.http_port_flag, str(frontend.http_port)],
                "securityContext": CONTAINER_SECURITY}},
        },
    }
    worker_env = {"HF_HOME": f"{CACHE_MOUNT}/hf", "HF_HUB_OFFLINE": "1"}
    if backend.model_streamer:
        worker_env.update(runtime.model_streamer.env)
    if model_express_url:
        worker_env[runtime.model_express_client_env] = model_express_url
    volumes = [_ephemeral("model-cache", args.model_cache, "model-cache")]
    mounts = [{"name": "model-cache", "mountPath": CACHE_MOUNT}]
    if args.kv_offload is not None:
        volumes.append(_ephemeral("kv-offload", args.kv_offload, "kv-offload"))
        mounts.append({"name": "kv-offload", "mountPath": KV_OFFLOAD_MOUNT})
    if backend.engine_args:
        volumes.append({"name": "engine-config", "configMap": {"name": f"{plan.name}-engine"}})
        mounts.append({"name": "engine-config", "mountPath": ENGINE_CONFIG_MOUNT, "readOnly": True})
    for group in plan.workers:
        nodes = math.ceil(group.gpus_per_worker / args.gpus_per_node)
        limits = {"gpu": str(min(group.gpus_per_worker, args.gpus_per_node))}
        if args.rdma_resource and group.role in ("prefill", "decode"):
            limits["custom"] = {args.rdma_resource: "1"}
        service = {
            "componentType": "worker",
            "replicas": group.replicas,
            "resources": {"limits": limits},
            "envs": _env(worker_env),
            "volumeMounts": [{"name": TenantStorage.MODEL_CLAIM, "mountPoint": MODELS_MOUNT}],
            "sharedMemory": {"size": "16Gi"},
            "extraPodSpec": {
                **pod_common,
                "nodeSelector": {names.gpu.product_label: args.gpu_product},
                "tolerations": [{"key": names.gpu.taint_key, "operator": "Exists", "effect": "NoSchedule"}],
                "volumes": volumes,
                "mainContainer": {
                    "image": plan.image, "command": ["python3"],
                    "args": worker_args(runtime, plan.endpoint.backend, group, args.model_path,
                                        plan.endpoint.model.name),
                    "volumeMounts": mounts, "securityContext": CONTAINER_SECURITY},
            },
        }
        if group.role != "worker":
            service["subComponentType"] = group.role
        if nodes > 1:
            service["multinode"] = {"nodeCount": nodes}
        if args.networks and group.role in ("prefill", "decode"):
            service["extraPodMetadata"] = {"annotations": {names.multus.networks_annotation: ",".join(args.networks)}}
        services[_service_name(plan.endpoint.backend, group.role)] = service
    if plan.endpoint.planner:
        services["Planner"] = {
            "componentType": "planner", "replicas": 1,
            "extraPodSpec": {**pod_common, "mainContainer": {
                "image": plan.image, "command": ["python3"], "args": ["-m", runtime.planner.module],
                "securityContext": CONTAINER_SECURITY}},
        }
    return {
        "backendFramework": plan.endpoint.backend,
        "pvcs": [{"name": TenantStorage.MODEL_CLAIM, "create": False}],
        "services": services,
    }


def _service_name(backend: str, role: str) -> str:
    prefix = {"trtllm": "TRTLLM", "vllm": "VLLM", "sglang": "SGLang"}[backend]
    return f"{prefix}{role.capitalize()}Worker" if role != "worker" else f"{prefix}Worker"


def serving_rules(plan: EndpointPlan, signals: MetricSource) -> list[dict]:
    m = signals.metrics
    graph = signals.pod_labels["graph"]
    select = f'{{{graph}="{plan.name}"}}'
    slo = plan.endpoint.slo

    def labelled(expr: str) -> str:
        return (f'label_replace(label_replace(label_replace({expr}, "tenant", "{plan.tenant.name}", "", ""), '
                f'"endpoint", "{plan.name}", "", ""), "model", "{plan.endpoint.model.name}", "", "")')

    def quantile(metric: str) -> str:
        return labelled(f"histogram_quantile(0.95, sum by (le) (rate({metric}_bucket{select}[5m])))")

    records = [
        {"record": "ncp:endpoint_ttft_p95:seconds", "expr": quantile(m["timeToFirstToken"])},
        {"record": "ncp:endpoint_itl_p95:seconds", "expr": quantile(m["interTokenLatency"])},
        {"record": "ncp:endpoint_kv_hit_rate:ratio", "expr": labelled(f"avg({m['kvHitRate']}{select})")},
        {"record": "ncp:endpoint_queue_depth:requests", "expr": labelled(f"sum({m['queuedRequests']}{select})")},
        {"record": "ncp:endpoint_worker_saturation:ratio",
         "expr": labelled(f"max({m['gpuCacheUsage']}{select}) / 100")},
        # Model-load state: workers that serve metrics have loaded the model and joined the graph.
        {"record": "ncp:endpoint_workers_ready:count",
         "expr": labelled(f'count(up{{{graph}="{plan.name}",{signals.pod_labels["componentType"]}="worker"}} == 1)')},
    ]
    alerts = [
        {"alert": "NcpEndpointTtftSloBurn", "expr": f'ncp:endpoint_ttft_p95:seconds{{endpoint="{plan.name}"}} > '
                                                    f"{slo.ttft_ms / 1000}",
         "for": "10m", "labels": {"severity": "warning", "layer": "serving"},
         "annotations": {"summary": f"{plan.name}: p95 TTFT above the {slo.ttft_ms} ms SLO"}},
        {"alert": "NcpEndpointItlSloBurn", "expr": f'ncp:endpoint_itl_p95:seconds{{endpoint="{plan.name}"}} > '
                                                   f"{slo.tpot_ms / 1000}",
         "for": "10m", "labels": {"severity": "warning", "layer": "serving"},
         "annotations": {"summary": f"{plan.name}: p95 inter-token latency above the {slo.tpot_ms} ms SLO"}},
        {"alert": "NcpEndpointQueueBacklog",
         "expr": f'ncp:endpoint_queue_depth:requests{{endpoint="{plan.name}"}} > {slo.concurrency}',
         "for": "5m", "labels": {"severity": "warning", "layer": "serving"},
         "annotations": {"summary": f"{plan.name}: more queued requests than the profiled concurrency"}},
        {"alert": "NcpEndpointNoReadyWorkers",
         "expr": f'absent(ncp:endpoint_workers_ready:count{{endpoint="{plan.name}"}})',
         "for": "15m", "labels": {"severity": "critical", "layer": "serving"},
         "annotations": {"summary": f"{plan.name}: no worker has loaded the model"}},
    ]
    return [{"name": f"{plan.name}.serving.rules", "rules": records},
            {"name": f"{plan.name}.serving.alerts", "rules": alerts}]


class ServingEndpoint(Layer):
    def __init__(self, name: str, args: EndpointArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("ServingEndpoint", name, opts)
        plan = args.plan
        child = self.child()
        endpoint_labels = labels("serving", plan.name, **{ENDPOINT_LABEL: plan.name, TENANT_LABEL: plan.tenant.name})
        backend = args.runtime.backends[plan.endpoint.backend]
        depends = []
        if backend.engine_args:
            depends.append(k8s.core.v1.ConfigMap(
                f"{name}-engine",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{plan.name}-engine", namespace=plan.namespace,
                                                    labels=endpoint_labels),
                data={f"{group.role}.yaml": engine_config(backend, group) for group in plan.workers},
                opts=child,
            ))
        names = integration_points()
        annotations = {names.dynamo.queue_annotation: plan.queue, MODEL_SOURCE: plan.endpoint.model.source,
                       MODEL_REVISION: plan.endpoint.model.revision, "ncp-inference.io/sizing": plan.sizing_file}
        spec = pulumi.Output.from_input(args.model_express_url).apply(lambda url: dgd_spec(args, url))
        self.graph = k8s.apiextensions.CustomResource(
            f"{name}-graph",
            api_version="nvidia.com/v1alpha1",
            kind="DynamoGraphDeployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=plan.name, namespace=plan.namespace, labels=endpoint_labels,
                                                annotations=annotations),
            spec=spec,
            opts=self.child(*depends),
        )
        monitor_labels = {**endpoint_labels, **args.selector_labels}
        graph_label = args.signals.pod_labels["graph"]
        k8s.apiextensions.CustomResource(
            f"{name}-podmonitor",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=plan.name, namespace=plan.namespace, labels=monitor_labels),
            spec={
                "selector": {"matchLabels": {graph_label: plan.name}},
                "podMetricsEndpoints": [
                    {"port": port, "interval": args.scrape_interval, "relabelings": [
                        {"targetLabel": "tenant", "replacement": plan.tenant.name, "action": "replace"},
                        {"targetLabel": "endpoint", "replacement": plan.name, "action": "replace"},
                        {"targetLabel": "model", "replacement": plan.endpoint.model.name, "action": "replace"},
                    ]} for port in args.signals.ports.values()],
            },
            opts=child,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{plan.name}-serving", namespace=plan.namespace,
                                                labels=monitor_labels),
            spec={"groups": serving_rules(plan, args.signals)},
            opts=child,
        )
        if args.inference_pool:
            k8s.apiextensions.CustomResource(
                f"{name}-inference-pool",
                api_version="inference.networking.k8s.io/v1",
                kind="InferencePool",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=plan.name, namespace=plan.namespace, labels=endpoint_labels),
                spec={
                    "selector": {"matchLabels": {graph_label: plan.name,
                                                 args.signals.pod_labels["componentType"]: "frontend"}},
                    "targetPorts": [{"number": args.runtime.frontend.http_port}],
                    "endpointPickerRef": {"name": f"{plan.name}-epp", "port": {
                        "number": names.gateway_inference_extension.endpoint_picker_port}},
                },
                opts=self.child(self.graph),
            )
        frontend = f"{plan.name}{names.dynamo.frontend_service_suffix}"
        self.url = f"http://{frontend}.{plan.namespace}.svc:{args.runtime.frontend.http_port}"
        self.register_outputs({"graph": plan.name, "url": self.url, "mode": plan.mode, "gpus": plan.gpus})
