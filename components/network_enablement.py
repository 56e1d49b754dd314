"""Network enablement layer (RDMA profiles only): NVIDIA Network Operator, NicClusterPolicy, and one rail-aligned
IPPool per east-west NIC. The rails' NetworkAttachmentDefinitions are not rendered here: each namespace whose pods
attach to the rails (an RDMA tenant's, the readiness namespace) gets its own copy (`attachments`), so no pod
references a network in another namespace."""
import json
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import Layer, at_least, helm_release, labels
from ncp.plan.catalog import ChartPin, MetricSource, integration_points
from ncp.plan.profile import RdmaExposure
from ncp.plan.site_plan import Rail, RailAttachment


@dataclass(frozen=True)
class NetworkEnablementArgs:
    """Arguments of NetworkEnablement: the NVIDIA Network Operator, the RDMA device exposure and one
    secondary network per east-west rail.

    Attributes:
        pin: the Network Operator chart (compatibility matrix `networkOperator`).
        namespace: the layer namespace the release installs into.
        namespace_name: that namespace's name (the NicClusterPolicy and networks name it).
        rails: the east-west rails: one interface, subnet and gateway each.
        exposure: how RDMA devices reach pods: a shared RDMA device plugin resource or SR-IOV virtual functions.
        rdma_resource: the extended resource RDMA pods request (e.g. `rdma/rdma_shared_device_a`).
        managed_nic_driver: whether the operator installs the DOCA NIC driver (False: preinstalled on the host).
        doca_driver_version: the DOCA driver version the operator installs; None with a preinstalled driver.
        mtu: the MTU of the rail networks. Unit: bytes.
        per_node_block_size: the addresses nv-ipam hands each node from a rail's subnet. Unit: IP addresses per node.
        gpu_node_selector: the node labels that select GPU nodes (where the RDMA components run).
        skip_await: whether Pulumi skips waiting for the release's resources to become ready.
        operator_metrics: how the operator's metrics are scraped (data/telemetry-signals.yaml `networkOperator`);
            None creates no Service or ServiceMonitor for them. Default: None.
        scrape_interval: how often Prometheus scrapes the operator (a Prometheus duration). Default: '30s'.
        monitor_labels: the labels the site's Prometheus selects ServiceMonitors by. Default: {}.
    """

    pin: ChartPin
    namespace: k8s.core.v1.Namespace
    namespace_name: str
    rails: tuple[Rail, ...]
    exposure: RdmaExposure
    rdma_resource: str
    managed_nic_driver: bool
    doca_driver_version: Optional[str]
    mtu: int
    per_node_block_size: int
    gpu_node_selector: dict[str, str]
    skip_await: bool
    operator_metrics: Optional[MetricSource] = None
    scrape_interval: str = "30s"
    monitor_labels: dict[str, str] = field(default_factory=dict)


NETWORK_OPERATOR_RELEASE = "network-operator"


def _image(pin: ChartPin, key: str, version: Optional[str] = None) -> dict:
    image, _, tag = pin.images[key].partition(":")
    return {"image": image, "repository": pin.image_repository, "version": version or tag}


def rail_problems(args: NetworkEnablementArgs) -> list[str]:
    """Rails that cannot carry RDMA traffic: none at all, a link MTU below IPv6's minimum (1280 bytes, RFC 8200
    section 5), no addresses per node, a managed NIC driver without a version to install."""
    problems = [*(["needs at least one rail"] if not args.rails else []), *at_least("mtu", args.mtu, 1280),
                *at_least("per_node_block_size", args.per_node_block_size, 1)]
    if args.managed_nic_driver and not args.doca_driver_version:
        problems.append("a managed NIC driver needs doca_driver_version")
    return problems


