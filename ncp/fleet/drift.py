"""What differs between a site's cluster and its stack: a preview against the live cluster through the Pulumi
Automation API (refresh first, so an out-of-band edit shows as the change that would undo it), and the GPU layer
against the hardware profile and the pins, read from the node labels GPU Feature Discovery and mig-manager set:
driver version, MIG layout and its state, GPU product, GPU node count."""
import os
from pathlib import Path
from typing import Optional

from ncp.cluster_api import KubeError, connect
from ncp.plan.catalog import ROOT, integration_points
from ncp.plan.profile import DriverManagement
from ncp.plan.gpu_partition import MIG_LAYOUT

# Steps a refreshed preview shows that change nothing on the cluster.
UNCHANGED = {"same", "read", "refresh"}


def preview_drift(stack: str, kubeconfig: Optional[str], work_dir: Path = ROOT,
                  config_file: Optional[Path] = None) -> dict:
    """{changes: {op: count}, resources: [(op, type, name)]} of `pulumi preview --refresh` through the Automation
    API; {error} when the stack or the engine cannot be reached."""
    from pulumi import automation as auto

    env = {"KUBECONFIG": kubeconfig} if kubeconfig else {}
    steps: list[dict] = []

    def on_event(event) -> None:
        pre, diagnostic = event.resource_pre_event, event.diagnostic_event
        if pre is not None and pre.metadata.op.value not in UNCHANGED:
            urn = pre.metadata.urn
            steps.append({"op": pre.metadata.op.value, "type": pre.metadata.type, "name": urn.split("::")[-1],
                          "diffs": list(pre.metadata.diffs or [])})
        # A live edit can make the step itself fail: a field another manager took over is a server-side apply
        # conflict. That resource has drifted too; the message says how.
        if diagnostic is not None and diagnostic.severity == "error" and diagnostic.urn:
            parts = diagnostic.urn.split("::")
            steps.append({"op": "refused", "type": parts[-2].split("$")[-1], "name": parts[-1],
                          "diffs": [" ".join(diagnostic.message.split())[:300]]})

    try:
        workspace = auto.LocalWorkspace(work_dir=str(work_dir), env_vars=env)
        target = auto.Stack.select(stack, workspace)
        result = target.preview(refresh=True, on_event=on_event, color="never",
                                config_file=str(config_file) if config_file else None)
    except auto.errors.CommandError as error:
        lines = [line.strip() for line in str(error).splitlines() if "error" in line.lower() and line.strip()]
        return {"error": " | ".join(lines[-3:])[:800] or repr(error)[:800], "resources": steps}
    changes = {op: count for op, count in (result.change_summary or {}).items()
               if str(getattr(op, "value", op)) not in UNCHANGED and count}
    return {"changes": {str(getattr(op, "value", op)): count for op, count in changes.items()}, "resources": steps}


def expected_gpu_state(site_plan) -> dict:
    """The GPU layer the site's plan means: product label, MIG config label (None: no MIG), driver (None: the
    site's own), GPU node count."""
    managed = site_plan.driver == DriverManagement.MANAGED
    mig = site_plan.mig
    return {"product": site_plan.profile.gpu.product_label,
            "migConfig": MIG_LAYOUT if mig is not None and mig.node_pool is None else None,
            "driver": site_plan.matrix.pin("gpuOperator").images.get("driver") if managed else None,
            "nodes": site_plan.site.gpu_nodes}


def gpu_layer_problems(nodes: list[dict], expected: dict) -> list[str]:
    """Each way the GPU nodes' labels differ from what the plan means."""
    names = integration_points().gpu
    gpu_nodes = [n for n in nodes if (n["metadata"].get("labels") or {}).get(names.present_label) == "true"]
    problems = []
    if len(gpu_nodes) != expected["nodes"]:
        problems.append(f"{len(gpu_nodes)} GPU nodes ({names.present_label}=true); the stack declares "
                        f"site.gpuNodes {expected['nodes']}")
    for node in gpu_nodes:
        labels, name = node["metadata"].get("labels") or {}, node["metadata"]["name"]
        product = labels.get(names.product_label, "")
        if product.split(names.mig_product_infix)[0] != expected["product"]:
            problems.append(f"{name}: {names.product_label}={product or '(none)'}; the profile's GPU is "
                            f"{expected['product']}")
        mig = labels.get(names.mig_config_label)
        if expected["migConfig"] and mig != expected["migConfig"]:
            problems.append(f"{name}: {names.mig_config_label}={mig or '(none)'}; the stack's MIG layout is "
                            f"{expected['migConfig']}")
        elif not expected["migConfig"] and mig not in (None, "all-disabled"):
            problems.append(f"{name}: {names.mig_config_label}={mig}; the stack sets no MIG layout")
        state = labels.get(names.mig_config_state_label)
        if mig and state not in (None, "success"):
            problems.append(f"{name}: {names.mig_config_state_label}={state}: MIG layout {mig} is not applied")
        driver = labels.get(names.driver_version_label)
        if expected["driver"] and driver and driver != expected["driver"]:
            problems.append(f"{name}: {names.driver_version_label}={driver}; the stack pins driver "
                            f"{expected['driver']}")
    return problems


def gpu_drift(site_plan, kubeconfig: str, context: Optional[str]) -> dict:
    try:
        nodes = connect(os.path.expanduser(kubeconfig), context).nodes()
    except KubeError as error:
        return {"error": str(error)}
    return {"problems": gpu_layer_problems(nodes, expected_gpu_state(site_plan))}
