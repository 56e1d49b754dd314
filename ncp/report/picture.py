"""The site's layered view (RA "Layered Inference Factory View"), read left to right: the site's gateway and routes,
tenants and their endpoints, then each RA layer with the components the stack deploys, then the GPU nodes (per
tenant pool, MIG units apart from GPUs) and the east-west rails; what the site provides around the program (gateway,
model mirror or proxy, its Prometheus) is drawn dashed. Every endpoint links to the component that serves it (Dynamo
for LLM endpoints, Triton for inference services) and to the benchmark that validates it, coloured by its latest
evidence. Rendered by Graphviz (`dot`, Debian package graphviz) through the PyPI `graphviz` package; the drawing is
scaled to fit a landscape page (PAGE_INCHES)."""
import textwrap
from pathlib import Path
from typing import Optional

import graphviz

# Left-to-right order of the RA's layers ("Component Layers" table), then the infrastructure under them.
LAYER_ORDER = ["Inference Serving Layer", "Model Data And Memory Layer", "Cloud Orchestration Layer", "Telemetry",
               "Performance And Validation Layer"]
EVIDENCE_COLOUR = {True: "#76b900", False: "#d62728", None: "#bbbbbb"}  # passed, failed, none
PAGE_INCHES = "11.7,8.3"  # A4 landscape: dot scales a larger drawing down to fit
PNG_DPI = "150"
SERVES = {"triton": "triton"}  # endpoint backend -> the component whose node serves it (default: dynamoPlatform)
BENCHMARK = "aiperf"
LABEL_WIDTH = 30
SITE_PROVIDED = {"shape": "box", "style": "dashed,rounded", "fontname": "Helvetica"}


def _node_id(*parts: str) -> str:
    return "_".join(part.replace("-", "_").replace(" ", "_").replace(".", "_") for part in parts)


def _wrap(text: str) -> str:
    return "\n".join(textwrap.wrap(text, LABEL_WIDTH)) or text


def _layer_nodes(graph: graphviz.Digraph, review: dict) -> dict[str, str]:
    """One cluster per RA layer with its deployed components; returns component -> node id."""
    nodes: dict[str, str] = {}
    for index, layer in enumerate(LAYER_ORDER):
        components = [c for c in review["components"] if c["layer"] == layer and c["deployed"] is not False]
        if not components:
            continue
        with graph.subgraph(name=f"cluster_layer{index}") as cluster:
            cluster.attr(label=layer, style="rounded,filled", fillcolor="#f2f2f2", fontname="Helvetica-Bold")
            for component in components:
                node = _node_id("c", component["component"])
                cluster.node(node, f"{_wrap(component['displayName'])}\n{component['version']}", shape="box",
                             style="filled", fillcolor="white", fontname="Helvetica", fontsize="10")
                nodes[component["component"]] = node
    return nodes


def _tenants(graph: graphviz.Digraph, review: dict) -> list[tuple[str, dict]]:
    endpoints = []
    with graph.subgraph(name="cluster_tenants") as tenants:
        tenants.attr(label="Tenants (API And Experience)", style="rounded", fontname="Helvetica-Bold")
        for tenant in review["tenants"]:
            with tenants.subgraph(name=f"cluster_t_{_node_id(tenant['name'])}") as box:
                box.attr(label=f"{tenant['name']} ({tenant['namespace']})\nquota {tenant['gpuQuota']} / limit "
                               f"{tenant['gpuLimit']} {tenant['unit']}", style="rounded,filled",
                         fillcolor="#e8f4d9", fontname="Helvetica", fontsize="10")
                served = [e for e in review["endpoints"] if e["tenant"] == tenant["name"]]
                for endpoint in served:
                    node = _node_id("e", endpoint["endpoint"])
                    evidence = endpoint["latestEvidence"]
                    passed = None if evidence is None else evidence["passed"]
                    box.node(node, f"{endpoint['endpoint']}\n{_wrap(endpoint['mode'])}\n{endpoint['gpus']} "
                                   f"{tenant['unit'].split(' (')[0]}, {endpoint['backend']}", shape="component",
                             style="filled", fillcolor="white", color=EVIDENCE_COLOUR[passed], penwidth="3",
                             fontname="Helvetica", fontsize="10")
                    endpoints.append((node, endpoint))
                if not served:
                    box.node(_node_id("t", tenant["name"], "none"), "no endpoints", shape="plaintext",
                             fontname="Helvetica-Oblique", fontsize="10")
    return endpoints


def _gateway(graph: graphviz.Digraph, gateway: Optional[dict]) -> None:
    if gateway is None:
        return
    node = _node_id("gateway", gateway["name"])
    graph.node(node, f"Gateway {gateway['namespace']}/{gateway['name']}\n(site-provided)", **SITE_PROVIDED)
    for route in gateway["routes"]:
        route_node = _node_id("route", route["tenant"], route["name"])
        graph.node(route_node, f"HTTPRoute {route['name']}\n{_wrap(', '.join(route['hostnames']) or '*')}",
                   shape="cds", fontname="Helvetica", fontsize="10")
        graph.edge(node, route_node, color="#555555")
        for backend in route["backends"]:
            graph.edge(route_node, _node_id("e", backend["endpoint"]), label=f"{backend['weight']}%",
                       fontsize="9", color="#555555")


