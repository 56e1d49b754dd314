"""Tenant isolation judged by a real kube-apiserver (RBAC authorizer, ResourceQuota and Pod Security admission):
the prod stack's core manifests are applied to a local control plane of its own, then a tenant admin and the
validation suite act through impersonation. Writes use dryRun=All: authorization and admission run in full, nothing
is persisted. Every check is also shown to flip when the rule it guards is removed.

Needs kube-apiserver, kube-controller-manager and etcd from tools/e2e/bootstrap.sh (the Pulumi engine is not used)."""
import http.client
import json
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import pytest

from ncp.readmodel.manifests import core_manifests
from ncp.readmodel.recorder import run_stack_file
from tests.e2e.cluster import own_control_plane
from tests.e2e.kube_api import KubeApi

# Own ports, so this control plane never meets the engine e2e's (override with the control plane's variables).
PORTS = {"NCP_E2E_ETCD_PORT": "25790", "NCP_E2E_API_PORT": "18443", "NCP_E2E_KCM_PORT": "12357",
         "NCP_E2E_SCHEDULER_PORT": "12359", "NCP_E2E_KWOK_PORT": "12247"}
BUILT_IN_GROUPS = {"", "apps", "batch", "rbac.authorization.k8s.io", "networking.k8s.io", "scheduling.k8s.io",
                   "policy", "storage.k8s.io"}
# Dependencies first: namespaces and cluster-scoped definitions, then what lives in them.
ORDER = ["Namespace", "PriorityClass", "ClusterRole", "ClusterRoleBinding", "ServiceAccount", "Role", "RoleBinding",
         "ResourceQuota", "LimitRange"]

TENANT, OTHER_TENANT = "tenant-acme-chat", "tenant-globex-research"
# Impersonated identities. The API server adds system:authenticated, and for a ServiceAccount user name its
# system:serviceaccounts groups (k8s.io/apiserver pkg/endpoints/filters/impersonation.go).
ADMIN = ("alice@acme", ["acme-platform-admins"])
SUITE = ("system:serviceaccount:ncp-validation:isv-ncp-validation", [])
PLATFORM_PULL_SECRET = "/api/v1/namespaces/ncp-validation/secrets/ngc-pull-secret"
DEFAULT_DENY = f"/apis/networking.k8s.io/v1/namespaces/{TENANT}/networkpolicies/default-deny"


class Api:
    """Requests as the cluster admin or, impersonating, as a user with groups; returns (status, body)."""

    def __init__(self, kubeconfig: Path):
        admin = KubeApi(kubeconfig)
        self.server, self.token, self.context = admin.server, admin.token, admin.context
        self._paths: dict[tuple[str, str], tuple[str, bool, str]] = {}

    def call(self, method: str, path: str, body: Optional[dict] = None, as_user: Optional[tuple] = None,
             content_type: str = "application/json") -> tuple[int, dict]:
        url = urllib.parse.urlsplit(self.server)
        connection = http.client.HTTPSConnection(url.hostname, url.port, context=self.context, timeout=60)
        data = json.dumps(body).encode() if body is not None else None
        connection.putrequest(method, path)
        headers = [("Authorization", f"Bearer {self.token}"), ("Content-Type", content_type),
                   ("Accept", "application/json"), ("Content-Length", str(len(data or b"")))]
        if as_user is not None:
            user, groups = as_user
            # One header line per group: the API server reads repeated Impersonate-Group headers as a list.
            headers += [("Impersonate-User", user)] + [("Impersonate-Group", group) for group in groups]
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders(data)
        response = connection.getresponse()
        try:
            return response.status, json.loads(response.read() or b"{}")
        finally:
            connection.close()

    def resource_path(self, manifest: dict) -> str:
        """The collection path of a manifest's kind, from API discovery."""
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        if (api_version, kind) not in self._paths:
            base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            status, listing = self.call("GET", base)
            assert status == 200, f"discovery of {base}: {status}"
            for resource in listing["resources"]:
                if "/" not in resource["name"]:
                    self._paths[(api_version, resource["kind"])] = (base, resource["namespaced"], resource["name"])
        base, namespaced, plural = self._paths[(api_version, kind)]
        namespace = manifest["metadata"].get("namespace")
        return f"{base}/namespaces/{namespace}/{plural}" if namespaced and namespace else f"{base}/{plural}"

    def apply(self, manifest: dict) -> None:
        path = f"{self.resource_path(manifest)}/{manifest['metadata']['name']}?fieldManager=ncp-rbac-e2e&force=true"
        # Claims in a namespace whose quota the controller has not computed yet are refused ("status unknown").
        status, body = _eventually(
            lambda: self.call("PATCH", path, manifest, content_type="application/apply-patch+yaml"),
            lambda status, body: "status unknown for quota" not in body.get("message", ""))
        assert status in (200, 201), f"apply {manifest['kind']} {manifest['metadata']['name']}: {status} {body}"


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    """The prod stack's built-in objects (custom resources need their operators' CRDs; none guard access)."""
    built_in = [m for m in core_manifests(run_stack_file("prod"))
                if (m["apiVersion"].split("/")[0] if "/" in m["apiVersion"] else "") in BUILT_IN_GROUPS]
    return sorted(built_in, key=lambda m: ORDER.index(m["kind"]) if m["kind"] in ORDER else len(ORDER))


