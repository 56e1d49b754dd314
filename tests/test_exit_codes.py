"""Every command keeps the exit-code contract for bad input (ncp/cli_exit.py): exit 2 with one line naming what is
wrong, never exit 3 ("a bug in the program") and never a traceback. Run as a user runs them (`ncp <command>`),
one process each."""
import subprocess
import sys

import pytest

from ncp.plan.catalog import ROOT

MISSING_DIR = "/nonexistent-ncp-dir/sub"
NEW_SITE = ["--site", "exit-codes", "--profile", "lab", "--environment", "lab", "--gpu-nodes", "1", "--tenant", "a:1"]


@pytest.mark.parametrize("command, says", [
    (["scaffold", *NEW_SITE, "--out", f"{MISSING_DIR}/Pulumi.x.yaml"],
     f"--out {MISSING_DIR}/Pulumi.x.yaml: the directory {MISSING_DIR} does not exist"),
    (["scaffold", *NEW_SITE, "--out", "/tmp", "--force"], "--out /tmp: is a directory"),
    (["checklist", "--stack", "lab", "--out", f"{MISSING_DIR}/checklist.md"],
     f"the directory {MISSING_DIR} does not exist"),
    (["report", "--stack", "lab", "--out", "/proc/ncp-review"], "--out /proc/ncp-review: cannot be created"),
    (["mirror", "--stack", "lab", "--out", f"{MISSING_DIR}/mirror-list.yaml"],
     f"the directory {MISSING_DIR} does not exist"),
    (["diff", "lab@no-such-revision", "lab"], "git cannot read the project at no-such-revision"),
    (["check", "--stack", "no-such-stack", "--stack", "lab"], "Pulumi.no-such-stack.yaml: does not exist"),
    (["check", "--stack", "no-such-stack"], "Pulumi.no-such-stack.yaml: does not exist"),
    (["upgrade-plan", "--stack", "lab", "--from", "no-such-revision"], "no-such-revision"),
])
def test_bad_input_exits_2_with_one_line(command, says):
    result = subprocess.run([sys.executable, "-m", "ncp", *command], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    output = result.stderr + result.stdout  # the site CI view (several stacks) reports per stack on stdout
    assert result.returncode == 2, output
    assert says in output
    assert "internal error" not in output and "Traceback" not in output
