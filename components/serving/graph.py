"""The DynamoGraphDeployment spec of one endpoint, laid out from its sizing file: frontend, worker groups, planner.

Citations are ai-dynamo/dynamo at main 2a6da14c (the pinned dynamoPlatform chart; see data/dynamo-backends.yaml).
Pods name no ServiceAccount and leave the token mount to it: with Kubernetes discovery the operator creates
`<dgd>-k8s-service-discovery` with a Role on endpoints, pods, endpointslices and dynamoworkermetadatas
(deploy/operator/internal/controller/dgd_discovery_reconciler.go:47-82, internal/discovery/resource.go:27-80) and
assigns it only to pods whose serviceAccountName is empty (internal/dynamo/graph.go:1733-1737); the planner's base
pod spec names the operator's `planner-serviceaccount` (internal/dynamo/component_planner.go:92-95,
controller/dgd_rbac_reconciler.go:59-66), which a non-empty extraPodSpec field would override (mergo.WithOverride,
graph.go:1712-1724). Every Dynamo pod runs the discovery client, so every one needs its token."""
import json
from typing import Optional

import yaml

from components.kube import PRIORITY_SERVING, required
from components.serving.args import EndpointArgs
from ncp.plan.catalog import BackendRuntime, DynamoRuntime, integration_points
from ncp.plan.endpoint_plan import EndpointPlan, WorkerGroup
from ncp.plan.endpoints import worker_pods
from ncp.plan.tenant_pods import FRONTEND_REPLICAS
from ncp.plan.names import BACKEND_LABEL, MODEL_CLAIM, MODELS_MOUNT, RUNTIME_VERSION_LABEL, STORAGE_TIER_LABEL
from ncp.plan.serving import StorageTier
from ncp.plan.site_plan import gpu_toleration

ENGINE_CONFIG_MOUNT = "/etc/ncp-engine"
CACHE_MOUNT = "/cache"
KV_OFFLOAD_MOUNT = "/kv-offload"
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
# RDMA workers: root with IPC_LOCK (data/dynamo-backends.yaml rdmaCapabilities); the tenant namespace is `privileged`
# for them (ncp/plan/site_plan.py SitePlan.tenant_pod_security).
RDMA_POD_SECURITY = {"runAsNonRoot": False, "runAsUser": 0, "runAsGroup": 0, "fsGroup": 1000,
                     "seccompProfile": {"type": "RuntimeDefault"}}


HOSTNAME_KEY = "kubernetes.io/hostname"


def frontend_anti_affinity(graph_label: str, graph: str, component_label: str, spread_required: bool) -> dict:
    """Frontend replicas on different nodes: required where the tenant's dedicated pool has nodes enough for every
    replica, preferred elsewhere (shared nodes, or a one-node pool, where a required rule would leave one Pending)."""
    term = {"labelSelector": {"matchLabels": {graph_label: graph, component_label: "frontend"}},
            "topologyKey": HOSTNAME_KEY}
    if spread_required:
        return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": term}]}}


def _parallel_sizes(backend: BackendRuntime, group: WorkerGroup) -> dict[str, int]:
    """Parallel sizes as the engine counts them: with attention data parallelism TRT-LLM's tensor-parallel size spans
    every attention-DP rank (data/dynamo-backends.yaml attentionDataParallelArg)."""
    attention_dp = group.data_parallel if backend.attention_data_parallel_arg else 1
    return {"tensorParallel": group.tensor_parallel * attention_dp, "pipelineParallel": group.pipeline_parallel,
            "expertParallel": group.expert_parallel, "moeTensorParallel": group.moe_tensor_parallel}


def _parallel_flags(backend: BackendRuntime, group: WorkerGroup) -> list[str]:
    sizes = _parallel_sizes(backend, group)
    flags = []
    for key, flag in backend.parallel_flags.items():
        flags += [flag, str(sizes[key])]
    return flags


def engine_config(backend: BackendRuntime, group: WorkerGroup) -> str:
    """The engine config file of one worker group of a backend with engine args (data/dynamo-backends.yaml
    engineArgs); prefill/decode workers add the backend's disaggregation settings (TRT-LLM: cache_transceiver_config,
    without which KV cache transfer is disabled)."""
    sizes = _parallel_sizes(backend, group)
    config: dict[str, object] = {key: sizes[name] for name, key in backend.engine_args.items()}
    if group.data_parallel > 1 and backend.attention_data_parallel_arg:
        config[backend.attention_data_parallel_arg] = True
    if group.role in ("prefill", "decode"):
        config.update(backend.disaggregated_engine_args)
    return yaml.safe_dump(config, sort_keys=True)


