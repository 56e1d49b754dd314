"""What the isolation layer emits, read from the recorded stacks; the real judges are the scanners
(tests/test_scanners.py) and the API server (tests/e2e/test_rbac_e2e.py)."""
import pytest

from ncp.readmodel.manifests import core_manifests
from ncp.readmodel.recorder import run_program
from tests.support.synthetic import mutate, secret_keys, site_config
from ncp.plan.catalog import load_matrix, network_access
from ncp.plan.errors import ConfigError
from ncp.plan.site_plan import build_plan

WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "escalate", "bind", "impersonate"}


def _objects(recording, kind, namespace=None):
    return [m for m in core_manifests(recording) if m["kind"] == kind
            and (namespace is None or m["metadata"].get("namespace") == namespace)]


def test_validation_suite_reads_exactly_the_matrix_rules(prod):
    [role] = [r for r in _objects(prod, "ClusterRole") if r["metadata"]["name"] == "isv-ncp-validation-reader"]
    suite = load_matrix().workload("validationSuite")
    assert len(role["rules"]) == len(suite.reads)
    assert not {verb for rule in role["rules"] for verb in rule["verbs"]} & WRITE_VERBS
    [binding] = [b for b in _objects(prod, "ClusterRoleBinding") if b["metadata"]["name"] == "isv-ncp-validation"]
    assert binding["roleRef"]["name"] == "isv-ncp-validation-reader"
    [account] = [a for a in _objects(prod, "ServiceAccount", "ncp-validation")]
    assert account["automountServiceAccountToken"] is False
    [job] = _objects(prod, "Job", "ncp-validation")
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True, "the token is mounted into this Job only"
    command = pod["containers"][0]["command"]
    assert command[-3:] == ["--", "-k", " or ".join(suite.read_only_checks)]
    assert pod["imagePullSecrets"] == [{"name": "ngc-pull-secret"}]


