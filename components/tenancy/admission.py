"""Admission guardrails of the tenancy and security layer: ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1,
CEL, GA since Kubernetes 1.30) bound to every tenant namespace, so what a tenant admin creates after deploy meets the
rules the policy pack applies to the program at preview. One policy per concern, each with its own refusal message.

Per-tenant facts (its groups, the node paths and capabilities of its recorded Pod Security exception, the networks it
may attach to, its KAI queue) are on its namespace (TenantEnvironment writes them; tenants cannot change namespaces),
so every tenant shares one set of policies. Whom a rule applies to:
- everyone creating in a tenant namespace (what escapes to the node, the network or another namespace): no
  privileged containers, unmasked /proc, host namespaces, hostPorts, unconfined seccomp/AppArmor, hostPath or added
  capabilities beyond the exception; no Service externalIPs or ExternalName into another namespace; no
  service-account token Secrets; DynamoGraphDeployments without ingress objects, with KAI and the namespace's queue,
  in their own Dynamo namespace and on the tenant's networks only;
- the tenant's identities (its RBAC groups and the namespace's ServiceAccounts) on what they author (Pods and pod
  templates; a controller creating pods from a checked template is not a tenant): allowlisted images (by digest in
  prod), GPU pods on KAI with the namespace's queue and no nodeName, only the tenant's networks, none of the
  platform's labels (also on the graphs they write), only the tenant's ServiceAccounts (the namespace's others are
  the endpoint picker's and the Dynamo components'), the platform's results claims read-only (acceptance evidence
  is read from them); monitors of their own namespace that read no Prometheus file and write none of the series
  labels usage and SLOs are attributed by;
- the tenant's groups: platform-owned objects (the program's part-of label) are read-only to them. The namespace's
  ServiceAccounts are left out of this one: the Dynamo planner scales its own graph;
- the tenant's identities on the platform's pods (named after the workloads the namespace lists): no exec or attach."""
from dataclasses import dataclass
from functools import partial
from typing import Callable, Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import TENANT_LABEL, Layer, labels
from ncp.plan.admission import AdmissionPlan
from ncp.plan.catalog import integration_points
from ncp.plan.names import (
    ALLOWED_CAPABILITIES, ALLOWED_HOST_PATHS, ALLOWED_NETWORKS, PLATFORM_WORKLOADS, PROJECT, TENANT_GROUPS,
)
from ncp.plan.tenancy import TenantSpec

POLICY_PREFIX = f"{PROJECT}-tenant-"
# The accounts tenant pods run as: the tenant's workload account (no token automount) and the namespace's default;
# the namespace's other accounts are the platform's (the endpoint picker's, the Dynamo components').
WORKLOAD_SERVICE_ACCOUNT = "tenant-workload"
TENANT_ACCOUNTS = (WORKLOAD_SERVICE_ACCOUNT, "default")
WRITES = ["CREATE", "UPDATE"]
# Pod-bearing kinds a tenant admin may write (data/tenant-access.yaml) and where each keeps its pod template.
WORKLOADS = [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]},
             {"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments", "statefulsets", "replicasets",
                                                                          "daemonsets"]},
             {"apiGroups": ["batch"], "apiVersions": ["v1"], "resources": ["jobs", "cronjobs"]}]
DGD_RESOURCE = {"apiGroups": ["nvidia.com"], "apiVersions": ["*"], "resources": ["dynamographdeployments"]}