def worker_args(runtime: DynamoRuntime, backend_name: str, group: WorkerGroup, model_path: str,
                served_name: str) -> list[str]:
    backend = runtime.backends[backend_name]
    args = ["-m", backend.module, backend.model_path_flag, model_path, backend.served_model_name_flag, served_name]
    args += _parallel_flags(backend, group)
    if backend.engine_args_flag:
        args += [backend.engine_args_flag, f"{ENGINE_CONFIG_MOUNT}/{group.role}.yaml"]
    if group.role in ("prefill", "decode") and backend.disaggregation_flag:
        args += [backend.disaggregation_flag, group.role]
    if backend.model_streamer:
        args += [runtime.model_streamer.load_format_flag, runtime.model_streamer.load_format]
    return args


def _ephemeral(name: str, tier: StorageTier, tier_name: str) -> dict[str, object]:
    return {"name": name, "ephemeral": {"volumeClaimTemplate": {
        "metadata": {"labels": {STORAGE_TIER_LABEL: tier_name}},
        "spec": {"storageClassName": tier.storage_class, "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": tier.size}}}}}}


def _env(values: dict) -> list[dict]:
    return [{"name": key, "value": value} for key, value in values.items()]


def worker_resources(args: EndpointArgs, group: WorkerGroup) -> dict:
    """GPU, host CPU and memory per worker pod (ncp/plan/endpoints.py worker_pods), requests equal to limits; the DGD's
    v1alpha1 resources become the main container's requests/limits (deploy/operator/api/v1alpha1/
    shared_spec_conversion.go:2512-2530)."""
    pods = worker_pods(args.plan.endpoint.backend, group, args.gpus_per_node, args.plan.kv_offload_gb is not None)
    amounts: dict[str, object] = {"gpu": str(pods.gpus_per_pod), "cpu": str(pods.cpu), "memory": f"{pods.memory_gi}Gi"}
    if args.rdma_resource is not None:
        amounts["custom"] = {args.rdma_resource: "1"}
    return {"requests": amounts, "limits": dict(amounts)}


def planner_config(plan: EndpointPlan, runtime: DynamoRuntime) -> str:
    """The planner's --config (it exits without one): SLA scaling to the endpoint's slo, each role kept at or above
    its minimum workers and all of them within the GPUs the per-role maxima add up to (ncp/plan/serving_features.py)."""
    planner, slo, bounds = runtime.planner, plan.endpoint.slo, required(plan.planner, f"{plan.name}: planner bounds")
    gpus = {group.role: group.gpus_per_worker for group in plan.workers}
    values = {"backend": plan.endpoint.backend, "mode": planner.modes[plan.mode], "ttftMs": slo.ttft_ms,
              "tpotMs": slo.tpot_ms, "gpuBudget": bounds.max_gpus,
              "prefillGpus": gpus.get("prefill"), "decodeGpus": gpus.get("decode", gpus.get("worker")),
              "adjustmentIntervalSeconds": bounds.adjustment_interval_seconds,
              **{f"{role}MinReplicas": count for role, count in bounds.min_replicas.items()}}
    config = {**planner.fixed_config,
              **{planner.config_keys[key]: value for key, value in values.items() if value is not None}}
    return json.dumps(config, sort_keys=True)


def kv_connector_args(runtime: DynamoRuntime, plan: EndpointPlan, role: str) -> list[str]:
    """The worker's KV connector flag: Dynamo's KV block manager when the endpoint offloads KV (beside NIXL for
    disaggregated vLLM workers), else the KV transfer a disaggregated worker needs (data/dynamo-backends.yaml)."""
    backend = runtime.backends[plan.endpoint.backend]
    disaggregated = role in ("prefill", "decode")
    if plan.kv_offload_gb is not None:
        kvbm = required(backend.kvbm, f"{plan.endpoint.backend}: kvbm (data/dynamo-backends.yaml)")
        return [kvbm.flag, kvbm.disaggregated_value if disaggregated and kvbm.disaggregated_value else kvbm.value]
    if disaggregated and backend.disaggregated_transfer:
        return [backend.disaggregated_transfer.flag, backend.disaggregated_transfer.value]
    return []


def kvbm_env(runtime: DynamoRuntime, plan: EndpointPlan, gpus_per_pod: int) -> dict:
    """Tier sizes of the KV block manager: pinned host memory per pod, then the kvOffload volume as its disk tier."""
    if plan.kv_offload_gb is None:
        return {}
    kvbm = runtime.kvbm
    return {kvbm.cpu_cache_env: str(gpus_per_pod * kvbm.host_cache_gb_per_gpu),
            kvbm.disk_cache_env: str(plan.kv_offload_gb), kvbm.disk_cache_dir_env: KV_OFFLOAD_MOUNT}


def multinode_ssh_env(runtime: DynamoRuntime) -> dict:
    """$HOME on a root-owned scratch volume: the operator's ssh bootstrap writes $HOME/.ssh, and the image's home
    belongs to uid 1000, which root without CAP_DAC_OVERRIDE cannot write."""
    return {"HOME": runtime.multinode_ssh.home}


