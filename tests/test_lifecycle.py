"""Upgrade plans between two matrices: only what changes, in the program's install order, with the CRD step, the
driver's node impact, the re-benchmark a runtime change triggers (its evidence stops passing the promotion gate) and
a rollback per layer; the CLI reads the matrix at git revisions."""
import pytest

from ncp.lifecycle import cli as lifecycle_cli
from ncp.lifecycle.upgrade import CRD_NOTE, render, upgrade_plan
from ncp.plan.catalog import load_matrix
from ncp.plan.sources import plan_from_stack_file


def _bump(matrix, component=None, version=None, driver=None, runtime=None):
    components = dict(matrix.components)
    if component:
        components[component] = components[component].model_copy(update={"version": version})
    if driver:
        gpu = components["gpuOperator"]
        components["gpuOperator"] = gpu.model_copy(update={"images": {**gpu.images, "driver": driver}})
    workloads = dict(matrix.workloads)
    if runtime:
        workloads["dynamoRuntime"] = workloads["dynamoRuntime"].model_copy(update={"version": runtime})
    return matrix.model_copy(update={"components": components, "workloads": workloads})


@pytest.fixture(scope="module")
def prod_plan():
    return plan_from_stack_file("prod")


def test_no_change_no_steps(prod, prod_plan):
    matrix = load_matrix()
    assert upgrade_plan(matrix, matrix, prod_plan, prod) == []
    assert "Nothing the stack deploys changes" in render([], "prod", "a", "b")


# RA: Architecture Decision Guardrails: "Kubernetes API surface and upgrade policy"
def test_steps_follow_install_order_with_crds_and_driver_drain(prod, prod_plan):
    old = load_matrix()
    new = _bump(_bump(old, "kaiScheduler", "v9.9.9"), driver="999.1.0")
    steps = upgrade_plan(old, new, prod_plan, prod)
    install_order = [r.inputs["chart"] for r in prod.releases().values()]
    assert [s.component for s in steps] == sorted(["kaiScheduler", "gpuOperator"],
                                                  key=lambda n: install_order.index(old.components[n].chart))
    by_name = {s.component: s for s in steps}
    assert any(CRD_NOTE in a and "scheduling.run.ai/v2/Queue" in a for a in by_name["kaiScheduler"].actions)
    gpu = by_name["gpuOperator"]
    assert gpu.change == f"image driver {old.components['gpuOperator'].images['driver']} -> 999.1.0"
    assert any("evicted" in a and str(prod_plan.site.gpu_nodes) in a for a in gpu.actions)
    assert all(s.rollback for s in steps)


def test_runtime_change_rebenchmarks_every_endpoint(prod, prod_plan):
    old = load_matrix()
    steps = upgrade_plan(old, _bump(old, runtime="9.9.9"), prod_plan, prod)
    assert [s.component for s in steps] == ["dynamoRuntime"]
    text = "\n".join(steps[0].actions + steps[0].rollback)
    for endpoint in prod_plan.endpoints:
        assert f"{endpoint.endpoint.name}: re-benchmark" in text
    assert "promotion gate" in text


def test_cli_reads_git_revisions(capsys):
    assert lifecycle_cli.main(["--stack", "prod", "--from", "HEAD", "--to", "HEAD"]) == 0
    assert "Nothing the stack deploys changes" in capsys.readouterr().out
    assert lifecycle_cli.main(["--stack", "prod", "--from", "no-such-revision"]) == 2
    assert "no-such-revision" in capsys.readouterr().err


# --- the driver upgrade policy: from the profile and the stack, never the chart default -------------------------------

def _prod_with(policy=None, profile=None):
    from ncp.plan.site_plan import build_plan
    from ncp.plan.sources import read_stack_file
    raw, secrets = read_stack_file("prod")
    if policy is not None:
        raw["components"].setdefault("gpuOperator", {})["driverUpgradePolicy"] = policy
    if profile is not None:
        raw["site"]["hardwareProfile"] = profile
    return build_plan(raw, secrets, "Pulumi.prod.yaml")


def test_driver_upgrade_policy_is_the_profiles_with_the_stacks_overrides(prod):
    from ncp.readmodel.recorder import Recording  # noqa: F401 (the recording is the prod fixture)
    values = next(r.inputs["values"] for r in prod.releases().values() if r.inputs["chart"] == "gpu-operator")
    assert values["driver"]["upgradePolicy"] == {
        "autoUpgrade": True, "maxParallelUpgrades": 1, "maxUnavailable": 1,
        "waitForCompletion": {"timeoutSeconds": 0, "podSelector": ""},
        "gpuPodDeletion": {"force": False, "timeoutSeconds": 300, "deleteEmptyDir": False},
        "drain": {"enable": True, "force": False, "podSelector": "", "timeoutSeconds": 900, "deleteEmptyDir": True}}
    changed = _prod_with({"maxParallelUpgrades": 2, "maxUnavailable": "25%"}).driver_upgrade_policy
    assert (changed.max_parallel_upgrades, changed.max_unavailable, changed.drain.enable) == (2, "25%", True)


@pytest.mark.parametrize("policy, profile, message", [
    ({"maxUnavailable": "lots"}, None, "a node count or a percentage"),
    ({"autoUpgrade": False}, "cloud-h100", "the driver is preinstalled"),
    ({"drainTimeout": 5}, None, "driverUpgradePolicy"),
])
def test_bad_driver_upgrade_policy_is_a_config_error(policy, profile, message):
    from ncp.plan.errors import ConfigError
    with pytest.raises(ConfigError) as error:
        _prod_with(policy, profile)
    assert "components.gpuOperator.driverUpgradePolicy" in str(error.value) and message in str(error.value)


def test_driver_step_states_the_configured_rollout(prod):
    old = load_matrix()
    new = _bump(old, driver="999.1.0")
    text = "\n".join(upgrade_plan(old, new, _prod_with(), prod)[0].actions)
    assert "1 node(s) at a time, at most 1 unavailable, each node drained first (timeout 900s" in text
    manual = "\n".join(upgrade_plan(old, new, _prod_with({"autoUpgrade": False}), prod)[0].actions)
    assert "autoUpgrade false: the operator does not roll the driver" in manual