def _infrastructure(graph: graphviz.Digraph, review: dict) -> str:
    """GPU nodes per tenant pool and the shared nodes, the rails; returns the anchor node."""
    facts, count = review["siteFacts"], review["gpuCount"]
    anchor = "infrastructure"
    with graph.subgraph(name="cluster_infrastructure") as infra:
        infra.attr(label=f"Accelerated infrastructure: {review['hardwareProfile']}, {review['gpuNodes']} GPU nodes, "
                         f"{count['physical']} GPUs", style="rounded,filled", fillcolor="#333333",
                   fontcolor="white", fontname="Helvetica-Bold")
        infra.node(anchor, f"Kubernetes {review['kubernetesVersion']}\nshared GPU nodes: {facts['sharedNodes']}",
                   shape="box3d", style="filled", fillcolor="#555555", fontcolor="white", fontname="Helvetica",
                   fontsize="10")
        for tenant in review["tenants"]:
            if tenant["nodePool"]:
                pool = _node_id("pool", tenant["name"])
                infra.node(pool, f"{tenant['name']} pool\n{tenant['nodePool']} nodes, limit {tenant['gpuLimit']} "
                                 f"{tenant['unit'].split(' (')[0]}", shape="box3d", style="filled",
                           fillcolor="#555555", fontcolor="white", fontname="Helvetica", fontsize="10")
        if facts["rails"]:
            rails = "\n".join(f"{rail['interface']} {rail['subnet']}" for rail in facts["rails"])
            infra.node("rails", f"east-west RDMA rails\n{rails}", shape="box", style="filled", fillcolor="#555555",
                       fontcolor="white", fontname="Helvetica", fontsize="9")
    return anchor


# RA: Layered Inference Factory View: "confirm that every tenant-facing endpoint has a path through platform API"
def site_graph(review: dict) -> graphviz.Digraph:
    graph = graphviz.Digraph("site", graph_attr={
        "rankdir": "LR", "compound": "true", "fontname": "Helvetica", "size": PAGE_INCHES, "ratio": "compress",
        "label": f"{review['site']} ({review['environment']}): RA layered view; endpoint border = latest evidence "
                 "(green passed, red failed, grey none); dashed = provided by the site",
        "labelloc": "t", "nodesep": "0.2", "ranksep": "0.6"})
    facts = review["siteFacts"]
    _gateway(graph, facts["gateway"])
    endpoints = _tenants(graph, review)
    components = _layer_nodes(graph, review)
    infrastructure = _infrastructure(graph, review)
    graph.node("model_source", f"models via\n{_wrap(facts['modelSource'])}", **SITE_PROVIDED)
    monitoring = facts["monitoring"]
    selector = ", ".join(f"{key}={value}" for key, value in monitoring["selector"].items())
    graph.node("prometheus", f"site Prometheus\nnamespace {monitoring['namespace']}\nselects {selector}",
               **SITE_PROVIDED)
    for node, endpoint in endpoints:
        serving = components.get(SERVES.get(endpoint["backend"], "dynamoPlatform"))
        if serving:
            graph.edge(node, serving, color="#888888", arrowsize="0.6")
        if BENCHMARK in components:
            graph.edge(node, components[BENCHMARK], color="#cccccc", arrowsize="0.5", style="dashed")
        graph.edge(node, "prometheus", color="#cccccc", arrowsize="0.5", style="dotted")
    for tenant in review["tenants"]:
        target = _node_id("pool", tenant["name"]) if tenant["nodePool"] else infrastructure
        first = next((n for n, e in endpoints if e["tenant"] == tenant["name"]), None)
        if first is not None:
            graph.edge(first, target, color="#bbbbbb", style="dotted", arrowsize="0.5")
    staging = components.get("modelExpress")
    graph.edge("model_source", staging or infrastructure, color="#888888", style="dashed", arrowsize="0.6")
    _stack_layers(graph, review, components, infrastructure)
    return graph


def _stack_layers(graph: graphviz.Digraph, review: dict, components: dict[str, str], infrastructure: str) -> None:
    """Each layer runs on the one below it: one light edge from its first component to the next layer's, ending on
    the infrastructure (this also keeps the layers in the RA's order across the page)."""
    firsts = [next(components[c["component"]] for c in review["components"]
                   if c["layer"] == layer and c["component"] in components)
              for layer in ("Inference Serving Layer", "Model Data And Memory Layer", "Cloud Orchestration Layer")
              if any(c["layer"] == layer and c["component"] in components for c in review["components"])]
    for upper, lower in zip(firsts, [*firsts[1:], infrastructure], strict=True):
        graph.edge(upper, lower, color="#dddddd", penwidth="2", arrowhead="none")


def render_picture(review: dict, out_dir: Path) -> list[Path]:
    """site.svg and site.png in out_dir."""
    graph = site_graph(review)
    written = []
    for fmt, dpi in (("svg", "72"), ("png", PNG_DPI)):  # the SVG in points (a page), the PNG sharp enough to read
        graph.graph_attr["dpi"] = dpi
        written.append(Path(graph.render(filename="site", directory=str(out_dir), format=fmt, cleanup=True)))
    return written
