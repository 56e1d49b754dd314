"""Every hardware profile composes in every environment, and the profile decides which layers exist."""
import pytest

from ncp.readmodel.recorder import run_program
from tests.support.synthetic import secret_keys, site_config
from ncp.plan.catalog import load_matrix, load_profile, profile_names

ENVIRONMENTS = ["lab", "staging", "prod"]
REQUIRED_PROFILES = {"rtx-pro-6000", "hgx-h100", "hgx-h200", "hgx-b200", "gb300-nvl72", "cloud-h100", "lab"}
LAYERS = ["ClusterBaseline", "GpuEnablement", "Scheduling", "Health", "Telemetry", "Tenancy"]


def test_required_profiles_exist():
    assert REQUIRED_PROFILES <= set(profile_names())


# RA: Common Component Combinations: "reproducible cluster configuration, GPU and network operators"
@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("profile", sorted(REQUIRED_PROFILES))
def test_profile_composes(profile, environment):
    config = site_config(profile, environment)
    recording = run_program(config, secret_keys(config), stack=f"{profile}-{environment}")
    types = {r.type for r in recording.resources}
    for layer in LAYERS:
        assert f"ncp-inference:layers:{layer}" in types
    has_network = "ncp-inference:layers:NetworkEnablement" in types
    assert has_network == load_profile(profile).has_rdma_fabric
    # Every release is exactly what the compatibility matrix pins.
    pins = {pin.chart: pin.version for pin in load_matrix().components.values()}
    for release in recording.releases().values():
        assert release.inputs["version"] == pins[release.inputs["chart"]]
    assert recording.outputs["hardwareProfile"] == profile
    assert recording.outputs["remediation"] == ("enforce" if environment == "prod" else "dry-run")


def test_children_are_parented_to_their_component(prod):
    components = {r.urn for r in prod.resources if r.type.startswith("ncp-inference:layers:")}
    for registration in prod.resources:
        if registration.custom:
            assert registration.parent in components, registration.urn


def test_stack_outputs(prod):
    assert set(prod.outputs["tenantNamespaces"]) == {"acme-chat", "globex-research", "ncp-eval"}
    assert prod.outputs["queues"]["acme-chat"] == "tenant-acme-chat"
    assert prod.outputs["versions"]["gpuOperator"] == load_matrix().pin("gpuOperator").version
    assert len(prod.outputs["networks"]) == 8


def test_runs_are_deterministic():
    config = site_config("hgx-h100", "prod")
    first = run_program(config, secret_keys(config), stack="a")
    second = run_program(config, secret_keys(config), stack="a")
    # Registration order is asynchronous; the set of resources and their inputs is not.
    assert sorted((r.urn, repr(r.inputs)) for r in first.resources) == sorted(
        (r.urn, repr(r.inputs)) for r in second.resources)


def test_dependency_edges_grow_linearly_with_tenants():
    """A dependency from every tenant's resources on every other tenant's would make deployments quadratic."""
    def edges(tenants: int) -> int:
        config = site_config("hgx-h200", "prod", tenants=tenants, gpu_nodes=32)
        recording = run_program(config, secret_keys(config), stack=f"edges-{tenants}")
        return sum(len(r.dependencies) for r in recording.resources)

    small, large = edges(5), edges(20)
    assert large - small <= 4 * (edges(10) - small), (small, large)
