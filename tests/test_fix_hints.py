"""Fix hints that work: a misspelled key names the key it most likely means and the command that renames it, every
command is runnable as printed (the project's virtualenv), and a problem found twice is printed once."""
import ast
import re
from pathlib import Path

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


# --- every fix line has a command (issue #23 item 6) -------------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent
AUDITED = ("ncp/plan", "ncp/offline")
# A fix line runs as printed: a `pulumi config` command, a project command, or a command of a tool the site runs.
COMMAND = re.compile(r"pulumi config (set|rm)|(?<![\w-])ncp [a-z]|kubectl |sha256sum |iconv |chmod |pulumi stack |"
                     r"export |git (log|clone|worktree) ")
# Calls that make a Problem from (path, message, fix).
PROBLEM_MAKERS = {"Problem", "_bad_revision"}
# Functions whose result is a command (or, manual_edit, an edit naming the file and the key): their own text is
# audited below, so a fix built with them passes.
BUILDERS = {"set_command", "rm_command", "manual_edit", "sizing_command", "_set_fix", "_set", "_rm", "_nodes_first",
            "_mismatch_fix", "benchmark_image_fix", "_add_backend",
            "_nesting_fix"}
# Fixes handed on from where they were made, each audited at its origin.
PASSED_ON = {
    ("ncp/plan/rules/endpoints.py", "mismatch.fix"): "SizingMismatch fixes: ncp/plan/sizing_bridge.py (sizing_command)",
    ("ncp/plan/errors.py", "fix"): "validation errors: stack keys through fix_hint (_set_fix), data files name the key",
    ("ncp/plan/rules/endpoints.py", "STORAGE_FIX"): "set_command per storage tier (ncp/plan/rules/endpoints.py)",
    ("ncp/plan/rules/inference_services.py", "STORAGE_FIX"): "set_command per storage tier (rules/endpoints.py)",
    ("ncp/offline/diff.py", "fix"): "_bad_revision's callers, audited as Problems (PROBLEM_MAKERS)",
}


def _flat(node: ast.AST) -> str:
    """The fix text with `<CMD>` for a builder's result and `{}` for any other value."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if any(isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) in BUILDERS
           for n in ast.walk(node)) and not isinstance(node, (ast.JoinedStr, ast.BinOp)):
        return "<CMD>"
    if isinstance(node, ast.JoinedStr):
        return "".join(_flat(v.value) if isinstance(v, ast.FormattedValue) else _flat(v) for v in node.values)
    if isinstance(node, ast.BinOp):
        return _flat(node.left) + _flat(node.right)
    return "{}"


def _fix_argument(call: ast.Call):
    return call.args[2] if len(call.args) > 2 else next((k.value for k in call.keywords if k.arg == "fix"), None)


def fixes_without_a_command(files, root: Path = ROOT) -> list[str]:
    found = []
    for path in files:
        relative = path.relative_to(root).as_posix()
        for call in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) in PROBLEM_MAKERS):
                continue
            fix = _fix_argument(call)
            if fix is None:
                found.append(f"{relative}:{call.lineno}: no fix")
            elif isinstance(fix, (ast.Name, ast.Attribute)):
                if (relative, ast.unparse(fix)) not in PASSED_ON:
                    found.append(f"{relative}:{call.lineno}: hands on {ast.unparse(fix)} from elsewhere")
            elif not (COMMAND.search(_flat(fix)) or "<CMD>" in _flat(fix)):
                found.append(f"{relative}:{call.lineno}: {_flat(fix)[:100]}")
    return found


def test_every_fix_line_has_a_command_or_names_the_file_and_key():
    files = [path for package in AUDITED for path in sorted((ROOT / package).rglob("*.py"))]
    assert len(files) > 20
    missing = fixes_without_a_command(files)
    assert not missing, "fix lines without a command (use set_command/rm_command, or manual_edit(file, key, what)):\n" \
        + "\n".join(missing)


def test_the_builders_make_commands():
    sources = {path: path.read_text() for package in AUDITED for path in (ROOT / package).rglob("*.py")}
    for builder in BUILDERS:
        bodies = [ast.get_source_segment(text, node) for text in sources.values() for node in ast.walk(ast.parse(text))
                  if isinstance(node, ast.FunctionDef) and node.name == builder]
        assert bodies, f"{builder} is gone: take it out of BUILDERS"
        for body in bodies:
            assert COMMAND.search(body) or body.count("edit ") or any(b in body.split(":", 1)[1] for b in BUILDERS
                                                                       if b != builder), builder


def test_a_fix_without_a_command_is_found(tmp_path):
    (tmp_path / "plan").mkdir()
    bad = tmp_path / "plan" / "bad.py"
    bad.write_text('Problem("k", "is wrong", "use one of: a, b")\nProblem("k", "m", set_command("k"))\n'
                   'Problem("k", "m", f"raise it: {set_command(path)}")\nProblem("k", "m", other_fix)\n')
    found = fixes_without_a_command([bad], tmp_path)
    assert [line.split(": ", 1)[1] for line in found] == ["use one of: a, b", "hands on other_fix from elsewhere"]

