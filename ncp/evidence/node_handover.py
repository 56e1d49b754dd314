"""Move a GPU node from one tenant's pool to another's (`ncp node handover`, implemented by `main`).

    ncp node handover --stack prod --node gpu-3 --to globex-research [--rebooted <ticket>] [--kubeconfig <file>]
                      [--context <name>] [--timeout 3600] [--poll 10] [--evidence-dir <dir>] [--index <file>]
                      [--run-id <id>]

One procedure, each step recorded: cordon and hold the node; drain it (the Eviction API, so PodDisruptionBudgets
hold); sanitize it with a copy of the suspended `node-handover` Job (crypto-erase of the node-local NVMe the KV
offload and model cache tiers live on, then a GPU reset); request a reboot (a RebootNode for NVSentinel's janitor
where it is served, else the site's out-of-band reboot, attested with --rebooted); relabel and retaint it for the
new tenant; then the return-to-service gate, which alone uncordons it. Writes a signed record (kind nodeHandover)
beside the gate's own.
Exit codes: 0 handed over and returned to service; 1 a step or the gate failed (the node stays out, the record says
which layer); 2 bad input (config, kubeconfig, unknown node or tenant, a tenant without a node pool); 3 an internal
error.
"""
import sys
import time
from datetime import datetime, timezone
from typing import Callable, Optional, Sequence

from ncp.cli_exit import BAD_INPUT, FAILED_GATE, OK, run_command
from ncp.cluster_api import Kube, KubeError, connect_from
from ncp.evidence.node_gate import (
    INPUT_ERRORS, NodeCheck, Timeline, deployed_baseline, failing_layers, gate, hold_patch, job_template, node_parser,
    node_record, parse_results, result_row, run_on_node, write_node_record,
)
from ncp.plan.break_fix import HANDOVER_JOB, break_fix
from ncp.plan.errors import ConfigError, Problem
from ncp.plan.layers import READINESS_NAMESPACE
from ncp.plan.names import TENANT_KEY
from ncp.plan.sources import plan_from_stack_file

SANITIZE_CHECKS = ("sanitize-kv", "sanitize-cache", "gpu-reset")


def _step(step: str, ok: bool, measured: str, expected: str = "") -> NodeCheck:
    return NodeCheck(check=step, layer=break_fix().handover_steps[step], status="PASS" if ok else "FAIL",
                     measured=measured, expected=expected)


def _evictable(pod: dict) -> bool:
    """Tenant and platform workload pods; not DaemonSet pods (they stay with the node), nor the break-fix runs."""
    owners = pod["metadata"].get("ownerReferences") or []
    finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
    return not finished and pod["metadata"]["namespace"] != READINESS_NAMESPACE and \
        not any(owner["kind"] == "DaemonSet" for owner in owners)


