"""What each layer sets: the resources and Helm values that matter for the RA."""
import json

import yaml

from ncp.readmodel.recorder import run_program
from tests.support.synthetic import mutate, secret_keys, site_config
from ncp.plan.catalog import load_matrix

MATRIX = load_matrix()


def record(recording) -> dict:
    return next(r.inputs["data"] for r in recording.of_type("kubernetes:core/v1:ConfigMap")
                if r.inputs["metadata"]["name"] == "ncp-baseline-record")


def values(recording, release):
    return recording.releases()[release].inputs["values"]


def compose(profile, environment="lab", **mutations):
    config = site_config(profile, environment)
    for path, value in mutations.items():
        config = mutate(config, path.replace("__", "."), value)
    return run_program(config, secret_keys(config), stack="t")


# --- cluster baseline -------------------------------------------------------------------------------------------

def test_layer_namespaces_have_pod_security(prod):
    namespaces = {r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"]
                  for r in prod.of_type("kubernetes:core/v1:Namespace")}
    assert namespaces["gpu-operator"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert namespaces["kai-scheduler"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert namespaces["ncp-system"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for labels in namespaces.values():
        assert labels["app.kubernetes.io/part-of"] == "ncp-inference"
        assert labels["pod-security.kubernetes.io/warn"] == "restricted"


def test_priority_classes(prod):
    classes = {r.inputs["metadata"]["name"]: r.inputs
               for r in prod.of_type("kubernetes:scheduling.k8s.io/v1:PriorityClass")}
    assert set(classes) == {"ncp-system", "ncp-serving", "ncp-batch"}
    assert classes["ncp-system"]["value"] > classes["ncp-serving"]["value"] > classes["ncp-batch"]["value"]
    assert classes["ncp-batch"]["preemptionPolicy"] == "Never"


def test_baseline_record_names_site_profile_versions_and_decisions(prod):
    data = record(prod)
    assert yaml.safe_load(data["site"])["name"] == "ncp-east-1"
    assert yaml.safe_load(data["hardwareProfile"])["name"] == "hgx-h200"
    versions = yaml.safe_load(data["versions"])
    assert versions["gpuOperator"]["version"] == MATRIX.pin("gpuOperator").version
    assert versions["gpuOperator"]["raMatrix"] == MATRIX.pin("gpuOperator").ra_matrix
    prerequisites = yaml.safe_load(data["prerequisites"])
    assert any("cert-manager" in p for p in prerequisites["nvsentinel"])
    decisions = yaml.safe_load(data["localDecisions"])
    assert any("cert-manager" in d["decision"] for d in decisions)
    assert yaml.safe_load(data["validationEvidence"])["path"].startswith("s3://")


# --- GPU enablement -----------------------------------------------------------------------------------------------

def test_gpu_operator_defaults(prod):
    v = values(prod, "gpu-operator")
    assert v["driver"]["enabled"] is True
    assert v["driver"]["version"] == MATRIX.pin("gpuOperator").images["driver"]
    assert v["driver"]["rdma"] == {"enabled": True, "useHostMofed": True}  # GPUDirect RDMA, host DOCA-OFED
    assert v["gdrcopy"]["enabled"] is True
    assert v["dcgm"]["enabled"] is True
    assert v["dcgmExporter"]["serviceMonitor"]["enabled"] is True
    assert v["dcgmExporter"]["serviceMonitor"]["additionalLabels"] == {"release": "ncp-observability"}
    assert v["gfd"]["enabled"] and v["nfd"]["enabled"] and v["cdi"]["enabled"]
    assert "devicePlugin" not in v, "time-slicing only when asked for"
    assert "mig" not in v


def test_mig_profile_sets_strategy_and_mig_manager_config():
    recording = compose("hgx-h200", components__gpuOperator__mig={"strategy": "single", "layout": {"3g.71gb": 2}})
    v = values(recording, "gpu-operator")
    assert v["mig"] == {"strategy": "single"}
    assert v["migManager"]["enabled"] is True
    config = v["migManager"]["config"]
    assert config["create"] is True and config["default"] == ""  # nodes get the layout by label (test_operators)
    parted = yaml.safe_load(config["data"]["config.yaml"])
    assert parted["mig-configs"]["ncp-layout"] == [
        {"devices": "all", "mig-enabled": True, "mig-devices": {"3g.71gb": 2}}]


def test_non_mig_profile_has_no_mig_manager(lab):
    v = values(lab, "gpu-operator")
    assert v["migManager"] == {"enabled": False}
    assert "mig" not in v


def test_time_slicing_only_when_asked():
    recording = compose("lab", components__gpuOperator__timeSlicing={"replicas": 4})
    config = values(recording, "gpu-operator")["devicePlugin"]["config"]
    sharing = yaml.safe_load(config["data"][config["default"]])
    assert sharing["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]


def test_preinstalled_driver_on_cloud_profile():
    v = values(compose("cloud-h100"), "gpu-operator")
    assert v["driver"] == {"enabled": False}


# --- network enablement ---------------------------------------------------------------------------------------------

# RA: Operator View: "Use Network Operator where the deployment requires high-performance east-west traffic"
def test_no_network_operator_on_lab(lab):
    assert "network-operator" not in lab.releases()
    assert not lab.custom_resources("NicClusterPolicy")


def test_network_operator_on_rdma_profile(prod):
    assert values(prod, "network-operator")["nfd"]["enabled"] is False  # NFD deployed once, by the GPU Operator
    policy = prod.custom_resources("NicClusterPolicy")
    assert len(policy) == 1 and policy[0].inputs["metadata"]["name"] == "nic-cluster-policy"
    spec = policy[0].inputs["spec"]
    plugin = json.loads(spec["rdmaSharedDevicePlugin"]["config"])["configList"][0]
    assert plugin["resourceName"] == "rdma_shared_device_a"
    assert len(plugin["selectors"]["ifNames"]) == 8
    assert "ofedDriver" not in spec, "host DOCA-OFED is preinstalled in prod"
    release_urn = prod.releases()["network-operator"].urn
    assert release_urn in policy[0].dependencies, "NicClusterPolicy must wait for the operator's CRDs"


def test_rail_pools_and_networks(prod):
    pools = prod.custom_resources("IPPool")
    nads = prod.custom_resources("NetworkAttachmentDefinition")
    # One nv-ipam pool per rail; each rail's attachment in every namespace whose pods use the rails (#22 item 4).
    assert len(pools) == 8
    by_namespace: dict[str, set] = {}
    for nad in nads:
        by_namespace.setdefault(nad.inputs["metadata"]["namespace"], set()).add(nad.inputs["metadata"]["name"])
    pool_names = {p.inputs["metadata"]["name"] for p in pools}
    assert sorted(by_namespace) == ["ncp-readiness", "tenant-globex-research"]
    assert all(names == pool_names for names in by_namespace.values()) and len(nads) == 16
    subnets = sorted(p.inputs["spec"]["subnet"] for p in pools)
    assert subnets[0] == "10.200.0.0/23" and len(set(subnets)) == 8  # railPrefixLength 23 in Pulumi.prod.yaml
    # An empty annotations map would be dropped by the API server and show as a diff on every preview.
    assert "annotations" not in nads[0].inputs["metadata"]
    config = json.loads(nads[0].inputs["spec"]["config"])
    assert config["ipam"] == {"type": "nv-ipam", "poolName": nads[0].inputs["metadata"]["name"]}
    policy_urn = prod.custom_resources("NicClusterPolicy")[0].urn
    assert all(policy_urn in r.dependencies for r in pools + nads)


def test_managed_nic_driver_adds_doca_driver():
    recording = compose("hgx-b200", components__networkOperator__nicDriver="managed",
                        components__networkOperator__docaDriverVersion="doca3.2.0-25.10-1.2.8.0-2")
    spec = recording.custom_resources("NicClusterPolicy")[0].inputs["spec"]
    assert spec["ofedDriver"]["version"] == "doca3.2.0-25.10-1.2.8.0-2"
    assert values(recording, "gpu-operator")["driver"]["rdma"]["useHostMofed"] is False


# --- scheduling ---------------------------------------------------------------------------------------------------

def test_queue_tree_matches_tenant_config(prod):
    queues = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in prod.custom_resources("Queue")}
    assert queues["ncp-root"]["resources"]["gpu"]["quota"] == 128
    acme = queues["tenant-acme-chat"]
    assert acme["parentQueue"] == "ncp-root"
    assert acme["resources"]["gpu"] == {"quota": 64, "limit": 72, "overQuotaWeight": 2}
    assert queues["tenant-ncp-eval"]["resources"]["gpu"]["overQuotaWeight"] == 0
    kai = prod.releases()["kai-scheduler"]
    assert kai.inputs["namespace"] == "kai-scheduler"
    assert all(kai.urn in r.dependencies for r in prod.custom_resources("Queue"))


def test_grove_topology_aware_on_multi_node_nvlink():
    recording = compose("gb300-nvl72")
    assert values(recording, "grove")["config"]["topologyAwareScheduling"]["enabled"] is True
    topology = recording.custom_resources("ClusterTopologyBinding")[0].inputs["spec"]["levels"]
    assert {"domain": "nvlink-domain", "key": "nvidia.com/gpu.clique"} in topology


def test_grove_not_topology_aware_on_single_node_domains(prod):
    assert values(prod, "grove")["config"]["topologyAwareScheduling"]["enabled"] is False
    assert not prod.custom_resources("ClusterTopologyBinding")


# --- health -------------------------------------------------------------------------------------------------------

def test_nvsentinel_dry_run_in_lab_enforced_in_prod(lab, prod):
    assert values(lab, "nvsentinel")["global"]["dryRun"] is True
    assert values(prod, "nvsentinel")["global"]["dryRun"] is False
    g = values(prod, "nvsentinel")["global"]
    for module in ("gpuHealthMonitor", "syslogHealthMonitor", "faultQuarantine", "nodeDrainer", "faultRemediation",
                   "mongodbStore"):
        assert g[module]["enabled"] is True, module


def test_nvsentinel_prerequisites(prod):
    v = values(prod, "nvsentinel")
    assert v["global"]["dcgm"]["service"] == {"endpoint": "nvidia-dcgm.gpu-operator.svc", "port": 5555}
    assert values(prod, "gpu-operator")["dcgm"]["enabled"] is True
    secret = next(r for r in prod.of_type("kubernetes:core/v1:Secret")
                  if r.inputs["metadata"]["name"] == v["mongodb-store"]["mongodb"]["auth"]["existingSecret"])
    assert secret.inputs["metadata"]["namespace"] == "nvsentinel"
    assert len(prod.of_type("random:index/randomPassword:RandomPassword")) == 2
    assert [n["name"] for n in v["node-drainer"]["userNamespaces"]] == [
        "tenant-acme-chat", "tenant-globex-research", "tenant-ncp-eval"]
    # The Health layer's dependency on GPU enablement reaches its children: the NVSentinel release itself waits for
    # the GPU Operator release (and so for DCGM).
    assert prod.releases()["gpu-operator"].urn in prod.releases()["nvsentinel"].dependencies


def test_datastore_credentials_are_secret(prod):
    secret = next(r for r in prod.of_type("kubernetes:core/v1:Secret")
                  if r.inputs["metadata"]["name"] == "nvsentinel-datastore-credentials")
    assert "4dabf18193072939515e22adb298388d" in json.dumps(secret.wire_inputs["stringData"])


# --- telemetry ----------------------------------------------------------------------------------------------------

def test_gpu_health_rules(prod):
    rule = prod.custom_resources("PrometheusRule")[0]
    assert rule.inputs["metadata"]["labels"]["release"] == "ncp-observability"
    groups = {g["name"]: g["rules"] for g in rule.inputs["spec"]["groups"]}
    assert {"ncp-tenant-usage.rules", "ncp-break-fix.rules"} <= set(groups)
    rules = groups["ncp-gpu-health.rules"] + groups["ncp-gpu-health.alerts"]
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    assert {"NcpGpuXidError", "NcpGpuRowRemapFailure", "NcpGpuTemperatureHigh", "NcpGpuAllocatedButIdle"} <= set(alerts)
    assert "DCGM_FI_DEV_XID_ERRORS" in alerts["NcpGpuXidError"]["expr"]
    for r in rules:
        assert "max by (node, gpu, UUID, modelName, tenant)" in r["expr"], r
    recording_rules = [r for r in rules if "record" in r]
    assert any('"tenant", "$1", "exported_namespace", "tenant-(.+)"' in r["expr"] for r in recording_rules)


def test_prometheus_stack_only_as_recorded_decision(prod):
    assert "kube-prometheus-stack" not in prod.releases()
    recording = compose("lab", components__telemetry__prometheusStack={
        "enabled": True,
        "localDecision": {"decision": "lab metrics backend", "reason": "no site Prometheus in the lab"}})
    assert "kube-prometheus-stack" in recording.releases()
    decisions = yaml.safe_load(record(recording)["localDecisions"])
    assert {"component": "kubePrometheusStack", "decision": "lab metrics backend",
            "reason": "no site Prometheus in the lab"} in decisions


# --- tenancy ------------------------------------------------------------------------------------------------------

def _in_namespace(recording, type_token, namespace):
    return [r for r in recording.of_type(type_token) if r.inputs["metadata"].get("namespace") == namespace]


def test_tenant_namespaces_are_restricted(prod):
    """Restricted, except the recorded exceptions (tests/test_dynamo_pods.py): globex-research runs RDMA workers, and
    acme-chat and globex-research offload KV to disk (KVBM reads the node's /run/udev)."""
    for tenant in ("acme-chat", "globex-research", "ncp-eval"):
        ns = next(r for r in prod.of_type("kubernetes:core/v1:Namespace")
                  if r.inputs["metadata"]["name"] == f"tenant-{tenant}")
        labels = ns.inputs["metadata"]["labels"]
        excepted = tenant != "ncp-eval"
        assert labels["pod-security.kubernetes.io/enforce"] == ("privileged" if excepted else "restricted")
        assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"
        reason = (ns.inputs["metadata"].get("annotations") or {}).get("ncp-inference.io/pod-security-reason")
        assert bool(reason) == excepted
        assert labels["ncp-inference.io/tenant"] == tenant


def test_tenant_quota_equals_config(prod):
    [quota] = [q for q in _in_namespace(prod, "kubernetes:core/v1:ResourceQuota", "tenant-acme-chat")
               if q.inputs["metadata"]["name"] == "tenant-quota"]
    hard = quota.inputs["spec"]["hard"]
    assert {k: hard[k] for k in ("requests.nvidia.com/gpu", "requests.cpu", "requests.memory")} == {
        "requests.nvidia.com/gpu": "72", "requests.cpu": "1024", "requests.memory": "8Ti"}


def test_default_deny_for_every_tenant(prod):
    for tenant in ("acme-chat", "globex-research", "ncp-eval"):
        policies = {r.inputs["metadata"]["name"]: r.inputs["spec"]
                    for r in _in_namespace(prod, "kubernetes:networking.k8s.io/v1:NetworkPolicy", f"tenant-{tenant}")}
        assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        assert policies["allow-gateway-ingress"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": "ncp-gateway"}
        # Only the pools' target port (the Dynamo frontend) and the endpoint picker's port, not every tenant port.
        assert policies["allow-gateway-ingress"]["ingress"][0]["ports"] == [
            {"protocol": "TCP", "port": 8000}, {"protocol": "TCP", "port": 9002}]
        assert policies["allow-telemetry-scrape"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": "ncp-observability"}
        dns = policies["allow-dns"]["egress"][0]["ports"]
        assert {"protocol": "UDP", "port": 53} in dns


def test_tenant_rbac_service_account_and_no_pull_secret(prod):
    ns = "tenant-acme-chat"
    bindings = {r.inputs["metadata"]["name"]: r.inputs for r in _in_namespace(
        prod, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", ns)}
    assert bindings["tenant-admins"]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                    "name": "tenant-admins"}
    assert bindings["tenant-admins"]["subjects"][0]["name"] == "acme-platform-admins"
    assert bindings["tenant-viewers"]["roleRef"]["name"] == "tenant-viewers"
    account = _in_namespace(prod, "kubernetes:core/v1:ServiceAccount", ns)[0].inputs
    assert account["automountServiceAccountToken"] is False
    # pullCredentials defaults to node: the provider's key never enters a tenant namespace.
    assert "imagePullSecrets" not in account
    assert not _in_namespace(prod, "kubernetes:core/v1:Secret", ns)
    secret = next(r for r in _in_namespace(prod, "kubernetes:core/v1:Secret", "ncp-validation"))
    assert secret.inputs["type"] == "kubernetes.io/dockerconfigjson"
    assert "4dabf18193072939515e22adb298388d" in json.dumps(secret.wire_inputs), "pull secret must stay secret"
    config = json.loads(secret.inputs["stringData"][".dockerconfigjson"])
    assert config["auths"]["nvcr.io"]["username"] == "$oauthtoken"


def test_no_pull_secret_without_key(lab):
    assert not _in_namespace(lab, "kubernetes:core/v1:Secret", "tenant-dev")
    account = _in_namespace(lab, "kubernetes:core/v1:ServiceAccount", "tenant-dev")[0].inputs
    assert "imagePullSecrets" not in account
