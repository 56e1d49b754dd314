"""Guardrails on tenant namespaces and what runs in them."""
from ncp_guardrails.data import allowlists, names
from ncp_guardrails.framework import stack_policy
from ncp_guardrails.kube import (
    GPU, TENANT_LABEL, containers, get, labels_of, name_of, namespace_of, of_kind, pod_specs,
)

POD_SECURITY_REASON = names()["annotations"]["podSecurityReason"]


def _is_default_deny(props) -> bool:
    spec = get(props, "spec", default={}) or {}
    return (not (get(spec, "podSelector", default={}) or {})
            and set(spec.get("policyTypes") or []) == {"Ingress", "Egress"}
            and not spec.get("ingress") and not spec.get("egress"))


def _admission_bound(resources) -> bool:
    """Whether the stack binds admission policies to tenant namespaces (by the tenant label, as the program does)."""
    for binding in of_kind(resources, "ValidatingAdmissionPolicyBinding"):
        selector = get(binding.props, "spec", "matchResources", "namespaceSelector", default={}) or {}
        if any(e.get("key") == TENANT_LABEL and e.get("operator") == "Exists"
               for e in selector.get("matchExpressions") or []) and "Deny" in (
                get(binding.props, "spec", "validationActions", default=[]) or []):
            return True
    return False


def _tenant_isolation(args, report):
    tenants = {name_of(ns.props): ns for ns in of_kind(args.resources, "Namespace")
               if TENANT_LABEL in labels_of(ns.props)}
    bound = _admission_bound(args.resources)
    in_namespace = {}
    for resource in args.resources:
        in_namespace.setdefault(namespace_of(resource.props), []).append(resource)
    for namespace, ns in tenants.items():
        enforce = labels_of(ns.props).get("pod-security.kubernetes.io/enforce")
        # The recorded exceptions: RDMA workers need IPC_LOCK as root and KV offload to disk a read-only hostPath,
        # which only `privileged` admits; the program says why on the namespace (ncp/plan/endpoints.py
        # tenant_pod_security).
        excepted = enforce == "privileged" and (get(ns.props, "metadata", "annotations", default={}) or {}).get(
            POD_SECURITY_REASON)
        if enforce != "restricted" and not excepted:
            report(f"tenant namespace {namespace} does not enforce Pod Security 'restricted'", ns.urn)
        elif enforce != "restricted" and not bound:
            # `privileged` admits anything a tenant admin creates: only admission holds it to the exception.
            report(f"tenant namespace {namespace} enforces Pod Security 'privileged' with no admission policy "
                   "binding denying in tenant namespaces: its tenant admin could run any pod", ns.urn)
        objects = in_namespace.get(namespace, [])
        policies = [r for r in objects if get(r.props, "kind") == "NetworkPolicy"]
        if not any(_is_default_deny(p.props) for p in policies):
            report(f"tenant namespace {namespace} has no default-deny NetworkPolicy", ns.urn)
        quotas = [r for r in objects if get(r.props, "kind") == "ResourceQuota"]
        if not any(f"requests.{GPU}" in (get(q.props, "spec", "hard", default={}) or {}) for q in quotas):
            report(f"tenant namespace {namespace} has no ResourceQuota limiting requests.{GPU}", ns.urn)
        accounts = [r for r in objects if get(r.props, "kind") == "ServiceAccount"]
        if not any(get(a.props, "automountServiceAccountToken") is False for a in accounts):
            report(f"tenant namespace {namespace} has no dedicated ServiceAccount with token automount off", ns.urn)
        for resource in objects:
            for where, spec in pod_specs(resource.props):
                _check_pod(spec, f"{name_of(resource.props)} {where}", resource.urn, report, bool(excepted))


def _read_only_everywhere(spec, volume: str) -> bool:
    mounts = [m for c in containers(spec) for m in (c.get("volumeMounts") or []) if m.get("name") == volume]
    return all(m.get("readOnly") for m in mounts)


