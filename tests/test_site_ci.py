"""`ncp check --all`: the site's CI job over every stack file, the version bump checks included."""
import pytest

from ncp.offline import bump_checks, check, site_ci
from ncp.plan import sources
from ncp.plan.catalog import load_matrix

SITE = "  ncp-inference:site: {name: x, environment: lab, hardwareProfile: lab, gpuNodes: 1}\n"
TENANTS = "  ncp-inference:tenants: [{name: red, gpuQuota: 1, gpuLimit: 1}]\n"
SECRET = "  ncp-inference:ngcApiKey: {secure: v1:AAAA}\n"


@pytest.fixture()
def site(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "ROOT", tmp_path)
    (tmp_path / "Pulumi.yaml").write_text("name: ncp-inference\n")

    def stack(name: str, body: str, head: str = "encryptionsalt: v1:c2FsdA==:v1:AAAA\n") -> None:
        (tmp_path / f"Pulumi.{name}.yaml").write_text(head + "config:\n" + body)
    return stack


def test_every_stack_is_checked_and_a_typo_in_one_turns_the_job_red(site, capsys):
    site("site-a", SITE + TENANTS)
    site("site-b", SITE + TENANTS.replace("gpuLimit", "gpuLimt"))
    assert check.main(["--all"]) == 2
    out = capsys.readouterr().out
    assert "site-a  ok " in out
    assert "site-b  INVALID  not valid input" in out
    assert "ncp-inference:tenants[0].gpuLimt: is not a known key" in out


def test_named_stacks_only(site, capsys):
    site("site-a", SITE + TENANTS)
    site("site-b", "not: [valid")
    assert check.main(["--stack", "site-a", "--stack", "site-a"]) == 0
    assert "site-b" not in capsys.readouterr().out


def test_kms_backed_stack_and_a_new_stack_pass(site, capsys):
    site("kms", SITE + TENANTS + SECRET, head="secretsprovider: awskms://alias/ncp\nencryptedkey: AQICAHh=\n")
    site("fresh", SITE + TENANTS, head="")
    assert check.main(["--stack", "kms", "--stack", "fresh"]) == 0
    out = capsys.readouterr().out
    assert "Pulumi.fresh.yaml: no encryptionsalt or encryptedkey yet: `pulumi stack select --create fresh`" in out


def test_secure_values_without_salt_or_key_cannot_be_read(site, capsys):
    site("lost", SITE + TENANTS + SECRET, head="")
    site("ok", SITE + TENANTS)
    assert check.main(["--stack", "lost", "--stack", "ok"]) == 2
    out = capsys.readouterr().out
    assert "Pulumi.lost.yaml: holds secure values (ngcApiKey) but neither `encryptionsalt` nor `encryptedkey`" in out


def _bumped(name: str, version: str):
    matrix = load_matrix()
    section = "components" if name in matrix.components else "workloads"
    entries = getattr(matrix, section)
    return matrix.model_copy(update={section: {**entries, name: entries[name].model_copy(update={"version": version})}})


def test_a_deviation_left_naming_the_old_version_is_a_bump_problem():
    pinned = load_matrix().components["kaiScheduler"].version
    assert pinned in (load_matrix().components["kaiScheduler"].deviation or "")
    assert bump_checks.deviation_problems(load_matrix()) == []
    [problem] = bump_checks.deviation_problems(_bumped("kaiScheduler", "v9.9.9"))
    assert problem.startswith("data/compatibility-matrix.yaml components.kaiScheduler.deviation: names ")
    assert f"{pinned}" in problem and "but not the pinned v9.9.9: rewrite it for v9.9.9" in problem


def test_a_chart_bump_fails_the_ci_job_at_once(site, monkeypatch, upstream, capsys):
    """The second step of a bump (the stale checkedAgainst note) used to surface minutes into the full suite."""
    site("site-a", SITE + TENANTS)
    monkeypatch.setattr(site_ci, "load_matrix", lambda: _bumped("kaiScheduler", "v9.9.9"))
    assert site_ci.run_site_ci(["site-a"], check.PACK_DIR, None, upstream) == 1
    out = capsys.readouterr().out
    assert "version bump checks (checkedAgainst notes, deviations, copies of the pins): 4 problems" in out
    assert "components.kaiScheduler.checkedAgainst: written for pin " in out
    assert "components.kaiScheduler.deviation: names " in out
    assert "policy/ncp_guardrails/pins.yaml: charts.kaiScheduler.version is " in out
    assert "tests/e2e/charts/kai-scheduler/Chart.yaml: version is " in out


def test_without_the_upstream_snapshots_the_notes_are_reported_unchecked(site, tmp_path, capsys):
    site("site-a", SITE + TENANTS)
    assert site_ci.run_site_ci(["site-a"], check.PACK_DIR, None, tmp_path / "no-upstream") == 0
    assert "checkedAgainst notes not checked: " in capsys.readouterr().out
