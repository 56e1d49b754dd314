"""Fix hints that work: a misspelled key names the key it most likely means and the command that renames it, every
command is runnable as printed (the project's virtualenv), and a problem found twice is printed once."""
import pytest

from ncp.plan import catalog
from ncp.plan.errors import ConfigError, Problem
from ncp.plan.site_plan import build_plan

SITE = {"name": "x", "environment": "lab", "hardwareProfile": "lab", "gpuNodes": 1}


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as error:
        build_plan(raw, set(), "Pulumi.x.yaml")
    return str(error.value)


def test_a_misspelled_key_names_the_intended_key_and_renames_it():
    text = _error({"site": SITE, "tenants": [{"name": "a", "gpuQuota": 1, "gpuLimt": 1}]})
    assert "1 problem;" in text  # the intended key's own 'is required' is the same mistake: not a second problem
    assert "ncp-inference:tenants[0].gpuLimt: is not a known key; did you mean `gpuLimit`?" in text
    assert ("fix: rename it: pulumi config rm --path 'ncp-inference:tenants[0].gpuLimt' && pulumi config set --path "
            "'ncp-inference:tenants[0].gpuLimit' <value>") in text


def test_a_misspelled_nested_key_and_a_key_with_no_likely_meaning():
    text = _error({"site": SITE, "tenants": [{"name": "a", "gpuQuota": 1, "gpuLimit": 1}],
                   "components": {"serving": {"modelStaging": {"airGaped": True}}, "skipAwiat": True,
                                  "health": {"xyz": 1}}})
    assert "components.serving.modelStaging.airGaped: is not a known key; did you mean `airGapped`?" in text
    assert "components.skipAwiat: is not a known key; did you mean `skipAwait`?" in text
    assert "components.health.xyz: is not a known key (keys here: " in text and "drainTimeoutSeconds" in text
    assert "fix: remove it: pulumi config rm --path 'ncp-inference:components.health.xyz'" in text
    assert "correct its spelling: pulumi config set --path 'ncp-inference:components.skipAwiat'" not in text


def test_a_misspelled_key_in_a_profile_file_is_renamed_in_the_file(tmp_path, monkeypatch):
    text = (catalog.PROFILES_DIR / "lab.yaml").read_text().replace("perNode:", "perNod:", 1)
    (tmp_path / "lab.yaml").write_text(text)
    monkeypatch.setattr(catalog, "PROFILES_DIR", tmp_path)
    catalog.load_profile.cache_clear()
    try:
        with pytest.raises(ConfigError) as error:
            catalog.load_profile("lab")
    finally:
        catalog.load_profile.cache_clear()
    assert "gpu.perNod: is not a known key; did you mean `perNode`?" in str(error.value)
    assert "fix: rename it: write `perNode` instead" in str(error.value)


def test_commands_in_fixes_run_with_the_projects_virtualenv():
    rendered = str(ConfigError("Pulumi.x.yaml", [Problem("k", "is wrong", "re-size it: ncp sizing --out f")]))
    assert "fix: re-size it: .venv/bin/ncp sizing --out f" in rendered
    assert ".venv/bin/.venv" not in str(ConfigError("s", [Problem("k", "m", ".venv/bin/ncp scaffold")]))


def test_a_problem_found_twice_is_printed_once():
    twice = Problem("ncp-inference:site.gpuNodes", "must be >= 1", "use a value >= 1")
    error = ConfigError("Pulumi.x.yaml", [twice, twice])
    assert "1 problem;" in str(error) and str(error).count("must be >= 1") == 1


def test_a_rule_over_several_keys_fixes_the_keys_it_names_not_their_parent():
    text = _error({"site": SITE, "tenants": [{"name": "a", "gpuQuota": 1, "gpuLimit": 1}],
                   "components": {"networkOperator": {"nicDriver": "managed"}}})
    assert "ncp-inference:components.networkOperator: nicDriver managed needs docaDriverVersion" in text
    assert ("fix: pulumi config set --path 'ncp-inference:components.networkOperator.nicDriver' <value> or pulumi "
            "config set --path 'ncp-inference:components.networkOperator.docaDriverVersion' <value>") in text
    assert "--path 'ncp-inference:components.networkOperator' <value>" not in text
