"""The offline check command: valid stacks print a plan; a bad stack file exits 2 with the config error; a bug
exits 3 with where it happened, never a bare traceback."""
import importlib.util

import pytest

from ncp.cli_exit import run_command
from ncp.offline import check
from ncp.plan import sources
from ncp.plan.catalog import load_matrix

LAB_SITE = "  ncp-inference:site: {name: x, environment: lab, hardwareProfile: lab, gpuNodes: %s}\n"
LAB_TENANTS = "  ncp-inference:tenants: [{name: a, gpuQuota: 0, gpuLimit: 0}]\n"


def test_plan_of_lab_stack(capsys):
    assert check.main(["--stack", "lab", "--plan"]) == 0
    out, err = capsys.readouterr()
    assert "ncp-inference:layers:GpuEnablement gpu" in out
    assert "chart: gpu-operator" in out
    assert "stack lab: config valid" in err
    # The engine carries numbers as doubles; the plan shows them as the config and specs write them.
    assert "runAsUser: 1000\n" in out and "runAsUser: 1000.0" not in out


def test_prod_stack_keeps_secret_values_out_of_the_plan(capsys):
    # Advisory pack config: this test is about the plan view, not the guardrails (test_policy_pack covers those).
    assert check.main(["--stack", "prod", "--plan", "--policy-pack-config", "policy/config/lab.json"]) == 0
    out, _ = capsys.readouterr()
    assert "keys:\n" in out and ".dockerconfigjson" in out
    assert "placeholder-ngcApiKey" not in out


def test_invalid_stack_file_exits_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "Pulumi.broken.yaml").write_text(
        "config:\n  ncp-inference:site: {name: x, environment: lab, hardwareProfile: lab, gpuNodes: 0}\n"
        "  ncp-inference:tenants: [{name: a, gpuQuota: 0, gpuLimit: 0}]\n")
    monkeypatch.setattr(sources, "ROOT", tmp_path)
    assert check.main(["--stack", "broken"]) == 2
    _, err = capsys.readouterr()
    assert "Pulumi.broken.yaml: 1 problem; nothing was deployed." in err
    assert "ncp-inference:site.gpuNodes: must be >= 1" in err


def test_missing_stack_file_exits_2(capsys):
    assert check.main(["--stack", "no-such-stack"]) == 2
    assert "Pulumi.no-such-stack.yaml: does not exist" in capsys.readouterr().err


def test_mandatory_violation_exits_1(tmp_path, capsys):
    config = tmp_path / "strict.json"
    config.write_text('{"all": "mandatory", "image-references": {"requireDigestForServing": true}}')
    # The lab's serving image is pinned by tag, not digest: under prod rules the pack must block.
    assert check.main(["--stack", "lab", "--policy-pack-config", str(config)]) == 1
    out, _ = capsys.readouterr()
    assert "[mandatory]  ncp-inference-ra-guardrails v0.1.0  image-references" in out
    # The policy's own remediation text follows the violation, so the user sees the fix without opening the pack.
    from ncp_guardrails import POLICIES
    remediation = next(p.remediation_steps for p in POLICIES if p.name == "image-references")
    assert "        fix: " + remediation.strip().splitlines()[0] in out


def test_lab_check_passes_with_its_pack_config(capsys):
    assert check.main(["--stack", "lab"]) == 0
    assert "no violations" in capsys.readouterr().out


def test_summary_is_the_default_view(tmp_path, monkeypatch, capsys):
    (tmp_path / "Pulumi.two.yaml").write_text(
        "config:\n" + LAB_SITE % "2" +
        "  ncp-inference:tenants:\n"
        "    - {name: red, gpuQuota: 1, gpuLimit: 2, overQuotaWeight: 3}\n"
        "    - {name: blue, gpuQuota: 0, gpuLimit: 1}\n")
    monkeypatch.setattr(sources, "ROOT", tmp_path)
    assert check.main(["--stack", "two"]) == 0
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("site x (lab) · profile lab · 2 GPU nodes, 2 GPUs · ")
    assert any(line.split()[:3] == ["gpuOperator", "gpu-operator", load_matrix().pin("gpuOperator").version]
               for line in lines)
    assert ["red", "tenant-red", "1", "2", "GPUs", "3", "-"] in [line.split() for line in lines]
    assert "totals: 2 tenants, guaranteed 1/2 GPUs, 0 endpoints on 0 GPUs" in out
    assert "ncp-inference:layers:GpuEnablement" not in out  # the resource tree only with --plan


