"""GPU enablement layer: the NVIDIA GPU Operator, tuned from the hardware profile and stack config."""
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.kube import Layer, helm_release, labels
from ncp.plan.catalog import ChartPin, integration_points
from ncp.plan.config import MigSettings, TimeSlicing
from ncp.plan.gpu_partition import MIG_LAYOUT

MIG_CONFIG_MAP = "ncp-mig-parted-config"
MIG_LABEL_RULE = "ncp-mig-layout"
DEVICE_PLUGIN_CONFIG_MAP = "ncp-device-plugin-config"


@dataclass(frozen=True)
class GpuEnablementArgs:
    """Arguments of GpuEnablement: the NVIDIA GPU Operator release and the MIG or time-slicing configuration it applies.

    Attributes:
        pin: the GPU Operator chart (compatibility matrix `gpuOperator`).
        namespace: the layer namespace the release installs into.
        namespace_name: that namespace's name (the DCGM endpoint and the chart values name it).
        managed_driver: whether the operator installs the GPU driver (False: preinstalled on the host).
        mig_capable: whether the hardware profile's GPUs support MIG (the MIG manager runs only there).
        mig: the MIG strategy and layout applied to every GPU; None leaves MIG off.
        time_slicing: GPU time-slicing replicas; None shares no GPU (never together with mig).
        gpudirect_rdma: whether the profile has GPUDirect RDMA (the operator loads the peer-memory module).
        host_mofed: whether the NIC driver is preinstalled on the host rather than managed by the Network Operator.
        scrape_interval: how often Prometheus scrapes the DCGM exporter (a Prometheus duration, e.g. `30s`).
        monitor_labels: the labels the site's Prometheus selects ServiceMonitors by.
        skip_await: whether Pulumi skips waiting for the release's resources to become ready.
        driver_upgrade_policy: the chart's driver.upgradePolicy (camelCase keys) for a managed driver: how the
            operator rolls a driver change across the nodes (the profile's, with the stack's overrides). Default: None.
    """

    pin: ChartPin
    namespace: k8s.core.v1.Namespace
    namespace_name: str
    managed_driver: bool
    mig_capable: bool
    mig: Optional[MigSettings]
    time_slicing: Optional[TimeSlicing]
    gpudirect_rdma: bool
    host_mofed: bool
    scrape_interval: str
    monitor_labels: dict[str, str]
    skip_await: bool
    driver_upgrade_policy: Optional[dict] = None


def mig_parted_config(mig: MigSettings) -> str:
    document = {
        "version": "v1",
        "mig-configs": {
            "all-disabled": [{"devices": "all", "mig-enabled": False}],
            MIG_LAYOUT: [{"devices": "all", "mig-enabled": True, "mig-devices": dict(mig.layout)}],
        },
    }
    return yaml.safe_dump(document, sort_keys=False)


def time_slicing_config(sharing: TimeSlicing) -> str:
    document = {
        "version": "v1",
        "sharing": {"timeSlicing": {"resources": [
            {"name": integration_points().gpu.resource, "replicas": sharing.replicas}]}},
    }
    return yaml.safe_dump(document, sort_keys=False)


def sharing_problems(args: GpuEnablementArgs) -> list[str]:
    """GPU sharing the operator cannot apply: MIG and time-slicing together, or MIG on GPUs without it."""
    problems = []
    if args.mig is not None and args.time_slicing is not None:
        problems.append("mig and time_slicing exclude each other")
    if args.mig is not None and not args.mig_capable:
        problems.append("mig is set but the GPUs are not MIG-capable")
    return problems


# RA: GPU Compute Node: "NVIDIA driver, NVIDIA Container Toolkit, GPU device plugin, DCGM telemetry"
def gpu_operator_values(args: GpuEnablementArgs) -> dict[str, Any]:
    values: dict[str, Any] = {
        # NFD runs once per cluster: the GPU Operator owns it, the Network Operator's copy stays off.
        "nfd": {"enabled": True},
        "cdi": {"enabled": True},
        "driver": _driver(args),
        "toolkit": {"enabled": True},
        "gfd": {"enabled": True},
        # Standalone DCGM host engine: NVSentinel's GPU health monitor talks to it.
        "dcgm": {"enabled": True},
        "dcgmExporter": _dcgm_exporter(args),
        "gdrcopy": {"enabled": args.gpudirect_rdma},
        "migManager": _mig_manager(args),
    }
    if args.mig is not None:
        values["mig"] = {"strategy": args.mig.strategy}
    if args.time_slicing is not None:
        values["devicePlugin"] = {"config": {
            "create": True,
            "name": DEVICE_PLUGIN_CONFIG_MAP,
            "default": "time-slicing",
            "data": {"time-slicing": time_slicing_config(args.time_slicing)},
        }}
    return values