@pytest.fixture(scope="module")
def api(manifests, tmp_path_factory):
    with own_control_plane(tmp_path_factory.mktemp("rbac-control-plane"), PORTS) as env:
        client = Api(Path(env["NCP_E2E_STATE"]) / "kubeconfig")
        for manifest in manifests:
            client.apply(manifest)
        yield client


def _find(manifests, kind: str, name: str, namespace: Optional[str] = None) -> dict:
    return next(m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name
                and m["metadata"].get("namespace") == namespace)


@contextmanager
def removed(api: Api, original: dict, broken: Optional[dict]):
    """Replace (or, with broken=None, delete) an object for the duration, then restore the program's version."""
    path = f"{api.resource_path(original)}/{original['metadata']['name']}"
    if broken is None:
        assert api.call("DELETE", path)[0] == 200
    else:
        api.apply(broken)
    try:
        yield
    finally:
        if broken is None:
            deadline = time.monotonic() + 30
            while api.call("GET", path)[0] != 404 and time.monotonic() < deadline:
                time.sleep(0.2)
        api.apply(original)


def _pod(namespace: str, priority: Optional[str] = None, account: str = "tenant-workload") -> dict:
    """A pod PSA restricted admits, run as the given (existing) ServiceAccount."""
    spec = {"serviceAccountName": account, "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "main", "image": "nvcr.io/nvidia/cuda:12.8.0-base-ubuntu24.04",
                            "securityContext": {"allowPrivilegeEscalation": False,
                                                "capabilities": {"drop": ["ALL"]}}}]}
    if priority:
        spec["priorityClassName"] = priority
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": namespace}, "spec": spec}


def _create_pod(api: Api, namespace: str, as_user, priority: Optional[str] = None) -> tuple[int, dict]:
    return api.call("POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", _pod(namespace, priority), as_user)


# --- the tenant admin ---------------------------------------------------------------------------------------------

def test_positive_controls(api):
    """The identities work: the admin runs pods and manages their own Secrets; the suite reads nodes."""
    assert api.call("GET", f"/api/v1/namespaces/{TENANT}/pods", as_user=ADMIN)[0] == 200
    status, body = _eventually(lambda: _create_pod(api, TENANT, ADMIN), _admitted)
    assert status == 201, body
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf-token", "namespace": TENANT},
              "stringData": {"HF_TOKEN": "x"}}
    assert api.call("POST", f"/api/v1/namespaces/{TENANT}/secrets?dryRun=All", secret, ADMIN)[0] == 201
    assert api.call("GET", "/api/v1/nodes", as_user=SUITE)[0] == 200


# RA: Security And Compliance: "Secrets must be scoped by namespace and service account."
def test_tenant_admin_cannot_read_the_platform_pull_credential(api, manifests):
    assert api.call("GET", PLATFORM_PULL_SECRET)[0] == 200, "the platform credential exists"
    assert api.call("GET", PLATFORM_PULL_SECRET, as_user=ADMIN)[0] == 403
    assert api.call("GET", f"/api/v1/namespaces/{TENANT}/secrets", as_user=ADMIN)[0] == 200
    # The guard is where the credential lives: copied into the tenant namespace (pullCredentials sharedKey, which
    # prod refuses), the tenant admin reads it.
    platform = _find(manifests, "Secret", "ngc-pull-secret", "ncp-validation")
    shared = {**platform, "metadata": {**platform["metadata"], "namespace": TENANT}}
    api.apply(shared)
    try:
        path = f"/api/v1/namespaces/{TENANT}/secrets/ngc-pull-secret"
        assert _eventually(lambda: api.call("GET", path, as_user=ADMIN), lambda status, _: status == 200)[0] == 200
    finally:
        api.call("DELETE", f"/api/v1/namespaces/{TENANT}/secrets/ngc-pull-secret")


