"""Each check reads the cluster through the API server and returns its misses, each with the fix."""
import secrets
from dataclasses import dataclass

from ncp.cluster_api import Kube, KubeError
from ncp.readmodel.recorder import Recording
from ncp.plan.catalog import integration_points
from ncp.plan.names import PROJECT
from ncp.plan.site_plan import SitePlan
from ncp.preflight.gateway_egress import gateway_egress_problems
from ncp.preflight.prometheus_tenancy import prometheus_tenancy_problems


@dataclass(frozen=True)
class Miss:
    check: str
    problem: str
    fix: str


def kubernetes_version(kube: Kube, site_plan: SitePlan) -> list[Miss]:
    version = kube.version()
    running = f"{version['major']}.{version['minor'].rstrip('+')}"
    supported = site_plan.matrix.kubernetes.supported_versions
    if running not in supported:
        return [Miss("kubernetes version", f"the cluster runs Kubernetes {running}; the compatibility matrix supports "
                                           f"{', '.join(supported)}",
                     "upgrade or pick a cluster of a supported minor (data/compatibility-matrix.yaml "
                     "kubernetes.supportedVersions)")]
    if running != site_plan.kubernetes_version:
        return [Miss("kubernetes version", f"the cluster runs {running} but the stack validates manifests for "
                                           f"{site_plan.kubernetes_version}",
                     f"set ncp-inference:site.kubernetesVersion to \"{running}\"")]
    return []


def required_kinds(site_plan: SitePlan, recording: Recording) -> dict[str, set]:
    """group/version -> kinds the program creates that no chart of the stack brings: built-in kinds, which every
    cluster serves, and custom resources whose CRD the site must provide before `pulumi up`."""
    deployed = recording.outputs.get("versions", {})
    from_charts = {crd for name in deployed for crd in site_plan.matrix.pin(name).crds}
    needed: dict[str, set] = {}
    for registration in recording.resources:
        api_version, kind = registration.inputs.get("apiVersion", ""), registration.inputs.get("kind")
        if registration.custom and "/" in api_version and kind and f"{api_version}/{kind}" not in from_charts:
            needed.setdefault(api_version, set()).add(kind)
    return needed


def crds(kube: Kube, site_plan: SitePlan, recording: Recording) -> list[Miss]:
    misses = []
    for api_version, kinds in sorted(required_kinds(site_plan, recording).items()):
        served = kube.served_kinds(api_version)
        for kind in sorted(kinds - served):
            misses.append(Miss("site prerequisite CRDs", f"{api_version} {kind} is not served by the cluster",
                               f"install the CRD that defines {kind} ({api_version}) before `pulumi up` (see "
                               "`ncp checklist`, Cluster prerequisites)"))
    return misses


def _camel(tier: str) -> str:
    head, *rest = tier.split("-")
    return head + "".join(part.capitalize() for part in rest)


def storage_classes(kube: Kube, site_plan: SitePlan) -> list[Miss]:
    storage = site_plan.config.components.serving.storage
    present = kube.storage_class_names()
    return [Miss("storage classes", f"StorageClass {tier.storage_class!r} ({name}) does not exist",
                 f"create it, or set ncp-inference:components.serving.storage.{_camel(name)}.storageClass to an "
                 "existing class")
            for name, tier in (storage.named() if storage else []) if tier.storage_class not in present]


def gpu_nodes(kube: Kube, site_plan: SitePlan) -> list[Miss]:
    label = integration_points().gpu.product_label
    products = site_plan.gpu_node_products
    nodes = [n for n in kube.nodes()
             if (n["metadata"].get("labels") or {}).get(label) in products]
    misses = []
    for product, wanted in products.items():
        found = sum(1 for n in nodes if n["metadata"]["labels"][label] == product)
        if found < wanted:
            misses.append(Miss("GPU nodes", f"{found} nodes carry {label}={product}; the stack needs {wanted} "
                                            f"(gpuNodes {site_plan.site.gpu_nodes})",
                               "join the missing GPU nodes (GPU Feature Discovery sets the label; a pooled MIG "
                               "layout needs its nodes labelled for mig-manager, see the site checklist) or lower "
                               "ncp-inference:site.gpuNodes"))
    for level in site_plan.topology_levels:
        unlabelled = sorted(n["metadata"]["name"] for n in nodes
                            if level.key not in (n["metadata"].get("labels") or {}))
        if unlabelled:
            misses.append(Miss("topology labels", f"GPU nodes without {level.key} ({level.domain}): "
                                                  f"{', '.join(unlabelled)}",
                               f"label every GPU node with {level.key} (the profile's topologyLabels)"))
    return misses


# A pod that selects a node pool its namespace does not allow: the probe the node-selector plugin must refuse.
PROBE_POOL_KEY, PROBE_ALLOWED, PROBE_OTHER = "ncp-inference.io/preflight-pool", "allowed", "other"