def drain(kube: Kube, node: str, timeout: float, timeline: Timeline) -> NodeCheck:
    """Evicts every evictable pod on the node and waits until none is left (evictions a PDB refuses are retried)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in kube.pods_on_node(node) if _evictable(p)]
        if not left or time.monotonic() > deadline:
            break
        for pod in left:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            try:
                kube.evict(pod["metadata"]["namespace"], pod["metadata"]["name"])
                timeline(f"drain: evicted {pod['metadata']['namespace']}/{pod['metadata']['name']}")
            except KubeError as error:
                if error.status not in (404, 429):
                    raise
        time.sleep(1)
    names = ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in left)
    return _step("drain", not left, f"pods left: {names or 'none'}", "no pods left")


def request_reboot(kube: Kube, node: str, run_id: str, rebooted: Optional[str], timeline: Timeline) -> NodeCheck:
    """A RebootNode for the janitor where it is served (manual mode: the site's system executes it), else the
    operator's attestation of the out-of-band reboot."""
    reboot = break_fix().reboot
    group, _, version = reboot.api_version.partition("/")
    if reboot.kind in kube.served_kinds(reboot.api_version):
        name = f"ncp-handover-{node}-{run_id}"[:63].rstrip("-")
        kube.create_cluster_object(group, version, reboot.plural, {
            "apiVersion": reboot.api_version, "kind": reboot.kind, "metadata": {"name": name},
            "spec": {"nodeName": node}})
        timeline(f"reboot: filed {reboot.kind} {name} for the janitor")
        return _step("reboot-request", True, f"{reboot.kind} {name}")
    if rebooted:
        timeline(f"reboot: out of band, attested as {rebooted!r}")
        return _step("reboot-request", True, f"out of band: {rebooted}")
    return _step("reboot-request", False, f"{reboot.kind} ({reboot.api_version}) is not served",
                 "reboot the node out of band, then re-run with --rebooted <ticket>")


def relabel(kube: Kube, node: dict, tenant: str) -> NodeCheck:
    """The new tenant's pool label and taint (as the site's node pool step sets them)."""
    taints = [t for t in node["spec"].get("taints") or [] if t["key"] != TENANT_KEY]
    taints.append({"key": TENANT_KEY, "value": tenant, "effect": "NoSchedule"})
    kube.patch_node(node["metadata"]["name"], {"metadata": {"labels": {TENANT_KEY: tenant}},
                                               "spec": {"taints": taints}})
    return _step("relabel", True, f"{TENANT_KEY}={tenant}", f"{TENANT_KEY}={tenant}")


def sanitize(kube: Kube, node: str, run_id: str, timeout: float, poll: float, timeline: Timeline) -> list[NodeCheck]:
    results = parse_results(run_on_node(kube, job_template(kube, HANDOVER_JOB), node, run_id, timeout, poll, timeline))
    return [result_row(check, break_fix().handover_steps[check], results) for check in SANITIZE_CHECKS]


def checked_tenant(plan, stack: str, tenant: str) -> str:
    pooled = [t.name for t in plan.tenants if t.node_pool]
    if tenant not in pooled:
        raise ConfigError(f"Pulumi.{stack}.yaml", [Problem(
            "tenants", f"--to {tenant}: not a tenant with a node pool (pooled tenants: {', '.join(pooled) or 'none'})",
            "name a tenant whose tenants[].nodePool is set")])
    return tenant


def handover(kube: Kube, plan, stack: str, node_name: str, tenant: str, run_id: str, options: dict,
             timeline: Timeline) -> tuple:
    """The handover's steps in order; stops (node kept out) at the first failed one. Returns (its record, the
    gate's record or None)."""
    node = kube.node(node_name)
    previous = (node["metadata"].get("labels") or {}).get(TENANT_KEY)
    baseline = deployed_baseline(kube, node_name, tenant)  # read first: a cluster without it is bad input
    kube.patch_node(node_name, hold_patch(node))
    timeline(f"handover: {node_name} from {previous or 'shared'} to {tenant}: cordoned and held")
    rows = [drain(kube, node_name, options["timeout"], timeline)]
    if not failing_layers(rows):
        rows += sanitize(kube, node_name, run_id, options["timeout"], options["poll"], timeline)
    if not failing_layers(rows):
        rows.append(request_reboot(kube, node_name, run_id, options["rebooted"], timeline))
    if not failing_layers(rows):
        rows.append(relabel(kube, kube.node(node_name), tenant))
        timeline(f"handover: {node_name} relabelled for {tenant}")
    gated = None
    if not failing_layers(rows):
        gated = gate(kube, plan, stack, node_name, f"{run_id}-gate", options["timeout"], options["poll"], timeline)
    action = (f"handed over from {previous or 'shared'} to {tenant}; gate {'passed' if gated.passed else 'failed'}"
              if gated else f"stopped: failed layers {', '.join(failing_layers(rows))}; node kept out")
    return node_record("nodeHandover", (plan, kube), stack, node_name, tenant, baseline, rows,
                       action, run_id, timeline), gated


def main(argv: Optional[Sequence[str]] = None, say: Callable[[str], None] = print) -> int:
    return run_command(lambda arguments: _main(arguments, say), argv)


def _main(argv: Optional[Sequence[str]], say: Callable[[str], None]) -> int:
    parser = node_parser("ncp node handover", __doc__.splitlines()[0])
    parser.add_argument("--to", required=True, help="the tenant that gets the node")
    parser.add_argument("--rebooted", help="the out-of-band reboot's ticket, where NVSentinel's janitor is not served")
    args = parser.parse_args(argv)
    run_id = args.run_id or datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    try:
        plan = plan_from_stack_file(args.stack)
        tenant = checked_tenant(plan, args.stack, args.to)
        record, gated = handover(connect_from(args), plan, args.stack, args.node, tenant, run_id,
                                 {"timeout": args.timeout, "poll": args.poll, "rebooted": args.rebooted},
                                 Timeline(say))
        locations = [write_node_record(r, args, plan) for r in (record, gated) if r is not None]
    except INPUT_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    passed = record.passed and gated is not None and gated.passed
    say(f"handover {args.node} -> {tenant}: {'PASSED' if passed else 'FAILED'} ({record.action}) -> "
        f"{', '.join(locations)}")
    return OK if passed else FAILED_GATE
