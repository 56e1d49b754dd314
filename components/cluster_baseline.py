"""Cluster baseline layer: layer namespaces with Pod Security Admission, PriorityClasses, and the baseline record."""
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.kube import (
    LAYER_LABEL, PRIORITY_BATCH, PRIORITY_SERVING, PRIORITY_SYSTEM, Layer, labels, psa_labels,
)

# PriorityClass values stay below the built-in system-* classes (2e9) so node-critical pods always win.
PRIORITY_CLASSES = {
    PRIORITY_SYSTEM: (100_000_000, "Platform operators and agents of the inference stack", "PreemptLowerPriority"),
    PRIORITY_SERVING: (1_000_000, "Latency-sensitive inference serving workers and routers", "PreemptLowerPriority"),
    PRIORITY_BATCH: (1_000, "Benchmarks, validation and other preemptible batch work", "Never"),
}


@dataclass(frozen=True)
class LayerNamespace:
    name: str
    layer: str
    pod_security: str  # PSA enforce level; operators that touch host devices need privileged


@dataclass(frozen=True)
class ClusterBaselineArgs:
    site: str
    environment: str
    profile: str
    namespaces: list[LayerNamespace]
    record: dict = field(default_factory=dict)  # site, profile, versions, decisions: one YAML document per key


class ClusterBaseline(Layer):
    namespaces: dict[str, k8s.core.v1.Namespace]
    priority_classes: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: ClusterBaselineArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("ClusterBaseline", name, opts)
        child = self.child()
        self.namespaces = {}
        for ns in args.namespaces:
            self.namespaces[ns.layer] = k8s.core.v1.Namespace(
                f"{name}-ns-{ns.layer}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=ns.name,
                    labels={**labels("cluster-baseline", ns.name), LAYER_LABEL: ns.layer, **psa_labels(ns.pod_security)},
                ),
                opts=child,
            )
        self.priority_classes = {}
        for class_name, (value, description, preemption) in PRIORITY_CLASSES.items():
            pc = k8s.scheduling.v1.PriorityClass(
                f"{name}-priority-{class_name.removeprefix('ncp-')}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=class_name, labels=labels("cluster-baseline")),
                value=value,
                global_default=False,
                preemption_policy=preemption,
                description=description,
                opts=child,
            )
            self.priority_classes[class_name] = pc.metadata.name
        record_ns = self.namespaces["baseline"]
        self.record = k8s.core.v1.ConfigMap(
            f"{name}-record",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="ncp-baseline-record", namespace=record_ns.metadata.name, labels=labels("cluster-baseline")),
            data={key: yaml.safe_dump(value, sort_keys=True) if not isinstance(value, str) else value
                  for key, value in args.record.items()},
            opts=child,
        )
        self.register_outputs({
            "namespaces": {layer: ns.metadata.name for layer, ns in self.namespaces.items()},
            "priorityClasses": self.priority_classes,
            "record": self.record.metadata.name,
        })

    def namespace(self, layer: str) -> k8s.core.v1.Namespace:
        return self.namespaces[layer]
