"""What the Dynamo operator (pinned dynamoPlatform 1.5.0) does with our DynamoGraphDeployments and chart values.

Upstream lines are ai-dynamo/dynamo at main 2a6da14c (chart 1.5.0, the copy in ../shared/upstream/dynamo), read
through fork wxsms/dynamo; each test names the behaviour it relies on."""
import copy
import json

import pytest
import yaml

from ncp.readmodel.recorder import run_program
from ncp.plan.catalog import load_dynamo_runtime, load_matrix
from ncp.plan.errors import ConfigError
from ncp.plan.site_plan import build_plan
from ncp.plan.sources import read_stack_file

MATRIX = load_matrix()
RUNTIME = load_dynamo_runtime()
GRAPH_LABEL = "nvidia.com/dynamo-graph-deployment-name"
KVBM_HOST_GI_8_GPUS = -(-8 * RUNTIME.kvbm.host_cache_gb_per_gpu * 10**9 // 2**30)  # GB -> GiB, rounded up


def _dgds(recording):
    return {r.inputs["metadata"]["name"]: r.inputs for r in recording.custom_resources("DynamoGraphDeployment")}


def _named(recording, kind, name):
    return next(r.inputs for r in recording.resources
                if r.inputs.get("kind") == kind and r.inputs.get("metadata", {}).get("name") == name)


def _prod_config():
    raw, secrets = read_stack_file("prod")
    raw = copy.deepcopy(raw)
    raw["ngcApiKey"] = "test"
    return raw, secrets


def _problems(raw, secrets) -> str:
    with pytest.raises(ConfigError) as error:
        build_plan(raw, secrets, "Pulumi.prod.yaml")
    return str(error.value)


def discovery_overrides(spec: dict) -> list[str]:
    """Services whose pod spec would displace the operator's accounts or switch the token off."""
    return [f"{name}.{field}" for name, service in spec["services"].items()
            for field in ("serviceAccountName", "automountServiceAccountToken")
            if field in service.get("extraPodSpec", {})]


# --- discovery (#9.2, #15.6) ----------------------------------------------------------------------------------------

def test_dynamo_pods_keep_the_operators_discovery_and_planner_accounts(prod, lab):
    """The operator assigns `<dgd>-k8s-service-discovery` (Role on endpointslices and dynamoworkermetadatas) only
    when serviceAccountName is empty (deploy/operator/internal/dynamo/graph.go:1733-1737), and the planner's base pod
    spec names `planner-serviceaccount` (component_planner.go:92-95), which extraPodSpec fields override
    (mergo.WithOverride, graph.go:1721). Every Dynamo pod runs the discovery client, so none may turn its token off."""
    specs = {**_dgds(prod), **_dgds(lab)}
    assert {"chat-dense", "reasoning-large", "chat-small"} <= set(specs)
    for spec in specs.values():
        assert discovery_overrides(spec["spec"]) == []
    assert "Planner" in specs["reasoning-large"]["spec"]["services"]
    broken = {"services": {"Planner": {"extraPodSpec": {"serviceAccountName": "tenant-workload"}},
                           "Frontend": {"extraPodSpec": {"automountServiceAccountToken": False}}}}
    assert discovery_overrides(broken) == ["Planner.serviceAccountName", "Frontend.automountServiceAccountToken"]


def test_api_server_egress_for_the_endpoints_pods(prod):
    """Tenant namespaces deny egress except DNS, the namespace and platform namespaces; the discovery client talks
    to the API server, whose endpoints (not the Service's ClusterIP) a NetworkPolicy must allow."""
    policy = _named(prod, "NetworkPolicy", "reasoning-large-api-server-egress")
    assert policy["metadata"]["namespace"] == "tenant-globex-research"
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {GRAPH_LABEL: "reasoning-large"}}
    assert spec["policyTypes"] == ["Egress"]
    configured = read_stack_file("prod")[0]["components"]["serving"]["apiServerEgress"]
    [rule] = spec["egress"]
    assert [peer["ipBlock"]["cidr"] for peer in rule["to"]] == configured["cidrs"]
    assert [port["port"] for port in rule["ports"]] == configured["ports"] == [6443]


