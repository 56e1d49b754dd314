"""trivy config, kube-score and checkov judge the rendered core manifests of every example stack as shipped
(Pulumi.<stack>.yaml in the project, as tests/test_examples.py reads them), with each DynamoGraphDeployment
service's pod as the operator makes it (ncp/offline/dgd_pods.py). Helm releases are out of scope: their charts render in
the cluster. Every finding must be accepted, with its reason, in data/scanner-baseline.yaml, and what the reason rests
on (`holds`) must be true in that stack for that object; every accepted entry must still match a finding; and a
hostile manifest is caught."""
from pathlib import Path

import pytest
import yaml

import ncp.plan.sources
from ncp.readmodel.recorder import run_stack_file
from ncp.plan.sources import read_stack_file
from tests.conftest import EXAMPLE_STACKS, PROJECT_STACK_FILE
from tests.scanners import (
    CHECKOV, Finding, StackFacts, checkov, engine_bin, kube_score, load_baseline, outside_baseline, render, trivy,
)

pytestmark = pytest.mark.engine  # trivy and kube-score come from the engine build

STACKS = EXAMPLE_STACKS
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
def shipped():
    """Each example stack as shipped: its recording and the facts its baseline reasons are checked against."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ncp.plan.sources, "stack_file", PROJECT_STACK_FILE)
        out = {}
        for stack in STACKS:
            recording = run_stack_file(stack)
            out[stack] = recording, StackFacts.of(recording, read_stack_file(stack)[0]["site"]["environment"])
        return out


@pytest.fixture(scope="module")
def rendered(shipped, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    root = tmp_path_factory.mktemp("manifests")
    return {stack: (root / stack, render(recording, root / stack)) for stack, (recording, _) in shipped.items()}


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
def test_no_finding_outside_the_baseline(shipped, findings, scanner):
    baseline = load_baseline()
    new = {stack: outside_baseline(found, baseline, shipped[stack][1]) for stack, found in findings(scanner).items()}
    assert new == {stack: [] for stack in STACKS}, "\n".join(
        f"{stack}: {finding}" for stack, found in new.items() for finding in found)


@pytest.mark.parametrize("scanner", SCANNERS)
def test_every_accepted_finding_still_occurs(shipped, findings, scanner):
    stale = [entry for entry in load_baseline() if entry.scanner == scanner
             and not any(entry.covers(finding, shipped[stack][1])
                         for stack, found in findings(scanner).items() for finding in found)]
    assert stale == [], f"baseline entries that match nothing any more (remove them): {stale}"


@pytest.mark.parametrize("scanner", SCANNERS)
def test_a_hostile_workload_is_a_new_finding(shipped, rendered, scanner, tmp_path):
    directory, index = rendered["lab"]
    hostile_dir = tmp_path / "lab"
    hostile_dir.mkdir()
    for name in index:
        (hostile_dir / name).write_text((directory / name).read_text())
    (hostile_dir / "deployment-tenant-dev-escape.yaml").write_text(yaml.safe_dump(HOSTILE))
    hostile_index = {**index, "deployment-tenant-dev-escape.yaml": "Deployment/tenant-dev/escape"}
    new = outside_baseline(_scanner(scanner)(hostile_dir, hostile_index, tmp_path), load_baseline(),
                           shipped["lab"][1])
    assert new and {finding.split(" ")[2] for finding in new} == {"Deployment/tenant-dev/escape"}, new


def test_baseline_entries_have_reasons():
    for entry in load_baseline():
        assert entry.scanner in SCANNERS and entry.objects and len(entry.reason) >= 20, entry


def test_a_reason_untrue_for_a_stack_does_not_cover_its_finding(shipped):
    """The same finding is accepted where the entry's conditions hold and new where they do not: a tag-pinned
    serving pod is accepted in the lab, not in prod; root RDMA workers only where the namespace is the recorded
    privileged exception under the tenant pod-security admission policy."""
    baseline, (_, lab), (_, prod) = load_baseline(), shipped["lab"], shipped["prod"]
    tagged = Finding("checkov", "CKV_K8S_43", "Deployment/tenant-dev/chat-small-frontend")
    assert outside_baseline({tagged}, baseline, lab) == []
    [new] = outside_baseline({tagged}, baseline, prod)
    assert "untrue here" in new and "environments" in new, new
    root = Finding("trivy", "KSV-0012", "Deployment/tenant-globex-research/reasoning-large-trtllmdecodeworker")
    assert outside_baseline({root}, baseline, prod) == []
    unbound = StackFacts(prod.environment, prod.namespace_labels, prod.limit_defaults,
                         {k: v for k, v in prod.bindings.items() if k != "ncp-inference-tenant-pod-security"},
                         prod.images)
    [new] = outside_baseline({root}, baseline, unbound)
    assert "admission" in new, new
    restricted = StackFacts(prod.environment, {**prod.namespace_labels, "tenant-globex-research": {
        "pod-security.kubernetes.io/enforce": "restricted", "ncp-inference.io/tenant": "globex-research"}},
        prod.limit_defaults, prod.bindings, prod.images)
    assert outside_baseline({root}, baseline, restricted) != []


def test_dgd_pods_are_what_the_operator_makes(shipped):
    """The scanned pod of a DGD service: the service's extraPodSpec with its main container, the operator's probes
    and ports, the service's resources, and the operator's pod labels (which the frontends' PDB and anti-affinity
    select, so kube-score sees them)."""
    from ncp.offline.dgd_pods import dgd_pod_manifests
    recording = shipped["prod"][0]
    pods = {m["metadata"]["name"]: m for m in dgd_pod_manifests(recording)}
    decode = pods["reasoning-large-trtllmdecodeworker"]["spec"]["template"]["spec"]
    [main] = decode["containers"]
    assert main["name"] == "main" and main["securityContext"]["capabilities"]["add"] == ["IPC_LOCK"]
    assert main["livenessProbe"]["httpGet"]["path"] == "/live" and main["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert {"name": "shared-memory", "mountPath": "/dev/shm"} in main["volumeMounts"]
    frontend = pods["chat-dense-frontend"]["spec"]["template"]
    [pdb] = [r.inputs for r in recording.resources if r.inputs.get("kind") == "PodDisruptionBudget"
             and r.inputs["metadata"]["name"] == "chat-dense-frontend"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= frontend["metadata"]["labels"].items()
