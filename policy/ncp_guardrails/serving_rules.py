"""Guardrails on serving: KV-routing telemetry, storage tiers, model provenance, acceptance evidence, promotion."""
import json
from typing import Optional

from ncp_guardrails.data import allowlists, names
from ncp_guardrails.evidence_index import INDEX_CONFIG, gate_entries, stack_of
from ncp_guardrails.framework import resource_policy, stack_policy
from ncp_guardrails.kube import (
    COMPONENT_LABEL, ENDPOINT_LABEL, STORAGE_TIER_LABEL, WORKLOADS, dgd_services, get, is_dgd, is_inference_server,
    images, is_inference_workload, kind_of, labels_of, name_of, of_kind, plain, pod_specs,
)

# Dynamo metric names (the program's data/telemetry-signals.yaml, through program.yaml): the signals that prove KV
# routing helps.
KV_HIT_RATE, QUEUE_DEPTH = names()["signals"]["kvHitRate"], names()["signals"]["queueDepth"]
ROUTER_MODE_ENV = names()["names"]["routerModeEnv"]
MODEL_SOURCE, MODEL_REVISION, THRESHOLDS, EVIDENCE_KEY = (
    names()["annotations"][key] for key in ("modelSource", "modelRevision", "acceptanceThresholds", "evidenceKey"))
FLOATING_REVISIONS = {"", "main", "master", "latest", "head"}


def _kv_routed(props) -> bool:
    for _, service in dgd_services(props):
        if get(service, "componentType") != "frontend":
            continue
        envs = {e.get("name"): e.get("value") for e in get(service, "envs", default=[]) or []}
        args = " ".join(get(service, "extraPodSpec", "mainContainer", "args", default=[]) or [])
        if envs.get(ROUTER_MODE_ENV) == "kv" or "--router-mode kv" in args or "--router-mode=kv" in args:
            return True
    return False


# RA: Cloud-Native Inference Gateway Integration: "before making cache-aware routing a production default"
def _kv_routing_telemetry(args, report):
    rules_text = {}
    for rule in of_kind(args.resources, "PrometheusRule"):
        endpoint = labels_of(rule.props).get(ENDPOINT_LABEL)
        rules_text[endpoint] = rules_text.get(endpoint, "") + json.dumps(plain(get(rule.props, "spec", default={})))
    monitored = {labels_of(m.props).get(ENDPOINT_LABEL) for m in of_kind(args.resources, "PodMonitor")}
    for resource in args.resources:
        if not (is_dgd(resource.props) and _kv_routed(resource.props)):
            continue
        endpoint = name_of(resource.props)
        text = rules_text.get(endpoint, "")
        missing = [metric for metric in (KV_HIT_RATE, QUEUE_DEPTH) if metric not in text]
        if missing:
            report(f"{endpoint}: KV-aware routing is on but no PrometheusRule for the endpoint tracks {missing}",
                   resource.urn)
        if endpoint not in monitored:
            report(f"{endpoint}: KV-aware routing is on but no PodMonitor scrapes the endpoint", resource.urn)


kv_routing_telemetry = stack_policy(
    "kv-routing-telemetry",
    "KV-aware routing is deployed only with serving telemetry that shows cache hit rate and queue depth.",
    "Cloud-Native Inference Gateway Integration: KV-aware routing; Telemetry And Observability",
    "Deploy the endpoint through the Serving layer, which adds its PodMonitor and serving PrometheusRule.",
    _kv_routing_telemetry,
)


def _tiered_storage(props):
    """(tier, storage class) of a StorageClass, a claim, or the ephemeral claim templates in any pod spec."""
    tier = labels_of(props).get(STORAGE_TIER_LABEL)
    if tier and kind_of(props) == "StorageClass":
        yield tier, name_of(props)
    elif tier and kind_of(props) == "PersistentVolumeClaim":
        yield tier, get(props, "spec", "storageClassName")
    for _, spec in pod_specs(props):
        for volume in get(spec, "volumes", default=[]) or []:
            template = get(volume, "ephemeral", "volumeClaimTemplate", default={}) or {}
            template_tier = labels_of(template).get(STORAGE_TIER_LABEL)
            if template_tier:
                yield template_tier, get(template, "spec", "storageClassName")