def test_the_operators_frontend_and_worker_pods_reach_the_api_server(prod):
    """Judged on the rendered prod objects: every pod the operator makes of each graph's services (the labels it
    sets, graph.go:2880,2903-2905; ncp/offline/dgd_pods.py) runs with no serviceAccountName, so the operator gives it
    the discovery account (graph.go:1733-1737), and the namespace's NetworkPolicies (default deny and all) let it
    reach every configured API server endpoint; a pod of the namespace without the graph's label may not."""
    from ncp.offline.dgd_pods import service_deployment
    from tests.netpol import Destination, may_egress
    egress = read_stack_file("prod")[0]["components"]["serving"]["apiServerEgress"]
    servers = [Destination(ip=cidr.split("/")[0], port=port) for cidr in egress["cidrs"] for port in egress["ports"]]
    seen = set()
    for name, dgd in _dgds(prod).items():
        namespace = dgd["metadata"]["namespace"]
        policies = [r.inputs["spec"] for r in prod.resources if r.inputs.get("kind") == "NetworkPolicy"
                    and r.inputs["metadata"].get("namespace") == namespace]
        for service_name, service in dgd["spec"]["services"].items():
            pod = service_deployment(dgd, service_name, service)["spec"]["template"]
            assert "serviceAccountName" not in pod["spec"], (name, service_name)
            for server in servers:
                assert may_egress(policies, namespace, pod["metadata"]["labels"], server), (name, service_name, server)
            seen.add(service["componentType"])
        other = {GRAPH_LABEL: f"not-{name}", "nvidia.com/dynamo-component-type": "frontend"}
        assert not any(may_egress(policies, namespace, other, server) for server in servers), name
    assert {"frontend", "worker"} <= seen


def test_lab_api_server_egress_defaults_to_the_api_server_ports(lab):
    rule = _named(lab, "NetworkPolicy", "chat-small-api-server-egress")["spec"]["egress"][0]
    assert [port["port"] for port in rule["ports"]] == [443, 6443]


def test_prod_must_name_the_api_server_endpoints():
    raw, secrets = _prod_config()
    raw["components"]["serving"].pop("apiServerEgress")
    assert "ncp-inference:components.serving.apiServerEgress: is required in prod" in _problems(raw, secrets)
    raw["components"]["serving"]["apiServerEgress"] = {"cidrs": ["10.10.0.10/8"]}
    assert "components.serving.apiServerEgress.cidrs" in _problems(raw, secrets)


# --- workers (#15.6) ------------------------------------------------------------------------------------------------

def test_workers_request_host_resources_for_their_gpus_and_shm(prod):
    """Workers that set only GPU limits get the tenant LimitRange default (4 CPU, 16Gi), which the memory-backed
    /dev/shm (shared_memory.go:28-47) alone fills. TRT-LLM's /dev/shm is 80Gi (disagg-communication.md:443)."""
    services = _dgds(prod)["reasoning-large"]["spec"]["services"]
    resources = RUNTIME.worker_resources
    for name in ("TRTLLMPrefillWorker", "TRTLLMDecodeWorker"):
        service = services[name]
        assert service["sharedMemory"] == {"size": "80Gi"}
        requests, limits = service["resources"]["requests"], service["resources"]["limits"]
        assert requests == limits
        assert requests["gpu"] == "8" and requests["cpu"] == str(8 * resources.cpu_per_gpu)
        # prod has a kvOffload tier, so the KV block manager's pinned host tier is charged too
        assert requests["memory"] == f"{80 + 8 * resources.memory_per_gpu_gi + KVBM_HOST_GI_8_GPUS}Gi"
        assert int(requests["memory"][:-2]) > 80 > 16, "memory beyond the /dev/shm and the LimitRange default"


