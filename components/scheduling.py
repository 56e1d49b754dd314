"""Scheduling and placement layer: KAI Scheduler with a per-tenant queue tree, and Grove for gang scheduling."""
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import Layer, at_least, helm_release, labels, one_of, repeated
from ncp.plan.catalog import ChartPin, MetricSource
from ncp.plan.site_plan import TopologyLevel
from ncp.plan.tenancy import TenantQueue

UNLIMITED = -1  # KAI Queue convention for "no quota/limit on this resource"
ROOT_QUEUE = "ncp-root"
TOPOLOGY_NAME = "ncp-topology"


@dataclass(frozen=True)
class SchedulingArgs:
    """Arguments of Scheduling: the KAI Scheduler with the site's queue tree, and Grove with its topology.

    Attributes:
        kai_pin: the KAI Scheduler chart (compatibility matrix `kaiScheduler`).
        grove_pin: the Grove chart (compatibility matrix `grove`).
        kai_namespace: the layer namespace KAI installs into.
        grove_namespace: the layer namespace Grove installs into.
        site_gpus: the site's GPU capacity: the root queue's quota and limit. Unit: GPUs.
        queues: one leaf queue per tenant.
        placement_strategy: KAI's placement strategy: `binpack` or `spread`.
        topology_aware: whether KAI and Grove place by the node topology labels.
        topology_levels: the topology levels, widest domain first; every GPU node must carry each label.
        skip_await: whether Pulumi skips waiting for the releases' resources to become ready.
        platform_queues: the platform's own leaf queues (the readiness tests), tenant of none. Default: [].
        queue_metrics: the KAI queue controller's metrics Service and series (data/telemetry-signals.yaml `kai`);
            None creates no ServiceMonitor for it. Default: None.
        scrape_interval: how often Prometheus scrapes the queue controller (a Prometheus duration). Default: '30s'.
        monitor_labels: the labels the site's Prometheus selects ServiceMonitors by. Default: {}.
    """

    kai_pin: ChartPin
    grove_pin: ChartPin
    kai_namespace: k8s.core.v1.Namespace
    grove_namespace: k8s.core.v1.Namespace
    site_gpus: int
    queues: list[TenantQueue]
    placement_strategy: str
    topology_aware: bool
    topology_levels: tuple[TopologyLevel, ...]
    skip_await: bool
    platform_queues: list[TenantQueue] = field(default_factory=list)
    queue_metrics: Optional[MetricSource] = None
    scrape_interval: str = "30s"
    monitor_labels: dict[str, str] = field(default_factory=dict)


PLACEMENT_STRATEGIES = ("binpack", "spread")  # KAI's scheduler.placementStrategy values


def scheduling_problems(args: SchedulingArgs) -> list[str]:
    """What the queue tree cannot hold: negative GPUs, limits below quotas, more guaranteed than the site has."""
    problems = [*at_least("site_gpus", args.site_gpus, 0),
                *one_of("placement_strategy", args.placement_strategy, PLACEMENT_STRATEGIES),
                *repeated("queue", [queue.queue for queue in args.queues])]
    for queue in args.queues:
        own = [*at_least("gpu_quota", queue.gpu_quota, 0), *at_least("over_quota_weight", queue.over_quota_weight, 0)]
        if queue.gpu_limit < queue.gpu_quota:
            own.append(f"gpu_limit {queue.gpu_limit} is below its gpu_quota {queue.gpu_quota}")
        problems += [f"queue {queue.queue}: {problem}" for problem in own]
    guaranteed = sum(queue.gpu_quota for queue in args.queues)
    if guaranteed > args.site_gpus:
        problems.append(f"the queues guarantee {guaranteed} GPUs but the site has {args.site_gpus}")
    if args.topology_aware and not args.topology_levels:
        problems.append("topology_aware needs topology_levels")
    return problems


def kai_values(args: SchedulingArgs) -> dict:
    return {
        "scheduler": {"placementStrategy": args.placement_strategy},
        "global": {"gpuSharing": False},
        # The chart's default-parent-queue/default-queue (quota 0, limit -1, weight 1: templates/default-queue.yaml
        # at the pin) would sit beside ncp-root and borrow idle GPUs at ncp-root's weight; every workload names its
        # tenant queue instead (decision in the matrix entry).
        "defaultQueue": {"createDefaultQueue": False},
    }


def grove_values(args: SchedulingArgs) -> dict:
    return {"config": {"topologyAwareScheduling": {"enabled": args.topology_aware}}}


