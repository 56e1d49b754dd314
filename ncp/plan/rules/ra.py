"""RA rules config can know, each refused for its whole class with the key and the fix:

- a namespace the stack gives a platform role that tenant namespaces admit (the gateway's, the monitoring system's,
  the model mirror's, the planner's Prometheus: every Namespace and in-cluster Service key of
  data/site-prerequisites.yaml) set to a tenant's own namespace, which would admit every tenant into that one;
- prod break-fix left in dry-run without a recorded decision;
- a partner product the stack uses (storage classes, gateway, certificate manager, metrics backend, registries)
  without a local decision of its kind (staging and prod, where the pack is mandatory);
- a rack-scale NVLink site serving disaggregated endpoints with topology-aware placement switched off.
"""
import re
from functools import lru_cache
from typing import Any, Iterator, Optional, Sequence

import yaml
from pydantic.alias_generators import to_camel

from ncp.plan.catalog import ROOT, LocalDecision, PartnerProduct, load_matrix
from ncp.plan.config import Environment, StackConfig
from ncp.plan.endpoint_plan import EndpointPlan
from ncp.plan.errors import Problem
from ncp.plan.layers import plan_layers
from ncp.plan.local_overlay import is_stand_in_mirror
from ncp.plan.names import PROJECT, tenant_namespace
from ncp.plan.profile import HardwareProfile
from ncp.plan.rules.cross_field import MANDATORY_ENVIRONMENTS

SITE_PREREQUISITES = ROOT / "data" / "site-prerequisites.yaml"
# <service>.<namespace>.svc in a URL the config gives for a site Service.
_SERVICE_NAMESPACE = re.compile(r"^[a-z]+://[a-z0-9]([-a-z0-9]*[a-z0-9])?\.(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
                                r"\.svc\b")
# What a chart's prerequisites say when it needs the site's certificate manager (data/compatibility-matrix.yaml).
CERT_MANAGER = "cert-manager"


def _set(path: str, value: str) -> str:
    return f"pulumi config set --path '{path}' {value}"


@lru_cache(maxsize=1)
def _site_provided() -> dict[str, list[str]]:
    return yaml.safe_load(SITE_PREREQUISITES.read_text())["siteProvided"]


def _values(node: Any, parts: Sequence[str], path: str) -> Iterator[tuple[str, Any]]:
    """(config path, value) at a dotted key of site-prerequisites.yaml, `*` matching every key or list item."""
    if not parts:
        yield path, node
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        items = (node.items() if isinstance(node, dict)
                 else ((f"[{index}]", item) for index, item in enumerate(node)) if isinstance(node, list) else ())
        for key, child in items:
            yield from _values(child, rest, f"{path}{key}" if key.startswith("[") else f"{path}.{key}")
    elif isinstance(node, dict) and head in node:
        yield from _values(node[head], rest, f"{path}.{head}" if not path.endswith(":") else f"{path}{head}")


def platform_role_namespaces(config: StackConfig) -> list[tuple[str, str]]:
    """(config path, namespace) of every namespace the stack gives a platform role: the site-provided Namespace
    keys, and the namespace of every site Service the config names by in-cluster URL."""
    document = config.model_dump(by_alias=True, mode="json")
    provided = _site_provided()
    found = [(path, value) for key in provided.get("Namespace", [])
             for path, value in _values(document, key.split("."), f"{PROJECT}:") if isinstance(value, str)]
    for key in provided.get("Service", []):
        for path, value in _values(document, key.split("."), f"{PROJECT}:"):
            match = _SERVICE_NAMESPACE.match(value) if isinstance(value, str) else None
            if match:
                found.append((path, match["namespace"]))
    return found


# RA: Workload Isolation: "namespaces are useful but should not be the only isolation boundary"
def _role_namespace_problems(config: StackConfig) -> list[Problem]:
    tenants = {tenant_namespace(tenant.name): tenant.name for tenant in config.tenants}
    return [Problem(path, f"is {namespace}, tenant {tenants[namespace]}'s own namespace: the platform role it names "
                          "is admitted into every tenant namespace, so every tenant's traffic would be admitted into "
                          f"{namespace} and tenant {tenants[namespace]}'s workloads would act as platform",
                    "name the namespace the site runs that platform service in, never a tenant's: "
                    + _set(path, "<namespace>"))
            for path, namespace in platform_role_namespaces(config) if namespace in tenants]


# RA: Operator View: "run remediation"
def _dry_run_problems(config: StackConfig) -> list[Problem]:
    health = config.components.health
    if config.site.environment != Environment.PROD or health.remediation != "dry-run" or health.local_decision:
        return []
    path = f"{PROJECT}:components.health"
    return [Problem(f"{path}.remediation", "is dry-run in prod without a recorded decision: faulty GPU nodes are "
                                           "detected but never quarantined, drained or remediated",
                    f"remove it (prod enforces by default): pulumi config rm --path '{path}.remediation'; or record "
                    f"why prod stays in dry-run: {_set(path + '.localDecision.decision', '<what>')} && "
                    f"{_set(path + '.localDecision.reason', '<why, and until when>')}")]


def _decisions(config: StackConfig, kind: PartnerProduct) -> list[LocalDecision]:
    return [decision for decision in config.local_decisions if decision.kind == kind]


