"""The validated plan of one serving endpoint: layout from its AIConfigurator sizing file, never hand-guessed."""
from dataclasses import dataclass
from typing import Literal

from plan.config import Tenant
from plan.serving import Endpoint

Role = Literal["worker", "prefill", "decode"]


@dataclass(frozen=True)
class WorkerGroup:
    role: Role
    replicas: int
    gpus_per_worker: int
    tensor_parallel: int
    pipeline_parallel: int
    expert_parallel: int

    @property
    def gpus(self) -> int:
        return self.replicas * self.gpus_per_worker


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

    @property
    def name(self) -> str:
        return self.endpoint.name

    @property
    def gpus(self) -> int:
        return sum(group.gpus for group in self.workers)
