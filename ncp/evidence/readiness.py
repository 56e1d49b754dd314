"""Write the readiness evidence of a site: on RDMA profiles the NCCL test across all rails and over each rail alone,
and on every profile with readiness thresholds the fio read per storage tier, judged by the hardware profile's
thresholds (acceptance.readiness).

    ncp evidence readiness --stack prod --outputs <dir> [--evidence-dir <dir>] [--index <file>] [--run-id <id>]

<outputs> holds what the readiness Jobs printed (`kubectl logs job/<name> -n ncp-readiness > <file>`):
    nccl-all-reduce.log       the nccl-tests Job's log (index 0 prints the all-rails result, then each rail's after
                              its `# ncp-rail <interface>` line); RDMA profiles only
    fio-<tier>.json           each fio-<tier> Job's log (fio --output-format=json), tier as in the stack config
Writes <evidence dir>/readiness/<run id>.json (signed with the site key) + .md, .junit.xml, .ctrf.json and appends a
signed entry to the evidence index (kind readiness, expiring after validationEvidence.ttlDays.readiness), which
the prod promotion gate reads (policy readiness-evidence) before it accepts a disaggregated endpoint.
Exit codes: 0 passed; 1 a check failed or is missing; 2 bad input (config, outputs); 3 an internal error.
"""
# RA: Network And Storage Readiness View: "need independent evidence before a disaggregated inference profile"
import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field

from ncp.acceptance.check import ExportError
from ncp.acceptance.readiness import judge
from ncp.evidence.cli import evidence_store, index_location
from ncp.evidence.collect import OutputsError
from ncp.evidence.ci_reports import Case
from ncp.evidence.owners import check_owner
from ncp.evidence.record import SCHEMA_VERSION, CheckRow, append_index, signed_entry, write_signed
from ncp.evidence.signing import Signer, SigningKeyError
from ncp.evidence.store import StoreError
from ncp.plan.errors import ConfigError
from ncp.plan.readiness import readiness_plan
from ncp.plan.site_plan import SitePlan
from ncp.plan.sources import plan_from_stack_file
from ncp.plan.strict import StrictModel

# The owners of the two kinds of check (data/evidence-owners.yaml)
FABRIC_LAYER, STORAGE_LAYER = check_owner("readiness", "nccl"), check_owner("readiness", "storageRead")


class ReadinessRecord(StrictModel):
    schema_version: int = SCHEMA_VERSION
    kind: Literal["readiness"] = "readiness"
    run_id: str
    created_at: str
    stack: str
    site: str
    site_environment: str
    hardware_profile: str
    fabric: str
    rails: list[str]
    nccl_nodes: int
    images: dict[str, str]
    thresholds: dict
    outputs: str
    checks: list[CheckRow]
    passed: bool
    failing_layers: list[str] = Field(default_factory=list)
    signature: Optional[dict] = Field(default=None, description="ed25519 over the rest (ncp/evidence/signing.py)")


def build_record(stack: str, site_plan: SitePlan, outputs: Path, run_id: Optional[str] = None,
                 now: Optional[datetime] = None) -> ReadinessRecord:
    readiness = readiness_plan(site_plan)
    if readiness is None:
        raise OutputsError(f"Pulumi.{stack}.yaml: hardware profile {site_plan.profile.name} sets no readiness "
                           "thresholds (readiness.storageReadGBps, and ncclBusBandwidthGBps with an RDMA fabric)")
    now = now or datetime.now(timezone.utc)
    profile = site_plan.profile
    rows = judge(profile.readiness, readiness.tier_names, outputs, readiness.rails, profile.rail_bus_bandwidth_gbps)
    layers = list(dict.fromkeys(check_owner("readiness", row.metric) for row in rows if not row.ok))
    storage_image = site_plan.config.components.serving.validation.storage_image
    nccl_image = {"ncclTests": site_plan.matrix.workload("ncclTests").images["ncclTests"]} if readiness.fabric else {}
    return ReadinessRecord(
        run_id=run_id or now.strftime("%Y%m%dT%H%M%SZ"), created_at=now.isoformat(timespec="seconds"), stack=stack,
        site=site_plan.site.name, site_environment=site_plan.environment.value, hardware_profile=profile.name,
        fabric=_fabric(site_plan) if readiness.fabric else "no RDMA east-west fabric: storage readiness only",
        rails=list(readiness.rails), nccl_nodes=readiness.nccl_nodes or 0,
        images={**nccl_image, **({"fio": storage_image} if storage_image else {})},
        thresholds=readiness.thresholds, outputs=str(outputs),
        checks=[CheckRow(**row.__dict__) for row in rows], passed=not layers, failing_layers=layers)


