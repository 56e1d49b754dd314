"""The plan resolves the platform's layers from the compatibility matrix: which charts a site deploys, in what order,
and the Pod Security level of every layer namespace. The matrix entries carry the facts (podSecurity, dependsOn,
deployedWhen); broken entries are refused."""
import pytest

from tests.support.synthetic import mutate, secret_keys, site_config
from ncp.plan.catalog import CompatibilityMatrix, load_matrix
from ncp.plan.errors import ConfigError
from ncp.plan.layers import BASELINE_NAMESPACE, VALIDATION_NAMESPACE, install_order, plan_layers
from ncp.plan.site_plan import build_plan

MATRIX = load_matrix()


def plan(profile: str, **mutations):
    config = site_config(profile, "lab")
    for path, value in mutations.items():
        config = mutate(config, path.replace("__", "."), value)
    return build_plan(config, secret_keys(config), "Pulumi.test.yaml")


def test_every_chart_records_its_pod_security_with_a_reason():
    for name, pin in MATRIX.components.items():
        assert pin.pod_security.level in ("privileged", "baseline", "restricted"), name
        assert len(pin.pod_security.reason) >= 20, name


def test_rdma_site_installs_the_network_operator_before_the_gpu_operator():
    layers = plan("hgx-h200").layers
    charts = list(layers.charts)
    assert "networkOperator" in charts
    assert charts.index("networkOperator") < charts.index("gpuOperator") < charts.index("nvsentinel")
    assert layers.depends_on("gpuOperator") == ("networkOperator",)
    assert layers.depends_on("nvsentinel") == ("gpuOperator",)


def test_site_without_rdma_deploys_no_network_operator_and_drops_the_dependency():
    layers = plan("lab").layers
    assert "networkOperator" not in layers.charts
    assert layers.depends_on("gpuOperator") == ()
    assert "dynamoPlatform" not in layers.charts  # no endpoints in the synthetic site
    assert "kubePrometheusStack" not in layers.charts  # off by default


def test_namespaces_carry_the_matrix_pod_security():
    layers = plan("hgx-h200").layers
    by_layer = {ns.layer: ns for ns in layers.namespaces}
    assert by_layer["baseline"].name == BASELINE_NAMESPACE
    assert by_layer["baseline"].pod_security.level == "restricted"
    for chart in layers.charts:
        assert by_layer[chart].name == MATRIX.pin(chart).namespace
        assert by_layer[chart].pod_security == MATRIX.pin(chart).pod_security
    assert VALIDATION_NAMESPACE not in {ns.name for ns in layers.namespaces} or layers.validation_suite


def test_deploy_conditions_are_resolved_from_the_site():
    everything = plan_layers(MATRIX, {"rdmaFabric": True, "servingEndpoints": True, "prometheusStack": True},
                             validation_suite=True)
    assert set(everything.charts) == set(MATRIX.components)
    assert everything.namespaces[-1].name == VALIDATION_NAMESPACE
    assert everything.depends_on("dynamoPlatform") == ("kaiScheduler", "grove")
    nothing = plan_layers(MATRIX, {"rdmaFabric": False, "servingEndpoints": False, "prometheusStack": False},
                          validation_suite=False)
    assert set(nothing.charts) == {"gpuOperator", "kaiScheduler", "grove", "nvsentinel"}


def _matrix_with(component: str, **changes) -> dict:
    raw = MATRIX.model_dump(by_alias=True, exclude_none=True)
    raw["components"][component].update(changes)
    return raw


def test_a_dependency_cycle_is_refused():
    raw = _matrix_with("networkOperator", dependsOn=[{"component": "gpuOperator",
                                                      "reason": "a cycle with the GPU Operator's own dependency"}])
    cyclic = CompatibilityMatrix.model_validate(raw)
    with pytest.raises(ValueError, match="cycle among gpuOperator, networkOperator"):
        install_order(cyclic, {"gpuOperator", "networkOperator"})


def test_a_dependency_on_an_unknown_chart_is_refused():
    raw = _matrix_with("grove", dependsOn=[{"component": "kaiSchedular", "reason": "a typo in the chart's name here"}])
    with pytest.raises(ValueError, match="components.grove.dependsOn names 'kaiSchedular'"):
        CompatibilityMatrix.model_validate(raw)


def test_a_deployed_chart_without_pod_security_is_refused():
    """Earlier revisions' matrices (read by the upgrade plan) have no podSecurity; the plan refuses to deploy so."""
    raw = MATRIX.model_dump(by_alias=True, exclude_none=True)
    del raw["components"]["grove"]["podSecurity"]
    historic = CompatibilityMatrix.model_validate(raw)
    with pytest.raises(ConfigError, match="components.grove.podSecurity: is missing for a chart the program deploys"):
        plan_layers(historic, {"rdmaFabric": False, "servingEndpoints": False, "prometheusStack": False},
                    validation_suite=False)


def test_unknown_profile_is_a_config_error_not_a_crash():
    with pytest.raises(ConfigError, match="hardwareProfile"):
        plan("lab", site__hardwareProfile="no-such-profile")