def test_every_layer_namespace_is_default_deny(prod):
    namespaces = {n["metadata"]["name"] for n in _objects(prod, "Namespace")}
    denied = {p["metadata"]["namespace"] for p in _objects(prod, "NetworkPolicy")
              if p["metadata"]["name"] == "default-deny"
              and p["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
    assert namespaces == denied


# RA: Security And Compliance: "Network policy should separate API ingress, control plane, metadata stores"
def test_tenants_reach_no_platform_namespace(prod):
    """No platform namespace admits tenants (NATS is gone, #22 item 3; ModelExpress runs per tenant, item 7), so no
    tenant namespace has an egress allow into one."""
    for layer, access in network_access().platform.items():
        assert all(allow.from_ != "tenants" for allow in access.ingress), layer
    tenant_namespaces = {n["metadata"]["name"] for n in _objects(prod, "Namespace")
                         if n["metadata"]["name"].startswith("tenant-")}
    assert tenant_namespaces
    assert not [p for p in _objects(prod, "NetworkPolicy") if p["metadata"]["name"] == "allow-platform-egress"]
    admitted = {p["metadata"]["name"] for p in _objects(prod, "NetworkPolicy", "dynamo-system")}
    assert not [name for name in admitted if name.startswith("allow-from-tenants")], admitted


def _peers_on(policy: dict, port: int) -> list[dict]:
    """The ingress peers a NetworkPolicy admits on `port` (a rule without ports admits every port); a rule without
    `from` admits everyone, as {}."""
    peers = []
    for rule in policy["spec"].get("ingress") or []:
        if not rule.get("ports") or any(p.get("port") == port for p in rule["ports"]):
            peers += rule.get("from") or [{}]
    return peers


def _reaching_tenants(policies: list[dict], namespace: str, port: int, tenants: set[str]) -> set[str]:
    """The other tenants' namespaces the policies of `namespace` admit on `port` (every tenant for a peer open to
    all namespaces or addresses)."""
    reaching = set()
    for policy in policies:
        if policy["metadata"]["namespace"] != namespace:
            continue
        for peer in _peers_on(policy, port):
            selector = peer.get("namespaceSelector")
            if peer.get("ipBlock") is not None or peer == {} or selector == {}:
                reaching |= tenants
            elif selector is not None:
                name = (selector.get("matchLabels") or {}).get("kubernetes.io/metadata.name")
                reaching |= tenants if name is None else {name} & tenants
    return reaching - {namespace}


def test_no_tenant_reaches_another_tenants_model_server(prod):
    """#22 item 7: every ModelExpress server sits in the namespace of the tenant it serves, that tenant's workers
    load through their own, and no NetworkPolicy admits another tenant's pods to its port."""
    port = load_matrix().workload("modelExpress").ports["grpc"]
    tenants = {n["metadata"]["name"] for n in _objects(prod, "Namespace")
               if n["metadata"]["name"].startswith("tenant-")}
    servers = {s["metadata"]["namespace"] for s in _objects(prod, "Service")
               if s["metadata"]["name"] == "modelexpress"}
    assert servers and servers <= tenants, servers
    policies = _objects(prod, "NetworkPolicy")
    for namespace in servers:
        assert _reaching_tenants(policies, namespace, port, tenants) == set(), namespace
    for graph in _objects(prod, "DynamoGraphDeployment"):
        for service in graph["spec"]["services"].values():
            for env in service.get("envs") or []:
                if env["name"] == "MODEL_EXPRESS_URL":
                    assert env["value"].split(".")[1] == graph["metadata"]["namespace"], env
    # The check can fail: the shared server's old allow (every tenant namespace on 8001) is caught.
    other = sorted(tenants)[1]
    shared = {"metadata": {"namespace": sorted(tenants)[0]}, "spec": {"ingress": [{
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": other}}}],
        "ports": [{"protocol": "TCP", "port": port}]}]}}
    assert _reaching_tenants([shared], sorted(tenants)[0], port, tenants) == {other}


def test_tenant_quota_is_complete(prod):
    quotas = {q["metadata"]["name"]: q["spec"] for q in _objects(prod, "ResourceQuota", "tenant-acme-chat")}
    hard = quotas["tenant-quota"]["hard"]
    for key in ("limits.cpu", "limits.memory", "pods", "persistentvolumeclaims", "requests.storage",
                "vast-models.storageclass.storage.k8s.io/requests.storage"):
        assert key in hard, key
    assert (hard["services.loadbalancers"], hard["services.nodeports"]) == ("0", "0")
    scoped = quotas["platform-priorities"]
    assert scoped["hard"] == {"pods": "0"}
    [expression] = scoped["scopeSelector"]["matchExpressions"]
    assert expression["scopeName"] == "PriorityClass" and "ncp-system" in expression["values"]
    assert "ncp-serving" not in expression["values"] and "ncp-batch" not in expression["values"]


def test_tenant_roles_cannot_change_platform_isolation(prod):
    for role in _objects(prod, "Role", "tenant-acme-chat"):
        for rule in role["rules"]:
            protected = {"networkpolicies", "resourcequotas", "limitranges", "roles", "rolebindings",
                         "serviceaccounts"} & set(rule["resources"])
            assert not (protected and WRITE_VERBS & set(rule["verbs"])), (role["metadata"]["name"], rule)


def test_shared_key_only_outside_prod():
    config = mutate(site_config("lab", "staging"), "components", {"tenancy": {"pullCredentials": "sharedKey"}})
    config["ngcApiKey"] = "staging-key"
    recording = run_program(config, secret_keys(config), stack="shared")
    assert [s["metadata"]["name"] for s in _objects(recording, "Secret", "tenant-t0")] == ["ngc-pull-secret"]
    prod = mutate(site_config("hgx-h200", "prod"), "components.tenancy", {"pullCredentials": "sharedKey"})
    with pytest.raises(ConfigError, match=r"components\.tenancy\.pullCredentials: sharedKey is refused in prod"):
        build_plan(prod, secret_keys(prod), "Pulumi.t.yaml")


def test_prod_refuses_tag_only_tool_images():
    config = mutate(site_config("hgx-h200", "prod"), "components.serving.validation.suiteImage",
                    "nvcr.io/test-org/tools/isv-ncp-validation-suite:0.6.8")
    with pytest.raises(ConfigError, match=r"validation\.suiteImage: .* is pinned by tag only"):
        build_plan(config, secret_keys(config), "Pulumi.t.yaml")
