"""The site's Prometheus reads the PodMonitors tenants may create in their namespaces. Admission refuses monitors
that reach beyond them (components/tenancy/admission.py); the Prometheus itself must confine them too, with the
prometheus-operator's multi-tenancy settings (data/integration-points.yaml prometheusTenancy): every namespaced
monitor's series labelled with its namespace, monitors' namespace selectors ignored, and no file access through a
monitor (bearerTokenFile, TLS file paths)."""
from typing import Iterable

from ncp.plan.catalog import integration_points


def prometheus_tenancy_problems(prometheuses: Iterable[dict]) -> list[tuple[str, str]]:
    """(problem, fix) for each prometheus-operator Prometheus that lacks a multi-tenancy setting, or for none."""
    names = integration_points().prometheus_tenancy
    prometheuses = list(prometheuses)
    settings = (f"spec.enforcedNamespaceLabel: {names.enforced_namespace_label}, spec.ignoreNamespaceSelectors: true, "
                "spec.arbitraryFSAccessThroughSMs.deny: true")
    if not prometheuses:
        return [(f"no {names.plural}.{names.group} object: the site's Prometheus that reads the tenants' PodMonitors "
                 "is not a prometheus-operator Prometheus, so its tenancy settings cannot be checked",
                 f"run the site's Prometheus through the Prometheus Operator with {settings}")]
    problems = []
    for prometheus in prometheuses:
        spec, meta = prometheus.get("spec") or {}, prometheus["metadata"]
        lacking = [label for label, held in (
            ("enforcedNamespaceLabel", bool(spec.get("enforcedNamespaceLabel"))),
            ("ignoreNamespaceSelectors", spec.get("ignoreNamespaceSelectors") is True),
            ("arbitraryFSAccessThroughSMs.deny", (spec.get("arbitraryFSAccessThroughSMs") or {}).get("deny") is True),
        ) if not held]
        if lacking:
            problems.append((f"Prometheus {meta.get('namespace')}/{meta['name']} lacks {', '.join(lacking)}: a "
                             "tenant's monitors could label series as another tenant's, select other namespaces "
                             "or read the Prometheus container's files",
                             f"set {settings} on it (platform monitors and rules that must see every namespace go "
                             "in spec.excludedFromEnforcement)"))
    return problems
