"""Run the real Prometheus rule checker (promtool, built by tools/e2e/bootstrap.sh) on the rules the program renders.

`promtool check rules` parses every expression; `promtool test rules` evaluates alerting and recording rules over
synthetic input series. Both read files, so the rule groups and test cases are written to a temporary directory.
"""
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from ncp.engine_bin import find_engine_binary
from ncp.plan.catalog import ROOT

BOOTSTRAP = ROOT / "tools" / "e2e" / "bootstrap.sh"
OVERRIDE_ENV = "NCP_PROMTOOL"  # an explicit promtool binary, e.g. while the rest of the engine is still building


def find_promtool() -> tuple[Optional[Path], str]:
    """The promtool binary in the bootstrap bin dir, or None and the reason it is not there."""
    return find_engine_binary("promtool", OVERRIDE_ENV)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    output: str


def _run(promtool: Path, args: list[str], cwd: Path) -> Outcome:
    result = subprocess.run([str(promtool), *args], capture_output=True, text=True, cwd=cwd)
    return Outcome(result.returncode == 0, result.stdout + result.stderr)


def check_rule_files(promtool: Path, rule_files: dict[str, list[dict]]) -> Outcome:
    """`promtool check rules` over named rule files, each a list of rule groups (a PrometheusRule's spec.groups)."""
    with tempfile.TemporaryDirectory(prefix="ncp-rules-") as tmp:
        paths = []
        for name, groups in rule_files.items():
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
            paths.append(path.name)
        return _run(promtool, ["check", "rules", *paths], Path(tmp))


def run_rule_tests(promtool: Path, rule_files: dict[str, list[dict]], tests: list[dict],
               evaluation_interval: str) -> Outcome:
    """`promtool test rules` with the given test cases (promtool's `tests:` entries) against the rule files."""
    with tempfile.TemporaryDirectory(prefix="ncp-rule-tests-") as tmp:
        for name, groups in rule_files.items():
            (Path(tmp) / f"{name}.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        suite = {"rule_files": [f"{name}.yaml" for name in rule_files],
                 "evaluation_interval": evaluation_interval, "tests": tests}
        (Path(tmp) / "tests.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
        return _run(promtool, ["test", "rules", "tests.yaml"], Path(tmp))
