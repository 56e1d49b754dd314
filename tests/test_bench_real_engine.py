"""The real-engine benchmark's pieces that need no engine: the generated plain program registers exactly the
program's Kubernetes resources, and the report and target verdict read the figures right. (The speed targets
themselves are measured by tools/bench/real_engine.py, never by a test.)"""
import runpy
from collections import Counter
from pathlib import Path

import yaml

from tools.bench import real_engine
from tools.bench.real_engine import Measurement, Row, missed_targets, report
from ncp.cli_exit import BAD_INPUT
from ncp.readmodel.recorder import run_program


def _row(tenants, mode, resources, preview, up=None):
    phases = {"preview": Measurement(preview, 300.0)}
    if up is not None:
        phases["up"] = Measurement(up, 400.0)
    return Row(tenants, mode, resources, resources + 1, phases)


def _rows(program_seconds, plain_seconds, resources=(100, 200, 1100)):
    rows = []
    for tenants, count, ours, theirs in zip((1, 10, 100), resources, program_seconds, plain_seconds, strict=False):
        rows += [_row(tenants, "program", count, ours), _row(tenants, "plain", count, theirs)]
    return rows


def test_generated_plain_program_registers_the_programs_resources(tmp_path, monkeypatch):
    config = real_engine.site(2)
    resources, registrations = real_engine.recorded_resources(config)
    project = real_engine.write_plain_project(tmp_path / "plain", resources)
    manifest = yaml.safe_load((project / "Pulumi.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    assert Path(manifest["runtime"]["options"]["virtualenv"]).is_dir()
    charts = [r["inputs"]["chart"] for r in resources if r["type"] == "kubernetes:helm.sh/v3:Release"]
    assert charts and all(Path(chart).is_absolute() and Path(chart).is_dir() for chart in charts), charts

    monkeypatch.chdir(project)
    plain = run_program({}, set(), stack="plain", program=lambda: runpy.run_path(str(project / "__main__.py")))

    assert Counter((r.type, r.name) for r in plain.resources) == Counter((r["type"], r["name"]) for r in resources)
    assert registrations > len(resources), "the program's count includes its components and the stack"
    by_name = {r.name: r for r in plain.resources}
    namespaced = [r for r in resources if r["inputs"].get("metadata", {}).get("namespace") in
                  {n["inputs"]["metadata"]["name"] for n in resources if n["inputs"].get("kind") == "Namespace"}]
    assert namespaced and all(by_name[r["name"]].dependencies for r in namespaced), \
        "a namespaced resource waits for its Namespace, so `up` can create it"


def test_report_shows_ratio_and_marginal_cost():
    text = report(_rows((3.0, 5.0, 23.0), (2.5, 4.5, 22.0)))
    assert "| 100 | program | 1100 (1101) | 23.0 | 300 | 20.9 |" in text
    assert "program/plain at 100 tenants: preview 1.05x time / 1.00x memory" in text
    assert "program preview marginal cost per resource: 20.0 ms (1->10), 20.0 ms (10->100)" in text


def test_targets_met_for_linear_cost_within_ratio():
    assert missed_targets(_rows((3.0, 5.0, 23.0), (2.5, 4.5, 22.0))) == []


def test_targets_missed_when_slower_than_plain():
    missed = missed_targets(_rows((3.0, 5.0, 30.0), (2.5, 4.5, 22.0)))
    assert len(missed) == 1 and "1.36x the plain program" in missed[0]


def test_targets_missed_when_cost_grows_faster_than_linear():
    # 20 ms per added resource from 1 to 10 tenants, 40 ms from 10 to 100: the ratio alone would pass.
    missed = missed_targets(_rows((3.0, 5.0, 45.0), (3.0, 5.0, 45.0)))
    assert len(missed) == 1 and "not linear" in missed[0], missed


def test_up_is_judged_when_measured():
    rows = [_row(1, "program", 100, 3.0, up=10.0), _row(1, "plain", 100, 3.0, up=5.0)]
    assert ["up at 1 tenants" in line for line in missed_targets(rows)] == [True]


def test_bad_tenant_counts_are_bad_input(capsys):
    assert real_engine.main(["--tenants", "10", "1"]) == BAD_INPUT
    assert real_engine.main(["--tenants", "0"]) == BAD_INPUT
    assert "ascending" in capsys.readouterr().err


def test_mitigations_apply_per_phase_and_recommended_expands():
    args, env = real_engine.mitigation_options(["parallel", "client-qps", "skip-checkpoints"], "preview")
    assert args == ["--parallel", "32"]
    assert env == {"PULUMI_K8S_CLIENT_QPS": "500", "PULUMI_K8S_CLIENT_BURST": "1000"}, \
        "checkpoints are an `up` matter: preview runs without the variable"
    assert real_engine.mitigation_options(["skip-checkpoints"], "up")[1] == {"PULUMI_SKIP_CHECKPOINTS": "true"}
    assert set(real_engine.parse(["--mitigations", "recommended"]).mitigations) == set(real_engine.RECOMMENDED)
    assert "no-dry-run" not in real_engine.RECOMMENDED, "a preview without the API server's dry-run checks less"
    assert real_engine.main(["--mitigations", "turbo"]) == BAD_INPUT


def test_report_adds_cpu_ratio_and_marginal_cpu_when_measured():
    rows = _rows((3.0, 5.0, 23.0), (2.5, 4.5, 22.0))
    for row, cpu in zip(rows, (2.0, 1.0, 4.0, 2.0, 22.0, 20.0), strict=True):
        row.phases["preview"].cpu_s = cpu
    text = report(rows)
    assert "program/plain at 100 tenants: preview 1.05x time / 1.00x memory / 1.10x CPU" in text
    assert "program preview marginal CPU per resource: 20.0 ms (1->10), 20.0 ms (10->100)" in text
