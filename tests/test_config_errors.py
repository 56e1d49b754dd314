"""Every invalid config stops the program with one message naming the path and the fix; nothing is registered."""
import pytest
import pulumi

from ncp.readmodel.recorder import run_program
from tests.support.synthetic import mutate, secret_keys, site_config
from ncp.plan.errors import ConfigError
from ncp.plan.site_plan import build_plan

BASE_LAB = site_config("lab")
BASE_PROD = site_config("hgx-h200", "prod")

CASES = [
    # (name, base, path, value, expected path in message, expected text)
    ("negative quota", BASE_LAB, "tenants[1].gpuQuota", -1, "ncp-inference:tenants[1].gpuQuota", "must be >= 0"),
    ("limit below quota", BASE_PROD, "tenants[0].gpuLimit", 1,
     "ncp-inference:tenants[0]", "gpuLimit (1) must be >= gpuQuota"),
    ("unknown key", BASE_LAB, "site.hardwarProfile", "lab", "ncp-inference:site.hardwarProfile", "is not a known key"),
    ("missing site name", BASE_LAB, "site.name", None, "ncp-inference:site.name", "is required"),
    ("bad environment", BASE_LAB, "site.environment", "qa", "ncp-inference:site.environment", "must be one of"),
    ("unknown profile", BASE_LAB, "site.hardwareProfile", "dgx-a100",
     "ncp-inference:site.hardwareProfile", "unknown profile 'dgx-a100'"),
    ("tenant name not a DNS label", BASE_LAB, "tenants[0].name", "Team_A",
     "ncp-inference:tenants[0].name", "does not match"),
    ("MIG on a non-MIG profile", BASE_LAB, "components.gpuOperator.mig", {"layout": {"1g.10gb": 7}},
     "ncp-inference:components.gpuOperator.mig", "does not support MIG"),
    ("MIG profile not offered", BASE_PROD, "components.gpuOperator.mig", {"layout": {"1g.10gb": 7}},
     "ncp-inference:components.gpuOperator.mig.layout.1g.10gb", "not an accepted MIG profile of hgx-h200"),
    ("MIG layout over capacity", BASE_PROD, "components.gpuOperator.mig",
     {"strategy": "mixed", "layout": {"3g.71gb": 2, "2g.35gb": 1}}, "ncp-inference:components.gpuOperator.mig.layout",
     "cannot be placed on one NVIDIA H200"),
    ("MIG and time-slicing", BASE_PROD, "components.gpuOperator",
     {"mig": {"layout": {"7g.141gb": 1}}, "timeSlicing": {"replicas": 4}}, "ncp-inference:components.gpuOperator",
     "choose MIG or time-slicing"),
    ("rails on a profile without RDMA", BASE_LAB, "components.networkOperator.railInterfaces", ["eth1"],
     "ncp-inference:components.networkOperator.railInterfaces", "no RDMA east-west fabric"),
    ("RDMA profile without rails", BASE_PROD, "components.networkOperator.railInterfaces", [],
     "ncp-inference:components.networkOperator.railInterfaces", "name its NIC interfaces"),
    ("managed NIC driver without version", BASE_PROD, "components.networkOperator.nicDriver", "managed",
     "ncp-inference:components.networkOperator", "needs docaDriverVersion"),
    ("tenant limit beyond site", BASE_LAB, "tenants[0].gpuLimit", 9,
     "ncp-inference:tenants[0].gpuLimit", "the site has 4 GPUs"),
    ("quotas beyond site", BASE_PROD, "tenants[0]", {"name": "t0", "gpuQuota": 30, "gpuLimit": 30},
     "ncp-inference:tenants", "guarantee 40 GPUs in total"),
    ("duplicate tenants", BASE_LAB, "tenants[1].name", "t0", "ncp-inference:tenants", "repeated: t0"),
    ("no tenants", BASE_LAB, "tenants", [], "ncp-inference:tenants", "at least 1"),
    ("prod without evidence", BASE_PROD, "site.validationEvidence", None,
     "ncp-inference:site.validationEvidence", "required in prod"),
    ("Prometheus stack without a recorded decision", BASE_LAB, "components.telemetry.prometheusStack",
     {"enabled": True},
     "ncp-inference:components.telemetry.prometheusStack", "record localDecision.reason"),
    ("unsupported Kubernetes", BASE_LAB, "site.kubernetesVersion", "1.29",
     "ncp-inference:site.kubernetesVersion",
     "not in the compatibility matrix"),
    ("incomplete endpoint", BASE_LAB, "endpoints", [{"name": "chat"}],
     "ncp-inference:endpoints[0].tenant", "is required"),
]


