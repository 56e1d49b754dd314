"""The site's layered view (RA "Layered Inference Factory View"): tenants and their endpoints on top, then each RA
layer with the components the stack pins, down to the accelerated infrastructure of the hardware profile; every
endpoint has a path through serving, model data, orchestration and validation, coloured by its latest evidence.
Rendered by Graphviz (`dot`, Debian package graphviz) through the PyPI `graphviz` package."""
import itertools
from pathlib import Path

import graphviz

# Top-down order of the RA's layers ("Component Layers" table), then the infrastructure under them.
LAYER_ORDER = ["Inference Serving Layer", "Model Data And Memory Layer", "Cloud Orchestration Layer", "Telemetry",
               "Performance And Validation Layer"]
EVIDENCE_COLOUR = {True: "#76b900", False: "#d62728", None: "#bbbbbb"}  # passed, failed, none


def _node_id(*parts: str) -> str:
    return "_".join(part.replace("-", "_").replace(" ", "_") for part in parts)


def _layer_nodes(graph: graphviz.Digraph, review: dict) -> dict[str, str]:
    """One cluster per RA layer with its components; returns layer -> an anchor node for edges."""
    anchors: dict[str, str] = {}
    for index, layer in enumerate(LAYER_ORDER):
        components = [c for c in review["components"] if c["layer"] == layer and c["deployed"] is not False]
        if not components:
            continue
        with graph.subgraph(name=f"cluster_layer{index}") as cluster:
            cluster.attr(label=layer, style="rounded,filled", fillcolor="#f2f2f2", fontname="Helvetica-Bold")
            for component in components:
                node = _node_id("c", component["component"])
                cluster.node(node, f"{component['displayName']}\n{component['version']}", shape="box",
                             style="filled", fillcolor="white", fontname="Helvetica")
                anchors.setdefault(layer, node)
    return anchors


def _tenants(graph: graphviz.Digraph, review: dict) -> list[tuple[str, dict]]:
    endpoints = []
    with graph.subgraph(name="cluster_tenants") as tenants:
        tenants.attr(label="Tenants (API And Experience)", style="rounded", fontname="Helvetica-Bold")
        for tenant in review["tenants"]:
            with tenants.subgraph(name=f"cluster_t_{_node_id(tenant['name'])}") as box:
                box.attr(label=f"{tenant['name']}\n{tenant['namespace']} · quota {tenant['gpuQuota']} / limit "
                               f"{tenant['gpuLimit']} GPUs", style="rounded,filled", fillcolor="#e8f4d9",
                         fontname="Helvetica")
                served = [e for e in review["endpoints"] if e["tenant"] == tenant["name"]]
                for endpoint in served:
                    node = _node_id("e", endpoint["endpoint"])
                    evidence = endpoint["latestEvidence"]
                    passed = None if evidence is None else evidence["passed"]
                    box.node(node, f"{endpoint['endpoint']}\n{endpoint['mode']}, {endpoint['gpus']} GPUs\n"
                                   f"{endpoint['backend']}", shape="component", style="filled",
                             fillcolor="white", color=EVIDENCE_COLOUR[passed], penwidth="3", fontname="Helvetica")
                    endpoints.append((node, endpoint))
                if not served:
                    box.node(_node_id("t", tenant["name"], "none"), "no endpoints", shape="plaintext",
                             fontname="Helvetica-Oblique")
    return endpoints


# RA: Layered Inference Factory View: "confirm that every tenant-facing endpoint has a path through platform API"
def site_graph(review: dict) -> graphviz.Digraph:
    graph = graphviz.Digraph("site", graph_attr={"rankdir": "TB", "compound": "true", "fontname": "Helvetica",
                                                 "label": f"{review['site']} ({review['environment']}): RA layered "
                                                          "view; endpoint border = latest evidence (green passed, "
                                                          "red failed, grey none)",
                                                 "labelloc": "t", "nodesep": "0.3", "ranksep": "0.5"})
    endpoints = _tenants(graph, review)
    anchors = _layer_nodes(graph, review)
    infrastructure = "infrastructure"
    graph.node(infrastructure, f"Accelerated infrastructure\n{review['hardwareProfile']}: {review['gpuNodes']} GPU "
                               f"nodes, {review['gpuCapacity']} GPUs\nKubernetes {review['kubernetesVersion']}",
               shape="box3d", style="filled", fillcolor="#333333", fontcolor="white", fontname="Helvetica")
    chain = [anchors[layer] for layer in LAYER_ORDER if layer in anchors] + [infrastructure]
    for upper, lower in itertools.pairwise(chain):
        graph.edge(upper, lower, color="#cccccc", arrowhead="none", ltail="", penwidth="2")
    for node, _ in endpoints:
        for layer in ("Inference Serving Layer", "Performance And Validation Layer"):
            if layer in anchors:
                graph.edge(node, anchors[layer], color="#888888", arrowsize="0.6")
    return graph


def render_picture(review: dict, out_dir: Path) -> list[Path]:
    """site.svg and site.png in out_dir."""
    graph = site_graph(review)
    written = []
    for fmt in ("svg", "png"):
        written.append(Path(graph.render(filename="site", directory=str(out_dir), format=fmt, cleanup=True)))
    return written