def test_tenant_quota_must_hold_its_worker_pods():
    """The worker pods' host resources count against the tenant's quota at the planner's maximum; the rest of the
    tenant's pods count too (tests/test_tenant_quota.py)."""
    raw, secrets = _prod_config()
    raw["tenants"][1]["memoryQuota"] = "512Gi"
    raw["tenants"][1]["cpuQuota"] = "32"
    text = _problems(raw, secrets)
    pods = 6  # the planner's maximum: 3 prefill + 3 decode workers
    each = 80 + 8 * RUNTIME.worker_resources.memory_per_gpu_gi + KVBM_HOST_GI_8_GPUS
    assert "ncp-inference:tenants[1].memoryQuota: is 512Gi; quota admission counts " in text
    assert f"reasoning-large prefill workers 3 x {each}Gi, reasoning-large decode workers 3 x {each}Gi" in text
    assert f"reasoning-large prefill workers 3 x {8 * RUNTIME.worker_resources.cpu_per_gpu}," in text
    assert f"{pods * each}Gi of" not in text, "the sum also holds the frontends, planner, picker and Jobs"


def test_workers_serve_the_model_metadata_to_the_frontend(prod):
    """With DYN_SELF_HOST_METADATA the worker rewrites local model-card paths to its system port
    (lib/llm/src/local_model.rs:39-54, 861-877), which the operator sets on workers (component_worker.go:82-94), so
    the frontend needs no artifacts mount."""
    services = _dgds(prod)["chat-dense"]["spec"]["services"]
    assert {"name": "DYN_SELF_HOST_METADATA", "value": "true"} in services["TRTLLMWorker"]["envs"]
    assert "volumeMounts" not in services["Frontend"]


def test_disaggregated_trtllm_engines_enable_kv_cache_transfer(prod):
    """cache_transceiver_config.backend unset disables KV cache transfer (kv-cache-transfer.md:30-38)."""
    engine = _named(prod, "ConfigMap", "reasoning-large-engine")["data"]
    for role in ("prefill", "decode"):
        assert yaml.safe_load(engine[f"{role}.yaml"])["cache_transceiver_config"] == {"backend": "DEFAULT"}
    aggregated = yaml.safe_load(_named(prod, "ConfigMap", "chat-dense-engine")["data"]["worker.yaml"])
    assert "cache_transceiver_config" not in aggregated