def _driver(args: GpuEnablementArgs) -> dict[str, Any]:
    driver: dict[str, Any] = {"enabled": args.managed_driver}
    if args.managed_driver:
        driver["version"] = args.pin.images["driver"]
        driver["rdma"] = {"enabled": args.gpudirect_rdma, "useHostMofed": args.gpudirect_rdma and args.host_mofed}
        # The site's policy, never the chart default: how the operator rolls a driver change across the nodes.
        driver["upgradePolicy"] = args.driver_upgrade_policy
    return driver


def _dcgm_exporter(args: GpuEnablementArgs) -> dict[str, Any]:
    return {
        "enabled": True,
        "serviceMonitor": {
            "enabled": True,
            "interval": args.scrape_interval,
            "honorLabels": False,
            "additionalLabels": dict(args.monitor_labels),
            # Stable node label on every GPU series, whatever the pod's name is.
            "relabelings": [{
                "sourceLabels": ["__meta_kubernetes_pod_node_name"],
                "targetLabel": "node",
                "action": "replace",
            }],
        },
    }


def _mig_manager(args: GpuEnablementArgs) -> dict[str, Any]:
    manager: dict[str, Any] = {"enabled": args.mig_capable}
    if args.mig is not None:
        manager["config"] = {
            "create": True,
            "name": MIG_CONFIG_MAP,
            # The ClusterPolicy CRD admits only "all-disabled" or "" here (nvidia.com_clusterpolicies.yaml
            # spec.migManager.config.default enum, at the gpuOperator pin). With "all-disabled" the operator labels
            # every unlabelled MIG-capable node nvidia.com/mig.config=all-disabled
            # (controllers/nodelabeling_controller.go:306-316) and would race the NodeFeatureRule below; "" leaves the
            # label to that rule. A layout on one tenant's nodes has no rule (NFD matches hardware features, not node
            # labels): the site labels those nodes, and every other node is labelled all-disabled.
            "default": "all-disabled" if args.mig.node_pool else "",
            "data": {"config.yaml": mig_parted_config(args.mig)},
        }
    return manager


def mig_label_rule_spec() -> dict:
    """NFD rule that labels every NVIDIA GPU node nvidia.com/mig.config=<our layout>: mig-manager applies the
    mig-parted config a node's label names, and nothing else sets it. All GPU nodes of a site are its profile's."""
    gpu = integration_points().gpu
    return {"rules": [{
        "name": "ncp MIG layout on NVIDIA GPU nodes",
        "labels": {gpu.mig_config_label: MIG_LAYOUT},
        "matchFeatures": [{"feature": "pci.device", "matchExpressions": {
            "vendor": {"op": "In", "value": [gpu.pci_vendor_id]},
            "class": {"op": "In", "value": list(gpu.pci_display_classes)},
        }}],
    }]}


class GpuEnablement(Layer):
    def __init__(self, name: str, args: GpuEnablementArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("GpuEnablement", name, opts)
        self.refuse(sharing_problems(args))
        self.values = gpu_operator_values(args)
        self.release = helm_release(
            "gpu-operator", args.pin, self.values, args.namespace.metadata.name, self, args.skip_await,
            depends_on=[args.namespace])
        if args.mig is not None and args.mig.node_pool is None:
            # The GPU Operator's NFD subchart (0.19.0) installs the NodeFeatureRule CRD from its crds/ folder.
            k8s.apiextensions.CustomResource(
                f"{name}-mig-layout-label",
                api_version="nfd.k8s-sigs.io/v1alpha1",
                kind="NodeFeatureRule",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=MIG_LABEL_RULE, labels=labels("gpu-enablement")),
                spec=mig_label_rule_spec(),
                opts=self.child(self.release))
        dcgm = integration_points().dcgm  # the Service the chart creates for the standalone host engine
        self.dcgm_endpoint = f"{dcgm.service}.{args.namespace_name}.svc:{dcgm.port}"
        self.register_outputs({
            "release": self.release.name,
            "chartVersion": args.pin.version,
            "dcgmEndpoint": self.dcgm_endpoint,
            "migStrategy": args.mig.strategy if args.mig else "none",
        })
