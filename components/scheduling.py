"""Scheduling and placement layer: KAI Scheduler with a per-tenant queue tree, and Grove for gang scheduling."""
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.kube import Layer, helm_release, labels
from plan.catalog import ChartPin
from plan.site_plan import TopologyLevel

UNLIMITED = -1  # KAI Queue convention for "no quota/limit on this resource"
ROOT_QUEUE = "ncp-root"
TOPOLOGY_NAME = "ncp-topology"


@dataclass(frozen=True)
class TenantQueue:
    tenant: str
    queue: str
    gpu_quota: int
    gpu_limit: int
    over_quota_weight: int


@dataclass(frozen=True)
class SchedulingArgs:
    kai_pin: ChartPin
    grove_pin: ChartPin
    kai_namespace: k8s.core.v1.Namespace
    grove_namespace: k8s.core.v1.Namespace
    site_gpus: int
    queues: list[TenantQueue]
    placement_strategy: str
    topology_aware: bool
    topology_levels: tuple[TopologyLevel, ...]  # widest domain first; every GPU node must carry each label
    skip_await: bool
    platform_queues: list[TenantQueue] = field(default_factory=list)  # the platform's own (readiness): no tenant


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
    def __init__(self, name: str, args: SchedulingArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("Scheduling", name, opts)
        self.kai_values = kai_values(args)
        self.grove_values = grove_values(args)
        self.kai = helm_release("kai-scheduler", args.kai_pin, self.kai_values, args.kai_namespace.metadata.name,
                                self, args.skip_await, depends_on=[args.kai_namespace])
        self.grove = helm_release("grove", args.grove_pin, self.grove_values, args.grove_namespace.metadata.name,
                                  self, args.skip_await, depends_on=[args.grove_namespace, self.kai])
        after_kai = self.child(self.kai)
        root = k8s.apiextensions.CustomResource(
            f"{name}-queue-root",
            api_version="scheduling.run.ai/v2",
            kind="Queue",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=ROOT_QUEUE, labels=labels("scheduling", ROOT_QUEUE)),
            spec=queue_spec("", args.site_gpus, args.site_gpus, 1, "Site root"),
            opts=after_kai,
        )
        self.queues: dict[str, str] = {}  # tenant -> its queue
        for queue in [*args.queues, *args.platform_queues]:
            k8s.apiextensions.CustomResource(
                f"{name}-queue-{queue.tenant}",
                api_version="scheduling.run.ai/v2",
                kind="Queue",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=queue.queue, labels=labels("scheduling", queue.queue)),
                spec=queue_spec(ROOT_QUEUE, queue.gpu_quota, queue.gpu_limit, queue.over_quota_weight,
                                f"{'Platform' if queue in args.platform_queues else 'Tenant'} {queue.tenant}"),
                opts=self.child(self.kai, root),
            )
            if queue not in args.platform_queues:
                self.queues[queue.tenant] = queue.queue
        if args.topology_aware:
            # Grove reads topology from a ClusterTopologyBinding and creates the KAI Topology of the same name from
            # its levels itself; it refuses a KAI Topology by that name that it does not own (ai-dynamo/grove
            # operator/internal/scheduler/kai/topology.go:56-95 SyncTopology at the grove pin). The operator applies
            # the CRD it embeds at start-up, so the binding waits for the Grove release.
            k8s.apiextensions.CustomResource(
                f"{name}-cluster-topology",
                api_version="grove.io/v1alpha1",
                kind="ClusterTopologyBinding",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=TOPOLOGY_NAME, labels=labels("scheduling")),
                spec={"levels": [{"domain": level.domain, "key": level.key} for level in args.topology_levels]},
                opts=self.child(self.grove),
            )
        self.register_outputs({
            "kaiRelease": self.kai.name,
            "groveRelease": self.grove.name,
            "rootQueue": ROOT_QUEUE,
            "queues": self.queues,
            "topologyAware": args.topology_aware,
            "clusterTopology": TOPOLOGY_NAME if args.topology_aware else None,
        })
