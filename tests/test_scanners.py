"""trivy config, kube-score and checkov judge the rendered core manifests of the lab and prod stacks (Helm releases
are out of scope: their charts render in the cluster). Every finding must be accepted, with its reason, in
data/scanner-baseline.yaml; every accepted entry must still match a finding; and a hostile manifest is caught."""
from pathlib import Path

import pytest
import yaml

from tests.scanners import (
    CHECKOV, checkov, engine_bin, kube_score, load_baseline, outside_baseline, render, trivy,
)

STACKS = ("lab", "prod")
SCANNERS = ("trivy", "kube-score", "checkov")

# What a hostile tenant admin would apply: a privileged, host-network pod that mounts the node's root.
HOSTILE = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "escape", "namespace": "tenant-dev"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "escape"}}, "template": {
        "metadata": {"labels": {"app": "escape"}},
        "spec": {"hostNetwork": True, "hostPID": True, "containers": [{
            "name": "main", "image": "docker.io/library/busybox:latest",
            "securityContext": {"privileged": True, "runAsUser": 0},
            "volumeMounts": [{"name": "root", "mountPath": "/host"}]}],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}}},
}


def _scanner(name: str):
    """(scan function of a directory and its index) for an installed scanner, or skip with the reason."""
    if name == "checkov":
        if not CHECKOV.exists():
            pytest.skip(f"{CHECKOV} is absent: scripts/setup.sh installs checkov (tools/venvs/scanners.txt)")
        return lambda directory, index, tmp: checkov(CHECKOV, directory)
    bin_dir = engine_bin()
    binary = bin_dir / name if bin_dir else None
    if binary is None or not binary.exists():
        pytest.skip(f"{name} is not built: tools/e2e/bootstrap.sh builds it (scripts/test.sh runs it)")
    if name == "kube-score":
        return lambda directory, index, tmp: kube_score(binary, directory, index)
    return lambda directory, index, tmp: trivy(binary, directory, index, tmp / "trivy-cache")


@pytest.fixture(scope="module")
def rendered(lab, prod, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    root = tmp_path_factory.mktemp("manifests")
    return {stack: (root / stack, render(recording, root / stack)) for stack, recording in
            (("lab", lab), ("prod", prod))}


@pytest.fixture(scope="module")
def findings(rendered, tmp_path_factory):
    cache = {}

    def scan(scanner: str):
        if scanner not in cache:
            run = _scanner(scanner)
            cache[scanner] = {stack: run(directory, index, tmp_path_factory.mktemp(scanner))
                              for stack, (directory, index) in rendered.items()}
        return cache[scanner]
    return scan


@pytest.mark.parametrize("scanner", SCANNERS)
def test_no_finding_outside_the_baseline(findings, scanner):
    baseline = load_baseline()
    new = {stack: outside_baseline(found, baseline) for stack, found in findings(scanner).items()}
    assert new == {stack: [] for stack in STACKS}, "\n".join(
        f"{stack}: {finding}" for stack, found in new.items() for finding in found)


@pytest.mark.parametrize("scanner", SCANNERS)
def test_every_accepted_finding_still_occurs(findings, scanner):
    found = set().union(*findings(scanner).values())
    stale = [entry for entry in load_baseline() if entry.scanner == scanner
             and not any(entry.covers(finding) for finding in found)]
    assert stale == [], f"baseline entries that match nothing any more (remove them): {stale}"


@pytest.mark.parametrize("scanner", SCANNERS)
def test_a_hostile_workload_is_a_new_finding(rendered, scanner, tmp_path):
    directory, index = rendered["lab"]
    hostile_dir = tmp_path / "lab"
    hostile_dir.mkdir()
    for name in index:
        (hostile_dir / name).write_text((directory / name).read_text())
    (hostile_dir / "deployment-tenant-dev-escape.yaml").write_text(yaml.safe_dump(HOSTILE))
    hostile_index = {**index, "deployment-tenant-dev-escape.yaml": "Deployment/tenant-dev/escape"}
    new = outside_baseline(_scanner(scanner)(hostile_dir, hostile_index, tmp_path), load_baseline())
    assert new and {finding.object for finding in new} == {"Deployment/tenant-dev/escape"}, new


def test_baseline_entries_have_reasons():
    for entry in load_baseline():
        assert entry.scanner in SCANNERS and entry.objects and len(entry.reason) >= 20, entry