def test_rdma_workers_get_ipc_lock_in_a_privileged_tenant_namespace(prod, lab):
    """RDMA memory registration needs IPC_LOCK, added as root (disagg-communication.md:243-254, 437-441); Pod
    Security `restricted` and `baseline` both refuse it, so only tenants with RDMA workers are `privileged`."""
    services = _dgds(prod)["reasoning-large"]["spec"]["services"]
    for name in ("TRTLLMPrefillWorker", "TRTLLMDecodeWorker"):
        pod = services[name]["extraPodSpec"]
        assert pod["mainContainer"]["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]}
        assert pod["securityContext"]["runAsUser"] == 0
    dense = _dgds(prod)["chat-dense"]["spec"]["services"]["TRTLLMWorker"]["extraPodSpec"]
    assert "add" not in dense["mainContainer"]["securityContext"]["capabilities"]
    enforce = {r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
               for r in prod.resources if r.inputs.get("kind") == "Namespace"
               and r.inputs["metadata"]["name"].startswith("tenant-")}
    # acme-chat offloads KV to disk (KVBM's cuFile reads /run/udev, a hostPath): privileged for that reason alone.
    assert enforce == {"tenant-acme-chat": "privileged", "tenant-globex-research": "privileged",
                       "tenant-ncp-eval": "restricted"}
    reasons = {r.inputs["metadata"]["name"]: r.inputs["metadata"]["annotations"]["ncp-inference.io/pod-security-reason"]
               for r in prod.resources if r.inputs.get("kind") == "Namespace"
               and r.inputs["metadata"]["name"] in ("tenant-acme-chat", "tenant-globex-research")}
    assert "IPC_LOCK" not in reasons["tenant-acme-chat"] and "udev" in reasons["tenant-acme-chat"]
    assert "IPC_LOCK" in reasons["tenant-globex-research"]


# --- planner (#15.6) ------------------------------------------------------------------------------------------------

def test_planner_runs_its_image_with_a_config_from_the_slo(prod):
    """The planner exits without --config (planner/__main__.py:59-67) and needs the dedicated planner image since
    Dynamo 1.1.0 (examples/backends/trtllm/deploy/disagg_planner.yaml:52-58); PlannerConfig keys
    (planner_config.py:370-500), Prometheus from PROMETHEUS_ENDPOINT (:517-522)."""
    planner = _dgds(prod)["reasoning-large"]["spec"]["services"]["Planner"]
    container = planner["extraPodSpec"]["mainContainer"]
    digest = read_stack_file("prod")[0]["components"]["serving"]["imageDigests"]["planner"]
    assert container["image"] == MATRIX.workload("dynamoRuntime").images["planner"] + "@" + digest
    args = container["args"]
    assert args[:3] == ["-m", "dynamo.planner", "--config"]
    config = json.loads(args[3])
    assert config == {"environment": "kubernetes", "backend": "trtllm", "mode": "disagg",
                      "optimization_target": "sla", "pre_deployment_sweeping_mode": "none",
                      "ttft_ms": 500.0, "itl_ms": 20.0, "max_gpu_budget": 48,
                      "prefill_engine_num_gpu": 8, "decode_engine_num_gpu": 8,
                      "prefill_min_endpoint": 1, "decode_min_endpoint": 1,
                      "throughput_adjustment_interval_seconds": 180}
    url = read_stack_file("prod")[0]["components"]["serving"]["plannerPrometheusUrl"]
    assert planner["envs"] == [{"name": "PROMETHEUS_ENDPOINT", "value": url}]


def test_a_planner_needs_room_to_scale_and_quota_for_its_maximum():
    """#24 item 8: maxReplicas defaults to the sized replicas, so `planner: true` on a layout sized to one worker
    per role gave a budget equal to the minimum: the planner could never scale up. Its maximum must also fit the
    tenant's host quota, or the operator's scaled-up pods are refused by quota admission."""
    raw, secrets = _prod_config()
    raw["endpoints"][1]["planner"] = True
    assert ("ncp-inference:endpoints[1].planner.maxReplicas: leaves the planner no room: its GPU budget (16) is its "
            "minimum (16)") in _problems(raw, secrets)
    raw["endpoints"][1]["planner"] = {"maxReplicas": {"prefill": 3, "decode": 3}}
    raw["tenants"][1]["memoryQuota"] = "2Ti"  # holds the two sized workers, not the six the planner may run
    assert "ncp-inference:tenants[1].memoryQuota: is 2Ti" in _problems(raw, secrets)


def test_planner_may_reach_its_prometheus(prod):
    """Tenant namespaces allow egress only to DNS, the namespace and platform namespaces; the planner queries
    Prometheus for the serving metrics it scales from."""
    spec = _named(prod, "NetworkPolicy", "reasoning-large-planner-prometheus-egress")["spec"]
    assert spec["podSelector"] == {"matchLabels": {GRAPH_LABEL: "reasoning-large",
                                                   "nvidia.com/dynamo-component-type": "planner"}}
    assert spec["egress"] == [{"to": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "ncp-observability"}}}], "ports": [{"protocol": "TCP", "port": 9090}]}]
    assert not [r for r in prod.resources if r.inputs.get("metadata", {}).get("name") ==
                "chat-dense-planner-prometheus-egress"], "no planner, no egress"


def test_planner_prometheus_must_be_an_in_cluster_service():
    raw, secrets = _prod_config()
    raw["components"]["serving"]["plannerPrometheusUrl"] = "http://prometheus.example.com:9090"
    assert "ncp-inference:components.serving.plannerPrometheusUrl" in _problems(raw, secrets)


def test_planner_needs_a_prometheus_url_and_a_pinned_image():
    raw, secrets = _prod_config()
    raw["components"]["serving"].pop("plannerPrometheusUrl")
    raw["components"]["serving"]["imageDigests"].pop("planner")
    text = _problems(raw, secrets)
    assert "ncp-inference:components.serving.imageDigests.planner: is required in prod" in text
    assert "ncp-inference:components.serving.plannerPrometheusUrl: is required when an endpoint sets planner: true" \
        in text


# --- chart (#15.7, #15.8) -------------------------------------------------------------------------------------------

def test_chart_creates_no_podmonitors_of_its_own(prod):
    """Unset, the operator chart creates PodMonitors for all Dynamo pods when the prometheus-operator CRDs exist
    (deploy/helm/charts/platform/components/operator/templates/prometheus.yaml:15-25); ours would scrape twice."""
    values = prod.releases()["dynamo-platform"].inputs["values"]
    assert values["dynamo-operator"]["dynamo"]["metrics"]["podMonitors"] == {"enabled": False}