@pytest.mark.parametrize("text, message", [
    ("config:\n  ncp-inference:site: [unclosed\n",
     "Pulumi.bad.yaml: is not valid YAML at line 3, column 1: expected ',' or ']'"),
    ("- a list\n- not a mapping\n", "Pulumi.bad.yaml: is a YAML list, not a mapping"),
    ("config: [1, 2]\n", "Pulumi.bad.yaml: config: is a list, not a mapping"),
    ("config:\n" + LAB_SITE % ("9" * 400) + LAB_TENANTS,
     "ncp-inference:site.gpuNodes: is out of range (|value| > 9007199254740991"),
    ("config:\n" + LAB_SITE % "1" + LAB_TENANTS.replace("gpuQuota: 0", "gpuQuota: .inf"),
     "ncp-inference:tenants[0].gpuQuota: is not a finite number (inf)"),
])
def test_unreadable_stack_file_is_one_config_error(tmp_path, monkeypatch, capsys, text, message):
    (tmp_path / "Pulumi.bad.yaml").write_text(text)
    monkeypatch.setattr(sources, "ROOT", tmp_path)
    assert check.main(["--stack", "bad"]) == 2
    _, err = capsys.readouterr()
    assert message in err
    assert "nothing was deployed" in err and "Traceback" not in err


def test_internal_error_exits_3_and_names_where(monkeypatch, capsys):
    def broken(_stack):
        raise KeyError("a bug")

    monkeypatch.setattr(check, "run_stack_file", broken)
    assert run_command(check.main, ["--stack", "lab"]) == 3
    err = capsys.readouterr().err
    assert "internal error: KeyError: 'a bug'" in err and "test_offline_check.py" in err
    assert "Traceback" not in err
    assert run_command(check.main, ["--stack", "lab", "--debug"]) == 3
    assert "Traceback" in capsys.readouterr().err


def _commands(table=None):
    from ncp.cli import COMMANDS, Command
    for entry in (table or COMMANDS).values():
        yield from [entry] if isinstance(entry, Command) else _commands(entry)


@pytest.mark.parametrize("command", sorted({c.module for c in _commands()}))
def test_every_command_keeps_the_exit_code_contract(command, monkeypatch, capsys):
    """Every command is reached through `ncp`, which wraps it in run_command: a bug exits 3, never 1 (a failed
    gate), and an input error of the one hierarchy exits 2 with its line."""
    from ncp import cli
    from ncp.cli_exit import BadInput
    module = importlib.import_module(command)
    name = next(n for n, e in _flat(cli.COMMANDS) if e.module == command)

    def bug(argv=None):
        raise KeyError("boom")

    def bad(argv=None):
        raise BadInput("Pulumi.x.yaml: ncp-inference:site.name: missing; fix: name the site")

    monkeypatch.setattr(module, "main", bug)
    assert cli.main(name.split()) == 3 and "internal error: KeyError" in capsys.readouterr().err
    monkeypatch.setattr(module, "main", bad)
    assert cli.main(name.split()) == 2 and "error: Pulumi.x.yaml" in capsys.readouterr().err


def _flat(table, prefix=""):
    from ncp.cli import Command
    for name, entry in table.items():
        yield from [(prefix + name, entry)] if isinstance(entry, Command) else _flat(entry, f"{prefix}{name} ")


def test_the_cli_routes_every_name_and_refuses_an_unknown_one(capsys):
    from ncp import cli
    for name, entry in _flat(cli.COMMANDS):
        command, argv, _ = cli.resolve([*name.split(), "--x"])
        assert command is importlib.import_module(entry.module).main and argv[-1] == "--x"
    assert cli.main(["chek"]) == 2 and "did you mean check or checklist?" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0 and "upgrade-plan" in capsys.readouterr().out


def test_plan_order_does_not_depend_on_registration_order(lab):
    """Resources registered inside `apply` callbacks arrive in a different order per run: the plan is printed in
    dependency order with ties by type and name, so two runs' --plan outputs can be diffed."""
    import random

    from ncp.readmodel.recorder import Recording

    shuffled = list(lab.resources)
    random.Random(23).shuffle(shuffled)
    assert check.render_plan(Recording(lab.stack, shuffled, lab.outputs)) == check.render_plan(lab)
    order = [r.name for r in check.install_order(lab)]
    namespace = order.index("baseline-ns-gpuOperator")
    assert namespace < order.index("gpu-operator")  # a release after the namespace it installs into
