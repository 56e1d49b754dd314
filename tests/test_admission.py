"""The tenant admission policies as the program renders them: generated from the facts the pack and the plan hold,
bound to every tenant namespace, with each namespace carrying exactly its recorded exceptions. What they refuse and
admit is judged by the real kube-apiserver in tests/e2e/test_hostile_tenant_e2e.py."""
import pytest

from components.tenancy.admission import POLICY_PREFIX, tenant_binding, tenant_policies
from components.kube import TENANT_LABEL
from ncp.readmodel.manifests import core_manifests
from ncp.readmodel.recorder import run_stack_file
from ncp.plan.break_fix import UNCORDON_GUARD
from ncp.plan.admission import admission_plan
from ncp.plan.catalog import load_allowlists, load_dynamo_runtime
from ncp.plan.names import (
    ALLOWED_CAPABILITIES, ALLOWED_HOST_PATHS, ALLOWED_NETWORKS, PLATFORM_WORKLOADS, POD_SECURITY_REASON,
    TENANT_GROUPS,
)
from ncp.plan.pod_security import KVBM_REASON, RDMA_REASON


@pytest.fixture(scope="module")
def gb300():
    return run_stack_file("gb300")


def _manifests(recording, kind):
    return [m for m in core_manifests(recording) if m["kind"] == kind]


def _tenant_namespaces(recording):
    return [n for n in _manifests(recording, "Namespace") if TENANT_LABEL in n["metadata"]["labels"]]


def _expressions(spec: dict) -> str:
    return "\n".join(v["expression"] for v in spec["validations"])


@pytest.mark.parametrize("stack", ["prod", "gb300", "lab"])
def test_every_policy_is_bound_to_every_tenant_namespace_only(stack, request):
    recording = request.getfixturevalue(stack)
    # The break-fix guard binds cluster-wide on nodes (tests/test_break_fix.py), not on tenant namespaces.
    policies = {p["metadata"]["name"] for p in _manifests(recording, "ValidatingAdmissionPolicy")} - {UNCORDON_GUARD}
    assert policies == set(tenant_policies(admission_plan(require_digest=False)))
    bindings = {b["spec"]["policyName"]: b for b in _manifests(recording, "ValidatingAdmissionPolicyBinding")
                if b["spec"]["policyName"] != UNCORDON_GUARD}
    assert set(bindings) == policies
    for policy, binding in bindings.items():
        assert binding["spec"]["validationActions"] == ["Deny"]
        assert binding["spec"]["matchResources"]["namespaceSelector"] == {
            "matchExpressions": [{"key": TENANT_LABEL, "operator": "Exists"}]}, policy
    # The selector reaches the tenant namespaces and no other (a platform namespace keeps its own rules).
    for namespace in _manifests(recording, "Namespace"):
        is_tenant = namespace["metadata"]["name"].startswith("tenant-")
        assert (TENANT_LABEL in namespace["metadata"]["labels"]) == is_tenant, namespace["metadata"]["name"]
    assert all(p["spec"]["failurePolicy"] == "Fail" for p in _manifests(recording, "ValidatingAdmissionPolicy"))


@pytest.mark.parametrize("stack", ["prod", "gb300"])
def test_namespaces_carry_exactly_their_recorded_exceptions(stack, request):
    """A namespace's admitted host paths and capabilities are there only with the Pod Security reason that records
    them, and they are the pack's allowlisted paths and the runtime's RDMA capabilities."""
    recording = request.getfixturevalue(stack)
    seen = set()
    for namespace in _tenant_namespaces(recording):
        annotations = namespace["metadata"].get("annotations") or {}
        reason = annotations.get(POD_SECURITY_REASON, "")
        enforce = namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        host_paths = annotations.get(ALLOWED_HOST_PATHS)
        capabilities = annotations.get(ALLOWED_CAPABILITIES)
        assert host_paths == (",".join(load_allowlists().tenant_host_paths) if KVBM_REASON in reason else None)
        assert capabilities == (",".join(load_dynamo_runtime().rdma_capabilities) if RDMA_REASON in reason else None)
        assert (ALLOWED_NETWORKS in annotations) == (RDMA_REASON in reason)
        assert (enforce == "privileged") == bool(reason)
        seen |= {bool(host_paths), bool(capabilities)}
    assert seen == {True, False} or stack == "gb300", "the prod example has excepted and restricted tenants"