def _cel(value: str) -> str:
    """A CEL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _cel_list(values) -> str:
    return "[" + ", ".join(_cel(v) for v in values) + "]"


def _namespace_list(annotation: str) -> str:
    """The comma-separated list a namespace annotation holds ([] without it)."""
    annotations = "namespaceObject.metadata.annotations"
    return (f"(has(namespaceObject.metadata.annotations) && {_cel(annotation)} in {annotations} "
            f"? {annotations}[{_cel(annotation)}].split(',').map(x, x.trim()).filter(x, x != '') : [])")


def _field(expression: str, field: str, default: str) -> str:
    return f"(has({expression}.{field}) ? {expression}.{field} : {default})"


# --- variables -----------------------------------------------------------------------------------------------------

def _template(path: str) -> str:
    """The pod template part at `path` of whatever workload kind the request carries."""
    return (f"(object.kind == 'Pod' ? object.{path} : object.kind == 'CronJob' "
            f"? object.spec.jobTemplate.spec.template.{path} : object.spec.template.{path})")


def _template_meta(field: str) -> str:
    meta = ("(object.kind == 'Pod' ? object.metadata : object.kind == 'CronJob' "
            "? object.spec.jobTemplate.spec.template.metadata : object.spec.template.metadata)")
    return f"(has({meta}.{field}) ? {meta}.{field} : {{}})"


def _containers(spec: str) -> str:
    return (f"{_field(spec, 'containers', '[]')} + {_field(spec, 'initContainers', '[]')}"
            f" + {_field(spec, 'ephemeralContainers', '[]')}")


def _tenant_identity() -> list[dict]:
    return [
        {"name": "tenantGroups", "expression": _namespace_list(TENANT_GROUPS)},
        {"name": "tenantHuman", "expression": "has(request.userInfo.groups) && "
                                              "request.userInfo.groups.exists(g, g in variables.tenantGroups)"},
        {"name": "tenant", "expression": "variables.tenantHuman || request.userInfo.username.startsWith("
                                         "'system:serviceaccount:' + namespaceObject.metadata.name + ':')"},
    ]


WORKLOAD_VARIABLES = [
    {"name": "spec", "expression": _template("spec")},
    {"name": "containers", "expression": _containers("variables.spec")},
    {"name": "podLabels", "expression": _template_meta("labels")},
    {"name": "podAnnotations", "expression": _template_meta("annotations")},
]
DGD_VARIABLES = [
    {"name": "services", "expression": _field("object.spec", "services", "{}")},
    {"name": "graphAnnotations", "expression": _field("object.metadata", "annotations", "{}")},
    # What the graph propagates to every child resource and pod template (spec.labels / spec.annotations).
    {"name": "graphLabels", "expression": _field("object.spec", "labels", "{}")},
    {"name": "propagatedAnnotations", "expression": _field("object.spec", "annotations", "{}")},
]


def _dgd_each(check, metadata: str = "extraPodMetadata") -> str:
    """`check(spec, containers, labels, annotations)` for every service of a DynamoGraphDeployment: its pods'
    extraPodSpec and main container, with the labels and annotations of its `metadata` (extraPodMetadata, or ""
    for the service's own, which the operator also puts on the pods)."""
    service = "variables.services[s]"
    spec = f"{service}.extraPodSpec"
    spec_or_empty = _field(service, "extraPodSpec", "{}")
    main = f"(has({service}.extraPodSpec) && has({spec}.mainContainer) ? [{spec}.mainContainer] : [])"
    containers = (f"{main} + (has({service}.extraPodSpec) ? {_containers(spec)} : [])")
    owner = f"{service}.{metadata}" if metadata else service
    guard = f"has({owner})" if metadata else "true"
    meta_labels = f"({guard} ? {_field(owner, 'labels', '{}')} : {{}})"
    meta_annotations = f"({guard} ? {_field(owner, 'annotations', '{}')} : {{}})"
    return f"variables.services.all(s, {check(spec_or_empty, containers, meta_labels, meta_annotations)})"


def _dgd_metadata(check) -> str:
    """`check` on the graph's own labels and annotations (propagated to every child resource and pod template) and on
    each service's pod and service metadata."""
    graph = check("{}", "[]", "variables.graphLabels", "variables.propagatedAnnotations")
    return f"({graph}) && ({_dgd_each(check)}) && ({_dgd_each(check, '')})"


# --- checks, each on (pod spec, containers, pod labels, pod annotations) ---------------------------------------------

def _flag(expression: str, field: str) -> str:
    return f"(has({expression}.{field}) && {expression}.{field} == true)"


def host_namespaces(spec, containers, pod_labels, annotations) -> str:
    return " && ".join(f"!{_flag(spec, field)}" for field in ("hostNetwork", "hostPID", "hostIPC"))


def privileged(spec, containers, pod_labels, annotations) -> str:
    context = "c.securityContext"
    return (f"({containers}).all(c, !has(c.securityContext) || (!{_flag(context, 'privileged')}"
            f" && (!has({context}.procMount) || {context}.procMount == 'Default')))")


def confined(spec, containers, pod_labels, annotations) -> str:
    """Seccomp and AppArmor stay on, as Pod Security baseline requires (a privileged namespace does not)."""
    def unconfined(context: str) -> str:
        return " || ".join(f"(has({context}.{profile}) && {context}.{profile}.type == 'Unconfined')"
                           for profile in ("seccompProfile", "appArmorProfile"))
    pod = f"{spec}.securityContext"
    return (f"!(has({pod}) && ({unconfined(pod)})) && "
            f"({containers}).all(c, !has(c.securityContext) || !({unconfined('c.securityContext')}))")


def host_ports(spec, containers, pod_labels, annotations) -> str:
    return f"({containers}).all(c, !has(c.ports) || c.ports.all(p, !has(p.hostPort) || p.hostPort == 0))"


def _mounted_read_only(containers: str) -> str:
    """Every mount of volume `v` in the containers is read-only."""
    return (f"({containers}).all(c, !has(c.volumeMounts) || c.volumeMounts.all(m, m.name != v.name"
            f" || {_flag('m', 'readOnly')}))")


def host_paths(spec, containers, pod_labels, annotations) -> str:
    return (f"{_field(spec, 'volumes', '[]')}.all(v, !has(v.hostPath) || "
            f"(v.hostPath.path in variables.allowedHostPaths && {_mounted_read_only(containers)}))")


def results_read_only(plan: AdmissionPlan, spec: str, containers: str, pod_labels: str, annotations: str) -> str:
    claim = "v.persistentVolumeClaim"
    return (f"{_field(spec, 'volumes', '[]')}.all(v, !has({claim}) || !({claim}.claimName in "
            f"{_cel_list(plan.results_claims)}) || {_flag(claim, 'readOnly')} || {_mounted_read_only(containers)})")


def capabilities(spec, containers, pod_labels, annotations) -> str:
    caps = "c.securityContext.capabilities"
    return (f"({containers}).all(c, !has(c.securityContext) || !has({caps}) || !has({caps}.add) "
            f"|| {caps}.add.all(a, a in variables.allowedCapabilities))")


def images(plan: AdmissionPlan, spec: str, containers: str, pod_labels: str, annotations: str) -> str:
    registries = _cel_list(plan.image_registries)
    digest = " && c.image.contains('@sha256:')" if plan.require_digest else ""
    return f"({containers}).all(c, has(c.image) && {registries}.exists(r, c.image.startsWith(r)){digest})"


def _own_queue(plan: AdmissionPlan, object_labels: str) -> str:
    queue = _cel(plan.queue_label)
    return f"(!({queue} in {object_labels}) || {object_labels}[{queue}] == variables.queue)"


def gpu_queue(plan: AdmissionPlan, spec: str, containers: str, pod_labels: str, annotations: str) -> str:
    queue, gpu = _cel(plan.queue_label), _cel(plan.gpu_resource)
    requests_gpu = (f"({containers}).exists(c, has(c.resources) && ((has(c.resources.limits) && {gpu} in "
                    f"c.resources.limits) || (has(c.resources.requests) && {gpu} in c.resources.requests)))")
    on_kai = (f"has({spec}.schedulerName) && {spec}.schedulerName == {_cel(plan.scheduler_name)} "
              f"&& {queue} in {pod_labels}")
    return f"{_own_queue(plan, pod_labels)} && (!{requests_gpu} || ({on_kai}))"


# Multus reads the networks annotation as JSON when it holds any of [ { " and otherwise as a comma-separated list of
# [<namespace>/]<name>[@<interface>], an entry without a namespace taking the pod's own
# (k8snetworkplumbingwg/multus-cni pkg/k8sclient/k8sclient.go parsePodNetworkAnnotation, parsePodNetworkObjectName).
MULTUS_JSON_MARKERS = ("[", "{", '"')


def networks(plan: AdmissionPlan, spec: str, containers: str, pod_labels: str, annotations: str) -> str:
    """Only the list form, and in it only the rails the namespace is granted, by name or as <own namespace>/<name>."""
    key = _cel(plan.networks_annotation)
    value = f"{annotations}[{key}]"
    parts = "n.split('@')[0].split('/')"
    granted = (f"(size({parts}) == 1 ? {parts}[0].trim() in variables.allowedNetworks : size({parts}) == 2 && "
               f"{parts}[0].trim() == namespaceObject.metadata.name && {parts}[1].trim() in variables.allowedNetworks)")
    listed = (f"(!({key} in {annotations}) || (!{_cel_list(MULTUS_JSON_MARKERS)}.exists(c, {value}.contains(c)) "
              f"&& {value}.split(',').all(n, {granted})))")
    return f"{listed} && !({_cel(plan.default_network_annotation)} in {annotations})"


def platform_labels(plan: AdmissionPlan, spec: str, containers: str, pod_labels: str, annotations: str) -> str:
    key, value = plan.owner_label
    return (f"!{_cel_list(plan.platform_labels)}.exists(k, k in {pod_labels}) "
            f"&& !({_cel(key)} in {pod_labels} && {pod_labels}[{_cel(key)}] == {_cel(value)})")


def _kept_labels(plan: AdmissionPlan) -> str:
    """None of the platform's label keys on the object unless its old version carried the same value."""
    labels_, old = _field("object.metadata", "labels", "{}"), "oldObject.metadata.labels"
    keys = _cel_list([*plan.platform_labels, plan.owner_label[0]])
    kept = f"(oldObject != null && has({old}) && k in {old} && {old}[k] == {labels_}[k])"
    return f"{keys}.all(k, !(k in {labels_}) || {kept})"


# --- the policies --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """One admission rule on pods.

    Attributes:
        check: (pod spec, containers, pod labels, pod annotations), each a CEL expression -> the CEL condition that
            holds for an admitted pod.
        message: why a refused request is refused, as the tenant reads it.
    """

    check: Callable[..., str]
    message: str


def _pod_rules(plan: AdmissionPlan) -> dict[str, list[Rule]]:
    """policy name suffix -> its rules on pod specs (workloads and DGD services alike)."""
    return {
        "pod-security": [
            Rule(host_namespaces, "tenant pods may not use the node's network, PID or IPC namespace"),
            Rule(privileged, "tenant containers may not run privileged or with an unmasked /proc"),
            Rule(confined, "tenant pods may not run without seccomp or AppArmor (Unconfined)"),
            Rule(host_ports, "tenant containers may not bind hostPorts"),
            Rule(host_paths, "tenant pods may mount no hostPath volume but the namespace's recorded exception ("
                             f"annotation {ALLOWED_HOST_PATHS}), read-only"),
            Rule(capabilities, "tenant containers may add no capability but the namespace's recorded exception ("
                               f"annotation {ALLOWED_CAPABILITIES})"),
        ],
    }


def _authored_rules(plan: AdmissionPlan) -> dict[str, list[Rule]]:
    """policy name suffix -> its rules on what the tenant's identities author."""
    registries = ", ".join(plan.image_registries)
    digest = " and pinned by digest (@sha256:...)" if plan.require_digest else ""
    return {
        "images": [Rule(partial(images, plan),
                        f"tenant images must come from an allowlisted registry ({registries}){digest}"
                        " (data/allowlists.yaml imageRegistries)")],
        "gpu-queue": [Rule(partial(gpu_queue, plan),
                           f"tenant GPU pods must use schedulerName {plan.scheduler_name} and the {plan.queue_label} "
                           "label of their namespace's queue; no pod may name another queue"),
                      Rule(lambda spec, *_: f"!has({spec}.nodeName)",
                           "tenant pods may not bypass the scheduler and its queue (nodeName)"),
                      # KAI's pod grouper takes the queue from the pod's top owner first: the workload's own label.
                      Rule(lambda *_: _own_queue(plan, _field("object.metadata", "labels", "{}")),
                           f"tenant workloads may not name another namespace's queue ({plan.queue_label})")],
        "networks": [Rule(partial(networks, plan),
                          f"tenant pods may attach ({plan.networks_annotation}, name form) only to the rails their "
                          f"namespace is granted ({ALLOWED_NETWORKS}), in their own namespace, and may not "
                          f"replace their cluster network ({plan.default_network_annotation})")],
        "results-claim": [Rule(partial(results_read_only, plan),
                               f"tenant pods may mount the platform's results claims ({', '.join(plan.results_claims)})"
                               " read-only only: acceptance evidence is read from them")],
        "service-accounts": [Rule(lambda spec, *_: f"!has({spec}.serviceAccountName) || {spec}.serviceAccountName "
                                                   f"in {_cel_list(TENANT_ACCOUNTS)}",
                                  f"tenant pods may run only as {' or '.join(TENANT_ACCOUNTS)}: the namespace's "
                                  "other ServiceAccounts carry the platform's permissions")],
        "platform-labels": [Rule(partial(platform_labels, plan),
                                 f"tenant pods may not carry the labels platform NetworkPolicies and Jobs are "
                                 f"selected by ({', '.join(plan.platform_labels)}) nor "
                                 f"{plan.owner_label[0]}={plan.owner_label[1]}"),
                            # Readiness and evidence select Jobs by the workload's own labels: none newly set by a
                            # tenant (an update keeping what the object had is not a claim).
                            Rule(lambda *_: f"object.kind == 'Pod' || {_kept_labels(plan)}",
                                 f"tenant workloads may not claim the platform's labels "
                                 f"({', '.join(plan.platform_labels)}, {plan.owner_label[0]})")],
    }


def _identity_guarded(rule: str) -> str:
    return f"!variables.tenant || ({rule})"


def _namespace_variables(plan: AdmissionPlan) -> list[dict]:
    return [
        {"name": "allowedHostPaths", "expression": _namespace_list(ALLOWED_HOST_PATHS)},
        {"name": "allowedCapabilities", "expression": _namespace_list(ALLOWED_CAPABILITIES)},
        {"name": "allowedNetworks", "expression": _namespace_list(ALLOWED_NETWORKS)},
        {"name": "queue", "expression": f"has(namespaceObject.metadata.labels) && {_cel(plan.queue_label)} in "
                                        f"namespaceObject.metadata.labels ? namespaceObject.metadata.labels"
                                        f"[{_cel(plan.queue_label)}] : ''"},
        *_tenant_identity(),
    ]


def _policy(resource_rules: list[dict], operations: list[str], variables: list[dict],
            validations: list[dict]) -> dict:
    return {
        "failurePolicy": "Fail",
        # Namespaced only: a binding's namespaceSelector never skips a cluster-scoped object.
        "matchConstraints": {"resourceRules": [{**rule, "operations": operations, "scope": "Namespaced"}
                                               for rule in resource_rules]},
        "variables": variables,
        "validations": validations,
    }


def _validation(expression: str, message: str, reason: str = "Forbidden") -> dict:
    return {"expression": expression, "message": f"{message} [{PROJECT} admission]", "reason": reason}


def _dgd_policy(plan: AdmissionPlan) -> dict:
    """Everything a DynamoGraphDeployment makes the cluster-wide operator create in the namespace: no Ingress or
    VirtualService, KAI with the namespace's queue, the pod rules on every service, and the authored rules for
    graphs the tenant writes."""
    kai, queue = _cel(plan.scheduler_name), _cel(plan.dgd_queue_annotation)
    service = "variables.services[s]"
    gpu_service = (f"(has({service}.resources) && ((has({service}.resources.limits) && has({service}.resources.limits"
                   f".gpu)) || (has({service}.resources.requests) && has({service}.resources.requests.gpu))))")
    validations = [
        _validation(f"variables.services.all(s, !has({service}.ingress) || !{_flag(service + '.ingress', 'enabled')})",
                    "DynamoGraphDeployment services may not enable ingress (the operator would create Ingress or "
                    "VirtualService objects tenants may not create): serve through the site gateway"),
        _validation(f"variables.services.all(s, !has({service}.extraPodSpec) || ((!has({service}.extraPodSpec"
                    f".schedulerName) || {service}.extraPodSpec.schedulerName == {kai}) && "
                    f"!has({service}.extraPodSpec.nodeName)))",
                    f"DynamoGraphDeployment pods must stay on {plan.scheduler_name} (no schedulerName, no nodeName)"),
        _validation(f"variables.services.all(s, !{_flag(service, 'globalDynamoNamespace')} && "
                    f"!has({service}.dynamoNamespace))",
                    "DynamoGraphDeployment components stay in their graph's own Dynamo namespace (no "
                    "globalDynamoNamespace or dynamoNamespace: discovery and events shared with other tenants)"),
        _validation(f"({queue} in variables.graphAnnotations ? variables.graphAnnotations[{queue}] == variables.queue"
                    f" : !variables.services.exists(s, {gpu_service}))",
                    f"DynamoGraphDeployments with GPU services must set {plan.dgd_queue_annotation} to their "
                    "namespace's KAI queue"),
    ]
    for rules in _pod_rules(plan).values():
        validations += [_validation(_dgd_each(rule.check), rule.message) for rule in rules]
    authored = _authored_rules(plan)
    validations.append(_validation(_dgd_metadata(partial(networks, plan)), authored["networks"][0].message))
    validations += [_validation(_identity_guarded(_dgd_each(rule.check)), rule.message)
                    for rule in authored["images"] + authored["service-accounts"] + authored["results-claim"]]
    # A graph mounts its top-level pvcs read-write (the CRD's volumeMounts have no readOnly).
    validations.append(_validation(
        _identity_guarded(f"!has(object.spec.pvcs) || object.spec.pvcs.all(p, !(p.name in "
                          f"{_cel_list(plan.results_claims)}))"),
        f"tenant DynamoGraphDeployments may not mount the platform's results claims "
        f"({', '.join(plan.results_claims)}): their volumeMounts are read-write"))
    validations += [_validation(_identity_guarded(_dgd_metadata(rule.check)), rule.message)
                    for rule in authored["platform-labels"]]
    return _policy([DGD_RESOURCE], WRITES, [*_namespace_variables(plan), *DGD_VARIABLES], validations)


def _monitors_policy(plan: AdmissionPlan) -> dict:
    """A tenant's PodMonitors and ServiceMonitors configure the shared Prometheus: they may scrape only their own
    namespace, read no file on the Prometheus host, and write none of the series labels usage and SLOs are
    attributed by."""
    protected = _cel_list(plan.series_labels)
    relabelings = ("((has(e.relabelings) ? e.relabelings : []) + "
                   "(has(e.metricRelabelings) ? e.metricRelabelings : []))")
    copied = ("(has(object.spec.podTargetLabels) ? object.spec.podTargetLabels : []) + "
              "(has(object.spec.targetLabels) ? object.spec.targetLabels : [])")
    selector = "object.spec.namespaceSelector"
    tls = "e.tlsConfig"
    validations = [
        _validation(f"!has({selector}) || (!{_flag(selector, 'any')} && (!has({selector}.matchNames) || "
                    f"{selector}.matchNames.all(n, n == namespaceObject.metadata.name)))",
                    "tenant monitors may select pods of their own namespace only (namespaceSelector)"),
        _validation(f"variables.endpoints.all(e, !has(e.bearerTokenFile) && (!has({tls}) || (!has({tls}.caFile) "
                    f"&& !has({tls}.certFile) && !has({tls}.keyFile))))",
                    "tenant monitors may not make Prometheus read files (bearerTokenFile, tlsConfig files): use "
                    "Secret references"),
        _validation(f"variables.endpoints.all(e, !{_flag('e', 'honorLabels')} && {relabelings}.all(r, "
                    f"!(has(r.targetLabel) && r.targetLabel in {protected}) && "
                    f"!(has(r.action) && r.action.lowerAscii() == 'labelmap'))) && "
                    f"({copied}).all(l, !(l in {protected}))",
                    f"tenant monitors may not write the series labels usage and SLOs are attributed by "
                    f"({', '.join(plan.series_labels)}), honor the target's labels or labelmap"),
    ]
    endpoints = ("object.kind == 'PodMonitor' ? (has(object.spec.podMetricsEndpoints) ? "
                 "object.spec.podMetricsEndpoints : []) : (has(object.spec.endpoints) ? object.spec.endpoints : [])")
    return _policy([{"apiGroups": ["monitoring.coreos.com"], "apiVersions": ["*"],
                     "resources": ["podmonitors", "servicemonitors"]}], WRITES,
                   [*_tenant_identity(), {"name": "endpoints", "expression": endpoints}],
                   [{**v, "expression": _identity_guarded(v["expression"])} for v in validations])


def _services_policy() -> dict:
    """No Service capturing traffic for addresses it does not own, or aliasing another namespace's Service."""
    external_name = ("has(object.spec.externalName) && has(object.spec.type) && object.spec.type == 'ExternalName' "
                     "? object.spec.externalName.lowerAscii().split('.') : []")
    return _policy(
        [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["services"]}], WRITES,
        [{"name": "externalName", "expression": external_name}],
        [_validation("!has(object.spec.externalIPs) || size(object.spec.externalIPs) == 0",
                     "tenant Services may not set externalIPs (CVE-2020-8554: they capture traffic to those IPs)"),
         # <service>.<namespace>[.svc[.<cluster domain>]]: the second label names a namespace.
         _validation("size(variables.externalName) < 2 || (size(variables.externalName) > 2 && "
                     "variables.externalName[2] != 'svc') || "
                     "variables.externalName[1] == namespaceObject.metadata.name",
                     "tenant ExternalName Services may not point into another namespace")])