def test_tenant_admin_cannot_read_another_tenant(api, manifests):
    for path in (f"/api/v1/namespaces/{OTHER_TENANT}/pods", f"/api/v1/namespaces/{OTHER_TENANT}/secrets",
                 f"/api/v1/namespaces/{OTHER_TENANT}/configmaps"):
        assert api.call("GET", path, as_user=ADMIN)[0] == 403, path
    # The guard: the tenant's groups are bound only in their own namespace. Bound in the other one too, they read it.
    binding = _find(manifests, "RoleBinding", "tenant-admins", OTHER_TENANT)
    widened = {**binding, "subjects": [*binding["subjects"], {"kind": "Group", "name": "acme-platform-admins",
                                                             "apiGroup": "rbac.authorization.k8s.io"}]}
    with removed(api, binding, widened):
        read = lambda: api.call("GET", f"/api/v1/namespaces/{OTHER_TENANT}/pods", as_user=ADMIN)  # noqa: E731
        assert _eventually(read, lambda status, _: status == 200)[0] == 200


def test_tenant_admin_cannot_delete_or_change_isolation(api, manifests):
    assert api.call("DELETE", f"{DEFAULT_DENY}?dryRun=All", as_user=ADMIN)[0] == 403
    open_policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "allow-all", "namespace": TENANT},
                   "spec": {"podSelector": {}, "ingress": [{}], "egress": [{}]}}
    assert api.call("POST", f"/apis/networking.k8s.io/v1/namespaces/{TENANT}/networkpolicies?dryRun=All",
                    open_policy, ADMIN)[0] == 403
    for path in (f"/api/v1/namespaces/{TENANT}/resourcequotas/tenant-quota",
                 f"/api/v1/namespaces/{TENANT}/limitranges/tenant-limits",
                 f"/apis/rbac.authorization.k8s.io/v1/namespaces/{TENANT}/rolebindings/tenant-admins"):
        assert api.call("DELETE", f"{path}?dryRun=All", as_user=ADMIN)[0] == 403, path
    # The guard: NetworkPolicies are read-only in the tenant Role. Granted delete, the admin removes default-deny.
    role = _find(manifests, "Role", "tenant-admins", TENANT)
    loosened = {**role, "rules": [*role["rules"], {"apiGroups": ["networking.k8s.io"],
                                                   "resources": ["networkpolicies"], "verbs": ["delete"]}]}
    with removed(api, role, loosened):
        delete = lambda: api.call("DELETE", f"{DEFAULT_DENY}?dryRun=All", as_user=ADMIN)  # noqa: E731
        assert _eventually(delete, lambda status, _: status == 200)[0] == 200


