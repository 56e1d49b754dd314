"""One incident view of a node (`ncp node incident`, implemented by `main`): host, cluster, fabric and endpoint signals
side by side, each tagged with its owning layer, so a fault is triaged once instead of as separate incidents.

    ncp node incident --stack prod --node gpu-3 [--kubeconfig <file>] [--context <name>] [--evidence-dir <dir>]
                      [--index <file>]

host (node and gpu layers): the node's conditions (NVSentinel writes its health checks there), taints, cordon and
NVSentinel's cordon labels, allocatable GPUs against the deployed baseline record; cluster (pod layer): the pods on
the node and its tenant's Pending pods with the scheduler's reason; fabric (network layer): the node's last
return-to-service record's NCCL rows; endpoint (service layer): the tenant's endpoints and their namespaces;
capacity: the node's pool.
Exit codes: 0 printed; 2 bad input (config, kubeconfig, an unknown node); 3 an internal error.
"""
import argparse
import json
import sys
from typing import Callable, Optional, Sequence

from ncp.cli_exit import BAD_INPUT, OK, run_command
from ncp.cluster_api import Kube, KubeError, add_arguments, connect_from
from ncp.evidence.cli import evidence_store, index_location
from ncp.evidence.collect import OutputsError
from ncp.evidence.node_gate import deployed_baseline
from ncp.evidence.record import read_index
from ncp.evidence.store import StoreError, split
from ncp.plan.capacity import capacity_report
from ncp.plan.catalog import integration_points
from ncp.plan.errors import ConfigError
from ncp.plan.names import TENANT_KEY, tenant_namespace
from ncp.plan.sources import plan_from_stack_file

NVSENTINEL_LABEL_PREFIX = "k8saas.nvidia.com/"  # fault-quarantine labelPrefix default (data/break-fix.yaml source)


def host_lines(kube: Kube, node: dict) -> list[str]:
    spec, status, labels = node["spec"], node.get("status") or {}, node["metadata"].get("labels") or {}
    try:  # what the cluster was set up with, as the return-to-service gate judges it, not the local plan
        baseline = f"baseline {deployed_baseline(kube, node['metadata']['name'], labels.get(TENANT_KEY)).gpus}"
    except KubeError as error:
        baseline = f"no deployed baseline: {str(error).splitlines()[0]}"
    gpus = status.get("allocatable", {}).get(integration_points().gpu.resource, "0")
    lines = [f"[node] cordoned: {bool(spec.get('unschedulable'))}; taints: " + (", ".join(
        f"{t['key']}={t.get('value', '')}:{t['effect']}" for t in spec.get("taints") or []) or "none")]
    lines += [f"[node] {key}={value}" for key, value in sorted(labels.items())
              if key.startswith(NVSENTINEL_LABEL_PREFIX)]
    lines += [f"[node] condition {c['type']}={c['status']} {c.get('reason', '')}: {c.get('message', '')}".rstrip(": ")
              for c in status.get("conditions") or [] if c["type"] != "Ready" or c["status"] != "True"]
    lines.append(f"[gpu] allocatable GPUs {gpus} ({baseline})")
    return lines


def cluster_lines(kube: Kube, node: dict) -> list[str]:
    name, tenant = node["metadata"]["name"], (node["metadata"].get("labels") or {}).get(TENANT_KEY)
    lines = [f"[pod] on the node: {p['metadata']['namespace']}/{p['metadata']['name']} {p['status'].get('phase')}"
             for p in kube.pods_on_node(name)]
    pending = kube.pods(tenant_namespace(tenant), "") if tenant else []
    for pod in pending:
        for condition in pod["status"].get("conditions") or []:
            if condition["type"] == "PodScheduled" and condition["status"] == "False":
                lines.append(f"[pod] {tenant}'s {pod['metadata']['name']} Pending: {condition.get('message', '')}")
    return lines or ["[pod] no pods on the node"]


def fabric_lines(index: str, node: str) -> list[str]:
    """The node's latest gate record (network rows, and its failing layers)."""
    entries = [e for e in read_index(index) if e.get("kind") == "returnToService" and e.get("node") == node]
    if not entries:
        return ["[network] no return-to-service record for the node yet"]
    latest = max(entries, key=lambda e: e["createdAt"])
    store, key = split(latest["record"])
    record = json.loads(store.get(key) or "{}")
    lines = [f"[{row['layer']}] gate {latest['runId']}: {row['check']} {row['status']} {row['measured']}".rstrip()
             for row in record.get("checks", []) if row["layer"] == "network" or row["status"] != "PASS"]
    return [f"last gate {latest['runId']} ({latest['createdAt']}): {'PASSED' if latest['passed'] else 'FAILED'}",
            *lines]


def endpoint_lines(plan, node: dict) -> list[str]:
    tenant = (node["metadata"].get("labels") or {}).get(TENANT_KEY)
    endpoints = [e for e in plan.endpoints if tenant is None or e.tenant.name == tenant]
    return [f"[service] endpoint {e.name} ({e.tenant.name}, namespace {e.namespace}, {e.mode})" for e in endpoints] \
        or ["[service] no endpoint of the node's tenant"]


def incident(kube: Kube, plan, node_name: str, index: str) -> str:
    node = kube.node(node_name)
    pool = (node["metadata"].get("labels") or {}).get(TENANT_KEY, "shared")
    capacity = [row for row in capacity_report(plan, kube.nodes()) if row["pool"] == pool]
    sections = [("host", host_lines(kube, node)), ("cluster", cluster_lines(kube, node)),
                ("fabric", fabric_lines(index, node_name)), ("endpoint", endpoint_lines(plan, node)),
                ("capacity", [f"[node] pool {row['pool']}: {row['healthyGpus']} healthy GPUs for "
                              f"{row['guaranteedGpus']} guaranteed, short {row['shortGpus']}" for row in capacity])]
    return "\n".join(f"## {title}\n" + "\n".join(lines) for title, lines in sections)


def main(argv: Optional[Sequence[str]] = None, say: Callable[[str], None] = print) -> int:
    return run_command(lambda arguments: _main(arguments, say), argv)


def _main(argv: Optional[Sequence[str]], say: Callable[[str], None]) -> int:
    parser = argparse.ArgumentParser(prog="ncp node incident", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--node", required=True)
    add_arguments(parser)
    parser.add_argument("--evidence-dir", help="local directory or s3://bucket/prefix")
    parser.add_argument("--index", help="evidence index file or s3:// object (default as ncp evidence)")
    args = parser.parse_args(argv)
    try:
        plan = plan_from_stack_file(args.stack)
        text = incident(connect_from(args), plan, args.node, index_location(args, evidence_store(args, plan)))
    except (ConfigError, KubeError, OutputsError, StoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    say(f"# Node {args.node}\n{text}")
    return OK
