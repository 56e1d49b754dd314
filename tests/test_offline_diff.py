"""`python -m offline.diff`: two stacks, or one stack at two git revisions, compared by layer and resource."""
import subprocess

from offline import diff
from plan import sources

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
    assert "Scheduling scheduling:\n" in out and "tenant-blue" not in out.split("Scheduling scheduling:")[0]
    assert "tenancy-red-namespace" not in out  # unchanged resources are not listed


def test_same_stack_at_two_revisions(tmp_path, monkeypatch, capsys):
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    _stack(tmp_path, "site", RED)
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "one tenant")
    _stack(tmp_path, "site", RED.replace("gpuQuota: 1, gpuLimit: 1", "gpuQuota: 0, gpuLimit: 0"))
    monkeypatch.setattr(sources, "ROOT", tmp_path)
    assert diff.main(["site@HEAD", "site"]) == 0
    out = capsys.readouterr().out
    assert "~ kubernetes:core/v1:ResourceQuota tenancy-red-quota: spec.hard.requests.nvidia.com/gpu" in out
    assert diff.main(["site@no-such-revision", "site"]) == 2
    assert "git cannot show Pulumi.site.yaml at no-such-revision" in capsys.readouterr().err


def test_identical_stacks_say_so(tmp_path, monkeypatch, capsys):
    _stack(tmp_path, "a", RED)
    _stack(tmp_path, "b", RED)
    monkeypatch.setattr(sources, "ROOT", tmp_path)
    assert diff.main(["a", "b"]) == 0
    assert "a and b compose the same" in capsys.readouterr().out