def _check_pod(spec, where, urn, report, excepted: bool):
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        report(f"{where}: tenant workloads may not use host namespaces", urn)
    allowed = allowlists().get("tenantHostPaths") or []
    for volume in spec.get("volumes") or []:
        if "hostPath" not in volume:
            continue
        name = volume.get("name")
        if not (excepted and volume["hostPath"].get("path") in allowed and _read_only_everywhere(spec, name)):
            report(f"{where}: tenant workloads may not mount hostPath volumes ({name}); only {', '.join(allowed)} "
                   "read-only in a namespace with a recorded Pod Security exception", urn)
    for container in containers(spec):
        if get(container, "securityContext", "privileged"):
            report(f"{where}: container {container.get('name')!r} is privileged", urn)


tenant_isolation = stack_policy(
    "tenant-isolation",
    "Tenant namespaces enforce PSA restricted (or privileged with a recorded reason and admission policies bound to "
    "tenant namespaces) and have a default-deny NetworkPolicy, a GPU ResourceQuota and a dedicated ServiceAccount; "
    "tenant workloads use no privileged containers, host namespaces or hostPath (but the allowlisted read-only node "
    "paths under a recorded exception).",
    "Isolation And Security: Workload Isolation",
    "Create tenants through ncp-inference:tenants (the Tenancy layer sets all of this); remove privileged settings.",
    _tenant_isolation,
)

CLUSTER_ADMIN = "cluster-admin"
BINDINGS = ("RoleBinding", "ClusterRoleBinding")


def _wildcard_rules(props) -> list[str]:
    """The fields of a Role/ClusterRole rule that grant '*'."""
    found = []
    for rule in get(props, "rules", default=[]) or []:
        for field in ("verbs", "resources", "apiGroups", "nonResourceURLs"):
            if "*" in (get(rule, field, default=[]) or []):
                found.append(field)
    return found


def _tenant_groups(resources) -> set[str]:
    """Groups the stack binds inside tenant namespaces: tenant identities."""
    tenant_namespaces = {name_of(ns.props) for ns in of_kind(resources, "Namespace")
                         if TENANT_LABEL in labels_of(ns.props)}
    return {get(subject, "name") for binding in of_kind(resources, "RoleBinding")
            if namespace_of(binding.props) in tenant_namespaces
            for subject in get(binding.props, "subjects", default=[]) or [] if get(subject, "kind") == "Group"}


def _least_privilege(args, report):
    roles = {(get(r.props, "kind"), namespace_of(r.props), name_of(r.props)): r
             for r in [*of_kind(args.resources, "Role"), *of_kind(args.resources, "ClusterRole")]}
    for key, role in roles.items():
        fields = _wildcard_rules(role.props)
        if fields:
            report(f"{key[0]} {name_of(role.props)} grants '*' in {', '.join(sorted(set(fields)))}", role.urn)
    tenant_groups = _tenant_groups(args.resources)
    for kind in BINDINGS:
        for binding in of_kind(args.resources, kind):
            name = name_of(binding.props)
            ref_kind, ref_name = get(binding.props, "roleRef", "kind"), get(binding.props, "roleRef", "name")
            if ref_name == CLUSTER_ADMIN:
                report(f"{kind} {name} binds cluster-admin", binding.urn)
            namespace = namespace_of(binding.props) if ref_kind == "Role" else ""
            role = roles.get((ref_kind, namespace, ref_name))
            if role is not None and _wildcard_rules(role.props):
                report(f"{kind} {name} binds {ref_kind} {ref_name}, which grants '*'", binding.urn)
            if kind == "ClusterRoleBinding":
                for subject in get(binding.props, "subjects", default=[]) or []:
                    if get(subject, "kind") == "Group" and get(subject, "name") in tenant_groups:
                        report(f"ClusterRoleBinding {name} binds tenant group {get(subject, 'name')} at cluster "
                               "scope", binding.urn)


least_privilege_rbac = stack_policy(
    "least-privilege-rbac",
    "No binding of cluster-admin, no Role or ClusterRole granting '*' (or binding one), and no tenant group bound "
    "at cluster scope.",
    "Isolation And Security: Workload Isolation",
    "Grant the verbs and resources a subject needs in a project-defined Role; bind tenant groups only inside their "
    "tenant namespace (ncp-inference:tenants[].admins/viewers).",
    _least_privilege,
)

POLICIES = [tenant_isolation, least_privilege_rbac]