def test_dynamo_pin_is_the_version_the_upstream_checks_read(upstream):
    chart = yaml.safe_load((upstream / "dynamo" / "platform" / "Chart.yaml").read_text())
    pin = MATRIX.pin("dynamoPlatform")
    assert pin.version == chart["version"] == MATRIX.workload("dynamoRuntime").version
    assert all(image.endswith(":" + pin.version) for image in MATRIX.workload("dynamoRuntime").images.values())
    assert "1.5.0" in pin.deviation and "RA" in pin.deviation


def test_planner_off_runs_no_planner():
    raw, secrets = _prod_config()
    raw["endpoints"][1]["planner"] = False
    recording = run_program(raw, secrets | {"ngcApiKey"}, stack="noplanner")
    assert "Planner" not in _dgds(recording)["reasoning-large"]["spec"]["services"]


# --- the planner's view of the frontend (#24 item 3) ----------------------------------------------------------------

def planner_keeps(series_labels: dict, planner_namespace: str, model: str) -> bool:
    """The SLA planner's filter on frontend series (ai-dynamo 1.5.0 wheel, dynamo/planner/monitoring/
    traffic_metrics.py:153-158 and 224-231, with the default throughput_metrics_source "frontend",
    planner/config/defaults.py:86): the series' model (lower-cased) and dynamo_namespace must equal its own."""
    return (series_labels.get("model", "").lower() == model.lower()
            and series_labels.get("dynamo_namespace") == planner_namespace)


def frontend_series_labels(prod, graph: str, namespace: str, with_frontend_relabelings: bool = True) -> dict:
    """Labels of a frontend TTFT series as Prometheus stores it through the endpoint's PodMonitor (target labels win,
    honorLabels false), the frontend pod labelled as the operator labels it (consts.go:66-68@2a6da14c)."""
    from components.serving.rules import frontend_relabelings
    from tests.support.rule_tests import pod_meta, scraped, target_labels
    from ncp.plan.catalog import integration_points, load_signals
    signals = load_signals()["dynamo"]
    monitor = _named(prod, "PodMonitor", graph)["spec"]
    [frontend] = [pme for pme in monitor["podMetricsEndpoints"] if pme["port"] == signals.ports["frontend"]]
    relabelings = frontend["relabelings"]
    if not with_frontend_relabelings:
        relabelings = [rule for rule in relabelings if rule not in frontend_relabelings(signals)]
    pod_labels = {signals.pod_labels["graph"]: graph, signals.pod_labels["componentType"]: "frontend",
                  signals.pod_labels["dynamoNamespace"]: integration_points().dynamo.dynamo_namespace(namespace, graph)}
    target = target_labels(pod_meta(namespace, f"{graph}-frontend-0", pod_labels),
                           {"namespace": namespace, "pod": f"{graph}-frontend-0", "endpoint": "http"}, relabelings)
    # what the frontend exports (dynamo_frontend_time_to_first_token_seconds{model} in the twin's /metrics)
    text = scraped(signals.metrics["timeToFirstToken"] + "_count", {"model": "qwen/qwen3-235b-a22b-fp8"}, target)
    return yaml.safe_load("{" + text.split("{", 1)[1].split("}", 1)[0].replace("=", ": ") + "}")


def test_the_planner_sees_its_frontends_series(prod):
    """The chart's PodMonitors (off: they would scrape twice) gave frontend series `dynamo_namespace` from the pod
    label (operator/templates/prometheus.yaml:41-48); without it the planner reads no traffic and scales every
    role to its minimum. Worker series keep their own exported dynamo_namespace (no target label there)."""
    namespace, graph = "tenant-globex-research", "reasoning-large"
    planner_namespace = f"{namespace}-{graph}"  # DYN_NAMESPACE the operator gives the planner (component_common.go:97)
    labels = frontend_series_labels(prod, graph, namespace)
    assert labels["dynamo_namespace"] == planner_namespace
    assert planner_keeps(labels, planner_namespace, "Qwen/Qwen3-235B-A22B-FP8")
    before = frontend_series_labels(prod, graph, namespace, with_frontend_relabelings=False)
    assert not planner_keeps(before, planner_namespace, "Qwen/Qwen3-235B-A22B-FP8"), "without it: no traffic"
    monitor = _named(prod, "PodMonitor", graph)["spec"]
    worker = next(pme for pme in monitor["podMetricsEndpoints"] if pme["port"] == "system")
    assert all(rule.get("targetLabel") != "dynamo_namespace" for rule in worker["relabelings"])