def _allowed(api: Api, who: tuple, verb: str, group: str, resource: str, namespace: str = TENANT) -> bool:
    """The RBAC authorizer's answer (SubjectAccessReview): a kind whose CRD is not installed is judged all the same."""
    user, groups = who
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": user, "groups": [*groups, "system:authenticated"],
        "resourceAttributes": {"namespace": namespace, "verb": verb, "group": group, "resource": resource}}}
    status, body = api.call("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
    assert status == 201, body
    return body["status"].get("allowed", False)


def test_tenants_read_their_routes_but_never_change_them(api, manifests):
    """The endpoint's HTTPRoutes (and their blue/green weights) come from the stack config: a tenant's admins and
    viewers read them in their namespace, change none of them, and read none in another tenant's."""
    viewer = ("bob@acme", ["acme-sre"])
    for who in (ADMIN, viewer):
        assert _allowed(api, who, "list", "gateway.networking.k8s.io", "httproutes"), who
        assert _allowed(api, who, "get", "inference.networking.k8s.io", "inferencepools"), who
        for verb in ("create", "update", "patch", "delete"):
            assert not _allowed(api, who, verb, "gateway.networking.k8s.io", "httproutes"), (who, verb)
        assert not _allowed(api, who, "list", "gateway.networking.k8s.io", "httproutes", OTHER_TENANT), who
    # The guard: without the read rule in the tenant Role, the admin cannot see the routes.
    role = _find(manifests, "Role", "tenant-admins", TENANT)
    narrowed = {**role, "rules": [r for r in role["rules"] if "httproutes" not in r["resources"]]}
    assert narrowed["rules"] != role["rules"]
    with removed(api, role, narrowed):
        denied = lambda: (200, {"allowed": _allowed(api, ADMIN, "list", "gateway.networking.k8s.io",  # noqa: E731
                                                    "httproutes")})
        assert _eventually(denied, lambda _, body: not body["allowed"])[1]["allowed"] is False


def _eventually(call, done, timeout: float = 60) -> tuple[int, dict]:
    """Admission reads quotas through informers and needs the quota controller's status: retry until `done`."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = call()
        if done(status, body) or time.monotonic() > deadline:
            return status, body
        time.sleep(0.5)


def _quota_decided(status: int, body: dict) -> bool:
    return status != 403 or "exceeded quota" in body.get("message", "")


def _admitted(status: int, body: dict) -> bool:
    return status == 201


def test_tenant_pods_cannot_use_platform_priorities(api, manifests):
    platform = lambda: _create_pod(api, TENANT, ADMIN, priority="ncp-system")  # noqa: E731
    status, body = _eventually(platform, _quota_decided)
    assert status == 403 and "exceeded quota: platform-priorities" in body["message"], body
    assert _create_pod(api, TENANT, ADMIN, priority="ncp-serving")[0] == 201
    # The guard: the PriorityClass-scoped quota. Without it, a tenant pod runs at the platform's priority.
    with removed(api, _find(manifests, "ResourceQuota", "platform-priorities", TENANT), None):
        status, body = _eventually(platform, _admitted)
        assert status == 201, body


def test_tenant_cannot_expose_node_ports(api, manifests):
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "exposed", "namespace": TENANT},
               "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80}]}}
    post = lambda: api.call("POST", f"/api/v1/namespaces/{TENANT}/services?dryRun=All", service, ADMIN)  # noqa: E731
    status, body = _eventually(post, _quota_decided)
    assert status == 403 and "services.nodeports=0" in body["message"], body
    # The guard: services.nodeports=0 in the tenant quota. Without that line, the NodePort Service is admitted.
    quota = _find(manifests, "ResourceQuota", "tenant-quota", TENANT)
    hard = {k: v for k, v in quota["spec"]["hard"].items() if k != "services.nodeports"}
    with removed(api, quota, {**quota, "spec": {**quota["spec"], "hard": hard}}):
        status, body = _eventually(post, _admitted)
        assert status == 201, body


# --- the validation suite -----------------------------------------------------------------------------------------

def test_validation_suite_cannot_write(api, manifests):
    suite_pod = _pod("ncp-validation", account="isv-ncp-validation")
    for method, path, body in (
            ("POST", "/api/v1/namespaces/ncp-validation/pods?dryRun=All", suite_pod),
            ("DELETE", "/api/v1/nodes/any?dryRun=All", None),
            ("POST", "/api/v1/namespaces?dryRun=All", {"apiVersion": "v1", "kind": "Namespace",
                                                        "metadata": {"name": "isvtest-netpol"}}),
            ("DELETE", f"{DEFAULT_DENY}?dryRun=All", None)):
        assert api.call(method, path, body, SUITE)[0] == 403, (method, path)
    assert api.call("GET", PLATFORM_PULL_SECRET, as_user=SUITE)[0] == 403, "the suite reads no Secrets"
    # The guard: the read-only ClusterRole. With a write verb added, the suite creates pods.
    role = _find(manifests, "ClusterRole", "isv-ncp-validation-reader")
    widened = {**role, "rules": [*role["rules"], {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}]}
    with removed(api, role, widened):
        status, body = _eventually(lambda: api.call("POST", "/api/v1/namespaces/ncp-validation/pods?dryRun=All",
                                                    suite_pod, SUITE), _admitted)
        assert status == 201, body
