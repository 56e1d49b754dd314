"""The least-privilege-rbac policy passes the real stacks and refuses cluster-admin, wildcard grants and tenant
groups bound at cluster scope."""
from tests.policy_helpers import LAB_CONFIG, add, clone, messages

POLICY = "least-privilege-rbac"


def _binding(kind: str, name: str, role_kind: str, role: str, subject: dict, namespace: str = None) -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [subject]}


def test_real_stacks_pass(lab, prod):
    assert messages(prod, POLICY) == ""
    assert messages(lab, POLICY, LAB_CONFIG) == ""


def test_cluster_admin_binding_is_refused(prod):
    mutated = clone(prod)
    add(mutated, _binding("ClusterRoleBinding", "ops", "ClusterRole", "cluster-admin",
                          {"kind": "ServiceAccount", "name": "ops", "namespace": "ncp-system"}))
    assert "ClusterRoleBinding ops binds cluster-admin" in messages(mutated, POLICY)


def test_wildcard_role_and_its_binding_are_refused(prod):
    mutated = clone(prod)
    add(mutated, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                  "metadata": {"name": "everything", "namespace": "tenant-acme-chat"},
                  "rules": [{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}]})
    add(mutated, _binding("RoleBinding", "everything", "Role", "everything",
                          {"kind": "User", "name": "mallory"}, namespace="tenant-acme-chat"))
    text = messages(mutated, POLICY)
    assert "Role everything grants '*' in resources" in text
    assert "RoleBinding everything binds Role everything, which grants '*'" in text


def test_tenant_group_at_cluster_scope_is_refused(prod):
    mutated = clone(prod)
    add(mutated, _binding("ClusterRoleBinding", "acme-view", "ClusterRole", "view",
                          {"kind": "Group", "name": "acme-platform-admins", "apiGroup": "rbac.authorization.k8s.io"}))
    assert "binds tenant group acme-platform-admins at cluster scope" in messages(mutated, POLICY)