def multinode_ssh_volumes(runtime: DynamoRuntime) -> tuple[list[dict], list[dict]]:
    """Scratch volumes of a multi-node worker running as root: its $HOME and sshd's privilege-separation directory."""
    ssh = runtime.multinode_ssh
    named = {"ssh-home": ssh.home, "sshd-privsep": ssh.privilege_separation_dir}
    return ([{"name": name, "emptyDir": {}} for name in named],
            [{"name": name, "mountPath": path} for name, path in named.items()])


# RA: Common Component Combinations: "needs independent prefill and decode scale, fast model starts, KV-aware routing"
# RA: Example Workload: Large MoE LLM Inference: "separate compute profiles for prefill and decode, cache-aware routing"
# RA: Kubernetes Architecture For Inference: "A large service may need routers, prefill workers, decode workers"
# RA: Core Design Philosophy: "separate control plane, request routing, prefill, decode, KV cache management"
def dgd_spec(args: EndpointArgs, model_express_url: Optional[str]) -> dict:
    plan, runtime = args.plan, args.runtime
    names = integration_points()
    backend = runtime.backends[plan.endpoint.backend]
    frontend = runtime.frontend
    pod_common: dict[str, object] = {"priorityClassName": PRIORITY_SERVING, "securityContext": POD_SECURITY}
    tenant_nodes = dict(args.placement.node_selector) if args.placement else {}
    tenant_tolerations = list(args.placement.tolerations) if args.placement else []
    if args.placement:  # frontend and planner too (on the tenant's CPU nodes): no pod shares a node across tenants
        pod_common.update(nodeSelector=tenant_nodes, tolerations=tenant_tolerations)
    if args.pull_secret:
        pod_common["imagePullSecrets"] = [{"name": args.pull_secret}]
    services: dict[str, dict[str, object]] = {
        "Frontend": {
            "componentType": "frontend",
            "replicas": FRONTEND_REPLICAS,
            "envs": _env({frontend.router_mode_env: plan.endpoint.router,
                          frontend.migration_limit_env: str(frontend.migration_limit),
                          **telemetry_env(runtime, plan, "Frontend", args.otlp_endpoint)}),
            "extraPodSpec": {**pod_common, "affinity": frontend_anti_affinity(
                args.signals.pod_labels["graph"], plan.name, args.signals.pod_labels["componentType"],
                args.placement is not None and args.placement.nodes >= FRONTEND_REPLICAS), "mainContainer": {
                "image": plan.image, "command": ["python3"],
                "args": ["-m", frontend.module, frontend.http_port_flag, str(frontend.http_port)],
                "securityContext": CONTAINER_SECURITY}},
        },
    }
    worker_env = {"HF_HOME": f"{CACHE_MOUNT}/hf", "HF_HUB_OFFLINE": "1", **runtime.self_host_metadata_env}
    if backend.model_streamer:
        worker_env.update(runtime.model_streamer.env)
    if model_express_url:
        worker_env[runtime.model_express_client_env] = model_express_url
    volumes = [_ephemeral("model-cache", args.model_cache, "model-cache")]
    mounts: list[dict[str, object]] = [{"name": "model-cache", "mountPath": CACHE_MOUNT}]
    if plan.kv_offload_gb is not None:
        udev = runtime.kvbm.udev_host_path  # cuFile reads the disk tier's device attributes there
        kv_offload = required(args.kv_offload, f"{plan.name}: the kv-offload tier")
        volumes += [_ephemeral("kv-offload", kv_offload, "kv-offload"),
                    {"name": "run-udev", "hostPath": {"path": udev, "type": "Directory"}}]
        mounts += [{"name": "kv-offload", "mountPath": KV_OFFLOAD_MOUNT},
                   {"name": "run-udev", "mountPath": udev, "readOnly": True}]
    if backend.engine_args:
        volumes.append({"name": "engine-config", "configMap": {"name": f"{plan.name}-engine"}})
        mounts.append({"name": "engine-config", "mountPath": ENGINE_CONFIG_MOUNT, "readOnly": True})
    for group in plan.workers:
        nodes = plan.nodes_per_worker[group.role]
        rdma = args.rdma_resource is not None
        ssh_as_root = rdma and nodes > 1 and backend.multinode_over_ssh
        container_security = CONTAINER_SECURITY
        if rdma:
            added = runtime.rdma_capabilities + (runtime.multinode_ssh.root_capabilities if ssh_as_root else [])
            container_security = {**CONTAINER_SECURITY, "capabilities": {"drop": ["ALL"], "add": added}}
        group_env, group_volumes, group_mounts = dict(worker_env), list(volumes), list(mounts)
        group_env.update(telemetry_env(runtime, plan, _service_name(backend, group.role), args.otlp_endpoint))
        if ssh_as_root:
            group_env.update(multinode_ssh_env(runtime))
            extra_volumes, extra_mounts = multinode_ssh_volumes(runtime)
            group_volumes += extra_volumes
            group_mounts += extra_mounts
        service: dict[str, object] = {
            "componentType": "worker",
            "replicas": group.replicas,
            "resources": worker_resources(args, group),
            "envs": _env({**group_env, **kvbm_env(runtime, plan, min(group.gpus_per_worker, args.gpus_per_node))}),
            "volumeMounts": [{"name": MODEL_CLAIM, "mountPoint": MODELS_MOUNT}],
            "sharedMemory": {"size": f"{backend.shared_memory_gi}Gi"},
            "extraPodSpec": {
                **pod_common,
                "securityContext": RDMA_POD_SECURITY if rdma else POD_SECURITY,
                "nodeSelector": {names.gpu.product_label: args.gpu_product, **tenant_nodes},
                "tolerations": [*tenant_tolerations, gpu_toleration()],
                "volumes": group_volumes,
                "mainContainer": {
                    "image": plan.image, "command": ["python3"],
                    "args": worker_args(runtime, plan.endpoint.backend, group, args.model_path,
                                        plan.endpoint.model.name) + kv_connector_args(runtime, plan, group.role),
                    "volumeMounts": group_mounts, "securityContext": container_security},
            },
        }
        if group.role != "worker":
            service["subComponentType"] = group.role
        if nodes > 1:
            service["multinode"] = {"nodeCount": nodes}
            if args.topology is not None:
                service["topologyConstraint"] = {"packDomain": args.topology.pack_domain}
        if rdma and args.networks:
            service["extraPodMetadata"] = {"annotations": {names.multus.networks_annotation: ",".join(args.networks)}}
        services[_service_name(runtime.backends[plan.endpoint.backend], group.role)] = service
    if plan.endpoint.planner:
        services["Planner"] = {
            "componentType": "planner", "replicas": 1,
            "envs": _env({runtime.planner.prometheus_env: args.planner_prometheus_url}),
            "extraPodSpec": {**pod_common, "mainContainer": {
                "image": args.planner_image, "command": ["python3"],
                "args": ["-m", runtime.planner.module, runtime.planner.config_flag, planner_config(plan, runtime)],
                "securityContext": CONTAINER_SECURITY}},
        }
    for service in services.values():  # what runs in the pod, for the series' backend/runtime_version labels
        metadata = service.get("extraPodMetadata")
        metadata = dict(metadata) if isinstance(metadata, dict) else {}
        labels = metadata.get("labels")
        metadata["labels"] = {**(labels if isinstance(labels, dict) else {}), **runtime_pod_labels(plan)}
        service["extraPodMetadata"] = metadata
    spec: dict[str, object] = {
        "backendFramework": plan.endpoint.backend,
        "pvcs": [{"name": MODEL_CLAIM, "create": False}],
        "services": services,
    }
    if args.topology is not None and any("topologyConstraint" in service for service in services.values()):
        spec["topologyConstraint"] = {"topologyProfile": args.topology.cluster_topology}
    return spec


