"""Guardrails on the platform as a whole: hardware profile and evidence, chart pins, GPU sharing, fabric for
disaggregation."""
import yaml

from ncp_guardrails.data import allowlists, names, pins
from ncp_guardrails.framework import stack_policy
from ncp_guardrails.kube import (
    DGD_QUEUE_ANNOTATION, dgd_services, environment, find_record, get, is_dgd, name_of,
)
from ncp_guardrails.releases import chart_name, deployed, identified


def _hardware_profile_and_evidence(args, report):
    record = find_record(args.resources)
    if record is None:
        report("the stack has no baseline record (ConfigMap ncp-baseline-record): it names no hardware profile")
        return
    if not get(record, "hardwareProfile", "name"):
        report("the baseline record names no hardware profile")
    if not get(record, "validationEvidence", "path"):
        report("the baseline record has no validation evidence path (site.validationEvidence)")


hardware_profile_and_evidence = stack_policy(
    "hardware-profile-and-evidence",
    "Every deployment names a hardware profile and records where its validation evidence is kept.",
    "Architecture Decision Guardrails: Hardware profile; Validation Methodology",
    "Set ncp-inference:site.hardwareProfile and ncp-inference:site.validationEvidence.{path,owner}.",
    _hardware_profile_and_evidence,
)


def _release_source(props) -> str:
    chart = get(props, "chart", default="")
    return chart if chart.startswith("oci://") else get(props, "repositoryOpts", "repo", default="")


def _origin(chart: str, repository: str) -> str:
    return f"{repository} chart {chart}" if repository else chart


def _from_mirror(props, mirror) -> bool:
    """Whether the chart is read from the site's recorded chart mirror (same chart, same pinned version)."""
    return bool(mirror) and get(props, "chart", default="").startswith(f"./{str(mirror).strip('/')}/")


# RA: Known Limitations: "unless the partner records it as a local decision outside the reference stack"
# RA: Design Alternatives And Tradeoffs: "ecosystem tools should be recorded as implementation decisions"
def _charts_pinned(args, report):
    record = find_record(args.resources) or {}
    recorded = {d.get("component") for d in get(record, "localDecisions", default=[]) or []}
    mirror = get(record, "chartMirror")
    repositories = allowlists()["chartRepositories"]
    for key, release in identified(args.resources):
        props = release.props
        chart, version = get(props, "chart", default=""), get(props, "version", default="")
        if key is None:
            report(f"chart {chart_name(chart)!r} is not in the compatibility matrix", release.urn)
            continue
        pin, name = pins()[key], f"{chart_name(chart)} ({key})"
        if version != pin["version"]:
            report(f"chart {name} is at version {version!r}; the compatibility matrix pins {pin['version']}",
                   release.urn)
        if _from_mirror(props, mirror):
            continue
        origin = _origin(chart, get(props, "repositoryOpts", "repo", default=""))
        if origin != _origin(pin["chart"], pin["repository"]):
            report(f"chart {name} is installed from {origin}; the compatibility matrix pins "
                   f"{_origin(pin['chart'], pin['repository'])} (or record the site's chartMirror)", release.urn)
        elif not any(_release_source(props).startswith(prefix) for prefix in repositories):
            if not pin["localDecision"]:
                report(f"chart {name} comes from {_release_source(props)}, outside the NVIDIA allowlist", release.urn)
            elif key not in recorded:
                report(f"chart {name} is a non-NVIDIA component but the stack records no local decision for it",
                       release.urn)


charts_pinned = stack_policy(
    "charts-pinned",
    "Every Helm chart is pinned to the compatibility matrix; charts from outside the NVIDIA allowlist only as a "
    "recorded local decision.",
    "Compatibility Matrix; Architecture Decision Guardrails: External ecosystem tools",
    "Take chart and version from data/compatibility-matrix.yaml; record non-NVIDIA tools in localDecisions.",
    _charts_pinned,
)


def _gpu_operator_values(resources):
    release = deployed(resources).get("gpuOperator")
    return None if release is None else get(release.props, "values", default={}) or {}


def _time_slicing(values) -> bool:
    for document in (get(values, "devicePlugin", "config", "data", default={}) or {}).values():
        if get(yaml.safe_load(document) or {}, "sharing", "timeSlicing"):
            return True
    return False


