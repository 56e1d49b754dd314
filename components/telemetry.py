"""Telemetry layer: GPU health alerts and tenant/node/GPU-labelled recording rules, plus an optional Prometheus
stack that is a recorded local (non-NVIDIA) decision."""
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import Layer, helm_release, labels
from plan.catalog import ChartPin, MetricSource

RULES_NAME = "ncp-gpu-health"


@dataclass(frozen=True)
class TelemetryArgs:
    rules_namespace: k8s.core.v1.Namespace
    dcgm: MetricSource
    tenant_namespace_prefix: str
    selector_labels: dict[str, str]
    gpu_temperature_celsius: int
    prometheus_pin: Optional[ChartPin]  # set only when the site records the Prometheus stack decision
    prometheus_namespace: Optional[k8s.core.v1.Namespace]
    skip_await: bool


def _with_tenant(expr: str, dcgm: MetricSource, prefix: str) -> str:
    """Add a stable `tenant` label derived from the workload namespace (tenant-<name> -> <name>)."""
    return f'label_replace({expr}, "tenant", "$1", "{dcgm.workload_namespace_label}", "{prefix}(.+)")'


def gpu_health_groups(args: TelemetryArgs) -> list[dict]:
    m = args.dcgm.metrics
    keep = ", ".join(["node", *args.dcgm.gpu_labels, "tenant"])
    prefix = args.tenant_namespace_prefix

    def alert(name, expr, for_, severity, summary, action):
        return {
            "alert": name,
            "expr": expr,
            "for": for_,
            "labels": {"severity": severity, "layer": "gpu"},
            "annotations": {
                "summary": summary,
                "description": f"{summary} on node {{{{ $labels.node }}}} GPU {{{{ $labels.gpu }}}} "
                               f"(tenant {{{{ $labels.tenant }}}}). {action}",
            },
        }

    tenant = lambda metric: _with_tenant(metric, args.dcgm, prefix)  # noqa: E731
    recording = [
        {"record": "ncp:gpu_utilization:percent", "expr": f"max by ({keep}) ({tenant(m['utilization'])})"},
        {"record": "ncp:gpu_temperature:celsius", "expr": f"max by ({keep}) ({tenant(m['temperature'])})"},
        {"record": "ncp:gpu_framebuffer_used:ratio",
         "expr": f"max by ({keep}) ({tenant(m['framebufferUsed'])} / "
                 f"({m['framebufferUsed']} + {m['framebufferFree']}))"},
        {"record": "ncp:gpu_xid_errors:last", "expr": f"max by ({keep}) ({tenant(m['xidErrors'])})"},
    ]
    alerts = [
        alert("NcpGpuXidError", f"max by ({keep}) ({tenant(m['xidErrors'])}) > 0", "0m", "critical",
              "GPU reported an XID error",
              "NVSentinel classifies and quarantines per its rules; repeated XIDs need operator-domain handling."),
        alert("NcpGpuRowRemapFailure", f"max by ({keep}) ({tenant(m['rowRemapFailure'])}) > 0", "0m", "critical",
              "GPU row remapping failed", "Drain the node and reset or replace the GPU."),
        alert("NcpGpuUncorrectableRemappedRows",
              f"max by ({keep}) (increase({m['uncorrectableRemappedRows']}[1h])) > 0", "0m", "warning",
              "GPU remapped rows after uncorrectable memory errors", "Schedule a GPU reset at the next drain."),
        alert("NcpGpuTemperatureHigh",
              f"max by ({keep}) ({tenant(m['temperature'])}) > {args.gpu_temperature_celsius}", "5m", "warning",
              f"GPU temperature above {args.gpu_temperature_celsius} C", "Check cooling and power capping."),
        alert("NcpGpuAllocatedButIdle",
              f'max by ({keep}) ({tenant(m["utilization"])}{{tenant!=""}}) < 5', "30m", "info",
              "GPU allocated to a tenant workload but idle", "Review the workload's sizing or queue quota."),
    ]
    return [{"name": f"{RULES_NAME}.rules", "rules": recording}, {"name": f"{RULES_NAME}.alerts", "rules": alerts}]


def prometheus_stack_values() -> dict:
    # Select monitors and rules from every release, not only this chart's own (upstream gotcha).
    return {"prometheus": {"prometheusSpec": {
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
        "ruleSelectorNilUsesHelmValues": False,
    }}}


class Telemetry(Layer):
    def __init__(self, name: str, args: TelemetryArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("Telemetry", name, opts)
        depends_on = [args.rules_namespace]
        self.prometheus = None
        if args.prometheus_pin is not None:
            self.prometheus = helm_release("kube-prometheus-stack", args.prometheus_pin, prometheus_stack_values(),
                                           args.prometheus_namespace.metadata.name, self, args.skip_await,
                                           depends_on=[args.prometheus_namespace])
            depends_on.append(self.prometheus)
        k8s.apiextensions.CustomResource(
            f"{name}-gpu-health-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=RULES_NAME, namespace=args.rules_namespace.metadata.name,
                labels={**labels("telemetry", RULES_NAME), **args.selector_labels}),
            spec={"groups": gpu_health_groups(args)},
            opts=self.child(*depends_on),
        )
        self.rules_name = RULES_NAME
        self.register_outputs({
            "gpuRules": RULES_NAME,
            "prometheusStack": self.prometheus.name if self.prometheus else None,
        })
