"""The validated plan of one serving endpoint: layout from its AIConfigurator sizing file, never hand-guessed."""
from dataclasses import dataclass, field
from typing import Literal, Optional

from plan.config import Tenant
from plan.serving import Endpoint, Role


@dataclass(frozen=True)
class WorkerGroup:
    role: Role
    replicas: int
    gpus_per_worker: int
    tensor_parallel: int
    pipeline_parallel: int
    expert_parallel: int
    data_parallel: int = 1  # attention data parallel ranks (AIConfigurator dp)
    moe_tensor_parallel: int = 1
    memory_gb_per_gpu: Optional[float] = None  # AIConfigurator's estimate: weights + activations + KV at max batch

    @property
    def gpus(self) -> int:
        return self.replicas * self.gpus_per_worker


@dataclass(frozen=True)
class PlannerPlan:
    """The planner's bounds, resolved against the sized layout (plan/endpoints.py planner_plan)."""

    min_replicas: dict[str, int]
    max_replicas: dict[str, int]
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
    kv_offload_gb: Optional[int] = None  # KV block manager disk tier per worker pod (plan/endpoints.py kv_offload_gb)
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
