"""The validated plan of one serving endpoint: layout from its AIConfigurator sizing file, never hand-guessed."""
from dataclasses import dataclass, field
from typing import Literal, Optional

from ncp.plan.catalog import integration_points, load_dynamo_runtime
from ncp.plan.config import Tenant
from ncp.plan.names import model_path
from ncp.plan.serving import Endpoint, Role
from ncp.plan.sizing_file import SizedGroup


class WorkerGroup(SizedGroup):
    """One role's workers as the endpoint's sizing file records them (AIConfigurator's layout), with the role."""

    role: Role


@dataclass(frozen=True)
class PlannerPlan:
    """The planner's bounds, resolved against the sized layout (ncp/plan/serving_features.py planner_plan)."""

    min_replicas: dict[Role, int]
    max_replicas: dict[Role, int]
    max_gpus: int
    adjustment_interval_seconds: int


@dataclass(frozen=True)
class EndpointPlan:
    endpoint: Endpoint
    tenant: Tenant
    namespace: str
    queue: str
    mode: Literal["aggregated", "disaggregated"]
    workers: tuple[WorkerGroup, ...]
    image: str
    sizing_file: str
    estimate: dict
    planner: Optional[PlannerPlan] = None
    kv_offload_gb: Optional[int] = None  # KV block manager disk tier per worker pod (serving_features.py kv_offload_gb)
    nodes_per_worker: dict[str, int] = field(default_factory=dict)  # role -> nodes one worker spans

    @property
    def multi_node(self) -> bool:
        return any(nodes > 1 for nodes in self.nodes_per_worker.values())

    @property
    def name(self) -> str:
        return self.endpoint.name

    @property
    def gpus(self) -> int:
        return sum(group.gpus for group in self.workers)

    @property
    def model_path(self) -> str:
        """Where the staged model lives in the tenant's pods."""
        return model_path(self.endpoint.model.name, self.endpoint.model.revision)

    @property
    def runtime_version(self) -> str:
        """The runtime image's release: its tag (`<repo>:<tag>` or `<repo>:<tag>@<digest>`)."""
        return self.image.split("@", 1)[0].rsplit(":", 1)[1]

    @property
    def tokenizer(self) -> str:
        """The benchmark's tokenizer: the model's own unless the endpoint names another."""
        return self.endpoint.model.tokenizer or self.model_path

    @property
    def url(self) -> str:
        """The in-cluster URL of the endpoint's frontend Service, which the Dynamo operator names
        `<graph><frontendServiceSuffix>` (data/integration-points.yaml)."""
        frontend = f"{self.name}{integration_points().dynamo.frontend_service_suffix}"
        return f"http://{frontend}.{self.namespace}.svc:{load_dynamo_runtime().frontend.http_port}"

    def acceptance_thresholds(self) -> dict:
        """The thresholds the benchmark Job records (camelCase, the ones set)."""
        return self.endpoint.slo.thresholds.model_dump(by_alias=True, exclude_none=True)