# RA: Storage: "distinguish persistent model artifact storage from ephemeral cache and from telemetry retention"
def _storage_tiers(args, report):
    tiers_by_class: dict = {}
    for resource in args.resources:
        for tier, storage_class in _tiered_storage(resource.props):
            tiers_by_class.setdefault(storage_class, set()).add(tier)
    for storage_class, tiers in sorted(tiers_by_class.items()):
        if len(tiers) > 1:
            report(f"storage class {storage_class!r} serves several storage tiers: {sorted(tiers)}")


storage_tiers = stack_policy(
    "storage-tiers",
    "Model artifacts, model cache, KV offload, benchmark output and telemetry retention never share a storage "
    "class or claim.",
    "Storage; Data Center Architecture: Storage Domain",
    f"Give each tier its own storage class (components.storage) and label claims with {STORAGE_TIER_LABEL}.",
    _storage_tiers,
)


# RA: Security And Compliance: "Model artifact sources should have access controls, provenance checks"
def _model_provenance(args, report):
    props = args.props
    staged = (is_dgd(props) or is_inference_workload(props)
              or labels_of(props).get(COMPONENT_LABEL) == WORKLOADS["modelStaging"])
    if not staged:
        return
    annotations = get(props, "metadata", "annotations", default={}) or {}
    revision, source = annotations.get(MODEL_REVISION), annotations.get(MODEL_SOURCE)
    if revision is None or str(revision).lower() in FLOATING_REVISIONS:
        report(f"{name_of(props)}: model revision {revision!r} is not pinned (use a commit or immutable tag)")
    sources = allowlists()["modelSources"]
    if not source or not any(str(source).startswith(prefix) for prefix in sources):
        report(f"{name_of(props)}: model source {source!r} is not allowlisted ({', '.join(sources)})")


model_provenance = resource_policy(
    "model-provenance",
    "Serving and model staging name a pinned model revision from an allowlisted source.",
    "Isolation And Security: Security And Compliance (model artifact provenance)",
    "Set the endpoint's model.revision to a commit or immutable tag and model.source to an allowlisted URI.",
    _model_provenance,
)


# RA: Performance Requirements: "validate performance for each accepted service profile"
def _acceptance_evidence(args, report):
    if not (args.get_config() or {}).get("requireAcceptance"):
        return
    jobs = of_kind(args.resources, "Job")
    benchmarks = {labels_of(j.props).get(ENDPOINT_LABEL): j for j in jobs
                  if labels_of(j.props).get(COMPONENT_LABEL) == WORKLOADS["benchmark"]}
    for resource in args.resources:
        if not (is_dgd(resource.props) or is_inference_server(resource.props)):
            continue
        endpoint = name_of(resource.props)
        job = benchmarks.get(endpoint)
        if job is None:
            report(f"{endpoint}: no AIPerf benchmark Job for the endpoint", resource.urn)
        elif not get(job.props, "metadata", "annotations", THRESHOLDS):
            report(f"{endpoint}: its benchmark Job records no acceptance thresholds ({THRESHOLDS})", job.urn)
    if not any(labels_of(j.props).get(COMPONENT_LABEL) == WORKLOADS["validationSuite"] for j in jobs):
        report("no ISV NCP validation suite Job is defined for the stack")


acceptance_evidence = stack_policy(
    "acceptance-evidence",
    "In prod every endpoint has an AIPerf benchmark Job with acceptance thresholds, and the validation suite Job "
    "exists.",
    "Validation Methodology; Performance Requirements: Serving Performance",
    "Give every endpoint an slo (acceptance thresholds) and keep components.validation enabled.",
    _acceptance_evidence,
    config={"requireAcceptance": {"type": "boolean", "default": False}},
)



def _deployed_key(props) -> Optional[dict]:
    """The like-for-like key the program stamped on a served resource (EVIDENCE_KEY annotation), or None."""
    try:
        key = json.loads(get(props, "metadata", "annotations", EVIDENCE_KEY) or "null")
    except json.JSONDecodeError:
        return None
    return key if isinstance(key, dict) else None


