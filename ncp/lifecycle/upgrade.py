"""An ordered upgrade plan between two compatibility matrices for one stack: what changes per layer, in the order the
program installs the releases, the CRD step before each chart, node impact, the re-benchmark it triggers and the
rollback per layer."""
from dataclasses import dataclass, field

from ncp.readmodel.recorder import Recording
from ncp.plan.catalog import CompatibilityMatrix, load_disposition
from ncp.plan.site_plan import SitePlan

# A chart's crds/ directory is installed once and never upgraded by `helm upgrade` (Helm docs, "Custom Resource
# Definitions" best practice: "There is no support at this time for upgrading or deleting CRDs using Helm").
CRD_NOTE = "Helm does not upgrade CRDs from a chart's crds/ directory"
# The DGD (nvidia.com/v1alpha1 at the pinned Dynamo) has no update strategy field to set: the operator rolls an
# image change itself, and tracks it in status.rollingUpdate "only for single-node, non-Grove deployments"; a Grove
# (multi-node) graph is replaced as its PodCliqueSet updates (ai-dynamo/dynamo
# deploy/operator/config/crd/bases/nvidia.com_dynamographdeployments.yaml@2a6da14c, status.rollingUpdate;
# spec.restart.strategy only orders restarts asked for by changing spec.restart.id).
DGD_ROLLOUT = ("the Dynamo operator rolls the workers itself (the DGD has no update strategy to set; rolling-update "
               "progress in status.rollingUpdate for single-node graphs): watch it before the next endpoint")


@dataclass
class Step:
    layer: str
    component: str
    change: str
    actions: list[str] = field(default_factory=list)
    rollback: list[str] = field(default_factory=list)


def _chart_changes(old: CompatibilityMatrix, new: CompatibilityMatrix, name: str) -> list[str]:
    before, after = old.components.get(name), new.components[name]
    if before is None:
        return [f"new component at {after.version}"]
    changes = [f"chart {before.version} -> {after.version}"] if before.version != after.version else []
    changes += [f"image {key} {before.images.get(key)} -> {value}" for key, value in after.images.items()
                if before.images.get(key) != value]
    return changes


def _chart_step(name: str, old: CompatibilityMatrix, new: CompatibilityMatrix, site_plan: SitePlan) -> Step:
    pin, before = new.components[name], old.components.get(name)
    step = Step(pin.layer, name, "; ".join(_chart_changes(old, new, name)))
    if pin.crds:
        step.actions.append(f"apply the CRDs of {pin.chart_name} {pin.version} ({', '.join(pin.crds)}) before the "
                            f"release upgrade: {CRD_NOTE}")
    step.actions.append(f"`pulumi up` upgrades Helm release {pin.chart_name} to {pin.version}")
    if name == "gpuOperator" and before is not None and before.images.get("driver") != pin.images.get("driver"):
        step.actions.append(f"driver {before.images.get('driver')} -> {pin.images.get('driver')}: GPU workloads on "
                            f"each of the {site_plan.site.gpu_nodes} GPU nodes are evicted while its driver container "
                            f"restarts; {driver_rollout(site_plan)}; keep serving capacity above the tenants' quotas")
    if before is not None:
        step.rollback.append(f"revert the matrix to {pin.chart_name} {before.version} and `pulumi up` (Helm "
                             "upgrade back to the previous chart)")
        if pin.crds:
            step.rollback.append(f"CRDs stay at the new version ({CRD_NOTE}): confirm the previous "
                                 f"{pin.chart_name} accepts them or restore the previous CRDs first")
    else:
        step.rollback.append(f"remove {name} from the matrix and `pulumi up` (uninstalls the release)")
    return step


def driver_rollout(site_plan: SitePlan) -> str:
    """How the GPU Operator rolls a driver change, from the stack's driver upgrade policy (profile + overrides)."""
    policy = site_plan.driver_upgrade_policy
    if policy is None:
        return "the driver is preinstalled in the node image: upgrade it with the node image, node by node"
    if not policy.auto_upgrade:
        return ("driver upgradePolicy autoUpgrade false: the operator does not roll the driver; upgrade each node "
                "by hand (cordon, drain, label it for the upgrade)")
    parallel = "all nodes at once" if policy.max_parallel_upgrades == 0 else \
        f"{policy.max_parallel_upgrades} node(s) at a time"
    drain = (f"drained first (timeout {policy.drain.timeout_seconds}s, emptyDir pods "
             f"{'deleted' if policy.drain.delete_empty_dir else 'block the drain'})" if policy.drain.enable
             else f"not drained: the operator deletes GPU pods (timeout {policy.gpu_pod_deletion.timeout_seconds}s)")
    return (f"the GPU Operator upgrades {parallel}, at most {policy.max_unavailable} unavailable, each node {drain} "
            "(driver.upgradePolicy from the profile and the stack)")


def _runtime_step(old: CompatibilityMatrix, new: CompatibilityMatrix, site_plan: SitePlan) -> Step:
    before, after = old.workloads["dynamoRuntime"], new.workloads["dynamoRuntime"]
    step = Step(after.layer, "dynamoRuntime", f"Dynamo runtime {before.version} -> {after.version}")
    disposition = load_disposition()
    for endpoint_plan in site_plan.endpoints:
        endpoint = endpoint_plan.endpoint
        step.actions.append(f"{endpoint.name}: `pulumi up` moves the DynamoGraphDeployment's {endpoint_plan.mode} "
                            f"workers to the {after.version} {endpoint.backend} image; {DGD_ROLLOUT}")
        step.actions.append(f"{endpoint.name}: re-benchmark (`ncp evidence run`); its evidence for backend "
                            f"{before.version} no longer passes the prod promotion gate")
        verdict = disposition.model_classes[endpoint.model.model_class].backends[endpoint.backend]
        step.rollback.append(f"{endpoint.name}: {verdict.rollback} (runtime {before.version}, whose passed evidence "
                             "still matches)")
    return step


def upgrade_plan(old: CompatibilityMatrix, new: CompatibilityMatrix, site_plan: SitePlan,
                 recording: Recording) -> list[Step]:
    """Steps in the order the program installs the releases (its registration order), the runtime last."""
    by_chart = {pin.chart: name for name, pin in new.components.items()}
    order = [by_chart[r.inputs["chart"]] for r in recording.releases().values() if r.inputs.get("chart") in by_chart]
    steps = [_chart_step(name, old, new, site_plan) for name in order if _chart_changes(old, new, name)]
    if old.workloads["dynamoRuntime"].version != new.workloads["dynamoRuntime"].version and site_plan.endpoints:
        steps.append(_runtime_step(old, new, site_plan))
    return steps


def render(steps: list[Step], stack: str, old_label: str, new_label: str) -> str:
    lines = [f"# Upgrade plan for stack {stack}: matrix {old_label} -> {new_label}", ""]
    if not steps:
        return "\n".join(lines + ["Nothing the stack deploys changes."]) + "\n"
    lines += ["0. `ncp preflight --stack " + stack + " --kubeconfig <file>` passes; record the current "
              "`pulumi stack history` revision for rollback.", ""]
    for number, step in enumerate(steps, start=1):
        lines += [f"{number}. **{step.component}** ({step.layer}): {step.change}"]
        lines += [f"   - {action}" for action in step.actions]
        lines += [f"   - rollback: {action}" for action in step.rollback]
    lines += ["", "Rollback order is the reverse of the steps above."]
    return "\n".join(lines) + "\n"
