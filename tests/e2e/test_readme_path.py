"""The documented cluster path, run as written: the marked command blocks of the operator guide
(docs/operator-guide.md, "Against a cluster"; the README links there) in one shell, in a throwaway copy of the
project, against a local control plane they start themselves; then a new site's path: scaffold -> ncp check
(placeholders listed with their commands, set as printed) -> summary -> the guide's local settings -> preview, up, a
no-change preview and destroy. Stack selection must leave every tracked stack file as it was (`git status`).

Needs the engine built by tools/e2e/bootstrap.sh and the upstream CRDs in ../shared/upstream."""
import queue
import re
import subprocess
import threading
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT
from tests.e2e.crds import UPSTREAM
from tests.e2e.kube_api import KubeApi

MARK = re.compile(r"^<!-- readme-e2e: (?P<name>[\w-]+) -->\n```bash\n(?P<body>.*?)^```$", re.M | re.S)
SITE = "readme-walk"
# The page whose marked blocks the walk runs (the README only points at it).
GUIDE = Path("docs") / "operator-guide.md"
STEP_TIMEOUT = 1200


def readme_blocks(text: str) -> dict[str, str]:
    """The marked command blocks, by name: `<!-- readme-e2e: <name> -->` right above a ```bash fence."""
    blocks = {m["name"]: m["body"] for m in MARK.finditer(text)}
    assert blocks, f"{GUIDE} has no <!-- readme-e2e: ... --> command block"
    return blocks


def test_readme_blocks_are_found_and_complete():
    """The parser sees every block the walk runs; a renamed or unmarked block fails here, not silently."""
    blocks = readme_blocks((ROOT / GUIDE).read_text())
    assert set(blocks) == {"local-up", "local-destroy", "local-stop", "local-site"}
    assert "pulumi up" in blocks["local-up"] and "--expect-no-changes" in blocks["local-up"]
    assert "--policy-pack policy" in blocks["local-up"] and "tests.e2e.crds" in blocks["local-up"]
    # The local control plane's settings come from its overlay, never written into a site's stack file.
    assert "pulumi config set" not in blocks["local-site"] and "NCP_LOCAL_OVERLAY=" in blocks["local-site"]
    overlay = re.search(r'NCP_LOCAL_OVERLAY="\$PWD/(?P<path>[^"]+)"', blocks["local-site"])
    assert overlay and (ROOT / overlay["path"]).is_file(), f"the local-site block's overlay is no file: {overlay}"
    with pytest.raises(AssertionError):
        readme_blocks("```bash\npulumi up\n```\n")


