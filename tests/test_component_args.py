"""Component arguments: every field documented (tools/args_docs.py), and bad arguments refused with a ResourceError
naming the component, before it creates anything (run under Pulumi mocks, pulumi.runtime.set_mocks)."""
import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Optional

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.cluster_baseline import ClusterBaseline, ClusterBaselineArgs
from ncp.plan.layers import LayerNamespace
from ncp.plan.pod_security import PodSecurity
from components.gpu_enablement import GpuEnablement, GpuEnablementArgs
from components.health import Health, HealthArgs
from components.kube import ResourceError
from components.network_enablement import NetworkEnablement, NetworkEnablementArgs
from components.scheduling import Scheduling, SchedulingArgs, TenantQueue
from components.tenancy import Tenancy, TenancyArgs, TenantSpec
from components.validation import ValidationSuite, ValidationSuiteArgs
from ncp.readmodel.recorder import Recording, run_program
from ncp.plan.admission import admission_plan
from ncp.plan.catalog import AccessRule, load_matrix, network_access, tenant_access
from ncp.plan.config import MigSettings, TimeSlicing
from ncp.plan.profile import RdmaExposure
from ncp.plan.site_plan import Rail
from tools.args_docs import component_dataclasses, problems

# --- documentation ---------------------------------------------------------------------------------------------------


def test_every_component_argument_is_documented():
    classes = component_dataclasses()
    assert {cls.__name__ for cls in classes} >= {"TenancyArgs", "EndpointArgs", "ValidationSuiteArgs"}
    assert [line for cls in classes for line in problems(cls)] == []


@dataclass(frozen=True)
class _Args:
    """Arguments of nothing: the checker's own fixture.

    Attributes:
        documented: a field with its entry.
        timeout_seconds: a number with its unit. Unit: seconds.
        retries: a number without one.
        mode: a field with a default. Default: 'fast'.
        stale: no longer a field.
    """

    documented: str
    timeout_seconds: int
    retries: int
    undocumented: str
    mode: str = "fast"
    labels: dict = field(default_factory=dict)
    note: Optional[str] = None


def test_the_docs_checker_names_each_gap():
    assert sorted(problems(_Args)) == [
        "_Args.labels: not documented (no `labels: ...` entry under Attributes:)",
        "_Args.note: not documented (no `note: ...` entry under Attributes:)",
        "_Args.retries: a number whose entry states no `Unit: ...`",
        "_Args.stale: documented but not a field",
        "_Args.undocumented: not documented (no `undocumented: ...` entry under Attributes:)",
    ]
    wrong_default = dataclasses.make_dataclass("Wrong", [("mode", str, dataclasses.field(default="slow"))])
    wrong_default.__doc__ = "A default that moved.\n\n    Attributes:\n        mode: how. Default: 'fast'.\n"
    assert problems(wrong_default) == ["Wrong.mode: the entry does not state `Default: 'slow'`"]


# --- bad arguments ---------------------------------------------------------------------------------------------------

MATRIX = load_matrix()


def _refused(build: Callable[[k8s.core.v1.Namespace], pulumi.Resource]) -> tuple[ResourceError, Recording]:
    """Build a component under mocks (with a namespace to put it in); the error it raised and what was registered."""
    raised: list[ResourceError] = []

    def program() -> None:
        namespace = k8s.core.v1.Namespace("ns", metadata=k8s.meta.v1.ObjectMetaArgs(name="layer"))
        try:
            build(namespace)
        except ResourceError as error:
            raised.append(error)

    recording = run_program({}, program=program)
    assert raised, "the component accepted its arguments"
    return raised[0], recording


def _children(recording: Recording) -> list[str]:
    """What was registered besides the test's namespace and the components themselves."""
    return [r.type for r in recording.resources
            if not r.type.startswith("ncp-inference:layers:") and r.name != "ns" and r.type != "pulumi:pulumi:Stack"]


def _tenant(name: str, **changes) -> TenantSpec:
    spec = TenantSpec(name=name, namespace=f"tenant-{name}", queue=f"tenant-{name}", gpu_limit=4, cpu_quota="8",
                      memory_quota="32Gi", cpu_limit="8", memory_limit="32Gi", pods=20, claims=4, storage="1Ti")
    return dataclasses.replace(spec, **changes)