def _missing(kind: PartnerProduct, path: str, what: str, names: Sequence[str] = ()) -> Problem:
    named = f" naming {', '.join(names)}" if names else ""
    return Problem(path, f"{what} is a partner product; no localDecisions entry of kind {kind}{named} records the "
                         "site's choice (RA: partner-selected tools are recorded as local decisions)",
                   f"add to {PROJECT}:localDecisions (at the next index): "
                   + _set(f"{PROJECT}:localDecisions[<next>].kind", kind) + " && "
                   + _set(f"{PROJECT}:localDecisions[<next>].decision", f"'<the product{named}>'") + " && "
                   + _set(f"{PROJECT}:localDecisions[<next>].reason", "'<why the site chose it>'"))


def _named_in(name: str, decisions: Sequence[LocalDecision]) -> bool:
    return any(re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", d.decision) for d in decisions)


# RA: Architecture Decision Guardrails: "Record partner-selected storage, gateway, registry"
def _partner_product_problems(config: StackConfig, profile: HardwareProfile,
                              endpoints: Sequence[EndpointPlan]) -> list[Problem]:
    """Every partner-product kind the stack uses has a recorded decision of that kind; storage decisions name each
    class the tiers use."""
    if config.site.environment not in MANDATORY_ENVIRONMENTS:
        return []
    problems = []
    serving = config.components.serving
    storage = _decisions(config, "storage")
    for tier, value in serving.storage or ():  # (field name, tier) pairs of the StorageTiers model
        if value is not None and not _named_in(value.storage_class, storage):
            problems.append(_missing("storage", f"{PROJECT}:components.serving.storage.{to_camel(tier)}.storageClass",
                                     f"storage class {value.storage_class}", [value.storage_class]))
    if serving.gateway_inference_extension and serving.gateway is None and not _decisions(config, "gateway"):
        problems.append(_missing("gateway", f"{PROJECT}:components.serving.gatewayInferenceExtension",
                                 "the Gateway implementation serving the InferencePools"))
    charts = plan_layers(load_matrix(), {"rdmaFabric": profile.has_rdma_fabric, "servingEndpoints": bool(endpoints),
                                         "prometheusStack": config.components.telemetry.prometheus_stack.enabled},
                         validation_suite=False).charts
    needing = [chart for chart in charts if any(CERT_MANAGER in p for p in load_matrix().pin(chart).prerequisites)]
    if needing and not _decisions(config, "certManager"):
        problems.append(_missing("certManager", f"{PROJECT}:localDecisions",
                                 f"{CERT_MANAGER}, which {', '.join(needing)} needs (compatibility matrix "
                                 "prerequisites),"))
    if not config.components.telemetry.prometheus_stack.enabled and not _decisions(config, "metricsBackend"):
        problems.append(_missing("metricsBackend", f"{PROJECT}:components.telemetry.prometheusSelectorLabels",
                                 "the site's metrics backend that loads the monitors and rules"))
    # The e2e stand-in charts are the local control plane's (ncp/plan/local_overlay.py), not a site's product.
    site_mirror = config.components.chart_mirror
    if site_mirror is not None and is_stand_in_mirror(site_mirror):
        site_mirror = None
    registries = [(f"{PROJECT}:components.chartMirror", "the chart mirror", site_mirror),
                  (f"{PROJECT}:components.serving.modelStaging.mirror", "the in-cluster model mirror",
                   serving.model_staging.mirror)]
    if any(value is not None for _, _, value in registries) and not _decisions(config, "registry"):
        path, what, _ = next(entry for entry in registries if entry[2] is not None)
        problems.append(_missing("registry", path, what))
    return problems


# RA: Data Center Architecture: "Prefer topology-aware placement for model shards, prefill pools, decode pools"
def _rack_scale_problems(config: StackConfig, profile: HardwareProfile,
                         endpoints: Sequence[EndpointPlan]) -> list[Problem]:
    """On a multi-node NVLink domain, disaggregated prefill and decode workers placed without the topology end up
    in different NVLink domains, where their KV transfer leaves NVLink."""
    if not profile.nvlink.multi_node or config.components.scheduling.topology_aware is not False:
        return []
    disaggregated = [plan.endpoint.name for plan in endpoints if plan.mode == "disaggregated"]
    if not disaggregated:
        return []
    path = f"{PROJECT}:components.scheduling.topologyAware"
    return [Problem(path, f"is false on rack-scale NVLink profile {profile.name}, which serves disaggregated "
                          f"endpoints ({', '.join(disaggregated)}): prefill and decode workers would be placed "
                          "without the NVLink domain",
                    f"remove it (topology-aware placement is the default on multi-node NVLink profiles): "
                    f"pulumi config rm --path '{path}'; or size those endpoints aggregated")]


def ra_rule_problems(config: StackConfig, profile: Optional[HardwareProfile],
                     endpoints: Sequence[EndpointPlan]) -> list[Problem]:
    problems = _role_namespace_problems(config) + _dry_run_problems(config)
    if profile is not None:
        problems += _partner_product_problems(config, profile, endpoints) + _rack_scale_problems(
            config, profile, endpoints)
    return problems
