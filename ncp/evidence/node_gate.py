"""Return one node to service through the gate (`ncp node return-to-service`, implemented by `main`).

    ncp node return-to-service --stack prod --node gpu-3 [--kubeconfig <file>] [--context <name>] [--timeout 3600]
                               [--poll 10] [--evidence-dir <dir>] [--index <file>] [--run-id <id>]

Copies the suspended `return-to-service` Job (ncp-readiness) onto the node, waits for it, reads each check's result
line (DCGM diagnostics through the GPU Operator's DCGM, the node's own checks, NCCL over its rails on RDMA profiles,
the serving smoke test) and judges them and the node's labels against the baseline (driver, GPU count, MIG layout,
labels, the profile's readiness threshold). Writes a signed record (kind returnToService) to the evidence store and
its index. Only a pass uncordons the node and removes the quarantine and hold taints; a failure keeps it out and
names the failed layers.
Exit codes: 0 passed and uncordoned; 1 a check failed or is missing (the node stays out); 2 bad input (config,
kubeconfig, an unknown node, the cluster lacks the Job template); 3 an internal error.
"""
import argparse
import re
import sys
from datetime import datetime, timezone
from typing import Callable, Literal, Optional, Sequence

import yaml
from pydantic import Field

from ncp.cli_exit import BAD_INPUT, FAILED_GATE, OK, run_command
from ncp.cluster_api import Kube, KubeError, add_arguments, connect_from
from ncp.evidence.cli import evidence_store, index_location
from ncp.plan.capacity import capacity_report, short_tenants
from ncp.evidence.ci_reports import Case
from ncp.evidence.collect import OutputsError
from ncp.evidence.record import SCHEMA_VERSION, append_index, signed_entry, write_signed
from ncp.evidence.run import run_job, wait
from ncp.evidence.signing import Signer, SigningKeyError
from ncp.evidence.store import StoreError
from ncp.plan.catalog import integration_points
from ncp.plan.break_fix import CHECKS_ANNOTATION, GATE_JOB, RESULT_PREFIX, SHARED_POOL, NodeBaseline, break_fix
from ncp.plan.errors import ConfigError
from ncp.plan.layers import READINESS_NAMESPACE
from ncp.plan.names import TENANT_KEY
from ncp.plan.record import RECORD_NAME, RECORD_NAMESPACE
from ncp.plan.sources import plan_from_stack_file
from ncp.plan.strict import StrictModel

RESULT_LINE = re.compile(rf"^(?:\S+ stdout F )?{RESULT_PREFIX} (\S+) (PASS|FAIL)(.*)$", re.MULTILINE)
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


class NodeCheck(StrictModel):
    check: str
    layer: str
    status: Literal["PASS", "FAIL", "MISSING"]
    measured: str = ""
    expected: str = ""


class NodeRecord(StrictModel):
    """A signed record of a gate run or a handover on one node."""

    schema_version: int = SCHEMA_VERSION
    kind: Literal["returnToService", "nodeHandover"]
    run_id: str
    created_at: str
    stack: str
    site: str
    node: str
    tenant: Optional[str]
    baseline: dict
    checks: list[NodeCheck]
    passed: bool
    failing_layers: list[str] = Field(default_factory=list)
    action: str
    capacity: list[dict] = Field(default_factory=list, description="capacity follows health, after the action")
    short_tenants: list[str] = Field(default_factory=list)
    timeline: list[str] = Field(default_factory=list)
    signature: Optional[dict] = Field(default=None, description="ed25519 over the rest (ncp/evidence/signing.py)")