class Shell:
    """One bash, as a user's terminal: exports and `eval` persist from one block to the next. Each step's output is
    collected up to a marker; with `set -e` a failed command ends the shell, and the step fails with its output."""

    def __init__(self, cwd: Path, env: dict):
        self.process = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=cwd, env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.transcript: list[str] = []
        self.run("set -euo pipefail")

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, script: str, allow_exit: bool = False) -> tuple[int, str]:
        """Runs script; returns (exit code of its last command, output). Non-zero ends the test unless allowed."""
        status = "__status__=$?" if allow_exit else "__status__=0"
        body = f"{{\n{script}\n}} || {status}; " if allow_exit else f"{script}\n__status__=0; "
        self.process.stdin.write(f"__status__=0\n{body}echo \"__STEP_DONE__ $__status__\"\n")
        self.process.stdin.flush()
        output = []
        while True:
            try:
                line = self.lines.get(timeout=STEP_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"no end of step within {STEP_TIMEOUT} s:\n{script}\n{''.join(output)[-6000:]}")
            if line is None:
                pytest.fail(f"the shell ended (a command failed) in:\n{script}\n--- output:\n{''.join(output)[-8000:]}")
            if line.startswith("__STEP_DONE__ "):
                self.transcript.append(f"$ {script}\n{''.join(output)}")
                return int(line.split()[1]), "".join(output)
            output.append(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


def _tracked_stack_files(project: Path) -> None:
    """The project copy as a git work tree holding the tracked stack files, so the walk can be checked with git."""
    tracked = subprocess.run(["git", "ls-files", "Pulumi*.yaml"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert "Pulumi.e2e.yaml" in tracked
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(git + ["init", "-q"], cwd=project, check=True)
    subprocess.run(git + ["add", *tracked], cwd=project, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "tracked stack files"], cwd=project, check=True)


def _porcelain(project: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=project,
                          capture_output=True, text=True, check=True).stdout


def _commands(block: str, start: str) -> list[str]:
    """The block's command lines from the first one starting with `start` (comments stay: bash ignores them)."""
    lines = block.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    return lines[first:]


@pytest.fixture(scope="module")
def walk(engine_env, project, tmp_path_factory):
    if not UPSTREAM.is_dir():
        pytest.skip(f"{UPSTREAM} is absent: the guide's CRD step reads the upstream CRDs from there")
    _tracked_stack_files(project)
    if not (project.parent / "shared").exists():  # the copy sits next to ../shared, as the project does
        (project.parent / "shared").symlink_to(UPSTREAM.parent)
    state = tmp_path_factory.mktemp("control-plane")
    # Only what a user sets before the guide's commands: the control plane's state directory (and ports, from the
    # environment), and the scaffolded site's name for the local-site block.
    env = {**engine_env, "NCP_E2E_STATE": str(state), "SITE": SITE}
    # The copy shares the checkout's .venv, whose editable install maps `ncp` to the checkout: without this,
    # `.venv/bin/ncp scaffold` in the copy would write the new site's stack file into the checkout. A user's own
    # install maps it to their checkout, as this does for the copy.
    env["PYTHONPATH"] = str(project)
    shell = Shell(project, env)
    blocks = readme_blocks((project / GUIDE).read_text())
    try:
        yield shell, blocks, state / "kubeconfig", project
    finally:
        shell.close()
        print("\n".join(shell.transcript)[-20000:])
        # The guide's stop block, also when a step failed and ended the shell.
        subprocess.run(["bash", "-c", blocks["local-stop"]], cwd=project, env=env, timeout=120)


def test_readme_local_stack_preview_up_no_change_destroy(walk):
    shell, blocks, kubeconfig, project = walk
    before = _porcelain(project)
    _, output = shell.run(blocks["local-up"])
    api = KubeApi(kubeconfig)
    assert re.search(r"\+ +\d+ to create", output), "the first preview creates the stack's resources"
    assert "Policies:" in output or "policy" in output.lower(), "the preview ran the policy pack"
    assert api.get("/api/v1/namespaces/tenant-dev/resourcequotas/tenant-quota"), "up created the tenant quota"
    assert api.get("/apis/scheduling.run.ai/v2/queues/tenant-dev"), "up created the KAI queue (CRD installed)"
    shell.run(blocks["local-destroy"])
    assert api.wait_gone("/api/v1/namespaces/tenant-dev"), "destroy removed the tenant namespace"
    assert _porcelain(project) == before == "", f"stack selection rewrote a tracked stack file:\n{_porcelain(project)}"


def test_scaffolded_site_validates_then_deploys_and_destroys(walk):
    shell, blocks, kubeconfig, project = walk
    api = KubeApi(kubeconfig)  # started by the guide's local-up block (the test above)
    scaffold = (f".venv/bin/ncp scaffold --site {SITE} --profile lab --environment staging --gpu-nodes 1 "
                "--tenant dev:1")
    shell.run(scaffold)
    stack_file = project / f"Pulumi.{SITE}.yaml"
    try:
        code, output = shell.run('.venv/bin/ncp check --stack "$SITE"', allow_exit=True)
        assert code == 2 and "REPLACE-ME" in output, "validation refuses the scaffold's placeholders"
        fixes = re.findall(r"fix: replace it with the site's value: (pulumi config set .*) <value>$", output, re.M)
        assert fixes, f"offline.check prints the command that sets each placeholder:\n{output}"
        shell.run(blocks["local-site"])
        for index, fix in enumerate(fixes):
            shell.run(f"{fix} walk-group-{index}")
        code, output = shell.run('.venv/bin/ncp check --stack "$SITE"', allow_exit=True)
        assert code == 0, f"the filled-in stack validates and passes the pack:\n{output}"
        assert "tenant" in output.lower() and "dev" in output and "REPLACE-ME" not in output, "the summary"
        _, output = shell.run("\n".join(_commands(blocks["local-up"], "pulumi preview")))
        assert re.search(r"\+ +\d+ to create", output)
        assert api.get("/api/v1/namespaces/tenant-dev"), "the scaffolded site's tenant namespace exists"
        admins = next(index for index, fix in enumerate(fixes) if ".admins[" in fix)
        bindings = api.get("/apis/rbac.authorization.k8s.io/v1/namespaces/tenant-dev/rolebindings")
        assert f"walk-group-{admins}" in str(bindings), "the admins group set as offline.check printed is bound"
        shell.run(blocks["local-destroy"])
        assert api.wait_gone("/api/v1/namespaces/tenant-dev"), "destroy removed the scaffolded site's tenant"
        assert _porcelain(project) == "", "only the new site's own stack file changed"
    finally:
        stack_file.unlink(missing_ok=True)