def _tenancy(_: k8s.core.v1.Namespace, **changes) -> Tenancy:
    args = TenancyArgs(tenants=[_tenant("a"), _tenant("b")], gateway_namespace="gateway", gateway_ports=[8000],
                       monitoring_namespace="monitoring", platform_namespaces={}, network=network_access(),
                       access=tenant_access(), storage_classes=["fast"], ngc_api_key=None,
                       admission=admission_plan(require_digest=False), rail_attachments=())
    return Tenancy("tenancy", dataclasses.replace(args, **changes))


def _scheduling(namespace: k8s.core.v1.Namespace, **changes) -> Scheduling:
    args = SchedulingArgs(kai_pin=MATRIX.pin("kaiScheduler"), grove_pin=MATRIX.pin("grove"), kai_namespace=namespace,
                          grove_namespace=namespace, site_gpus=8,
                          queues=[TenantQueue("a", "tenant-a", 4, 8, 1), TenantQueue("b", "tenant-b", 4, 8, 1)],
                          placement_strategy="binpack", topology_aware=False, topology_levels=(), skip_await=True)
    return Scheduling("scheduling", dataclasses.replace(args, **changes))


def _health(namespace: k8s.core.v1.Namespace, **changes) -> Health:
    args = HealthArgs(pin=MATRIX.pin("nvsentinel"), namespace=namespace, dcgm_endpoint="dcgm.gpu-operator:5555",
                      remediation="dry-run", nic_monitor=False, tenant_namespaces=["tenant-a"],
                      drain_timeout_seconds=600, scrape_interval="30s", monitor_labels={}, skip_await=True)
    return Health("health", dataclasses.replace(args, **changes))


def _gpu(namespace: k8s.core.v1.Namespace, **changes) -> GpuEnablement:
    args = GpuEnablementArgs(pin=MATRIX.pin("gpuOperator"), namespace=namespace, namespace_name="layer",
                             managed_driver=True, mig_capable=True, mig=None, time_slicing=None, gpudirect_rdma=False,
                             host_mofed=False, scrape_interval="30s", monitor_labels={}, skip_await=True)
    return GpuEnablement("gpu", dataclasses.replace(args, **changes))


def _network(namespace: k8s.core.v1.Namespace, **changes) -> NetworkEnablement:
    args = NetworkEnablementArgs(pin=MATRIX.pin("networkOperator"), namespace=namespace, namespace_name="layer",
                                 rails=(Rail("ens1", "192.168.0.0/24", "192.168.0.1"),),
                                 exposure=RdmaExposure.SHARED_DEVICE_PLUGIN, rdma_resource="rdma/rdma_shared_device_a",
                                 managed_nic_driver=False, doca_driver_version=None, mtu=9000, per_node_block_size=16,
                                 gpu_node_selector={"nvidia.com/gpu.present": "true"}, skip_await=True)
    return NetworkEnablement("network", dataclasses.replace(args, **changes))


def _psa(level: str) -> PodSecurity:
    """A Pod Security level as the plan hands it over, unvalidated (the component checks it itself)."""
    return PodSecurity.model_construct(level=level, reason="the level a component test gives")


def _baseline(_: k8s.core.v1.Namespace, **changes) -> ClusterBaseline:
    args = ClusterBaselineArgs(site="s", environment="lab", profile="p", network=network_access(), peers={},
                               namespaces=[LayerNamespace("ncp-system", "baseline", _psa("restricted"))])
    return ClusterBaseline("baseline", dataclasses.replace(args, **changes))


def _validation(namespace: k8s.core.v1.Namespace, **changes) -> ValidationSuite:
    args = ValidationSuiteArgs(namespace=namespace, image="suite@sha256:" + "0" * 64, suite_file="suite.yaml",
                               gpu_operator_namespace="gpu-operator", overrides=SUITE_OVERRIDES, mig_strategy=None,
                               version="1", results=None, checks=["read_only"],
                               reads=[AccessRule(resources=["nodes"], verbs=["list"], source="a test rule")])
    return ValidationSuite("validation", dataclasses.replace(args, **changes))