class Timeline:
    """What happened when, printed as it happens and kept in the record."""

    def __init__(self, say: Callable[[str], None], now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.say, self.now = say, now
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        line = f"{self.now().strftime('%H:%M:%S')} {message}"
        self.lines.append(line)
        self.say(line)


def suite_node_facts(text: str) -> dict[str, str]:
    """The driver and GPU count in the node-checks container's nvidia-smi output, read as the validation suite reads
    them (its parse_driver_version and count_gpus_from_full_output patterns, data/break-fix.yaml validationSuite)."""
    suite = break_fix().validation_suite
    driver = re.search(suite.driver_pattern, text)
    return {"driver": driver.group(1) if driver else "", "gpus": str(len(re.findall(suite.gpu_pattern, text)))}


def parse_results(logs: dict[str, str]) -> dict[str, tuple[str, dict[str, str]]]:
    """check -> (PASS|FAIL, its key=value fields) from the containers' logs; the last line of a check wins. The
    node checks' fields are what the suite reads in the container's output."""
    results: dict[str, tuple[str, dict[str, str]]] = {}
    for text in logs.values():
        for check, status, rest in RESULT_LINE.findall(text):
            fields = dict(part.split("=", 1) for part in rest.split() if "=" in part)
            results[check] = (status, fields)
    if "node-checks" in results and "node-checks" in logs:
        results["node-checks"][1].update(suite_node_facts(logs["node-checks"]))
    return results


def _field_check(check: str, layer: str, measured: Optional[str], expected: str, ok: bool) -> NodeCheck:
    return NodeCheck(check=check, layer=layer, status="MISSING" if measured is None else "PASS" if ok else "FAIL",
                     measured=measured or "", expected=expected)


def _number(text: Optional[str]) -> Optional[float]:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def result_row(check: str, layer: str, results: dict) -> NodeCheck:
    """A check's own verdict from its result line; MISSING without one."""
    status, fields = results.get(check, ("MISSING", {}))
    return NodeCheck(check=check, layer=layer, status=status, measured=" ".join(f"{k}={v}" for k, v in fields.items()))


def judge_results(baseline: NodeBaseline, checks: Sequence[str], results: dict) -> list[NodeCheck]:
    """Each expected check's own verdict, then what it measured against the baseline."""
    rows = [result_row(check, break_fix().gate_checks[check], results) for check in checks]
    node = results.get("node-checks", (None, {}))[1]
    if "node-checks" in checks:
        rows.append(_field_check("gpu-count", "gpu", node.get("gpus"), str(baseline.gpus),
                                 node.get("gpus") == str(baseline.gpus)))
        if baseline.driver:
            rows.append(_field_check("driver", "node", node.get("driver"), baseline.driver,
                                     set((node.get("driver") or "").split("/")) == {baseline.driver}))
    if "nccl-rails" in checks and baseline.nccl_bus_bandwidth_gbps:
        busbw = _number(results.get("nccl-rails", (None, {}))[1].get("busbw"))
        rows.append(_field_check("nccl-bus-bandwidth", "network", None if busbw is None else f"{busbw:g} GB/s",
                                 f">= {baseline.nccl_bus_bandwidth_gbps:g} GB/s",
                                 busbw is not None and busbw >= baseline.nccl_bus_bandwidth_gbps))
    return rows


def judge_node(baseline: NodeBaseline, node: dict) -> list[NodeCheck]:
    """The node object against the baseline: its labels (product, MIG layout, tenant pool) and allocatable GPUs."""
    labels = node["metadata"].get("labels") or {}
    rows = [NodeCheck(check=f"label {key}", layer="node", status="PASS" if labels.get(key) == value else "FAIL",
                      measured=labels.get(key, "(absent)"), expected=value)
            for key, value in sorted(baseline.labels.items())]
    allocatable = (node.get("status") or {}).get("allocatable", {}).get(integration_points().gpu.resource, "0")
    rows.append(NodeCheck(check="allocatable-gpus", layer="gpu", measured=allocatable, expected=str(baseline.gpus),
                          status="PASS" if allocatable == str(baseline.gpus) else "FAIL"))
    if baseline.tenant is None and TENANT_KEY in labels:
        rows.append(NodeCheck(check=f"label {TENANT_KEY}", layer="node", status="FAIL", measured=labels[TENANT_KEY],
                              expected="(absent: a shared node)"))
    return rows


NODE_BASELINE_KEY = "nodeBaseline"


def deployed_baseline(kube: Kube, node: str, tenant: Optional[str]) -> NodeBaseline:
    """The node's pool entry of the baseline record the program deployed (never the local plan: the gate judges
    against what the cluster was set up with)."""
    where = f"ConfigMap {RECORD_NAMESPACE}/{RECORD_NAME}"
    fix = "fix: `pulumi up` the stack (its baseline layer writes the record), then run the gate again"
    try:
        data = kube.config_map(RECORD_NAMESPACE, RECORD_NAME).get("data") or {}
    except KubeError as error:
        if error.status == 404:
            raise KubeError(f"the cluster lacks {where}, the baseline record node {node} is judged against\n  "
                            f"{fix}") from None
        raise
    if NODE_BASELINE_KEY not in data:
        raise KubeError(f"{where} has no key {NODE_BASELINE_KEY} (deployed by an older program: nothing to judge "
                        f"node {node} against)\n  {fix}")
    pools = yaml.safe_load(data[NODE_BASELINE_KEY]) or {}
    pool = tenant or SHARED_POOL
    if pool not in pools:
        raise KubeError(f"{where} key {NODE_BASELINE_KEY} has no pool {pool} (node {node}'s {TENANT_KEY} label; "
                        f"pools: {', '.join(sorted(pools))})\n  fix: label the node with a pooled tenant (`ncp node "
                        "handover`), or add the tenant's nodePool to the stack and `pulumi up`")
    try:
        return NodeBaseline.from_record(pools[pool])
    except (KeyError, TypeError, ValueError) as error:
        raise KubeError(f"{where} key {NODE_BASELINE_KEY} pool {pool} is not a node baseline ({error!r})\n  "
                        f"{fix}") from None


def gate_logs(kube: Kube, job: dict, say: Callable[[str], None]) -> dict[str, str]:
    """Each container's log (init containers first) of the run's pod; one that cannot be read is left out."""
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    pods = sorted(kube.pods(namespace, f"batch.kubernetes.io/job-name={name}"),
                  key=lambda pod: pod["metadata"]["creationTimestamp"])
    if not pods:
        say(f"{namespace}/{name}: no pod to read the logs of")
        return {}
    spec, logs = pods[-1]["spec"], {}
    for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
        try:
            logs[container["name"]] = kube.pod_log(namespace, pods[-1]["metadata"]["name"], container["name"])
        except KubeError as error:
            say(f"{namespace}/{name} {container['name']}: log not readable ({error})")
    return logs


def job_template(kube: Kube, template_name: str) -> dict:
    """The deployed suspended Job template."""
    try:
        return kube.job(READINESS_NAMESPACE, template_name)
    except KubeError as error:
        if error.status == 404:
            raise KubeError(f"the cluster lacks Job {READINESS_NAMESPACE}/{template_name}\n  fix: `pulumi up` the "
                            "stack (the break-fix layer deploys it)") from None
        raise


def run_on_node(kube: Kube, template: dict, node: str, run_id: str, timeout: float, poll: float,
                say: Callable[[str], None]) -> dict[str, str]:
    """A copy of the suspended template pinned to the node, waited for; returns its containers' logs."""
    template_name = template["metadata"]["name"]
    job = run_job(template, run_id)
    job["metadata"]["name"] = f"{template_name}-{node}-{run_id}"[:63].rstrip("-")
    job["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
    kube.create_job(READINESS_NAMESPACE, job)
    say(f"started {READINESS_NAMESPACE}/{job['metadata']['name']} on {node}")
    outcome = wait(kube, job, timeout, poll, lambda line: None)
    say(f"{job['metadata']['name']}: {outcome}")
    return gate_logs(kube, job, say)


def return_to_service_patch(node: dict) -> dict:
    """Uncordon, and drop the quarantine and hold taints (the rest of the node's taints stay)."""
    quarantine = break_fix().quarantine
    gone = {quarantine.taint.key, quarantine.hold_taint.key, UNSCHEDULABLE_TAINT}
    taints = [t for t in node["spec"].get("taints") or [] if t["key"] not in gone]
    return {"spec": {"unschedulable": False, "taints": taints}}


def hold_patch(node: dict) -> dict:
    """Cordon and add the hold taint: the node stays out until the gate passes."""
    hold = break_fix().quarantine.hold_taint
    taints = [t for t in node["spec"].get("taints") or [] if t["key"] != hold.key]
    return {"spec": {"unschedulable": True, "taints": [*taints, hold.as_dict()]}}


def failing_layers(checks: list[NodeCheck]) -> list[str]:
    return list(dict.fromkeys(row.layer for row in checks if row.status != "PASS"))


def gate(kube: Kube, plan, stack: str, node_name: str, run_id: str, timeout: float, poll: float,
         timeline: Timeline) -> NodeRecord:
    """Runs the gate on the node and judges it; uncordons only on a pass."""
    node = kube.node(node_name)
    tenant = (node["metadata"].get("labels") or {}).get(TENANT_KEY)
    baseline, template = deployed_baseline(kube, node_name, tenant), job_template(kube, GATE_JOB)
    checks = [c for c in (template["metadata"].get("annotations") or {}).get(CHECKS_ANNOTATION, "").split(",") if c]
    if not checks or set(checks) - set(break_fix().gate_checks):
        raise KubeError(f"Job {READINESS_NAMESPACE}/{GATE_JOB} annotation {CHECKS_ANNOTATION} names no known checks "
                        f"({checks or 'absent'}; known: {', '.join(break_fix().gate_checks)})\n  fix: `pulumi up` "
                        "the stack (the break-fix layer deploys the template)")
    kube.patch_node(node_name, hold_patch(node))  # out of service (cordoned, held) while the gate runs
    timeline(f"gate: {node_name} (tenant pool {tenant or 'shared'}) cordoned and held for the gate")
    rows = judge_node(baseline, node)
    if all(row.status == "PASS" for row in rows if row.check == "allocatable-gpus"):
        logs = run_on_node(kube, template, node_name, run_id, timeout, poll, timeline)
        rows = judge_results(baseline, checks, parse_results(logs)) + rows
    else:  # the gate Job takes every GPU of the node: it could never be placed
        timeline(f"gate: {node_name} advertises fewer GPUs than the baseline: the checks are not run")
    layers = failing_layers(rows)
    if layers:
        kube.patch_node(node_name, hold_patch(kube.node(node_name)))
        action = f"kept out: failed layers {', '.join(layers)}"
    else:
        kube.patch_node(node_name, return_to_service_patch(kube.node(node_name)))
        action = "uncordoned: quarantine and hold taints removed"
    timeline(f"gate: {node_name} {'PASSED' if not layers else 'FAILED'}; {action}")
    return node_record("returnToService", (plan, kube), stack, node_name, tenant, baseline, rows, action, run_id,
                       timeline)


def node_record(kind, where: tuple, stack: str, node: str, tenant: Optional[str], baseline: NodeBaseline,
                rows: list[NodeCheck], action: str, run_id: str, timeline: Timeline) -> NodeRecord:
    """The record of a gate run or handover (where: the plan and the cluster, whose capacity it keeps)."""
    plan, kube = where
    capacity = capacity_report(plan, kube.nodes())
    if short_tenants(capacity):
        timeline(f"capacity: short of guaranteed GPUs: {', '.join(short_tenants(capacity))}")
    return NodeRecord(kind=kind, run_id=run_id, created_at=timeline.now().isoformat(timespec="seconds"),
                      stack=stack, site=plan.site.name, node=node, tenant=tenant, baseline=vars(baseline),
                      checks=rows, passed=not failing_layers(rows), failing_layers=failing_layers(rows),
                      action=action, capacity=capacity, short_tenants=short_tenants(capacity),
                      timeline=list(timeline.lines))


def render_markdown(record: NodeRecord) -> str:
    title = "Return to service" if record.kind == "returnToService" else "Node handover"
    lines = [f"# {title}: node {record.node} ({record.site})", "",
             f"**{'PASSED' if record.passed else 'FAILED'}** · run `{record.run_id}` · {record.created_at} · stack "
             f"`{record.stack}` · tenant {record.tenant or 'shared'}", "", f"Action: {record.action}", ""]
    if record.failing_layers:
        lines += ["Failed layers: " + ", ".join(record.failing_layers), ""]
    lines += ["| Check | Layer | Measured | Expected | Result |", "|---|---|---|---|---|"]
    lines += [f"| {r.check} | {r.layer} | {r.measured} | {r.expected} | {r.status} |" for r in record.checks]
    lines += ["", f"Capacity after the action: short {', '.join(record.short_tenants) or 'none'}", "",
              "| Pool | Guaranteed GPUs | Healthy | Out | Short | Nodes out |", "|---|---|---|---|---|---|"]
    lines += [f"| {c['pool']} | {c['guaranteedGpus']} | {c['healthyGpus']} | {c['quarantinedGpus']} | "
              f"{c['shortGpus']} | {', '.join(c['nodesOut']) or '-'} |" for c in record.capacity]
    lines += ["", "Timeline:", "", *[f"- {line}" for line in record.timeline]]
    return "\n".join(lines) + "\n"


def write_node_record(record: NodeRecord, args, plan) -> str:
    """<store>/<kind>/<node>-<run id>.{json,md,junit.xml,ctrf.json}, signed, and its signed index entry."""
    store = evidence_store(args, plan)
    signer = Signer.load(plan.site.name, plan.site.validation_evidence)
    cases = [Case(record.kind, row.check, row.status, row.layer, f"measured {row.measured} expected {row.expected}")
             for row in record.checks]
    location, sha256 = write_signed(
        store, f"{record.kind}/{record.node}-{record.run_id}", record.model_dump(by_alias=True, mode="json"),
        lambda signature: render_markdown(record.model_copy(update={"signature": signature})), cases,
        f"{record.kind} {record.node}", signer)
    append_index(signed_entry({"stack": record.stack, "node": record.node, "runId": record.run_id,
                               "createdAt": record.created_at, "passed": record.passed},
                              record.kind, location, sha256, signer), index_location(args, store))
    return location


def node_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--node", required=True, help="the node's name")
    add_arguments(parser)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per Job (default 3600)")
    parser.add_argument("--poll", type=float, default=10, help="seconds between progress lines (default 10)")
    parser.add_argument("--evidence-dir", help="local directory or s3://bucket/prefix")
    parser.add_argument("--index", help="evidence index file or s3:// object (default as ncp evidence)")
    parser.add_argument("--run-id")
    return parser


INPUT_ERRORS = (ConfigError, KubeError, OutputsError, StoreError, SigningKeyError)


def main(argv: Optional[Sequence[str]] = None, say: Callable[[str], None] = print) -> int:
    return run_command(lambda arguments: _main(arguments, say), argv)


def _main(argv: Optional[Sequence[str]], say: Callable[[str], None]) -> int:
    args = node_parser("ncp node return-to-service", __doc__.splitlines()[0]).parse_args(argv)
    run_id = args.run_id or datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    try:
        plan = plan_from_stack_file(args.stack)
        record = gate(connect_from(args), plan, args.stack, args.node, run_id, args.timeout, args.poll,
                      Timeline(say))
        location = write_node_record(record, args, plan)
    except INPUT_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    failed = f" (failed layers: {', '.join(record.failing_layers)})" if record.failing_layers else ""
    say(f"return-to-service {args.node}: {'PASSED' if record.passed else 'FAILED'}{failed} -> {location}")
    return OK if record.passed else FAILED_GATE
