"""What a site must provide before `pulumi up`, generated from its stack: prerequisites, storage classes, nodes and
their labels, NICs, identity-provider groups, secrets, namespaces the program expects, evidence location.

    ncp checklist --stack prod [--out site-checklist.md]

Exit codes: 0 written, 2 invalid stack config, 3 internal error.
"""
import argparse
import sys
from pathlib import Path
from typing import Any, Iterator

import pulumi
import yaml

from ncp.cli_exit import BAD_INPUT, OK, prepare_output
from ncp.readmodel.recorder import run_stack_file
from ncp.plan.break_fix import checklist_steps
from ncp.plan.catalog import ROOT, integration_points
from ncp.plan.errors import ConfigError
from ncp.plan.names import PROJECT
from ncp.plan.site_plan import RDMA_RAIL_ISOLATION, SitePlan
from ncp.plan.sources import plan_from_stack_file


PREREQUISITES_FILE = ROOT / "data" / "site-prerequisites.yaml"


def _section(title: str, items: list[str]) -> list[str]:
    return [f"## {title}", "", *(f"- [ ] {item}" for item in items or ["nothing for this stack"]), ""]


def _at(node: Any, path: list[str], where: str) -> Iterator[tuple[str, Any]]:
    """(config key, value) at a data/site-prerequisites.yaml key (`*`: every key or list item)."""
    if not path:
        yield where, node
        return
    head, rest = path[0], path[1:]
    if head == "*":
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for key, child in items:
            yield from _at(child, rest, f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}")
    elif isinstance(node, dict) and head in node:
        yield from _at(node[head], rest, f"{where}.{head}" if where else head)


def named_prerequisites(site_plan: SitePlan) -> list[str]:
    """Every object the stack names at a key data/site-prerequisites.yaml lists: the site provides each one."""
    config = site_plan.config.model_dump(by_alias=True, mode="json")
    provided = yaml.safe_load(PREREQUISITES_FILE.read_text())["siteProvided"]
    return [f"{kind} `{value}` (named at `{PROJECT}:{key}`)"
            for kind, keys in provided.items() for pattern in keys
            for key, value in _at(config, pattern.split("."), "") if isinstance(value, str) and value]


