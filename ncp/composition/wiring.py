"""What the layers wired so far hand to the ones after them. Each layer's wire function (ncp.composition.layers)
reads the plan and the components of the layers it comes after, and sets its own."""
from dataclasses import dataclass, field
from typing import Optional, TypeVar

import pulumi

from components.cluster_baseline import ClusterBaseline
from components.gpu_enablement import GpuEnablement
from components.health import Health
from components.model_data import TenantStorage
from components.network_enablement import NetworkEnablement
from components.scheduling import Scheduling
from components.serving import ServingPlatform
from components.telemetry import Telemetry
from components.tenancy import Tenancy
from ncp.plan.site_plan import SitePlan
from ncp.plan.wired import WiredPlan


T = TypeVar("T")


def present(value: Optional[T], what: str) -> T:
    """A plan fact validation guarantees where a layer uses it (e.g. storage tiers wherever a tenant serves); its
    absence is a bug in the plan's rules, said plainly instead of an AttributeError deep in a component."""
    if value is None:
        raise RuntimeError(f"composition: the plan validated without {what}; a validation rule is missing")
    return value


@dataclass(frozen=True)
class Serving:
    """What every endpoint is wired to: the platform, and its tenant's own ModelExpress server where the site runs
    ModelExpress (tenant -> the server's URL)."""

    platform: ServingPlatform
    model_express_urls: dict[str, pulumi.Output[str]]


@dataclass
class Wiring:
    wired: WiredPlan  # the finished plan: every derived fact a layer hands a component
    ngc_api_key: Optional[pulumi.Output[str]]
    installed: dict[str, pulumi.Resource] = field(default_factory=dict)  # matrix chart -> the component installing it
    baseline: Optional[ClusterBaseline] = None
    network: Optional[NetworkEnablement] = None
    gpu: Optional[GpuEnablement] = None
    scheduling: Optional[Scheduling] = None
    health: Optional[Health] = None
    telemetry: Optional[Telemetry] = None
    tenancy: Optional[Tenancy] = None
    claims: dict[str, TenantStorage] = field(default_factory=dict)  # tenant -> its model and benchmark claims
    serving: Optional[Serving] = None
    endpoints: dict[str, dict] = field(default_factory=dict)  # endpoint -> its stack outputs
    inference_services: dict[str, dict] = field(default_factory=dict)  # service -> its stack outputs

    @property
    def plan(self) -> SitePlan:
        """The validated site plan (its settings and resolved properties)."""
        return self.wired.site

    def after(self, chart: str) -> pulumi.ResourceOptions:
        """Install after the charts the matrix says this one depends on (dependsOn, with the reason there)."""
        installed = self.installed
        return pulumi.ResourceOptions(
            depends_on=list(dict.fromkeys(installed[d] for d in self.wired.chart_after[chart])))

    def install(self, charts: tuple[str, ...], component: pulumi.Resource) -> None:
        for chart in charts:
            self.installed[chart] = component

    def required(self, name: str):
        """A component an earlier layer set; a layer out of order is a bug in the registry, said plainly."""
        value = getattr(self, name)
        if value is None:
            raise RuntimeError(f"composition: the {name} layer is not wired yet; order LAYERS so it comes first")
        return value

    @property
    def networks(self) -> list:
        return self.network.networks if self.network else []
