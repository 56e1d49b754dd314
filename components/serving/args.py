"""Typed arguments of one serving endpoint."""
from dataclasses import dataclass
from typing import Optional

import pulumi

from plan.catalog import DynamoRuntime, MetricSource
from plan.endpoint_plan import EndpointPlan
from plan.serving import ApiServerEgress, StorageTier
from plan.site_plan import NodePlacement


@dataclass(frozen=True)
class TopologyPlacement:
    """Where a multi-node worker is packed: the Grove ClusterTopologyBinding the DGD names (spec.topologyConstraint.
    topologyProfile) and the domain of it each multi-node worker stays inside (services.*.topologyConstraint.
    packDomain); ai-dynamo/dynamo deploy/operator/api/v1alpha1/topology_types.go:41-63."""

    cluster_topology: str
    pack_domain: str


@dataclass(frozen=True)
class EndpointArgs:
    plan: EndpointPlan
    runtime: DynamoRuntime
    gpus_per_node: int
    gpu_product: str
    rdma_resource: Optional[str]  # set when the endpoint's workers use the RDMA rails (plan/endpoints.py rdma_workers)
    networks: list[str]
    model_path: str
    model_cache: StorageTier
    kv_offload: Optional[StorageTier]
    model_express_url: Optional[pulumi.Input[str]]
    pull_secret: Optional[str]
    api_server_egress: ApiServerEgress
    planner_image: str
    planner_prometheus_url: Optional[str]
    planner_prometheus: Optional[tuple[str, int]]  # (namespace, port) of that Prometheus, for the planner's egress
    signals: MetricSource
    selector_labels: dict[str, str]
    scrape_interval: str
    inference_pool: bool
    topology: Optional[TopologyPlacement] = None  # set on multi-node NVLink sites with topology-aware scheduling
    placement: Optional[NodePlacement] = None  # the tenant's dedicated nodes: every pod of the graph runs there
