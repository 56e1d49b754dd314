"""Wire the validated plan into the RA layers: a registry of layers, each with the matrix charts it installs, the
layers it comes after (it reads their components) and one wire function; `compose` runs them in order and returns
the stack outputs. The only package that knows every component; each component only knows its own args. Every fact
comes resolved from the plan: this package decides nothing. Chart install order inside a layer's wiring comes from
the matrix's `dependsOn` (Wiring.after)."""
from dataclasses import dataclass
from typing import Callable, Optional

import pulumi

from ncp.composition import platform, serving
from ncp.composition.outputs import StackOutputs
from ncp.composition.wiring import Wiring
from ncp.plan.wired import WiredPlan


@dataclass(frozen=True)
class Layer:
    name: str
    charts: tuple[str, ...]  # the compatibility matrix's charts this layer installs
    after: tuple[str, ...]  # layers whose components it wires to (ordering beyond the matrix's dependsOn)
    why: str
    wire: Callable[[Wiring], None]


LAYERS = (
    Layer("baseline", (), (), "namespaces, Pod Security, the baseline record: everything lands in them",
          platform.wire_baseline),
    Layer("network", ("networkOperator",), ("baseline",), "the rails the GPU and serving layers attach to",
          platform.wire_network),
    Layer("gpu", ("gpuOperator",), ("baseline",), "drivers, MIG and DCGM before anything asks for a GPU",
          platform.wire_gpu),
    Layer("scheduling", ("kaiScheduler", "grove"), ("baseline",), "queues and gangs before GPU workloads",
          platform.wire_scheduling),
    Layer("readiness", (), ("baseline", "network", "gpu", "scheduling"),
          "NCCL over the rails and fio per tier need the fabric, the GPUs and a queue", platform.wire_readiness),
    Layer("break-fix", (), ("baseline", "gpu"), "the return-to-service gate and handover Jobs, before NVSentinel can "
          "quarantine a node", platform.wire_break_fix),
    Layer("health", ("nvsentinel",), ("baseline", "gpu"), "NVSentinel reads DCGM's endpoint", platform.wire_health),
    Layer("telemetry", ("kubePrometheusStack",), ("baseline",), "rules and dashboards in the baseline namespace",
          platform.wire_telemetry),
    Layer("validation", (), ("baseline",), "the validation suite Job reads the GPU operator's namespace",
          platform.wire_validation),
    Layer("tenancy", (), ("network",), "tenant namespaces, quotas, policies; rail attachments per tenant",
          serving.wire_tenancy),
    Layer("storage", (), ("tenancy",), "claims count against the tenant's quota", serving.wire_tenant_storage),
    Layer("serving", ("dynamoPlatform",), ("baseline", "network", "tenancy", "storage"),
          "endpoints run in tenant namespaces on their claims, through the platform", serving.wire_serving),
    Layer("inference-services", (), ("scheduling", "tenancy", "storage"),
          "Triton servers are scheduled by the tenant's queue on its claims", serving.wire_inference_services),
)


def order_problems(layers: tuple[Layer, ...] = LAYERS) -> list[str]:
    """Layers listed before a layer they come after (the loop would hand them an unwired component)."""
    seen: set[str] = set()
    problems = []
    for layer in layers:
        problems += [f"{layer.name} comes after {before}, which is listed later or not at all"
                     for before in layer.after if before not in seen]
        seen.add(layer.name)
    return problems


def compose(plan: WiredPlan, ngc_api_key: Optional[pulumi.Output[str]]) -> dict:
    wiring = Wiring(plan, ngc_api_key)
    for layer in LAYERS:
        layer.wire(wiring)
    return StackOutputs.of(wiring).exports()
