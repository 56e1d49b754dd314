"""The Dynamo platform release: its operator (no NATS, no etcd), pointed at the separately installed KAI and Grove."""
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import Layer, helm_release
from ncp.plan.catalog import ChartPin


@dataclass(frozen=True)
class ServingPlatformArgs:
    """Arguments of ServingPlatform: the Dynamo platform release (its operator).

    Attributes:
        pin: the dynamo-platform chart (compatibility matrix `dynamoPlatform`).
        namespace: the layer namespace the release installs into.
        skip_await: whether Pulumi skips waiting for the release's resources to become ready.
        monitor_labels: the labels the site's Prometheus selects ServiceMonitors by (the operator's own). Default: {}.
    """

    pin: ChartPin
    namespace: k8s.core.v1.Namespace
    skip_await: bool
    monitor_labels: dict[str, str] = field(default_factory=dict)


DYNAMO_RELEASE = "dynamo-platform"  # its operator subchart's resources are <release>-dynamo-operator


def dynamo_platform_values(monitor_labels: dict[str, str]) -> dict:
    """The operator's values. No cluster-wide modelExpressURL: each tenant's workers are pointed at the ModelExpress
    server in their own namespace, per graph (docs/decisions/0005-model-express-per-tenant.md)."""
    operator = {
        "upgradeCRD": True, "discoveryBackend": "kubernetes",
        # Off: left unset (null) the chart creates its own PodMonitors for every Dynamo pod in the cluster whenever
        # the prometheus-operator CRDs exist (ai-dynamo/dynamo@2a6da14c deploy/helm/charts/platform/components/
        # operator/templates/prometheus.yaml:15-25, values.yaml:130-135), so our per-endpoint PodMonitors' targets
        # would be scraped twice.
        "dynamo": {"metrics": {"podMonitors": {"enabled": False}}},
        # The operator's own metrics (the Dynamo operator health rules): its manager already listens on 0.0.0.0:8080
        # with controller-runtime's secure serving (TLS, TokenReview + SubjectAccessReview), set by the chart's
        # OperatorConfiguration (operator-config.yaml:24-28; the platform values' manager.args with 127.0.0.1 are
        # read by no template), so no address is overridden. The chart's ServiceMonitor is forced on (null creates it
        # only if the monitoring CRDs existed at install) and labelled for the site's Prometheus instead of its
        # default `release: prometheus` (metricsService, components/operator/values.yaml:152-170).
        "metricsService": {"enabled": True, "labels": {"release": None, **monitor_labels}},
    }
    return {
        "global": {
            # No NATS (#22 item 3): a shared JetStream had no per-tenant authorization, and Dynamo 1.5 does not need
            # it (data/integration-points.yaml dynamo.natsDecision). Pinned explicitly, as Dynamo 1.4 flipped the
            # default; etcd is not needed with Kubernetes discovery.
            "nats": {"install": False},
            "etcd": {"install": False},
            # KAI Scheduler and Grove are installed separately by the scheduling layer (upstream advice for prod).
            "kai-scheduler": {"install": False, "enabled": True},
            "grove": {"install": False, "enabled": True},
        },
        "dynamo-operator": operator,
    }


class ServingPlatform(Layer):
    def __init__(self, name: str, args: ServingPlatformArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ServingPlatform", name, opts)
        self.release = helm_release(DYNAMO_RELEASE, args.pin, dynamo_platform_values(args.monitor_labels),
                                    args.namespace.metadata.name, self, args.skip_await, depends_on=[args.namespace])
        self.register_outputs({"release": self.release.name, "chartVersion": args.pin.version})
