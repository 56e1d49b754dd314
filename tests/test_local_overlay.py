"""The local control plane's settings (stand-in charts, skipAwait, an existing datastore Secret) come from an overlay
the site's stack file never holds; staging and prod refuse them in the stack file, and an air-gapped site needs a
chart mirror of the real charts (ncp/plan/local_overlay.py)."""
import copy

import pytest

from ncp.offline import check
from tests.support.synthetic import PARTNER_DECISIONS
from ncp.plan import sources
from ncp.plan.errors import ConfigError
from ncp.plan.local_overlay import CONTROL_PLANE_OVERLAY, OVERLAY_ENV
from ncp.plan.site_plan import build_plan

STAND_INS = "tests/e2e/charts"


def _raw(environment: str, **components) -> dict:
    raw = {"site": {"name": "x", "environment": environment, "hardwareProfile": "lab", "gpuNodes": 1,
                    "validationEvidence": {"path": "s3://b/e/", "owner": "team"}},
           "tenants": [{"name": "red", "gpuQuota": 1, "gpuLimit": 1}], "components": components}
    if environment == "prod":
        raw["ngcApiKey"] = "key"
    if environment in ("staging", "prod"):  # partner products are recorded there (ncp/plan/rules/ra.py)
        raw["localDecisions"] = copy.deepcopy(PARTNER_DECISIONS)
    return raw


def _problems(raw: dict) -> str:
    with pytest.raises(ConfigError) as error:
        build_plan(raw, {"ngcApiKey"}, "Pulumi.x.yaml", sources.local_overlay("Pulumi.x.yaml"))
    return str(error.value)


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_reviewed_environments_refuse_stand_ins_and_skip_await_in_the_stack_file(environment):
    text = _problems(_raw(environment, chartMirror=STAND_INS, skipAwait=True))
    assert f"ncp-inference:components.skipAwait: is refused in {environment}" in text
    assert f"ncp-inference:components.chartMirror: {STAND_INS} holds the e2e stand-in charts" in text
    assert "pulumi config rm --path 'ncp-inference:components.skipAwait'" in text
    assert f"export {OVERLAY_ENV}={CONTROL_PLANE_OVERLAY}" in text


def test_the_overlay_brings_them_to_any_stack_and_the_summary_says_so(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(OVERLAY_ENV, CONTROL_PLANE_OVERLAY)
    plan = build_plan(_raw("staging"), set(), "Pulumi.x.yaml", sources.local_overlay("Pulumi.x.yaml"))
    assert plan.config.components.chart_mirror == STAND_INS and plan.config.components.skip_await
    assert plan.config.components.health.datastore_secret == "nvsentinel-datastore-external"
    assert plan.local_overlay == CONTROL_PLANE_OVERLAY
    (tmp_path / "Pulumi.site.yaml").write_text(
        "config:\n  ncp-inference:site: {name: x, environment: staging, hardwareProfile: lab, gpuNodes: 1,"
        " validationEvidence: {path: s3://b/e/, owner: team}}\n"
        "  ncp-inference:tenants: [{name: red, gpuQuota: 1, gpuLimit: 1}]\n"
        "  ncp-inference:localDecisions: [{kind: certManager, decision: cert-manager, reason: site choice},"
        " {kind: metricsBackend, decision: site Prometheus, reason: site choice}]\n")
    monkeypatch.setattr(sources, "ROOT", tmp_path)
    check.main(["--stack", "site"])
    assert f"local control plane overlay {CONTROL_PLANE_OVERLAY} merged over the stack" in capsys.readouterr().out


def test_the_lab_may_keep_its_stand_ins():
    plan = build_plan(_raw("lab", chartMirror=STAND_INS, skipAwait=True), set(), "Pulumi.x.yaml")
    assert plan.config.components.chart_mirror == STAND_INS


def test_an_overlay_holds_only_local_settings(monkeypatch, tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("components:\n  skipAwait: true\n  tenancy: {pullCredentials: sharedKey}\n")
    monkeypatch.setenv(OVERLAY_ENV, str(overlay))
    with pytest.raises(ConfigError) as error:
        sources.local_overlay("Pulumi.x.yaml")
    assert f"{OVERLAY_ENV}={overlay}: components.tenancy.pullCredentials: is not a local control plane setting" \
        in str(error.value)


def test_an_air_gapped_site_needs_a_chart_mirror_of_the_real_charts():
    mirror = {"service": "hf-mirror", "namespace": "model-mirror", "port": 8080}
    gapped = {"serving": {"modelStaging": {"airGapped": True, "mirror": mirror}}}
    assert "ncp-inference:components.chartMirror: is required on an air-gapped site" in _problems(_raw("lab", **gapped))
    text = _problems(_raw("lab", chartMirror=STAND_INS, **gapped))
    assert f"{STAND_INS} holds stand-in charts, not a mirror of the pinned charts" in text
    assert "ncp-inference:components.chartMirror: no-such-dir is not a directory of the project" in _problems(
        _raw("lab", chartMirror="no-such-dir"))


def test_every_stand_in_chart_is_recognised():
    """The refusal recognises stand-ins by the label their templates render: every stand-in must carry it."""
    from ncp.plan.catalog import ROOT
    from ncp.plan.names import STAND_IN_CHART_LABEL
    charts = sorted((ROOT / STAND_INS).iterdir())
    assert charts and all(STAND_IN_CHART_LABEL in "".join(t.read_text() for t in (c / "templates").glob("*.yaml"))
                          for c in charts)


def test_a_chart_mirror_must_hold_each_deployed_chart_at_its_pin(tmp_path, monkeypatch):
    from ncp.plan import local_overlay
    from ncp.plan.rules import local as local_rules
    from ncp.plan.catalog import load_matrix
    pin = load_matrix().pin("gpuOperator")
    (tmp_path / "mirror" / pin.chart_name).mkdir(parents=True)
    (tmp_path / "mirror" / pin.chart_name / "Chart.yaml").write_text(f"name: {pin.chart_name}\nversion: v0.0.1\n")
    monkeypatch.setattr(local_overlay, "ROOT", tmp_path)
    monkeypatch.setattr(local_rules, "ROOT", tmp_path)
    text = _problems(_raw("lab", chartMirror="mirror"))
    assert f"ncp-inference:components.chartMirror: mirror holds {pin.chart_name} v0.0.1; the matrix pins " \
           f"{pin.chart_name} {pin.version}" in text
    assert "mirror has no kai-scheduler/Chart.yaml" in text