def _key_drift(props, key: dict, sizing_files: dict) -> list[str]:
    """Where the stamped key disagrees with the resource it is on: the image its containers run, the model revision
    annotation, the sizing file's bytes now (`sizingFiles` of the config: path -> sha256, which `ncp check` fills
    from the project; an edit after the key was stamped). Evidence is then matched against a key that is not the
    deployment's, so the gate refuses."""
    drift = []
    running = {image for _, image in images(props)}
    if key.get("image") not in running:
        drift.append(f"image {key.get('image')!r} runs in none of its containers ({', '.join(sorted(running))})")
    revision = get(props, "metadata", "annotations", MODEL_REVISION)
    if revision != key.get("modelRevision"):
        drift.append(f"modelRevision {key.get('modelRevision')!r} but the resource serves {revision!r}")
    current = sizing_files.get(str(key.get("sizingFile", "")))
    if current is not None and current != key.get("sizingSha256"):
        drift.append(f"{key['sizingFile']} changed since the key was stamped (sha256 {key.get('sizingSha256')})")
    return drift


def _differences(wanted: dict, entries: list) -> str:
    """How the newest passed record for the same service differs from the wanted key (why it does not count)."""
    nearest = max(entries, key=lambda e: e.get("createdAt", ""), default=None)
    if nearest is None:
        return ""
    have = nearest.get("key") or {}
    changed = [f"{name} {have.get(name)!r} -> {value!r}" for name, value in wanted.items() if have.get(name) != value]
    return f"; the newest passed record {nearest.get('runId')} was measured under another key: " + ", ".join(changed)


# RA: Design Alternatives And Tradeoffs: "final acceptance still requires measured workload behavior"
def _promotion_evidence(args, report):
    # RA: Architecture Decision Guardrails: "Every deployment needs a named hardware profile and validation evidence."
    # RA: Serving Performance: "Reject comparisons that omit backend version, model artifact revision, network mode"
    evidence = gate_entries(args, "requirePassedEvidence", report)
    if evidence is None:
        return
    config = args.get_config()
    for resource in args.resources:
        if not (is_dgd(resource.props) or is_inference_server(resource.props)):
            continue
        name, stack = name_of(resource.props), stack_of(resource.urn)
        key = _deployed_key(resource.props)
        drift = ["it has none"] if key is None else _key_drift(resource.props, key, config.get("sizingFiles") or {})
        if key is None or drift:
            report(f"{name}: its evidence key ({EVIDENCE_KEY}) is not the deployment's: {'; '.join(drift)}; deploy it "
                   "through the program", resource.urn)
            continue
        passed = [e for e in evidence.trusted if e.get("stack") == stack and e.get("endpoint") == name
                  and e.get("passed") is True]
        for cache_state in config.get("cacheStates") or ["warm"]:
            wanted = {**key, "cacheState": cache_state}
            if any(e.get("key") == wanted for e in passed):
                continue
            refused = evidence.refusals(stack=stack, endpoint=name)
            report(f"{name}: no passed, signed and fresh evidence record in {evidence.index} for "
                   f"{cache_state} cache under its key ({', '.join(f'{k}={v}' for k, v in wanted.items())})"
                   + _differences(wanted, passed)
                   + (f"; refused: {'; '.join(refused)}" if refused else ""), resource.urn)


promotion_evidence = stack_policy(
    "promotion-evidence",
    "Promotion to prod needs, per endpoint and Triton inference service, a passed acceptance evidence record, signed "
    "by a trusted site key and not expired, measured under the same key: model revision, image (digest), sizing "
    "file, GPU driver, Kubernetes version, network mode and cache state (each state of `cacheStates`).",
    "Validation Methodology; Architecture Decision Guardrails",
    "Run the acceptance Jobs on the deployed stack, then `ncp evidence write --stack <stack> --outputs <dir> "
    "--cache-state <cold|warm>` (signs with the site key) and commit sites/<stack>/evidence/index.yaml with the "
    "records; `ncp evidence verify` shows why an entry is refused.",
    _promotion_evidence,
    config={"requirePassedEvidence": {"type": "boolean", "default": False}, **INDEX_CONFIG,
            "sizingFiles": {"type": "object", "additionalProperties": {"type": "string"}, "default": {}},
            "cacheStates": {"type": "array", "items": {"type": "string", "enum": ["cold", "warm"]},
                            "default": ["warm"]}},
)

POLICIES = [kv_routing_telemetry, storage_tiers, model_provenance, acceptance_evidence, promotion_evidence]
