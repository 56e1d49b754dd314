"""Capacity follows health: which tenants' guaranteed GPU quotas the healthy GPU nodes no longer cover, from the
cluster's nodes and the plan (tenants, node pools, the profile's spare policy). `ncp node capacity` prints it; every
return-to-service and handover record keeps it."""
from ncp.plan.break_fix import break_fix
from ncp.plan.catalog import integration_points
from ncp.plan.names import TENANT_KEY


def node_out(node: dict) -> bool:
    quarantine = break_fix().quarantine
    keys = {t["key"] for t in node["spec"].get("taints") or []}
    return bool(node["spec"].get("unschedulable")) or bool(keys & {quarantine.taint.key, quarantine.hold_taint.key})


def _gpus(node: dict) -> int:
    return int((node.get("status") or {}).get("allocatable", {}).get(integration_points().gpu.resource, "0"))


def capacity_report(plan, nodes: list[dict]) -> list[dict]:
    """One row per pool (a dedicated tenant pool, or `shared` for the rest): its tenants, guaranteed GPUs, healthy
    and quarantined GPUs, the spare nodes the profile's policy asks for, and how many GPUs short it is."""
    gpu_nodes = [n for n in nodes if _gpus(n) > 0]
    pooled = {t.name for t in plan.tenants if t.node_pool}
    policy = plan.profile.tenancy.spare_policy
    pools = [(t.name, [t.name], t.gpu_quota, policy.per_pool) for t in plan.tenants if t.node_pool]
    shared = [t for t in plan.tenants if t.name not in pooled]
    if shared:
        pools.append(("shared", [t.name for t in shared], sum(t.gpu_quota for t in shared), policy.shared))
    rows = []
    for pool, tenants, quota, spare in pools:
        members = [n for n in gpu_nodes if (n["metadata"].get("labels") or {}).get(TENANT_KEY, "shared") == pool]
        healthy = sum(_gpus(n) for n in members if not node_out(n))
        rows.append({"pool": pool, "tenants": tenants, "guaranteedGpus": quota, "healthyGpus": healthy,
                     "quarantinedGpus": sum(_gpus(n) for n in members if node_out(n)),
                     "nodesOut": sorted(n["metadata"]["name"] for n in members if node_out(n)),
                     "spareNodesPolicy": spare, "shortGpus": max(quota - healthy, 0)})
    return rows


def short_tenants(rows: list[dict]) -> list[str]:
    return [tenant for row in rows if row["shortGpus"] for tenant in row["tenants"]]


def render(rows: list[dict], action: str) -> str:
    lines = [f"{'pool':<20} {'guaranteed':>10} {'healthy':>8} {'out':>5} {'short':>6}  nodes out"]
    lines += [f"{row['pool']:<20} {row['guaranteedGpus']:>10} {row['healthyGpus']:>8} {row['quarantinedGpus']:>5} "
              f"{row['shortGpus']:>6}  {', '.join(row['nodesOut']) or '-'}" for row in rows]
    short = short_tenants(rows)
    lines.append(f"short: {', '.join(short)}; spare policy: {action}" if short else "every guaranteed quota is covered")
    return "\n".join(lines)
