"""Cluster baseline layer: layer namespaces with Pod Security Admission and default-deny networking plus the allows
their charts need, PriorityClasses, the platform's registry credential, and the baseline record."""
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
from components.kube import (
    PRIORITY_BATCH, PRIORITY_SERVING, PRIORITY_SYSTEM, Layer, labels, ngc_pull_secret, one_of, psa_labels, repeated,
)
from components.network_policy import platform_policies
from ncp.plan.catalog import NetworkAccess
from ncp.plan.layers import LayerNamespace
from ncp.plan.names import LAYER_LABEL
from ncp.plan.pod_security import PSA_LEVELS
from ncp.plan.record import RECORD_NAME, config_map_data

# PriorityClass values stay below the built-in system-* classes (2e9) so node-critical pods always win.
PRIORITY_CLASSES = {
    PRIORITY_SYSTEM: (100_000_000, "Platform operators and agents of the inference stack", "PreemptLowerPriority"),
    PRIORITY_SERVING: (1_000_000, "Latency-sensitive inference serving workers and routers", "PreemptLowerPriority"),
    PRIORITY_BATCH: (1_000, "Benchmarks, validation and other preemptible batch work", "Never"),
}


@dataclass(frozen=True)
class ClusterBaselineArgs:
    """Arguments of ClusterBaseline: the layer namespaces, their default-deny network policies, priority classes,
    registry credentials and the site's baseline record.

    Attributes:
        site: the site name (stack config `site.name`), recorded in the baseline record.
        environment: the stack's environment (`lab` or `prod`).
        profile: the hardware profile name (`site.hardwareProfile`).
        namespaces: every layer namespace to create, in install order.
        network: the network data: default-deny plus these allows in every layer namespace.
        peers: peer name of the network data (tenants, monitoring, components) -> the namespaces it stands for.
        record: the baseline record (site, profile, versions, decisions): one YAML document per key in the record
            ConfigMap. Default: {}.
        ngc_api_key: the NGC API key (a secret) for the nvcr.io pull secret; None creates no pull secret. Default: None.
        pull_secret_layers: the layers whose own workloads pull from nvcr.io and get the pull secret. Default: [].
    """

    site: str
    environment: str
    profile: str
    namespaces: list[LayerNamespace]
    network: NetworkAccess
    peers: dict[str, list[str]]
    record: dict = field(default_factory=dict)
    ngc_api_key: Optional[pulumi.Output[str]] = None
    pull_secret_layers: list[str] = field(default_factory=list)


def namespace_problems(namespaces: list[LayerNamespace]) -> list[str]:
    """Layer namespaces that cannot be created: none, a name twice, an unknown Pod Security level."""
    if not namespaces:
        return ["needs at least one namespace"]
    problems = repeated("namespace", [ns.name for ns in namespaces])
    for ns in namespaces:
        problems += [f"namespace {ns.name}: {problem}"
                     for problem in one_of("pod_security", ns.pod_security.level, PSA_LEVELS)]
    return problems


class ClusterBaseline(Layer):
    PULL_SECRET = "ngc-pull-secret"
    namespaces: dict[str, k8s.core.v1.Namespace]
    priority_classes: dict[str, pulumi.Output[str]]
    pull_secrets: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: ClusterBaselineArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ClusterBaseline", name, opts)
        self.refuse(namespace_problems(args.namespaces))
        child = self.child()
        self.namespaces = {}
        self.pull_secrets = {}
        for ns in args.namespaces:
            self.namespaces[ns.layer] = self._layer_namespace(name, ns, args)
        self.priority_classes = {
            class_name: k8s.scheduling.v1.PriorityClass(
                f"{name}-priority-{class_name.removeprefix('ncp-')}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=class_name, labels=labels("cluster-baseline")),
                value=value, global_default=False, preemption_policy=preemption, description=description,
                opts=child,
            ).metadata.name
            for class_name, (value, description, preemption) in PRIORITY_CLASSES.items()}
        record_ns = self.namespaces["baseline"]
        self.record = k8s.core.v1.ConfigMap(
            f"{name}-record",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=RECORD_NAME, namespace=record_ns.metadata.name, labels=labels("cluster-baseline")),
            data=config_map_data(args.record),
            opts=child,
        )
        self.register_outputs({
            "namespaces": {layer: ns.metadata.name for layer, ns in self.namespaces.items()},
            "priorityClasses": self.priority_classes,
            "record": self.record.metadata.name,
        })

    def _layer_namespace(self, name: str, ns: LayerNamespace, args: ClusterBaselineArgs) -> k8s.core.v1.Namespace:
        """A layer's namespace with its Pod Security level, default-deny policies and, where the layer pulls from
        nvcr.io, the pull secret."""
        namespace = k8s.core.v1.Namespace(
            f"{name}-ns-{ns.layer}",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=ns.name,
                labels={**labels("cluster-baseline", ns.name), LAYER_LABEL: ns.layer,
                        **psa_labels(ns.pod_security.level)},
            ),
            opts=self.child(),
        )
        in_namespace = self.child(namespace)
        for policy, spec in platform_policies(args.network, args.network.of(ns.layer), args.peers).items():
            k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol-{ns.layer}-{policy}", spec=spec, opts=in_namespace,
                metadata=k8s.meta.v1.ObjectMetaArgs(name=policy, namespace=ns.name,
                                                    labels=labels("cluster-baseline", policy)))
        if args.ngc_api_key is not None and ns.layer in args.pull_secret_layers:
            # The provider's key stays in platform namespaces, which no tenant role can read.
            self.pull_secrets[ns.layer] = ngc_pull_secret(
                f"{name}-pull-secret-{ns.layer}", k8s.meta.v1.ObjectMetaArgs(
                    name=self.PULL_SECRET, namespace=ns.name, labels=labels("cluster-baseline")),
                args.ngc_api_key, in_namespace).metadata.name
        return namespace

    def namespace(self, layer: str) -> k8s.core.v1.Namespace:
        return self.namespaces[layer]

    def pull_secret(self, layer: str) -> Optional[str]:
        """The platform's nvcr.io pull secret in this layer's namespace, if the stack has a key."""
        return self.PULL_SECRET if layer in self.pull_secrets else None