def _token_secrets_policy() -> dict:
    return _policy(
        [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["secrets"]}], WRITES, [],
        [_validation("!has(object.type) || object.type != 'kubernetes.io/service-account-token'",
                     "no service-account token Secrets in tenant namespaces (they never expire): request "
                     "short-lived tokens (TokenRequest, projected volumes)")])


def _platform_owned_policy(plan: AdmissionPlan) -> dict:
    key, value = _cel(plan.owner_label[0]), _cel(plan.owner_label[1])
    old_labels = "oldObject.metadata.labels"
    return _policy(
        [{"apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}], ["UPDATE", "DELETE"], _tenant_identity(),
        [_validation(f"!variables.tenantHuman || !(has({old_labels}) && {key} in {old_labels} && "
                     f"{old_labels}[{key}] == {value})",
                     f"objects the platform owns ({plan.owner_label[0]}={plan.owner_label[1]}) are read-only to "
                     "tenants: change them through the stack config")])


def _platform_pods_policy() -> dict:
    """No exec or attach into the platform's pods. They carry the labels the namespace's NetworkPolicies open the
    model source, the API server and the shared Prometheus to, and run as the platform's ServiceAccounts; a shell in
    one would be that reach without the label guard. A CONNECT request carries the pod's name only (its object is the
    PodExecOptions, no oldObject), so the platform's pods are known by name: each is named after a workload the
    namespace lists (Deployment, Job and graph pods take their owner's name and a suffix). Port-forwarding stays: it
    reaches only the ports the pod serves the namespace anyway."""
    return _policy(
        [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/exec", "pods/attach"]}], ["CONNECT"],
        [*_tenant_identity(), {"name": "platformWorkloads", "expression": _namespace_list(PLATFORM_WORKLOADS)}],
        [_validation(_identity_guarded("!variables.platformWorkloads.exists(w, request.name.startsWith(w + '-'))"),
                     f"tenants may not exec or attach into the platform's pods (those of the workloads annotation "
                     f"{PLATFORM_WORKLOADS} lists): read their logs, or ask the platform team")])


def tenant_policies(plan: AdmissionPlan) -> dict[str, dict]:
    """policy name -> ValidatingAdmissionPolicy spec, every one bound to all tenant namespaces."""
    variables = [*_namespace_variables(plan), *WORKLOAD_VARIABLES]
    workload = ("variables.spec", "variables.containers", "variables.podLabels", "variables.podAnnotations")
    policies = {}
    for name, rules in _pod_rules(plan).items():
        policies[name] = _policy(WORKLOADS, WRITES, variables,
                                 [_validation(rule.check(*workload), rule.message) for rule in rules])
    for name, rules in _authored_rules(plan).items():
        policies[name] = _policy(WORKLOADS, WRITES, variables,
                                 [_validation(_identity_guarded(rule.check(*workload)), rule.message)
                                  for rule in rules])
    policies["services"] = _services_policy()
    policies["token-secrets"] = _token_secrets_policy()
    policies["dynamo-graphs"] = _dgd_policy(plan)
    policies["monitors"] = _monitors_policy(plan)
    policies["platform-owned"] = _platform_owned_policy(plan)
    policies["platform-pods"] = _platform_pods_policy()
    return {f"{POLICY_PREFIX}{name}": spec for name, spec in policies.items()}


def tenant_binding(policy: str) -> dict:
    """Binds a policy to every tenant namespace (the Tenancy layer labels them; tenants cannot label namespaces)."""
    return {"policyName": policy, "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchExpressions": [
                {"key": TENANT_LABEL, "operator": "Exists"}]}}}


def namespace_annotations(tenant: TenantSpec, rail_networks: list[str]) -> dict[str, str]:
    """What admission reads from a tenant's namespace: its groups, the exceptions its workers need (the rails'
    attachments in the namespace, by name, for a tenant on the rails) and the platform's workloads there."""
    exceptions = tenant.exceptions
    annotations = {TENANT_GROUPS: ",".join([*tenant.admins, *tenant.viewers])}
    for key, values in ((ALLOWED_HOST_PATHS, exceptions.host_paths), (ALLOWED_CAPABILITIES, exceptions.capabilities),
                        (ALLOWED_NETWORKS, rail_networks), (PLATFORM_WORKLOADS, tenant.platform_workloads)):
        if values:
            annotations[key] = ",".join(values)
    return annotations


def image_signature_policy(registries: tuple[str, ...], public_keys: tuple[str, ...]) -> dict:
    """The Sigstore policy-controller's ClusterImagePolicy spec (data/integration-points.yaml sigstore): every image
    from an allowlisted registry (the only ones admission lets into a tenant namespace) must carry a signature one of
    the site's signer keys verifies."""
    return {"images": [{"glob": f"{registry.rstrip('/')}/**"} for registry in registries],
            "authorities": [{"name": f"site-signer-{index}", "key": {"data": key}}
                            for index, key in enumerate(public_keys)]}


class AdmissionGuardrails(Layer):
    """The tenant admission policies and their bindings to every tenant namespace."""

    def __init__(self, name: str, plan: AdmissionPlan, signer_keys: tuple[str, ...],
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("AdmissionGuardrails", name, opts)
        self.policies = {}
        if signer_keys:
            names = integration_points().sigstore
            k8s.apiextensions.CustomResource(
                f"{name}-image-signatures", api_version=f"{names.group}/{names.version}", kind=names.kind,
                metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{POLICY_PREFIX}images",
                                                    labels=labels("admission", "image-signatures")),
                spec=image_signature_policy(plan.image_registries, signer_keys), opts=self.child())
        for policy, spec in tenant_policies(plan).items():
            meta = k8s.meta.v1.ObjectMetaArgs(name=policy, labels=labels("admission", policy))
            created = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(f"{name}-{policy}", metadata=meta,
                                                                              spec=spec, opts=self.child())
            k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
                f"{name}-{policy}-binding", metadata=meta, spec=tenant_binding(policy), opts=self.child(created))
            self.policies[policy] = created
        self.register_outputs({"policies": list(self.policies)})
