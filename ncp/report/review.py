"""Gather the release review of a stack as one JSON-ready dict (rendered by report.render and report.picture)."""
# RA: Security And Compliance: "container image origins"
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from ncp.evidence.record import index_file, latest_per_endpoint
from ncp.evidence.signing import trusted_keys_path
from ncp.evidence.verify import TrustedKeysError, verify_index
from ncp.offline.policy_check import PACK_DIR, evaluate, read_pack_config
from ncp.readmodel.recorder import Recording
from ncp.plan.catalog import load_disposition
from ncp.plan.site_plan import SitePlan
from ncp.ratrace.matrix import build
from ncp.report.sbom import SBOM_UNKNOWN, disposition_items, sbom_facts

PROMOTION_CONFIG = PACK_DIR / "config" / "prod-promotion.json"


def _images_in(value, found: set) -> None:
    """Every container image reference in a resource's inputs (pod specs, DGD services, Helm values strings)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "image" and isinstance(item, str) and ("/" in item or ":" in item):
                found.add(item)
            else:
                _images_in(item, found)
    elif isinstance(value, list):
        for item in value:
            _images_in(item, found)


def image_row(reference: str) -> dict:
    name, _, digest = reference.partition("@")
    repository, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    first = repository.split("/", 1)[0]
    # The reference grammar: the first path component is a registry host when it has a '.' or ':' or is localhost.
    registry = first if "/" in repository and ("." in first or ":" in first or first == "localhost") else "docker.io"
    return {"reference": reference, "origin": registry, "repository": repository, "tag": tag,
            "digest": digest or None, "pinnedByDigest": bool(digest),
            "sbom": sbom_facts().describe(repository) or SBOM_UNKNOWN}


def _workload_deployed(images: dict, recorded: set):
    """True when a recorded image is one of the workload's pinned images; None when it pins none (site-built)."""
    if not images:
        return None
    repositories = {image.rsplit(":", 1)[0] for image in images.values()}
    return any(reference.split("@")[0].rsplit(":", 1)[0] in repositories for reference in recorded)


def _components(site_plan: SitePlan, recording: Recording, images: set) -> list[dict]:
    deployed = recording.outputs.get("versions", {})
    rows = []
    for name, pin in site_plan.matrix.components.items():
        rows.append({"component": name, "displayName": pin.display_name, "layer": pin.layer, "kind": "chart",
                     "chart": pin.chart, "version": pin.version, "raMatrix": pin.ra_matrix,
                     "deviation": pin.deviation, "source": pin.source, "deployed": name in deployed,
                     "pinnedImages": pin.images, "localDecision": pin.local_decision is not None})
    for name, workload in site_plan.matrix.workloads.items():
        rows.append({"component": name, "displayName": workload.display_name, "layer": workload.layer,
                     "kind": "images", "chart": None, "version": workload.version, "raMatrix": workload.ra_matrix,
                     "deviation": workload.deviation,
                     "source": workload.source, "deployed": _workload_deployed(workload.images, images),
                     "pinnedImages": workload.images, "localDecision": False})
    return rows


def _local_decisions(site_plan: SitePlan) -> list[dict]:
    found = [{"decision": d.decision, "reason": d.reason, "recordedIn": "stack config localDecisions"}
             for d in site_plan.config.local_decisions]
    found += [{"decision": f"{pin.display_name}: {pin.local_decision.decision}", "reason": pin.local_decision.reason,
               "recordedIn": f"compatibility matrix ({name})"}
              for name, pin in site_plan.matrix.components.items() if pin.local_decision]
    return found


# RA: Operations And Lifecycle Management: "and the rollback decision for each service profile"
def _disposition(site_plan: SitePlan) -> list[dict]:
    matrix = load_disposition()
    rows = []
    for endpoint_plan in site_plan.endpoints:
        endpoint = endpoint_plan.endpoint
        verdict = matrix.model_classes[endpoint.model.model_class].backends[endpoint.backend]
        rows.append({"endpoint": endpoint.name, "modelClass": endpoint.model.model_class, "backend": endpoint.backend,
                     "environments": verdict.environments, "acceptedGaps": verdict.accepted_gaps,
                     "blockingGaps": verdict.blocking_gaps, "rollback": verdict.rollback})
    return rows


def _detail(violation) -> str:
    """The violation's own message without the policy description the analyzer puts in front of it."""
    return violation.message.removeprefix(violation.description).strip()


def _policies(recording: Recording, config_path: Path, index: Optional[Path] = None,
              trusted_keys: Optional[Path] = None) -> dict:
    config = read_pack_config(config_path)
    if index is not None:  # the promotion gates read the same evidence index and keys as the review's evidence column
        for gate in ("promotion-evidence", "readiness-evidence"):
            config[gate] = {**config.get(gate, {}), "evidenceIndex": str(index),
                            **({"trustedKeys": str(trusted_keys)} if trusted_keys else {})}
    name, version, violations = evaluate(recording, config)
    return {"pack": f"{name}@v{version}", "config": config_path.name,
            "violations": [{"policy": v.policy, "level": v.level, "message": _detail(v)} for v in violations]}


def _trust(site_plan: SitePlan, stack: str, entries: dict[str, dict]) -> dict[str, str]:
    """Per endpoint, whether its latest entry would be believed by the promotion gate (signed by a trusted key,
    unchanged, fresh) or why not."""
    keys = trusted_keys_path(site_plan.site.validation_evidence, stack)
    text = keys.read_text() if keys.is_file() else None
    try:
        judged = verify_index(list(entries.values()), text, str(keys))
    except TrustedKeysError as error:
        return {name: f"not verifiable: {error}".splitlines()[0] for name in entries}
    return {entry["endpoint"]: "verified" if problem is None else f"refused: {problem}" for entry, problem in judged}