# --- north-south redundancy (#24 item 9) ----------------------------------------------------------------------------

def test_frontends_are_redundant_spread_and_disruption_budgeted(prod, lab):
    """Two frontends per endpoint on different nodes: required on a tenant's dedicated pool of several nodes,
    preferred on shared nodes; a PodDisruptionBudget keeps one serving through a drain. The operator passes
    extraPodSpec.affinity into the pod spec (graph.go:1712-1724, mergo.WithOverride)."""
    for recording, graph, rule in ((prod, "chat-dense", "requiredDuringSchedulingIgnoredDuringExecution"),
                                   (prod, "reasoning-large", "requiredDuringSchedulingIgnoredDuringExecution"),
                                   (lab, "chat-small", "preferredDuringSchedulingIgnoredDuringExecution")):
        frontend = _dgds(recording)[graph]["spec"]["services"]["Frontend"]
        assert frontend["replicas"] >= 2
        anti = frontend["extraPodSpec"]["affinity"]["podAntiAffinity"]
        assert list(anti) == [rule]
        [term] = anti[rule]
        term = term.get("podAffinityTerm", term)
        selector = {GRAPH_LABEL: graph, "nvidia.com/dynamo-component-type": "frontend"}
        assert term == {"labelSelector": {"matchLabels": selector}, "topologyKey": "kubernetes.io/hostname"}
        pdb = _named(recording, "PodDisruptionBudget", f"{graph}-frontend")["spec"]
        assert pdb == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}


# --- multi-node TRT-LLM bootstrap (#24 item 4) ----------------------------------------------------------------------

def test_multinode_root_workers_can_run_the_operators_ssh_bootstrap():
    """gb300's decode workers span two nodes over RDMA (root, IPC_LOCK). The operator runs `mkdir -p $HOME/.ssh` and
    `/usr/sbin/sshd -D` in them (deploy/operator/internal/dynamo/backend_trtllm.go:139-150, 194-221@2a6da14c): as root
    with every capability dropped, $HOME (uid 1000's in the image) is not writable and sshd's privilege-separated
    child cannot chroot to /run/sshd nor switch user. Single-node workers keep only IPC_LOCK."""
    from ncp.readmodel.recorder import run_stack_file
    services = _dgds(run_stack_file("gb300"))["reasoning-moe"]["spec"]["services"]
    decode, prefill = services["TRTLLMDecodeWorker"], services["TRTLLMPrefillWorker"]
    assert decode["multinode"] == {"nodeCount": 2} and decode["extraPodSpec"]["securityContext"]["runAsUser"] == 0
    added = decode["extraPodSpec"]["mainContainer"]["securityContext"]["capabilities"]["add"]
    assert {"IPC_LOCK", "SYS_CHROOT", "SETUID", "SETGID"} <= set(added)
    assert "DAC_OVERRIDE" not in added and "SYS_ADMIN" not in added
    mounts = {m["mountPath"]: m["name"] for m in decode["extraPodSpec"]["mainContainer"]["volumeMounts"]}
    volumes = {v["name"]: v for v in decode["extraPodSpec"]["volumes"]}
    home = next(e["value"] for e in decode["envs"] if e["name"] == "HOME")
    for path in (home, "/run/sshd"):  # root-owned scratch: writable by root without DAC_OVERRIDE
        assert volumes[mounts[path]] == {"name": mounts[path], "emptyDir": {}}
    assert prefill["extraPodSpec"]["mainContainer"]["securityContext"]["capabilities"]["add"] == ["IPC_LOCK"]
    assert "HOME" not in {e["name"] for e in prefill["envs"]}