def _fabric(site_plan: SitePlan) -> str:
    fabric = site_plan.profile.fabric
    return (f"{fabric.nics_per_node}x {fabric.nic_model or 'NIC'} {fabric.nic_speed_gbps} Gb/s "
            f"{fabric.east_west.value} ({fabric.rdma_exposure.value if fabric.rdma_exposure else 'no RDMA'})")


def render_markdown(record: ReadinessRecord) -> str:
    lines = [f"# Readiness evidence: {record.site} ({record.site_environment})", "",
             f"**{'PASSED' if record.passed else 'FAILED'}** · run `{record.run_id}` · {record.created_at} · stack "
             f"`{record.stack}` · profile {record.hardware_profile}", "",
             f"Fabric {record.fabric}; rails {', '.join(record.rails)}; NCCL test across {record.nccl_nodes} nodes.",
             f"Images: {', '.join(f'{k} `{v}`' for k, v in record.images.items())}. Outputs `{record.outputs}`.", ""]
    if record.failing_layers:
        lines += ["Failing layers: " + ", ".join(record.failing_layers), ""]
    lines += ["| Check | Measured | Threshold | Result |", "|---|---|---|---|"]
    lines += [f"| {r.metric} | {'-' if r.measured is None else f'{r.measured:.4g}'} {r.unit} | {r.threshold} | "
              f"{r.status} |" for r in record.checks]
    if record.signature:
        lines += ["", f"Signed ({record.signature.get('algorithm')}, key `{record.signature.get('keyId')}`): "
                      "`ncp evidence verify` checks it."]
    return "\n".join(lines) + "\n"


def write_record(record: ReadinessRecord, store, signer: Signer) -> tuple[str, str]:
    """<store>/readiness/<run id>.{json,md,junit.xml,ctrf.json}; returns the JSON's location and sha256."""
    cases = [Case("readiness", row.metric, row.status, check_owner("readiness", row.metric),
                  f"measured {row.measured} {row.unit}, threshold {row.threshold} {row.detail}".strip())
             for row in record.checks]
    return write_signed(store, f"readiness/{record.run_id}", record.model_dump(by_alias=True, mode="json"),
                        lambda signature: render_markdown(record.model_copy(update={"signature": signature})),
                        cases, f"readiness {record.site}", signer)


def index_entry(record: ReadinessRecord, location: str, sha256: str, signer: Signer) -> dict:
    return signed_entry({"stack": record.stack, "runId": record.run_id, "createdAt": record.created_at,
                         "passed": record.passed, "hardwareProfile": record.hardware_profile},
                        "readiness", location, sha256, signer)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ncp evidence readiness", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--outputs", required=True, type=Path, help="the readiness Jobs' outputs")
    parser.add_argument("--evidence-dir", help="local directory or s3://bucket/prefix")
    parser.add_argument("--index", help="evidence index file or s3:// object (default as ncp evidence)")
    parser.add_argument("--run-id")
    args = parser.parse_args(argv)
    try:
        site_plan = plan_from_stack_file(args.stack)
        target = evidence_store(args, site_plan)
        signer = Signer.load(site_plan.site.name, site_plan.site.validation_evidence)
        record = build_record(args.stack, site_plan, args.outputs, args.run_id)
        path, sha256 = write_record(record, target, signer)
        append_index(index_entry(record, path, sha256, signer), index_location(args, target))
    except (ConfigError, OutputsError, ExportError, StoreError, SigningKeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failing = f" ({', '.join(record.failing_layers)})" if record.failing_layers else ""
    print(f"readiness: {'PASSED' if record.passed else 'FAILED'}{failing} -> {path} (+ .md)")
    return 0 if record.passed else 1
