"""The platform's layers: which charts of the compatibility matrix this site deploys, in install order, what each
waits for, and every layer namespace with the Pod Security level it enforces. The matrix carries the facts per chart
(podSecurity, dependsOn, deployedWhen); this module resolves them for one site."""
from dataclasses import dataclass
from typing import Mapping

from ncp.plan.catalog import MATRIX_FILE, CompatibilityMatrix, DeployCondition
from ncp.plan.errors import ConfigError, Problem, manual_edit
from ncp.plan.pod_security import RESTRICTED, PodSecurity

# The program's own layers, beside the charts' namespaces: its records and policies, and the validation suite.
BASELINE_LAYER, BASELINE_NAMESPACE = "baseline", "ncp-system"
VALIDATION_LAYER, VALIDATION_NAMESPACE = "validation", "ncp-validation"
READINESS_LAYER, READINESS_NAMESPACE = "readiness", "ncp-readiness"
READINESS_POD_SECURITY = PodSecurity(
    level="privileged", reason="the NCCL readiness test's pods register RDMA memory and need IPC_LOCK as root, "
                               "and the node handover's sanitize step erases the node's NVMe devices from a privileged "
                               "container, which Pod Security restricted and baseline refuse")


@dataclass(frozen=True)
class LayerNamespace:
    name: str
    layer: str  # a matrix component name, or one of the program's own layers
    pod_security: PodSecurity


@dataclass(frozen=True)
class PlatformLayers:
    charts: tuple[str, ...]  # matrix components this site deploys, each after the ones it depends on
    namespaces: tuple[LayerNamespace, ...]
    validation_suite: bool  # the validation suite Job is deployed (its namespace is among the layers)
    dependencies: Mapping[str, tuple[str, ...]]  # deployed chart -> deployed charts it is installed after

    def depends_on(self, chart: str) -> tuple[str, ...]:
        return self.dependencies[chart]


def install_order(matrix: CompatibilityMatrix, deployed: set[str]) -> tuple[str, ...]:
    """The deployed charts, each after its deployed dependencies; otherwise in matrix order."""
    order: list[str] = []
    pending = [name for name in matrix.components if name in deployed]
    while pending:
        ready = next((name for name in pending if all(d.component in order or d.component not in deployed
                                                       for d in matrix.pin(name).depends_on)), None)
        if ready is None:
            raise ValueError(f"compatibility matrix: dependsOn forms a cycle among {', '.join(pending)}")
        order.append(ready)
        pending.remove(ready)
    return tuple(order)


def _pod_security(matrix: CompatibilityMatrix, chart: str) -> PodSecurity:
    pod_security = matrix.pin(chart).pod_security
    if pod_security is None:
        raise ConfigError(str(MATRIX_FILE), [Problem(
            f"components.{chart}.podSecurity", "is missing for a chart the program deploys",
            manual_edit(str(MATRIX_FILE), f"components.{chart}.podSecurity",
                        "record the Pod Security level its pods need (privileged, baseline or restricted) and why"),
                        rule="input.data-file")])
    return pod_security


def plan_layers(matrix: CompatibilityMatrix, conditions: Mapping[DeployCondition, bool],
                validation_suite: bool, readiness: bool = False, readiness_fabric: bool = True) -> PlatformLayers:
    """conditions: whether each deployedWhen condition holds for this site ("always" holds). readiness_fabric: the
    readiness layer runs the NCCL test (RDMA: privileged); without a fabric it only reads storage (restricted)."""
    deployed = {name for name, pin in matrix.components.items()
                if pin.deployed_when == "always" or conditions[pin.deployed_when]}
    charts = install_order(matrix, deployed)
    namespaces = [LayerNamespace(BASELINE_NAMESPACE, BASELINE_LAYER, RESTRICTED)]
    namespaces += [LayerNamespace(matrix.pin(c).namespace, c, _pod_security(matrix, c)) for c in charts]
    if validation_suite:
        namespaces.append(LayerNamespace(VALIDATION_NAMESPACE, VALIDATION_LAYER, RESTRICTED))
    if readiness:
        namespaces.append(LayerNamespace(READINESS_NAMESPACE, READINESS_LAYER,
                                         READINESS_POD_SECURITY if readiness_fabric else RESTRICTED))
    dependencies = {c: tuple(d.component for d in matrix.pin(c).depends_on if d.component in deployed)
                    for c in charts}
    return PlatformLayers(charts, tuple(namespaces), validation_suite, dependencies)


def site_layers(config, profile, matrix: CompatibilityMatrix, has_endpoints: bool) -> PlatformLayers:
    """The site's layers: what its profile, endpoints and settings deploy."""
    settings = config.components
    validation = settings.serving.validation
    return plan_layers(matrix, {"rdmaFabric": profile.has_rdma_fabric, "servingEndpoints": has_endpoints,
                                "prometheusStack": settings.telemetry.prometheus_stack.enabled},
                       validation_suite=validation.suite and validation.suite_image is not None,
                       # The readiness namespace holds the break-fix gate and handover Jobs on every site; the
                       # handover's sanitize step erases the node's NVMe devices (privileged), as NCCL needs IPC_LOCK.
                       readiness=True, readiness_fabric=True)
