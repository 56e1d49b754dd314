"""Editing the example stacks as a site would never breaks a unit test: unit tests read frozen copies
(tests/fixtures/stacks, through tests/conftest.py) and only the example tests read the examples themselves.

Two proofs: a scan of every test module for reads of the project's stack files outside the allow-list, and a run of
the modules that test on the prod and lab stacks in a copy of the project whose examples a site has edited (a new
tenant in prod and lab, an endpoint moved to another sizing file)."""
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import EXAMPLE_STACKS, FROZEN_STACKS, frozen_stack_file
from tools.project_copy import copy_project

ROOT = Path(__file__).resolve().parents[1]
# Modules that validate the examples as examples (and this one, which edits them in a copy): the scanners judge the
# stacks as shipped (issue #22: every baseline reason true for every shipped stack), like tests/test_examples.py;
# the fleet e2e removes the stack files from its own copy of the project before writing its three sites.
ALLOWED = {"tests/test_examples.py", "tests/test_example_independence.py", "tests/conftest.py",
           "tests/test_scanners.py", "tests/e2e/test_fleet_e2e.py"}
# A read of a project stack file that bypasses ncp.plan.sources.stack_file: a path built from the project root, a glob
# over the stack files, or the fixture that restores the project's files.
EXAMPLE_READ = re.compile(r"""(ROOT|parents\[\d\])\s*/\s*f?["']Pulumi\.|glob\(\s*["']Pulumi\.|\bexample_stacks\b|"""
                          r"""\bPROJECT_STACK_FILE\b""")
# The modules that compose or plan the prod and lab stacks by name.
MODULES_ON_STACKS = ["tests/test_dynamo_pods.py", "tests/test_simulated_cluster.py", "tests/test_evidence.py"]


def _reads(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if EXAMPLE_READ.search(line)]


def test_the_scan_sees_a_direct_read():
    assert _reads('raw = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())')
    assert _reads("for path in ROOT.glob('Pulumi.*.yaml'):")
    assert not _reads('build_plan(raw, secrets, "Pulumi.prod.yaml")'), "a source label is not a read"


def test_no_unit_test_reads_the_example_stacks_outside_the_allow_list():
    found = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative not in ALLOWED and _reads(path.read_text()):
            found[relative] = _reads(path.read_text())
    assert not found, f"read the frozen copies (ncp.plan.sources.stack_file in tests) instead: {found}"


def test_example_names_resolve_to_frozen_copies():
    for stack in EXAMPLE_STACKS:
        assert frozen_stack_file(stack) == FROZEN_STACKS / f"Pulumi.{stack}.yaml"
        assert frozen_stack_file(stack).is_file()
    assert frozen_stack_file("e2e") == ROOT / "Pulumi.e2e.yaml", "the e2e test stack is not an example"


def _edit_as_a_site(project: Path) -> None:
    """A new tenant in prod and lab; prod's first endpoint moved to the large sizing file (a re-size)."""
    for stack in ("prod", "lab"):
        path = project / f"Pulumi.{stack}.yaml"
        document = yaml.safe_load(path.read_text())
        tenants = document["config"]["ncp-inference:tenants"]
        tenants.append({**tenants[-1], "name": "initech", "admins": ["initech-admins"]})
        if stack == "prod":
            document["config"]["ncp-inference:endpoints"][0]["sizing"] = "sites/prod/sizing/reasoning-large.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))


def test_unit_tests_pass_after_a_site_edits_the_examples(tmp_path):
    copy = tmp_path / "ncp-inference"
    copy_project(copy)
    if (ROOT.parent / "shared").exists():
        (tmp_path / "shared").symlink_to(ROOT.parent / "shared")
    _edit_as_a_site(copy)
    result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *MODULES_ON_STACKS],
                            cwd=copy, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
