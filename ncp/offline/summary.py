"""The main job's default view of a stack: what each layer installs, what each tenant gets, and the totals."""
from ncp.readmodel.recorder import Recording
from ncp.plan.site_plan import SitePlan


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def render_summary(site_plan: SitePlan, recording: Recording) -> str:
    outputs = recording.outputs
    profile = site_plan.profile
    count = site_plan.gpu_count
    lines = [f"site {site_plan.site.name} ({site_plan.environment.value}) · profile {profile.name} · "
             f"{site_plan.site.gpu_nodes} GPU nodes, {count.describe()} · Kubernetes {site_plan.kubernetes_version}"]
    if site_plan.local_overlay:
        lines.append(f"local control plane overlay {site_plan.local_overlay} merged over the stack (chart mirror "
                     f"{site_plan.config.components.chart_mirror}, skipAwait {site_plan.config.components.skip_await}):"
                     " test cluster settings, never a site's")
    lines += ["", "layers:"]
    layers = [["layer", "chart", "version", "namespace"]]
    for component, version in outputs.get("versions", {}).items():
        layers.append([component, site_plan.matrix.pin(component).chart_name, version,
                       outputs["namespaces"].get(component, "-")])
    lines += _table(layers)
    endpoints, services = outputs.get("endpoints", {}), outputs.get("inferenceServices", {})
    lines += ["", "tenants:"]
    tenants = [["tenant", "namespace", "quota", "limit", "unit", "weight", "endpoints (mode, GPUs or MIG units)"]]
    for tenant in site_plan.tenants:
        served = [f"{name} ({e['mode']}, {e['gpus']})" for name, e in endpoints.items() if e["tenant"] == tenant.name]
        served += [f"{name} (triton, {s['gpus']})" for name, s in services.items() if s["tenant"] == tenant.name]
        tenants.append([tenant.name, outputs["tenantNamespaces"][tenant.name], str(tenant.gpu_quota),
                        str(tenant.gpu_limit), site_plan.gpu_unit(tenant.name), str(tenant.over_quota_weight),
                        ", ".join(served) or "-"])
    lines += _table(tenants)
    lines += [f"  note: {warning}" for warning in mig_unit_warnings(site_plan)]
    serving = sum(e["gpus"] for e in endpoints.values())
    lines += ["", f"totals: {len(site_plan.tenants)} tenants, guaranteed {_guaranteed(site_plan)}, {len(endpoints)} "
                  f"endpoints on {serving} GPUs, {len(services)} inference services on "
                  f"{_by_unit(site_plan, [(s['tenant'], s['gpus']) for s in services.values()]) or '0 GPUs'}, "
                  f"remediation {outputs.get('remediation')}, {len(recording.resources)} resources", ""]
    return "\n".join(lines)


def _sums(site_plan: SitePlan, amounts: list[tuple[str, int]]) -> dict[str, int]:
    """(tenant, amount in its unit) summed per unit: whole GPUs and MIG units are never added up."""
    by_unit: dict[str, int] = {}
    for tenant, amount in amounts:
        unit = site_plan.gpu_unit(tenant)
        by_unit[unit] = by_unit.get(unit, 0) + amount
    return by_unit


def _by_unit(site_plan: SitePlan, amounts: list[tuple[str, int]]) -> str:
    return ", ".join(f"{amount} {unit}" for unit, amount in _sums(site_plan, amounts).items())


def _guaranteed(site_plan: SitePlan) -> str:
    """Quota against capacity, per unit."""
    count = site_plan.gpu_count
    capacity = {"GPUs": count.whole, count.unit: count.mig_units}
    quotas = _sums(site_plan, [(t.name, t.gpu_quota) for t in site_plan.tenants])
    return ", ".join(f"{quota}/{capacity.get(unit, 0)} {unit}" for unit, quota in quotas.items())


def mig_unit_warnings(site_plan: SitePlan) -> list[str]:
    """Where MIG changes what a tenant's gpuQuota/gpuLimit count, said once per tenant."""
    return [f"{tenant.name}'s gpuQuota and gpuLimit count {site_plan.gpu_unit(tenant.name)}, not GPUs: its GPUs are "
            f"MIG-partitioned (components.gpuOperator.mig); {tenant.gpu_limit} of them are "
            f"{_physical(site_plan, tenant.gpu_limit)} physical GPUs"
            for tenant in site_plan.tenants if site_plan.gpu_unit(tenant.name) != "GPUs"]


def _physical(site_plan: SitePlan, units: int) -> str:
    per_gpu = site_plan.gpu_count.mig_units // max(site_plan.gpu_count.partitioned, 1)
    return f"{units / per_gpu:g}" if per_gpu else "?"