def network_operator_values(args: NetworkEnablementArgs) -> dict:
    return {
        # The GPU Operator's NFD serves both operators. Its rules too: the chart's NodeFeatureRule
        # (templates/nodefeaturerules.yaml at the pin) needs the NFD CRD, which nothing has installed when this release
        # goes in first on a fresh cluster, and it only sets feature.node.kubernetes.io/pci-15b3.present, which the
        # GPU Operator's NFD worker already sets (pci deviceClassWhitelist "02" by vendor, gpu-operator values.yaml
        # at its pin).
        "nfd": {"enabled": False, "deployNodeFeatureRules": False},
        "sriovNetworkOperator": {"enabled": args.exposure == RdmaExposure.SRIOV},
        "upgradeCRDs": True,
    }


# RA: Virtual Machine And Container Networking: "direct NIC access, use SR-IOV, RDMA, GPUDirect RDMA"
# RA: Software Defined Network Layer: "NVIDIA Network Operator belongs in the Kubernetes layer"
# RA: Kubernetes Architecture For Inference: "Network Operator enables RDMA and GPUDirect RDMA networking components"
def nic_cluster_policy_spec(args: NetworkEnablementArgs) -> dict:
    interfaces = [rail.interface for rail in args.rails]
    names = integration_points().network_operator
    resource_prefix, _, resource_name = args.rdma_resource.partition("/")
    spec: dict = {
        "secondaryNetwork": {"cniPlugins": _image(args.pin, "cniPlugins"), "multus": _image(args.pin, "multus")},
        "nvIpam": {**_image(args.pin, "nvIpam"), "enableWebhook": False},
    }
    if args.exposure == RdmaExposure.SHARED_DEVICE_PLUGIN:
        config = {"configList": [{
            "resourceName": resource_name,
            "rdmaHcaMax": 63,
            "selectors": {"vendors": [names.nic_vendor_id], "ifNames": interfaces},
        }]}
        spec["rdmaSharedDevicePlugin"] = {**_image(args.pin, "rdmaSharedDevicePlugin"), "config": json.dumps(config)}
    else:
        config = {"resourceList": [{
            "resourcePrefix": resource_prefix,
            "resourceName": resource_name,
            "selectors": {"vendors": [names.nic_vendor_id], "pfNames": interfaces, "isRdma": True},
        }]}
        spec["sriovDevicePlugin"] = {**_image(args.pin, "sriovDevicePlugin"), "config": json.dumps(config)}
    if args.managed_nic_driver:
        spec["ofedDriver"] = {
            **_image(args.pin, "docaDriver", args.doca_driver_version),
            "upgradePolicy": {
                "autoUpgrade": True,
                "maxParallelUpgrades": 1,
                "drain": {"enable": True, "force": True, "timeoutSeconds": 300, "deleteEmptyDir": True},
            },
        }
    return spec


# RA: Virtual Machine And Container Networking: "should avoid unnecessary network abstraction on latency-sensitive"
def rail_network_config(rail_name: str, rail: Rail, args: NetworkEnablementArgs) -> str:
    ipam = {"type": "nv-ipam", "poolName": rail_name}
    if args.exposure == RdmaExposure.SHARED_DEVICE_PLUGIN:
        config = {"cniVersion": "0.3.1", "name": rail_name, "type": "macvlan", "master": rail.interface,
                  "mode": "bridge", "mtu": args.mtu, "ipam": ipam}
    else:
        config = {"cniVersion": "0.3.1", "name": rail_name, "type": "sriov", "mtu": args.mtu, "ipam": ipam}
    return json.dumps(config, sort_keys=True)