def test_the_groups_admission_treats_as_the_tenant_are_its_role_bindings(prod):
    bound = {}
    for binding in _manifests(prod, "RoleBinding"):
        if binding["metadata"]["name"] in ("tenant-admins", "tenant-viewers"):
            bound.setdefault(binding["metadata"]["namespace"], set()).update(s["name"] for s in binding["subjects"])
    for namespace in _tenant_namespaces(prod):
        name = namespace["metadata"]["name"]
        assert set(namespace["metadata"]["annotations"][TENANT_GROUPS].split(",")) == bound[name], name


def test_rail_networks_are_the_networks_the_program_attaches_rdma_workers_to(prod):
    attached = set()
    for graph in _manifests(prod, "DynamoGraphDeployment"):
        for service in graph["spec"]["services"].values():
            networks = ((service.get("extraPodMetadata") or {}).get("annotations") or {}).get(
                "k8s.v1.cni.cncf.io/networks")
            if networks:
                attached.add((graph["metadata"]["namespace"], networks))
    assert attached, "the prod example has RDMA workers"
    annotations = {n["metadata"]["name"]: n["metadata"]["annotations"] for n in _tenant_namespaces(prod)}
    for namespace, networks in attached:
        assert set(networks.split(",")) <= set(annotations[namespace][ALLOWED_NETWORKS].split(","))


def _attachments(recording) -> dict[str, set[str]]:
    """namespace -> the NetworkAttachmentDefinitions in it."""
    found: dict[str, set[str]] = {}
    for r in recording.resources:
        if r.type == "kubernetes:k8s.cni.cncf.io/v1:NetworkAttachmentDefinition":
            found.setdefault(r.inputs["metadata"]["namespace"], set()).add(r.inputs["metadata"]["name"])
    return found


def _network_references(recording) -> list[tuple[str, str]]:
    """(namespace, entry) of every networks annotation entry on the pod templates the stack renders."""
    references = []
    for m in core_manifests(recording):
        namespace = m["metadata"].get("namespace")
        templates = [s.get("extraPodMetadata") or {} for s in m["spec"]["services"].values()] \
            if m["kind"] == "DynamoGraphDeployment" else \
            [m["spec"]["template"]["metadata"]] if m["kind"] in ("Job", "Deployment") else []
        for meta in templates:
            value = (meta.get("annotations") or {}).get("k8s.v1.cni.cncf.io/networks")
            references += [(namespace, entry) for entry in value.split(",")] if value else []
    return references


@pytest.mark.parametrize("stack", ["prod", "gb300"])
def test_rail_attachments_live_in_each_namespace_that_uses_them(stack, request):
    """#22 item 4: every namespace on the rails (each RDMA tenant's, the readiness namespace) has its own copy of
    every rail, the Network Operator's namespace none; pods name them without a namespace, and a tenant's granted
    networks are exactly the attachments in its namespace."""
    recording = request.getfixturevalue(stack)
    attachments, references = _attachments(recording), _network_references(recording)
    granted = {n["metadata"]["name"]: set(n["metadata"]["annotations"][ALLOWED_NETWORKS].split(","))
               for n in _tenant_namespaces(recording) if ALLOWED_NETWORKS in n["metadata"]["annotations"]}
    assert granted and references, f"the {stack} example has RDMA tenants"
    assert set(attachments) == {*granted, "ncp-readiness"}, attachments
    for namespace, rails in granted.items():
        assert attachments[namespace] == rails == attachments["ncp-readiness"]
    for namespace, entry in references:
        assert "/" not in entry and entry in attachments[namespace], (namespace, entry)