# RA: Telemetry And Observability: "those signals must be correlated with model, endpoint, tenant"
def telemetry_env(runtime: DynamoRuntime, plan: EndpointPlan, service: str, otlp_endpoint: Optional[str]
                  ) -> dict[str, str]:
    """The Dynamo runtime's own logging and tracing settings for one service: JSONL logs (each line carries trace_id,
    span_id, request_id and the caller's x_request_id) always; with the site's collector, OTLP export of traces and
    logs under the service name <tenant>.<endpoint>.<service> (the runtime's OTLP resource holds nothing else)."""
    export = runtime.telemetry_export
    env = {export.json_logs_env: "true"}
    if otlp_endpoint is None:
        return env
    return {**env, export.enabled_env: "true", export.traces_endpoint_env: otlp_endpoint,
            export.logs_endpoint_env: otlp_endpoint, export.service_name_env: otel_service_name(plan, service)}


def otel_service_name(plan: EndpointPlan, service: str) -> str:
    """Who a span or log record comes from: tenant, endpoint and graph service."""
    return f"{plan.tenant.name}.{plan.name}.{service.lower()}"


def runtime_pod_labels(plan: EndpointPlan) -> dict[str, str]:
    """The backend engine and the runtime release every pod of the graph runs (the PodMonitor copies them into the
    series labels `backend` and `runtime_version`)."""
    return {BACKEND_LABEL: plan.endpoint.backend, RUNTIME_VERSION_LABEL: plan.runtime_version}


def _service_name(backend: BackendRuntime, role: str) -> str:
    prefix = backend.service_name_prefix
    return f"{prefix}{role.capitalize()}Worker" if role != "worker" else f"{prefix}Worker"
