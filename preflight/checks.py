"""Each check reads the cluster through the API server and returns its misses, each with the fix."""
from dataclasses import dataclass

from kube_client import Kube
from offline.recorder import Recording
from plan.catalog import integration_points
from plan.site_plan import SitePlan


@dataclass(frozen=True)
class Miss:
    check: str
    problem: str
    fix: str


def kubernetes_version(kube: Kube, site_plan: SitePlan) -> list[Miss]:
    version = kube.call("GET", "/version")
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
        served = {r["kind"] for r in (kube.get(f"/apis/{api_version}") or {}).get("resources", [])}
        for kind in sorted(kinds - served):
            misses.append(Miss("site prerequisite CRDs", f"{api_version} {kind} is not served by the cluster",
                               f"install the CRD that defines {kind} ({api_version}) before `pulumi up` (see "
                               "`python -m scaffold.checklist`, Cluster prerequisites)"))
    return misses


def _camel(tier: str) -> str:
    head, *rest = tier.split("-")
    return head + "".join(part.capitalize() for part in rest)


def storage_classes(kube: Kube, site_plan: SitePlan) -> list[Miss]:
    storage = site_plan.config.components.serving.storage
    present = {item["metadata"]["name"] for item in kube.call("GET", "/apis/storage.k8s.io/v1/storageclasses")["items"]}
    return [Miss("storage classes", f"StorageClass {tier.storage_class!r} ({name}) does not exist",
                 f"create it, or set ncp-inference:components.serving.storage.{_camel(name)}.storageClass to an "
                 "existing class")
            for name, tier in (storage.named() if storage else []) if tier.storage_class not in present]


def gpu_nodes(kube: Kube, site_plan: SitePlan) -> list[Miss]:
    label = integration_points().gpu.product_label
    products = site_plan.gpu_node_products
    nodes = [n for n in kube.call("GET", "/api/v1/nodes")["items"]
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


def run_checks(kube: Kube, site_plan: SitePlan, recording: Recording) -> dict[str, list[Miss]]:
    return {"kubernetes version": kubernetes_version(kube, site_plan),
            "site prerequisite CRDs": crds(kube, site_plan, recording),
            "storage classes": storage_classes(kube, site_plan),
            "GPU nodes and topology labels": gpu_nodes(kube, site_plan)}