def test_images_come_from_the_packs_allowlist_and_by_digest_only_in_prod(monkeypatch):
    lab, prod = (tenant_policies(admission_plan(require_digest=d))[f"{POLICY_PREFIX}images"] for d in (False, True))
    for registry in load_allowlists().image_registries:
        assert f"'{registry}'" in _expressions(lab)
    assert "@sha256:" in _expressions(prod) and "@sha256:" not in _expressions(lab)
    # One home: a registry added to data/allowlists.yaml reaches the policy.
    allowlists = load_allowlists()
    partner = allowlists.model_copy(update={"image_registries": ["registry.partner.example/"]})
    monkeypatch.setattr("ncp.plan.admission.load_allowlists", lambda: partner)
    changed = tenant_policies(admission_plan(require_digest=False))[f"{POLICY_PREFIX}images"]
    assert "'registry.partner.example/'" in _expressions(changed) and "'nvcr.io/'" not in _expressions(changed)


def test_platform_labels_cover_every_label_a_tenant_namespace_policy_selects_on(prod):
    """Each NetworkPolicy in a tenant namespace that selects pods by label keys on a label admission keeps from
    tenants: otherwise a tenant pod could carry it and get that policy's allows."""
    plan = admission_plan(require_digest=False)
    tenant_namespaces = {n["metadata"]["name"] for n in _tenant_namespaces(prod)}
    keyed = [p for p in _manifests(prod, "NetworkPolicy") if p["metadata"]["namespace"] in tenant_namespaces
             and (p["spec"].get("podSelector") or {}).get("matchLabels")]
    assert keyed, "the prod example has label-keyed policies (model source, API server, planner egress)"
    for policy in keyed:
        keys = set(policy["spec"]["podSelector"]["matchLabels"])
        assert keys & set(plan.platform_labels), (policy["metadata"]["name"], keys)


def test_program_pod_templates_in_tenant_namespaces_need_no_more_than_the_exceptions(prod):
    """The program's own workloads stay inside what the policies admit for everyone: no privileged containers, host
    namespaces or hostPorts, hostPath only read-only on the allowlisted paths (the e2e shows the API server agree)."""
    allowed = set(load_allowlists().tenant_host_paths)
    tenant_namespaces = {n["metadata"]["name"] for n in _tenant_namespaces(prod)}
    for kind in ("Job", "Deployment", "StatefulSet"):
        for workload in _manifests(prod, kind):
            if workload["metadata"]["namespace"] not in tenant_namespaces:
                continue
            spec = workload["spec"]["template"]["spec"]
            assert not any(spec.get(f) for f in ("hostNetwork", "hostPID", "hostIPC")), workload["metadata"]["name"]
            assert all(v["hostPath"]["path"] in allowed for v in spec.get("volumes") or [] if "hostPath" in v)
            for container in spec["containers"]:
                assert not (container.get("securityContext") or {}).get("privileged")
                assert not any(p.get("hostPort") for p in container.get("ports") or [])


def test_binding_selects_tenant_namespaces_by_the_label_tenancy_sets():
    assert tenant_binding("p")["matchResources"]["namespaceSelector"]["matchExpressions"][0]["key"] == TENANT_LABEL


POD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "DynamoGraphDeployment"}


@pytest.mark.parametrize("stack", ["prod", "gb300", "lab"])
def test_every_platform_pod_in_a_tenant_namespace_is_named_after_a_listed_workload(stack, request):
    """Admission knows the platform's pods (no tenant exec into them) only by the name prefixes the namespace lists:
    every pod-bearing object the program renders in a tenant namespace must be one of them."""
    recording = request.getfixturevalue(stack)
    listed = {n["metadata"]["name"]: n["metadata"]["annotations"].get(PLATFORM_WORKLOADS, "").split(",")
              for n in _tenant_namespaces(recording)}
    owners = [m for m in core_manifests(recording) if m["kind"] in POD_OWNERS
              and m["metadata"].get("namespace") in listed]
    assert owners
    unlisted = [f"{m['kind']} {m['metadata']['namespace']}/{m['metadata']['name']}" for m in owners
                if not any(m["metadata"]["name"] == w or m["metadata"]["name"].startswith(f"{w}-")
                           for w in listed[m["metadata"]["namespace"]] if w)]
    assert not unlisted, f"not in the namespace's {PLATFORM_WORKLOADS} (ncp/plan/site_plan.py platform_workloads)"