def _clean(config: dict) -> dict:
    """Drop keys set to None so a mutation can also delete."""
    if isinstance(config, dict):
        return {k: _clean(v) for k, v in config.items() if v is not None}
    if isinstance(config, list):
        return [_clean(v) for v in config]
    return config


@pytest.mark.parametrize("name,base,path,value,where,text", CASES, ids=[c[0] for c in CASES])
def test_invalid_config_is_reported_with_path_and_fix(name, base, path, value, where, text):
    config = _clean(mutate(base, path, value)) if value is not None else _drop(base, path)
    with pytest.raises(ConfigError) as error:
        build_plan(config, secret_keys(config), "Pulumi.test.yaml")
    message = str(error.value)
    assert message.startswith("Pulumi.test.yaml: ")
    assert any(p.path.startswith(where) for p in error.value.problems), message
    assert text in message
    assert all(p.fix for p in error.value.problems if p.path.startswith(where)), message


def _drop(config: dict, path: str) -> dict:
    parent_path, _, key = path.rpartition(".")
    copy_ = mutate(config, parent_path + ".__drop__", None) if parent_path else dict(config)
    target = copy_
    for part in parent_path.split("."):
        target = target[part]
    target.pop("__drop__", None)
    target.pop(key, None)
    return copy_


def test_all_problems_are_reported_at_once():
    config = mutate(mutate(BASE_LAB, "tenants[0].gpuQuota", -3), "tenants[1].overQuotaWeight", -1)
    with pytest.raises(ConfigError) as error:
        build_plan(config, set(), "Pulumi.test.yaml")
    paths = [p.path for p in error.value.problems]
    assert "ncp-inference:tenants[0].gpuQuota" in paths
    assert "ncp-inference:tenants[1].overQuotaWeight" in paths
    assert "2 problems" in str(error.value)


def test_plaintext_secret_is_refused():
    config = site_config("hgx-h200", "prod")
    with pytest.raises(ConfigError) as error:
        build_plan(config, set(), "Pulumi.prod.yaml")
    problem = next(p for p in error.value.problems if p.path == "ncp-inference:ngcApiKey")
    assert problem.message == "is stored in plain text"
    assert "pulumi config set --secret ncp-inference:ngcApiKey" in problem.fix


def test_prod_requires_ngc_key():
    config = site_config("hgx-h200", "prod")
    del config["ngcApiKey"]
    with pytest.raises(ConfigError, match="ncp-inference:ngcApiKey: is required in prod"):
        build_plan(config, set(), "Pulumi.prod.yaml")


def test_fix_suggests_the_pulumi_command():
    config = _drop(BASE_LAB, "site.gpuNodes")
    with pytest.raises(ConfigError) as error:
        build_plan(config, set(), "Pulumi.test.yaml")
    assert "pulumi config set --path 'ncp-inference:site.gpuNodes' <value>" in str(error.value)


def test_program_stops_before_registering_anything(monkeypatch):
    from ncp.readmodel import recorder

    seen = []
    original = recorder._RecordingMonitor.RegisterResource

    def spy(self, request):
        seen.append(request.type)
        return original(self, request)

    monkeypatch.setattr(recorder._RecordingMonitor, "RegisterResource", spy)
    with pytest.raises(pulumi.RunError, match=r"tenants\[0\]\.gpuQuota: must be >= 0"):
        run_program(mutate(BASE_LAB, "tenants[0].gpuQuota", -1), set(), stack="bad")
    assert [t for t in seen if t != "pulumi:pulumi:Stack"] == []


@pytest.mark.parametrize("path, value", [("tenants[0].gpuLimit", 9), ("tenants[0].gpuQuota", 5)])
def test_capacity_fix_names_the_node_count_first(path, value):
    """Site capacity is gpuNodes x GPUs per node: the hint points at the node count before the quotas."""
    config = mutate(mutate(BASE_LAB, "tenants[0].gpuLimit", 9), path, value)
    with pytest.raises(ConfigError) as error:
        build_plan(config, secret_keys(config), "Pulumi.test.yaml")
    fixes = [p.fix for p in error.value.problems if "GPUs" in p.message]
    assert fixes and all(f.startswith("if the site has more than ") and "'ncp-inference:site.gpuNodes'" in f
                         for f in fixes), fixes