def queue_spec(parent: str, gpu_quota: int, gpu_limit: int, weight: int, display_name: str) -> dict:
    spec = {
        "displayName": display_name,
        "resources": {
            "gpu": {"quota": gpu_quota, "limit": gpu_limit, "overQuotaWeight": weight},
            "cpu": {"quota": UNLIMITED, "limit": UNLIMITED, "overQuotaWeight": weight},
            "memory": {"quota": UNLIMITED, "limit": UNLIMITED, "overQuotaWeight": weight},
        },
    }
    if parent:
        spec["parentQueue"] = parent
    return spec


class Scheduling(Layer):
    """KAI Scheduler with the site's queue tree (a root queue with one leaf per tenant), and Grove, with the site's
    topology when placement is topology-aware."""

    def __init__(self, name: str, args: SchedulingArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("Scheduling", name, opts)
        self.refuse(scheduling_problems(args))
        self.kai_values = kai_values(args)
        self.grove_values = grove_values(args)
        self.kai = helm_release("kai-scheduler", args.kai_pin, self.kai_values, args.kai_namespace.metadata.name,
                                self, args.skip_await, depends_on=[args.kai_namespace])
        self.grove = helm_release("grove", args.grove_pin, self.grove_values, args.grove_namespace.metadata.name,
                                  self, args.skip_await, depends_on=[args.grove_namespace, self.kai])
        self.queues = self._queue_tree(name, args)
        if args.queue_metrics is not None:
            self._queue_monitor(name, args, args.queue_metrics)
        # RA: Tenant Compute View: "the platform must preserve enough topology and resource intent"
        # RA: GPU Compute Node: "node placement must be considered part of the architecture"
        if args.topology_aware:
            self._cluster_topology(name, args.topology_levels)
        self.register_outputs({
            "kaiRelease": self.kai.name,
            "groveRelease": self.grove.name,
            "rootQueue": ROOT_QUEUE,
            "queues": self.queues,
            "topologyAware": args.topology_aware,
            "clusterTopology": TOPOLOGY_NAME if args.topology_aware else None,
        })

    def _queue_monitor(self, name: str, args: SchedulingArgs, metrics: MetricSource) -> None:
        """The queue controller's per-queue GPU gauges (kai_queue_*), which the tenant-usage rules and dashboard read:
        KAI itself creates no ServiceMonitor unless it also deploys its own Prometheus."""
        k8s.apiextensions.CustomResource(
            f"{name}-queue-controller-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="kai-queue-controller", namespace=args.kai_namespace.metadata.name,
                labels={**labels("scheduling", "kai-queue-controller"), **args.monitor_labels}),
            spec={"selector": {"matchLabels": dict(metrics.service_labels)},
                  "endpoints": [{"port": metrics.ports["queueController"], "interval": args.scrape_interval,
                                 "honorLabels": False}]},
            opts=self.child(self.kai))

    def _queue(self, name: str, queue: str, spec: dict, *after: pulumi.Resource) -> k8s.apiextensions.CustomResource:
        return k8s.apiextensions.CustomResource(
            name, api_version="scheduling.run.ai/v2", kind="Queue",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=queue, labels=labels("scheduling", queue)),
            spec=spec, opts=self.child(self.kai, *after))

    def _queue_tree(self, name: str, args: SchedulingArgs) -> dict[str, str]:
        """The site's root queue, each tenant's leaf and the platform's own leaves under it; returns tenant -> queue
        (the tenants' only)."""
        root = self._queue(f"{name}-queue-root", ROOT_QUEUE,
                           queue_spec("", args.site_gpus, args.site_gpus, 1, "Site root"))
        for owner, queues in (("Tenant", args.queues), ("Platform", args.platform_queues)):
            for queue in queues:
                self._queue(f"{name}-queue-{queue.tenant}", queue.queue,
                            queue_spec(ROOT_QUEUE, queue.gpu_quota, queue.gpu_limit, queue.over_quota_weight,
                                       f"{owner} {queue.tenant}"), root)
        return {queue.tenant: queue.queue for queue in args.queues}

    def _cluster_topology(self, name: str, levels: tuple[TopologyLevel, ...]) -> None:
        # Grove reads topology from a ClusterTopologyBinding and creates the KAI Topology of the same name from
        # its levels itself; it refuses a KAI Topology by that name that it does not own (ai-dynamo/grove
        # operator/internal/scheduler/kai/topology.go:56-95 SyncTopology at the grove pin). The operator applies
        # the CRD it embeds at start-up, so the binding waits for the Grove release.
        k8s.apiextensions.CustomResource(
            f"{name}-cluster-topology",
            api_version="grove.io/v1alpha1",
            kind="ClusterTopologyBinding",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=TOPOLOGY_NAME, labels=labels("scheduling")),
            spec={"levels": [{"domain": level.domain, "key": level.key} for level in levels]},
            opts=self.child(self.grove),
        )