class NetworkEnablement(Layer):
    def __init__(self, name: str, args: NetworkEnablementArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("NetworkEnablement", name, opts)
        self.refuse(rail_problems(args))
        self.values = network_operator_values(args)
        self.release = helm_release(NETWORK_OPERATOR_RELEASE, args.pin, self.values, args.namespace.metadata.name, self,
                                    args.skip_await, depends_on=[args.namespace])
        after_release = self.child(self.release)
        self.nic_cluster_policy = k8s.apiextensions.CustomResource(
            f"{name}-nic-cluster-policy",
            api_version="mellanox.com/v1alpha1",
            kind="NicClusterPolicy",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=integration_points().network_operator.nic_cluster_policy_name,
                                                labels=labels("network-enablement")),
            spec=nic_cluster_policy_spec(args),
            opts=after_release,
        )
        if args.operator_metrics is not None:
            self._operator_monitor(name, args, args.operator_metrics, after_release)
        # nv-ipam and multus CRDs are applied by the operator once the NicClusterPolicy reconciles.
        after_policy = self.child(self.nic_cluster_policy)
        self.attachments = tuple(self._rail(name, f"rail-{index}", rail, args, after_policy)
                                 for index, rail in enumerate(args.rails))
        # What pods put in their networks annotation: the attachments by name, in their own namespace.
        self.networks = [attachment.name for attachment in self.attachments]
        self.register_outputs({
            "release": self.release.name,
            "chartVersion": args.pin.version,
            "networks": self.networks,
            "rdmaResource": args.rdma_resource,
        })

    def _operator_monitor(self, name: str, args: NetworkEnablementArgs, metrics: MetricSource,
                          opts: pulumi.ResourceOptions) -> None:
        """The operator's controller-runtime metrics (the Network Operator health rules): the chart ships no Service or
        monitor and its container declares no metrics port, so a PodMonitor cannot find it (Prometheus Operator keeps
        pod targets by a declared port, promcfg.go:1576-1581 at v0.93.0). A Service whose numeric targetPort needs no
        declared port, and a ServiceMonitor on it. Plain HTTP, as the operator serves it; the namespace's
        NetworkPolicies admit only the monitoring namespace."""
        pod, job = metrics.pod_labels, metrics.label_values["job"]
        port, number = "metrics", int(metrics.ports["metrics"])
        meta = labels("network-enablement", job)
        service = k8s.core.v1.Service(
            f"{name}-operator-metrics",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=job, namespace=args.namespace_name, labels=meta),
            spec=k8s.core.v1.ServiceSpecArgs(
                selector={pod["name"]: args.pin.chart.rsplit("/", 1)[-1], pod["instance"]: NETWORK_OPERATOR_RELEASE},
                ports=[k8s.core.v1.ServicePortArgs(name=port, port=number, target_port=number)]),
            opts=opts)
        k8s.apiextensions.CustomResource(
            f"{name}-operator-monitor", api_version="monitoring.coreos.com/v1", kind="ServiceMonitor",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=job, namespace=args.namespace_name,
                                                labels={**meta, **args.monitor_labels}),
            spec={"selector": {"matchLabels": meta},
                  "endpoints": [{"port": port, "path": "/metrics", "interval": args.scrape_interval}]},
            opts=self.child(service))

    def _rail(self, name: str, rail_name: str, rail: Rail, args: NetworkEnablementArgs,
              opts: pulumi.ResourceOptions) -> RailAttachment:
        """A rail's nv-ipam pool; returns the attachment every namespace on the rail gets a copy of."""
        k8s.apiextensions.CustomResource(
            f"{name}-ippool-{rail_name}",
            api_version="nv-ipam.nvidia.com/v1alpha1",
            kind="IPPool",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=rail_name, namespace=args.namespace_name,
                                                labels=labels("network-enablement", rail_name)),
            spec={
                "subnet": rail.subnet,
                "perNodeBlockSize": args.per_node_block_size,
                "gateway": rail.gateway,
                "nodeSelector": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": key, "operator": "In", "values": [value]}
                    for key, value in args.gpu_node_selector.items()]}]},
            },
            opts=opts,
        )
        annotations: tuple[tuple[str, str], ...] = ()
        if args.exposure == RdmaExposure.SRIOV:
            annotations = ((integration_points().multus.resource_name_annotation, args.rdma_resource),)
        return RailAttachment(name=rail_name, config=rail_network_config(rail_name, rail, args),
                              annotations=annotations)