def _mig_profiles(values) -> set:
    data = get(values, "migManager", "config", "data", "config.yaml")
    if not data:
        return set()
    profiles = set()
    for entries in (get(yaml.safe_load(data), "mig-configs", default={}) or {}).values():
        for entry in entries:
            profiles |= set((entry.get("mig-devices") or {}).keys())
    return profiles


# RA: Compute Service: "Smaller services may use MIG or virtualized GPU paths, but those choices must be validated"
def _gpu_sharing(args, report):
    values = _gpu_operator_values(args.resources)
    record = find_record(args.resources) or {}
    if values is None:
        return
    serving = any(is_dgd(r.props) for r in args.resources)
    if _time_slicing(values) and environment(record) == "prod" and serving:
        if not get(record, "gpuSharing", "validationEvidence"):
            report("time-sliced GPU sharing under latency-sensitive LLM serving in prod needs recorded validation "
                   "evidence (components.gpuOperator.timeSlicing.validationEvidence)")
    mig_requested = bool(get(values, "mig", "strategy")) or bool(_mig_profiles(values))
    if mig_requested:
        mig = get(record, "hardwareProfile", "gpu", "mig", default={}) or {}
        if not mig.get("supported"):
            report(f"MIG is configured but hardware profile {get(record, 'hardwareProfile', 'name')!r} "
                   "is not MIG-capable")
        unknown = _mig_profiles(values) - set(mig.get("profiles") or [])
        if mig.get("supported") and unknown:
            report(f"MIG profiles {sorted(unknown)} are not accepted profiles of the hardware profile")


gpu_sharing = stack_policy(
    "gpu-sharing",
    "No time-sliced GPU sharing for latency-sensitive LLM serving in prod without validation evidence; MIG only on "
    "MIG-capable profiles with their accepted MIG profiles.",
    "Performance Requirements: GPU Exposure",
    "Serve production LLMs on whole GPUs or MIG, or record validation evidence for time-slicing; use a MIG layout "
    "from the hardware profile's accepted list.",
    _gpu_sharing,
)


def _disaggregated(props) -> bool:
    return any(get(s, "subComponentType") in ("prefill", "decode") or get(s, "multinode")
               for _, s in dgd_services(props))


# RA: Networking: "For disaggregated serving, network design must be reviewed together with serving topology."
# RA: Design Alternatives And Tradeoffs: "large disaggregated services may require high-performance east-west paths"
def _disaggregation_fabric(args, report):
    record = find_record(args.resources) or {}
    components = deployed(args.resources)
    fabric = get(record, "hardwareProfile", "fabric", "eastWest", default="none")
    for resource in args.resources:
        if not (is_dgd(resource.props) and _disaggregated(resource.props)):
            continue
        endpoint = name_of(resource.props)
        if fabric not in names()["names"]["rdmaFabrics"]:
            report(f"{endpoint}: disaggregated or multi-node serving needs an east-west RDMA profile; the hardware "
                   f"profile's fabric is {fabric!r}", resource.urn)
        if "networkOperator" not in components:
            report(f"{endpoint}: disaggregated serving needs the Network Operator, which is not deployed", resource.urn)
        # RA: Kubernetes Integration Only: "Add Grove when workloads require coordinated multi-pod placement."
        if "grove" not in components:
            report(f"{endpoint}: disaggregated serving needs Grove gang scheduling, which is not deployed",
                   resource.urn)
        # RA: GenAI/LLM Inference Only: "Grove, and KAI Scheduler when the service needs multi-node scale"
        if not get(resource.props, "metadata", "annotations", DGD_QUEUE_ANNOTATION):
            report(f"{endpoint}: disaggregated serving must schedule through a KAI queue "
                   f"({DGD_QUEUE_ANNOTATION} annotation)", resource.urn)


disaggregation_fabric = stack_policy(
    "disaggregation-fabric",
    "Multi-node or disaggregated serving needs an east-west RDMA profile, the Network Operator and gang/topology "
    "scheduling.",
    "Networking; Architecture Decision Guardrails: Serving topology",
    "Serve the endpoint aggregated, or move it to an RDMA profile with the Network Operator and Grove deployed.",
    _disaggregation_fabric,
)

POLICIES = [hardware_profile_and_evidence, charts_pinned, gpu_sharing, disaggregation_fabric]
