"""Typed arguments of one serving endpoint."""
from dataclasses import dataclass
from typing import Optional

import pulumi

from ncp.plan.catalog import DynamoRuntime, MetricSource
from ncp.plan.endpoint_plan import EndpointPlan
from ncp.plan.serving import ApiServerEgress, StorageTier
from ncp.plan.site_plan import NodePlacement


@dataclass(frozen=True)
class TopologyPlacement:
    """Where a multi-node worker is packed: the Grove ClusterTopologyBinding the DGD names (spec.topologyConstraint.
    topologyProfile) and the domain of it each multi-node worker stays inside (services.*.topologyConstraint.
    packDomain); ai-dynamo/dynamo deploy/operator/api/v1alpha1/topology_types.go:41-63.

    Attributes:
        cluster_topology: the ClusterTopologyBinding name the DGD names (spec.topologyConstraint.topologyProfile).
        pack_domain: the topology domain each multi-node worker stays inside (services.*.topologyConstraint.packDomain).
    """

    cluster_topology: str
    pack_domain: str


@dataclass(frozen=True)
class EndpointArgs:
    """Arguments of ServingEndpoint: one Dynamo endpoint (its DynamoGraphDeployment, network policies, monitors
    and rules).

    Attributes:
        plan: the endpoint's plan: model, mode, worker groups, tenant and namespace.
        runtime: the Dynamo runtime facts (data/dynamo-runtime.yaml): frontend, planner, KVBM and worker settings.
        gpus_per_node: GPUs on each node of the hardware profile. Unit: GPUs.
        gpu_product: the GPU product label value workers select nodes by (GPU Feature Discovery).
        rdma_resource: the RDMA extended resource workers request, set when they use the RDMA rails
        (ncp/plan/endpoints.py
            rdma_workers); None otherwise.
        networks: the rail networks (NetworkAttachmentDefinition names) RDMA workers attach to.
        model_path: where the staged model is, inside the model-artifacts claim.
        model_cache: the storage tier of the per-pod node-local model cache.
        kv_offload: the storage tier of the per-pod KV cache offload volume; None offloads nothing.
        model_express_url: the ModelExpress server workers load through; None loads from the claim.
        pull_secret: the registry Secret in the tenant namespace; None pulls without one.
        api_server_egress: where Dynamo pods reach the Kubernetes API (addresses and port their egress allows).
        planner_image: the planner image, pinned by digest where the site records digests.
        planner_prometheus_url: the Prometheus the planner reads; None runs no planner Prometheus query.
        planner_prometheus: (namespace, port) of that Prometheus, for the planner's egress; None without one.
        signals: Dynamo's metric names and labels (data/telemetry-signals.yaml `dynamo`).
        selector_labels: the labels the site's Prometheus selects PodMonitors and rules by.
        scrape_interval: how often Prometheus scrapes the endpoint (a Prometheus duration, e.g. `30s`).
        inference_pool: whether the endpoint is served through a Gateway API InferencePool.
        evidence_key: the like-for-like key its acceptance evidence must match (ncp/plan/evidence_key.py
        annotation_value),
            stamped on the DynamoGraphDeployment for the promotion gate.
        topology: where multi-node workers are packed, on multi-node NVLink sites with topology-aware scheduling.
            Default: None.
        placement: the tenant's dedicated nodes: every pod of the graph runs there. Default: None.
        otlp_endpoint: the site's OpenTelemetry Collector (OTLP/gRPC) the Dynamo pods export traces and logs to;
            None exports none. Default: None.
        otlp_collector: (namespace, port) of that collector, for the pods' egress. Default: None.
    """

    plan: EndpointPlan
    runtime: DynamoRuntime
    gpus_per_node: int
    gpu_product: str
    rdma_resource: Optional[str]
    networks: list[str]
    model_path: str
    model_cache: StorageTier
    kv_offload: Optional[StorageTier]
    model_express_url: Optional[pulumi.Input[str]]
    pull_secret: Optional[str]
    api_server_egress: ApiServerEgress
    planner_image: str
    planner_prometheus_url: Optional[str]
    planner_prometheus: Optional[tuple[str, int]]
    signals: MetricSource
    selector_labels: dict[str, str]
    scrape_interval: str
    inference_pool: bool
    evidence_key: str
    topology: Optional[TopologyPlacement] = None
    placement: Optional[NodePlacement] = None
    otlp_endpoint: Optional[str] = None
    otlp_collector: Optional[tuple[str, int]] = None