def render_checklist(site_plan: SitePlan, deployed: list[str]) -> str:
    config, profile = site_plan.config, site_plan.profile
    components = config.components
    names = integration_points()
    prerequisites = [f"{item} (for {component})" for component in deployed
                     for item in site_plan.matrix.pin(component).prerequisites]
    selector = ", ".join(f"{key}={value}" for key, value in components.telemetry.prometheus_selector_labels.items())
    prerequisites.append(f"the site's Prometheus (namespace `{components.tenancy.monitoring_namespace}`) "
                         f"selects ServiceMonitors, PodMonitors and PrometheusRules labelled `{selector}` "
                         f"(telemetry.prometheusSelectorLabels: its monitoring release) and scrapes "
                         f"kube-state-metrics with honorLabels (the tenant pod alerts read its pod state series; "
                         f"kube-prometheus-stack does both)")
    if components.telemetry.otlp_endpoint is not None:
        prerequisites.append(f"the site's OpenTelemetry Collector receives OTLP/gRPC traces and logs at "
                             f"{components.telemetry.otlp_endpoint} from the tenant namespaces (the Dynamo pods' "
                             f"egress is opened to it) and forwards them to the site's trace and log stores")
    staging = components.serving.model_staging
    if staging.mirror is not None:
        prerequisites.append(f"the model mirror Service `{staging.mirror.namespace}/{staging.mirror.service}` serves "
                             f"{staging.mirror.url} to the staging Jobs")
    if staging.proxy is not None:
        prerequisites.append(f"the egress proxy {staging.proxy.url} admits the staging Jobs")
    if components.chart_mirror and not site_plan.local_overlay:
        prerequisites.append(f"the chart mirror `{components.chart_mirror}/` holds every pinned chart "
                             "(ncp mirror lists them)")
    if site_plan.tenant_node_pools:
        prerequisites.append(f"kube-apiserver admission plugin `{names.kubernetes.pod_node_selector_plugin}` enabled "
                             "(--enable-admission-plugins): it holds every pod a tenant creates to the tenant's nodes")
    storage = components.serving.storage
    classes = [f"StorageClass `{tier.storage_class}` for {name} ({tier.access_mode}, {tier.size} per claim)"
               for name, tier in (storage.named() if storage else [])]
    labels = [f"`{key}` ({level})" for level, key in profile.topology_labels.model_dump().items() if key]
    nodes = [f"{site_plan.site.gpu_nodes} GPU nodes of profile {profile.name} ({profile.gpu.per_node} x "
             f"{profile.gpu.model}); GPU Feature Discovery labels them "
             + ", ".join(f"`{names.gpu.product_label}={product}` ({count})"
                         for product, count in site_plan.gpu_node_products.items()),
             f"GPU nodes tainted `{names.gpu.taint_key}:NoSchedule` if only GPU workloads may land there (the "
             "program's GPU pods tolerate it)"]
    if labels:
        nodes.append("topology labels on every GPU node: " + ", ".join(labels))
    nodes += [f"{pool['nodes']} GPU nodes and at least one CPU node (for its frontends, planners and Jobs, which stay "
              f"off GPU nodes) for tenant {tenant} alone: `kubectl label node <node> {pool['label']}` and "
              f"`kubectl taint node <node> {pool['taint']}` on each (its pods run only there)"
              + (f"; on its GPU nodes `kubectl label --overwrite node <node> {pool['migConfigLabel']}` (mig-manager "
                 "partitions them with the stack's MIG layout)" if "migConfigLabel" in pool else "")
              for tenant, pool in site_plan.tenant_node_pools.items()]
    network = []
    if site_plan.network_enabled:
        network = [f"interface `{rail.interface}` on every GPU node, rail subnet {rail.subnet} routable on that rail"
                   for rail in site_plan.rails]
        if site_plan.tenant_node_pools:
            network.append(f"tenant rail isolation: {RDMA_RAIL_ISOLATION}")
    groups = [f"group `{group}` exists in the identity provider ({role} of tenant {tenant.name})"
              for tenant in site_plan.tenants
              for role, members in (("admin", tenant.admins), ("viewer", tenant.viewers))
              for group in members]
    secrets = []
    if site_plan.has_ngc_api_key or site_plan.environment.value == "prod":
        secrets.append(f"`pulumi config set --secret {PROJECT}:ngcApiKey <NGC API key>` (image pulls from nvcr.io)")
    if components.health.datastore_secret:
        secrets.append(f"Secret `{components.health.datastore_secret}` in the NVSentinel namespace (datastore)")
    secrets += [f"Secret `{e.endpoint.model.credentials_secret}` in `{e.namespace}` (model source credentials of "
                f"{e.name})" for e in site_plan.endpoints if e.endpoint.model.credentials_secret]
    namespaces = [f"namespace `{components.tenancy.gateway_namespace}` (inference gateway; tenants accept its ingress)",
                  f"namespace `{components.tenancy.monitoring_namespace}` (Prometheus; tenants accept its scrapes)"]
    gateway = components.serving.gateway
    if gateway is not None and site_plan.routes:
        listener = f"listener `{gateway.section_name}`" if gateway.section_name else "its listeners"
        tenant_namespaces = ", ".join(sorted({route.namespace for route in site_plan.routes}))
        namespaces.append(
            f"Gateway `{components.tenancy.gateway_namespace}/{gateway.name}` ({gateway.local_decision.decision}) "
            f"with the Gateway API and InferencePool CRDs, {listener} admitting HTTPRoutes from {tenant_namespaces} "
            "(`allowedRoutes.namespaces.from: Selector` or `All`): the routes attach to it across namespaces, "
            "which a ReferenceGrant does not allow")
    evidence = site_plan.site.validation_evidence
    records = ([f"evidence location `{evidence.path}` writable by the validation jobs; owner `{evidence.owner}`"]
               if evidence else ["no evidence location set (required in prod: site.validationEvidence)"])
    images = [f"site-built image `{image}` pushed to its registry" for image in
              (components.serving.validation.benchmark_image, components.serving.validation.suite_image,
               components.serving.validation.storage_image) if image]
    lines = [f"# Site checklist: {site_plan.site.name} ({site_plan.environment.value}, profile {profile.name})", "",
             "Generated from the stack by `ncp checklist`; tick each item before `pulumi up`.", ""]
    lines += _section("Cluster prerequisites", prerequisites)
    lines += _section("Nodes", nodes)
    lines += _section("East-west network", network)
    lines += _section("Storage classes", classes)
    lines += _section("Identity-provider groups", groups)
    lines += _section("Secrets", secrets)
    lines += _section("Namespaces the program expects", namespaces)
    lines += _section("Objects the stack names (data/site-prerequisites.yaml)", named_prerequisites(site_plan))
    lines += _section("Images", images)
    lines += _section("Validation evidence", records)
    lines += _section("Day 2: node break-fix and handover", checklist_steps(site_plan))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ncp checklist", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--out", type=Path, help="write the Markdown here instead of printing it")
    args = parser.parse_args(argv)
    try:
        site_plan = plan_from_stack_file(args.stack)
        deployed = list(run_stack_file(args.stack).outputs["versions"])
    except (ConfigError, pulumi.RunError) as error:
        print(error, file=sys.stderr)
        return BAD_INPUT
    text = render_checklist(site_plan, deployed)
    if args.out:
        prepare_output(args.out, "--out").write_text(text)
        print(f"{args.out}: written")
    else:
        print(text)
    return OK
