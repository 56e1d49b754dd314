"""The main job's default view of a stack: what each layer installs, what each tenant gets, and the totals."""
from offline.recorder import Recording
from plan.gpu_partition import capacity_breakdown
from plan.site_plan import SitePlan


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def render_summary(site_plan: SitePlan, recording: Recording) -> str:
    outputs = recording.outputs
    profile = site_plan.profile
    lines = [f"site {site_plan.site.name} ({site_plan.environment.value}) · profile {profile.name} · "
             f"GPU nodes: {capacity_breakdown(site_plan.config, profile)} = {site_plan.gpu_capacity} GPUs · "
             f"Kubernetes {site_plan.kubernetes_version}"]
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
    tenants = [["tenant", "namespace", "GPU quota", "GPU limit", "weight", "endpoints (mode, GPUs)"]]
    for tenant in site_plan.tenants:
        served = [f"{name} ({e['mode']}, {e['gpus']})" for name, e in endpoints.items() if e["tenant"] == tenant.name]
        served += [f"{name} (triton, {s['gpus']})" for name, s in services.items() if s["tenant"] == tenant.name]
        tenants.append([tenant.name, outputs["tenantNamespaces"][tenant.name], str(tenant.gpu_quota),
                        str(tenant.gpu_limit), str(tenant.over_quota_weight), ", ".join(served) or "-"])
    lines += _table(tenants)
    guaranteed = sum(t.gpu_quota for t in site_plan.tenants)
    serving = sum(e["gpus"] for e in endpoints.values())
    lines += ["", f"totals: {len(site_plan.tenants)} tenants, {guaranteed}/{site_plan.gpu_capacity} GPUs guaranteed, "
                  f"{len(endpoints)} endpoints on {serving} GPUs, {len(services)} inference services on "
                  f"{sum(s['gpus'] for s in services.values())} GPUs, remediation {outputs.get('remediation')}, "
                  f"{len(recording.resources)} resources", ""]
    return "\n".join(lines)