def _endpoints(site_plan: SitePlan, recording: Recording, index: Path) -> list[dict]:
    evidence = latest_per_endpoint(recording.stack, index)
    trust = _trust(site_plan, recording.stack, evidence)
    rows = []
    for endpoint_plan in site_plan.endpoints:
        endpoint = endpoint_plan.endpoint
        rows.append({"endpoint": endpoint.name, "tenant": endpoint.tenant, "mode": endpoint_plan.mode,
                     "gpus": sum(g.replicas * g.gpus_per_worker for g in endpoint_plan.workers),
                     "model": f"{endpoint.model.source}@{endpoint.model.revision}", "backend": endpoint.backend,
                     "sizing": endpoint.sizing, "latestEvidence": evidence.get(endpoint.name),
                     "evidenceTrust": trust.get(endpoint.name, "")})
    for service_plan in site_plan.inference_services:  # the traditional ML path: Triton serving a built engine
        service, slice_ = service_plan.service, service_plan.service.gpus.mig_profile
        rows.append({"endpoint": service.name, "tenant": service.tenant,
                     "mode": "triton" + (f", MIG {slice_}" if slice_ else ""), "gpus": service_plan.gpu_units,
                     "model": f"{service.artifact.source}@{service.artifact.revision}", "backend": "triton",
                     "sizing": "-", "latestEvidence": evidence.get(service.name),
                     "evidenceTrust": trust.get(service.name, "")})
    return rows


def _site_facts(site_plan: SitePlan) -> dict:
    """What the site provides around the program, for the picture: gateway and routes, the model source route, the
    monitoring release, the GPU nodes per pool and the east-west rails."""
    settings = site_plan.config.components
    staging = settings.serving.model_staging
    gateway = settings.serving.gateway
    pooled = sum(t.node_pool.nodes for t in site_plan.tenants if t.node_pool)
    return {
        "gateway": None if gateway is None or not site_plan.routes else {
            "name": gateway.name, "namespace": settings.tenancy.gateway_namespace,
            "routes": [{"name": r.name, "tenant": r.tenant, "hostnames": list(r.hostnames),
                        "backends": [{"endpoint": b.pool, "weight": b.weight} for b in r.backends]}
                       for r in site_plan.routes]},
        "modelSource": (f"model mirror {staging.mirror.url}" if staging.mirror else
                        f"proxy {staging.proxy.url}" if staging.proxy else "direct HTTPS to the model source"),
        "monitoring": {"namespace": settings.tenancy.monitoring_namespace,
                       "selector": dict(settings.telemetry.prometheus_selector_labels)},
        "sharedNodes": site_plan.site.gpu_nodes - pooled,
        "rails": [{"interface": rail.interface, "subnet": rail.subnet} for rail in site_plan.rails],
    }


# RA: Visual Architecture Views: "Each view should be reviewed with the component matrix, source evidence"
def build_review(site_plan: SitePlan, recording: Recording, ra_text: Optional[str], index: Optional[Path] = None,
                 ra_text_missing: str = "") -> dict:
    """ra_text None: the traceability section says it is not available (and why: `ra_text_missing`). index: the
    evidence index, by default the stack's own (sites/<stack>/evidence/index.yaml)."""
    index = index or index_file(recording.stack)
    images: set = set()
    for registration in recording.resources:
        _images_in(registration.inputs, images)
    environment = site_plan.environment.value
    policies = {environment: _policies(recording, PACK_DIR / "config" / f"{environment}.json")}
    if environment == "prod":
        policies["promotion"] = _policies(recording, PROMOTION_CONFIG, index,
                                          trusted_keys_path(site_plan.site.validation_evidence, recording.stack))
    if ra_text is None:
        traceability = {"available": False, "reason": ra_text_missing, "rows": [], "danglingReferences": []}
    else:
        rows, dangling = build(ra_text)
        traceability = {"available": True, "rows": [row.as_dict() for row in rows], "danglingReferences": dangling}
    image_rows = [image_row(reference) for reference in sorted(images)]
    return {
        "stack": recording.stack, "site": site_plan.site.name, "environment": environment,
        "hardwareProfile": site_plan.profile.name, "gpuNodes": site_plan.site.gpu_nodes,
        "queueCapacityUnits": site_plan.gpu_capacity, "kubernetesVersion": site_plan.kubernetes_version,
        "kubernetesSupported": site_plan.kubernetes_version in site_plan.matrix.kubernetes.supported_versions,
        "components": _components(site_plan, recording, images),
        "images": image_rows,
        "dispositionItems": disposition_items(image_rows),
        "localDecisions": _local_decisions(site_plan),
        "backendDisposition": _disposition(site_plan),
        "policies": policies,
        "gpus": site_plan.gpu_count.describe(), "gpuCount": asdict(site_plan.gpu_count),
        "tenants": [{"name": t.name, "namespace": site_plan.tenant_namespace(t), "gpuQuota": t.gpu_quota,
                     "gpuLimit": t.gpu_limit, "unit": site_plan.gpu_unit(t.name),
                     "nodePool": t.node_pool.nodes if t.node_pool else None} for t in site_plan.tenants],
        "siteFacts": _site_facts(site_plan),
        "endpoints": _endpoints(site_plan, recording, index),
        "traceability": traceability,
    }
