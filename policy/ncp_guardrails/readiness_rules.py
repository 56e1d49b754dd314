"""Promotion gate on RDMA sites: a disaggregated or multi-node endpoint, whose workers use the east-west rails, is
accepted only with passed readiness evidence (NCCL across the rails, storage throughput per tier) for the stack."""
from ncp_guardrails.evidence_index import INDEX_CONFIG, gate_entries, stack_of
from ncp_guardrails.framework import stack_policy
from ncp_guardrails.kube import dgd_services, get, is_dgd, name_of

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"  # Multus: the rails a worker pod attaches


def _uses_rails(props) -> bool:
    """A worker service attaches the rails (Multus networks) or requests an RDMA device."""
    for _, service in dgd_services(props):
        custom = get(service, "resources", "limits", "custom", default={}) or {}
        annotations = get(service, "extraPodMetadata", "annotations", default={}) or {}
        if any(key.startswith("rdma/") for key in custom) or annotations.get(NETWORKS_ANNOTATION):
            return True
    return False


def latest_readiness(entries: list, stack: str):
    """The newest readiness entry of the stack in the evidence index, or None."""
    found = [e for e in entries if e.get("kind") == "readiness" and e.get("stack") == stack]
    return max(found, key=lambda e: e.get("createdAt", ""), default=None)


def _readiness_evidence(args, report):
    # RA: Network And Storage Readiness View: "need independent evidence before a disaggregated inference profile"
    evidence = gate_entries(args, "requirePassedReadiness", report)
    if evidence is None:
        return
    for resource in args.resources:
        if not (is_dgd(resource.props) and _uses_rails(resource.props)):
            continue
        stack = stack_of(resource.urn)
        latest = latest_readiness(evidence.trusted, stack)
        if latest is None:
            refused = evidence.refusals(stack=stack, kind="readiness")
            report(f"{name_of(resource.props)}: its workers use the RDMA rails but {evidence.index} has no "
                   "signed and fresh readiness record for the stack (NCCL across the rails, storage throughput per "
                   "tier)" + (f"; refused: {'; '.join(refused)}" if refused else ""), resource.urn)
        elif latest.get("passed") is not True:
            report(f"{name_of(resource.props)}: the latest readiness record {latest.get('runId')} "
                   f"({latest.get('record')}) failed", resource.urn)


readiness_evidence = stack_policy(
    "readiness-evidence",
    "Promotion to prod of an endpoint whose workers use the RDMA rails needs the stack's latest readiness record "
    "(NCCL all_reduce across the rails, fio read per storage tier) to have passed.",
    "Network And Storage Readiness View; Networking",
    "Run the readiness Jobs in ncp-readiness (nccl-tests, fio-<tier>) with `ncp evidence readiness-run "
    "--stack <stack> --kubeconfig <file> --outputs <dir>` and commit sites/<stack>/evidence/index.yaml with the "
    "record.",
    _readiness_evidence,
    config={"requirePassedReadiness": {"type": "boolean", "default": False}, **INDEX_CONFIG},
)

POLICIES = [readiness_evidence]