SUITE_OVERRIDES = {"gpuOperatorNamespace": ["a.namespace"], "requireMig": "b", "migExpectedLabels": "c"}
MIG = MigSettings(layout={"1g.10gb": 7})
BAD_ARGUMENTS = [
    (_tenancy, {"tenants": []}, "needs at least one tenant"),
    (_tenancy, {"tenants": [_tenant("a"), _tenant("a")]}, "tenant a is given twice"),
    (_tenancy, {"tenants": [_tenant("a", pods=0)]}, "tenant a: pods must be at least 1 (got 0)"),
    (_tenancy, {"tenants": [_tenant("a", gpu_limit=-1)]}, "tenant a: gpu_limit must be at least 0 (got -1)"),
    (_tenancy, {"tenants": [_tenant("a", namespace="")]}, "tenant a: namespace is empty"),
    (_scheduling, {"site_gpus": -8}, "site_gpus must be at least 0 (got -8)"),
    (_scheduling, {"queues": [TenantQueue("a", "tenant-a", 6, 4, 1)]},
     "queue tenant-a: gpu_limit 4 is below its gpu_quota 6"),
    (_scheduling, {"queues": [TenantQueue("a", "tenant-a", 6, 8, 1), TenantQueue("b", "tenant-b", 6, 8, 1)]},
     "the queues guarantee 12 GPUs but the site has 8"),
    (_scheduling, {"placement_strategy": "random"}, "placement_strategy must be one of binpack, spread (got 'random')"),
    (_scheduling, {"topology_aware": True}, "topology_aware needs topology_levels"),
    (_health, {"remediation": "reboot"}, "remediation must be one of dry-run, enforce (got 'reboot')"),
    (_health, {"drain_timeout_seconds": 90},
     "drain_timeout_seconds must be a positive whole number of minutes (got 90)"),
    (_health, {"dcgm_endpoint": "dcgm"}, "dcgm_endpoint must be host:port (got 'dcgm')"),
    (_gpu, {"mig": MIG, "time_slicing": TimeSlicing(replicas=4)}, "mig and time_slicing exclude each other"),
    (_gpu, {"mig": MIG, "mig_capable": False}, "mig is set but the GPUs are not MIG-capable"),
    (_network, {"rails": ()}, "needs at least one rail"),
    (_network, {"mtu": 100}, "mtu must be at least 1280 (got 100)"),
    (_network, {"per_node_block_size": 0}, "per_node_block_size must be at least 1 (got 0)"),
    (_network, {"managed_nic_driver": True}, "a managed NIC driver needs doca_driver_version"),
    (_baseline, {"namespaces": []}, "needs at least one namespace"),
    (_baseline, {"namespaces": [LayerNamespace("ncp-system", "baseline", _psa("restricted")),
                                LayerNamespace("ncp-system", "grove", _psa("baseline"))]},
     "namespace ncp-system is given twice"),
    (_baseline, {"namespaces": [LayerNamespace("ncp-system", "baseline", _psa("strict"))]},
     "namespace ncp-system: pod_security must be one of privileged, baseline, restricted (got 'strict')"),
    # Before: `pulumi.ResourceError`, which the Python SDK does not have, raised AttributeError here.
    (_validation, {"reads": []}, "needs the checks it runs and the rules they read"),
]


@pytest.mark.parametrize("build, changes, message", BAD_ARGUMENTS,
                         ids=[f"{build.__name__[1:]}-{message}" for build, _, message in BAD_ARGUMENTS])
def test_components_refuse_bad_arguments(build, changes, message):
    error, recording = _refused(lambda namespace: build(namespace, **changes))
    component = type(error.resource).__name__
    assert str(error).startswith(f"{component} '") and isinstance(error.resource, pulumi.ComponentResource)
    assert message in str(error), str(error)
    assert _children(recording) == [], "a refused component created children"


@pytest.mark.parametrize("build", sorted({build for build, _, _ in BAD_ARGUMENTS}, key=lambda b: b.__name__))
def test_components_accept_good_arguments(build):
    recording = run_program({}, program=lambda: build(k8s.core.v1.Namespace("ns")))
    assert _children(recording), f"{build.__name__[1:]} created nothing"
