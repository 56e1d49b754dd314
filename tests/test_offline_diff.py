"""`ncp diff`: two stacks, or one stack at two git revisions, compared by layer and resource.

A revision means the whole repository as of that commit (matrix, sizing files, profiles, program), so the tests
that compare revisions run in a throwaway git copy of the project with its own commits."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ncp.offline import diff
from ncp.readmodel.recorder import Recording, Registration
from ncp.plan import sources
from ncp.plan.catalog import ROOT

from tests.conftest import FROZEN_STACKS

SITE = "  ncp-inference:site: {name: x, environment: lab, hardwareProfile: lab, gpuNodes: 1}\n"
RED = "    - {name: red, gpuQuota: 1, gpuLimit: 1}\n"
BLUE = "    - {name: blue, gpuQuota: 0, gpuLimit: 1}\n"


def _stack(tmp_path, name, *tenants):
    (tmp_path / f"Pulumi.{name}.yaml").write_text("config:\n" + SITE + "  ncp-inference:tenants:\n" + "".join(tenants))


def test_added_tenant_shows_as_new_resources_of_its_layers(tmp_path, monkeypatch, capsys):
    _stack(tmp_path, "one", RED)
    _stack(tmp_path, "two", RED, BLUE)
    monkeypatch.setattr(sources, "ROOT", tmp_path)
    assert diff.main(["one", "two"]) == 0
    out = capsys.readouterr().out
    assert "Tenancy tenancy:\n" in out
    assert "  + kubernetes:core/v1:Namespace tenancy-blue-namespace  (only in two)" in out
    queue = "  + kubernetes:scheduling.run.ai/v2:Queue scheduling-queue-blue  (only in two)"
    assert f"Scheduling scheduling:\n{queue}" in out
    assert 'values.node-drainer.userNamespaces: added {"mode": "DeleteAfterTimeout", "name": "tenant-blue"}' in out
    assert "tenancy-red-namespace" not in out  # unchanged resources are not listed


def test_identical_stacks_say_so(tmp_path, monkeypatch, capsys):
    _stack(tmp_path, "a", RED)
    _stack(tmp_path, "b", RED)
    monkeypatch.setattr(sources, "ROOT", tmp_path)
    assert diff.main(["a", "b"]) == 0
    assert "a and b compose the same" in capsys.readouterr().out


def _registration(name: str, inputs: dict, dependencies=()) -> Registration:
    return Registration(urn=f"urn:{name}", type="kubernetes:core/v1:ConfigMap", name=name, custom=True, parent="",
                        inputs=inputs, dependencies=list(dependencies), property_dependencies={}, options={},
                        wire_inputs={})


def test_changed_fields_show_old_and_new_values():
    old = Recording("s", [_registration("cm", {"data": {"a": "1", "gone": "x"}, "spec": {"n": 1.0}})])
    new = Recording("s", [_registration("cm", {"data": {"a": "2", "new": "y"}, "spec": {"n": 2.0}})])
    out = diff.render_diff(old, new, "old", "new")
    assert "      data.a: 1 → 2\n" in out
    assert "      data.gone: x → (absent)\n" in out and "      data.new: (absent) → y\n" in out
    assert "      spec.n: 1 → 2" in out  # numbers as written, not the engine's doubles


def test_same_inputs_only_when_outputs_and_dependencies_are_the_same_too():
    base = [_registration("a", {}), _registration("b", {}, ["urn:a"])]
    assert "compose the same 2 resources" in diff.render_diff(Recording("s", base), Recording("s", base), "x", "y")
    other_outputs = diff.render_diff(Recording("s", base), Recording("s", base, {"v": "2"}), "x", "y")
    assert "compose the same" not in other_outputs and "  ~ v: (absent) → 2" in other_outputs
    unordered = [_registration("a", {}), _registration("b", {})]
    other_dependencies = diff.render_diff(Recording("s", base), Recording("s", unordered), "x", "y")
    assert "dependsOn: removed kubernetes:core/v1:ConfigMap a" in other_dependencies


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory) -> Path:
    """A git repository holding this checkout's tracked files (as they are in the working tree), with the frozen
    example stacks as its lab and prod stacks, committed once."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if listed.returncode != 0:
        pytest.skip("the project is not a git checkout here: revisions cannot be compared")
    copy = tmp_path_factory.mktemp("project")
    for name in listed.stdout.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    for stack in ("lab", "prod"):
        shutil.copy2(FROZEN_STACKS / f"Pulumi.{stack}.yaml", copy / f"Pulumi.{stack}.yaml")
    _git(copy, "init", "-q")
    _commit(copy, "the project")
    return copy


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout


def _commit(cwd: Path, message: str) -> None:
    _git(cwd, "add", "-A")
    _git(cwd, "commit", "-qm", message)


def _diff(cwd: Path, *sides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ncp", "diff", *sides], cwd=cwd, capture_output=True, text=True)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name} no longer holds {old!r}: update this test's edit"
    path.write_text(text.replace(old, new, 1))


def test_a_revision_reads_the_matrix_of_that_commit(project_copy):
    """A chart bump touches only data/compatibility-matrix.yaml: reading the stack file alone said 'the same'."""
    matrix = project_copy / "data" / "compatibility-matrix.yaml"
    pinned = next(line.split(":", 1)[1].strip() for line in matrix.read_text().splitlines()
                  if line.startswith("    version:"))  # the first chart's pin
    _edit(matrix, f"    version: {pinned}\n", f"    version: {pinned}-bumped\n")
    _commit(project_copy, "bump a chart")
    try:
        result = _diff(project_copy, "lab@HEAD~1", "lab@HEAD")
    finally:
        _git(project_copy, "reset", "-q", "--hard", "HEAD~1")
    assert result.returncode == 0, result.stderr
    assert "compose the same" not in result.stdout
    assert f"      version: {pinned} → {pinned}-bumped\n" in result.stdout
    assert f": {pinned} → {pinned}-bumped" in result.stdout.split("stack outputs:")[1]


def test_a_revision_reads_the_sizing_files_of_that_commit(project_copy):
    """Re-sizing an endpoint from aggregated to disaggregated edits only its sizing file."""
    sizing = project_copy / "sites" / "prod" / "sizing" / "chat-dense.yaml"
    original = sizing.read_text()
    aggregated = original[original.index("mode: aggregated"):original.index("estimates:")]
    group = ("  replicas: 1\n  gpusPerWorker: 4\n  tensorParallel: 4\n  pipelineParallel: 1\n  expertParallel: 1\n"
             "  dataParallel: 1\n  moeTensorParallel: 1\n  maxBatchSize: 64\n  memoryGbPerGpu: 37.34\n")
    sizing.write_text(original.replace(aggregated, f"mode: disaggregated\nprefill:\n{group}decode:\n{group}")
                      .replace("aiconfiguratorChoice: aggregated", "aiconfiguratorChoice: disaggregated"))
    try:
        result = _diff(project_copy, "prod@HEAD", "prod")
    finally:
        sizing.write_text(original)
    assert result.returncode == 0, result.stderr
    assert "ServingEndpoint endpoint-chat-dense:" in result.stdout
    assert "      spec.services.TRTLLMPrefillWorker: (absent) → {" in result.stdout
    assert "  ~ endpoints.chat-dense.mode: aggregated → disaggregated" in result.stdout


def test_a_quota_change_and_a_bad_revision(project_copy):
    stack = project_copy / "Pulumi.lab.yaml"
    original = stack.read_text()
    # Whatever quota the site's lab stack holds, raised by 32Gi: a site editing its quota keeps this test green.
    quota = re.search(r"memoryQuota: (\d+)Gi", original)
    assert quota, "the lab stack names no memoryQuota in Gi: pick another quota edit for this test"
    before, after = f"{quota.group(1)}Gi", f"{int(quota.group(1)) + 32}Gi"
    _edit(stack, f"memoryQuota: {before}", f"memoryQuota: {after}")
    try:
        result = _diff(project_copy, "lab@HEAD", "lab")
        bad = _diff(project_copy, "lab@no-such-revision", "lab")
    finally:
        stack.write_text(original)
    assert f"      spec.hard.requests.memory: {before} → {after}\n" in result.stdout
    assert bad.returncode == 2
    assert "lab@no-such-revision: git cannot read the project at no-such-revision" in bad.stderr
    assert "Traceback" not in bad.stderr