def node_selector_admission(kube: Kube, site_plan: SitePlan) -> list[Miss]:
    """Tenants with dedicated nodes are held to them by the PodNodeSelector admission plugin (the namespace's
    annotation is merged into every pod a tenant creates, and a conflicting pod is refused). Managed clusters often
    do not enable it, and nothing fails visibly without it: a tenant's pods simply may land on another tenant's
    nodes. So the plugin is proved, not assumed: in a short-lived probe namespace carrying the annotation, the API
    server's admission is asked (server-side dry run: nothing is created) to admit a pod selecting another pool."""
    if not any(spec.node_selector for spec in site_plan.tenant_specs):
        return []
    points = integration_points().kubernetes
    namespace = f"ncp-preflight-{secrets.token_hex(4)}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "node-selector-probe"},
           "spec": {"nodeSelector": {PROBE_POOL_KEY: PROBE_OTHER},
                    "containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}]}}
    kube.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": namespace, "labels": {"app.kubernetes.io/part-of": PROJECT},
        "annotations": {points.pod_node_selector_annotation: f"{PROBE_POOL_KEY}={PROBE_ALLOWED}"}}})
    try:
        refusal = kube.admits_pod(namespace, pod)
    finally:
        kube.delete_namespace(namespace)
    if refusal and points.pod_node_selector_refusal in refusal:
        return []
    return [Miss("admission plugins",
                 f"the {points.pod_node_selector_plugin} admission plugin is not enabled: a pod selecting another node "
                 f"pool was {'refused for another reason: ' + refusal if refusal else 'admitted'} in a namespace "
                 "annotated with a pool, so tenants with dedicated nodes could run on other tenants' nodes",
                 f"add {points.pod_node_selector_plugin} to kube-apiserver --enable-admission-plugins (on a managed "
                 "cluster, ask the provider; where it cannot be enabled, drop the tenants' nodePool and record the "
                 "shared nodes as a local decision)")]


def validating_admission_policy(kube: Kube, site_plan: SitePlan) -> list[Miss]:
    """The tenancy guardrails that hold after deploy are ValidatingAdmissionPolicies; a cluster that does not serve the
    API would take them as unknown kinds at `pulumi up`."""
    kinds = kube.served_kinds("admissionregistration.k8s.io/v1")
    missing = sorted({"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} - kinds)
    if not missing or not site_plan.tenants:
        return []
    return [Miss("admission plugins",
                 f"the cluster does not serve admissionregistration.k8s.io/v1 {', '.join(missing)}",
                 "run Kubernetes 1.30 or later (ValidatingAdmissionPolicy is GA there) with the "
                 "ValidatingAdmissionPolicy admission plugin enabled (the default)")]


def admission(kube: Kube, site_plan: SitePlan) -> list[Miss]:
    try:
        return node_selector_admission(kube, site_plan) + validating_admission_policy(kube, site_plan)
    except KubeError as error:
        if error.status == 403:
            return [Miss("admission plugins", f"cannot probe admission: {error}",
                         "run preflight as a cluster admin (it creates and deletes a probe namespace)")]
        raise


def gateway_egress(kube: Kube, site_plan: SitePlan) -> list[Miss]:
    """The site's gateway namespace restricts egress and keeps the gateway off the metadata service
    (ncp/preflight/gateway_egress.py); only where tenants admit the gateway."""
    if not site_plan.tenants:
        return []
    namespace = site_plan.config.components.tenancy.gateway_namespace
    return [Miss("gateway egress", problem, fix) for problem, fix in gateway_egress_problems(
        namespace, kube.network_policies(namespace), site_plan.gateway_ports)]


def prometheus_tenancy(kube: Kube, site_plan: SitePlan) -> list[Miss]:
    """The site's Prometheus confines tenants' monitors (ncp/preflight/prometheus_tenancy.py); where the stack installs
    its own Prometheus stack there is nothing of the site's to check before `pulumi up`."""
    if not site_plan.tenants or site_plan.config.components.telemetry.prometheus_stack.enabled:
        return []
    names = integration_points().prometheus_tenancy
    try:
        prometheuses = kube.custom_objects(names.group, names.version, names.plural)
    except KubeError as error:
        if error.status != 404:  # the CRD itself is a site prerequisite, reported with the others
            raise
        prometheuses = []
    return [Miss("prometheus tenancy", problem, fix) for problem, fix in prometheus_tenancy_problems(prometheuses)]


def image_signatures(kube: Kube, site_plan: SitePlan) -> list[Miss]:
    """Where the stack verifies tenant images by signature, the Sigstore policy-controller's admission webhook is
    installed and selects the namespaces the program opts in (its include label): without it the ClusterImagePolicy
    the program renders verifies nothing."""
    if site_plan.config.components.tenancy.image_signatures is None or not site_plan.tenants:
        return []
    names = integration_points().sigstore
    webhook = kube.validating_webhook_configuration(names.webhook_configuration)
    fix = (f"install the Sigstore policy-controller (its ValidatingWebhookConfiguration {names.webhook_configuration} "
           f"selects namespaces labelled {names.include_label}=true, which the program sets on tenant namespaces)")
    if webhook is None:
        return [Miss("image signatures", f"no ValidatingWebhookConfiguration {names.webhook_configuration}: nothing "
                                         "verifies the signatures of tenant-namespace images", fix)]
    selected = [w for w in webhook.get("webhooks") or [] if w.get("failurePolicy", "Fail") == "Fail" and any(
        e.get("key") == names.include_label and e.get("operator") == "In" and "true" in (e.get("values") or [])
        for e in (w.get("namespaceSelector") or {}).get("matchExpressions") or [])]
    if not selected:
        return [Miss("image signatures", f"ValidatingWebhookConfiguration {names.webhook_configuration} has no webhook "
                                         f"that selects {names.include_label}=true namespaces and fails closed "
                                         "(failurePolicy Fail): opted-in tenant namespaces would go unverified", fix)]
    return []


def run_checks(kube: Kube, site_plan: SitePlan, recording: Recording) -> dict[str, list[Miss]]:
    return {"kubernetes version": kubernetes_version(kube, site_plan),
            "site prerequisite CRDs": crds(kube, site_plan, recording),
            "storage classes": storage_classes(kube, site_plan),
            "GPU nodes and topology labels": gpu_nodes(kube, site_plan),
            "admission plugins": admission(kube, site_plan),
            "gateway egress": gateway_egress(kube, site_plan),
            "prometheus tenancy": prometheus_tenancy(kube, site_plan),
            "image signatures": image_signatures(kube, site_plan)}
