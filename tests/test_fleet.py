"""`ncp fleet`: sites sharing a base, version pins for a wave, the fleet's status (versions, policy, evidence, GPU
drift) and the evidence-gated wave plan. Every site here is a fixture stack written to tmp_path from the frozen
examples (tests/fixtures/stacks), never the project's own stack files."""
import json
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from ncp.evidence.record import append_index, signed_entry, write_signed
from ncp.evidence.store import open_store
from ncp.fleet.command import main
from ncp.fleet.drift import expected_gpu_state, gpu_layer_problems
from ncp.plan.catalog import ROOT, load_matrix
from ncp.plan.errors import ConfigError
from ncp.plan.names import PROJECT
from ncp.plan.site_plan import build_plan
from ncp.plan.sources import config_of_document
from tests.conftest import FROZEN_STACKS

NOW = datetime.now(timezone.utc)
STAGING_DECISIONS = [
    {"kind": "certManager", "decision": "cert-manager from the platform team", "reason": "partner-selected"},
    {"kind": "metricsBackend", "decision": "kube-prometheus-stack", "reason": "partner-selected"}]


def frozen(stack: str) -> dict:
    return yaml.safe_load((FROZEN_STACKS / f"Pulumi.{stack}.yaml").read_text())


def site_document(name: str, environment: str = "lab", **extra) -> dict:
    """A site stack file: the frozen lab (or prod) example renamed, in `environment`, with `extra` keys."""
    document = frozen("prod" if environment == "prod" else "lab")
    config = document["config"]
    config[f"{PROJECT}:site"] = {**config[f"{PROJECT}:site"], "name": name, "environment": environment}
    if environment == "staging":
        config[f"{PROJECT}:localDecisions"] = config[f"{PROJECT}:localDecisions"] + STAGING_DECISIONS
    config.update({f"{PROJECT}:{key}": value for key, value in extra.items()})
    return document


def write_site(folder: Path, stack: str, document: dict) -> Path:
    path = folder / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def write_fleet(folder: Path, sites: list[dict], **settings) -> Path:
    path = folder / "fleet.yaml"
    path.write_text(yaml.safe_dump({**settings, "sites": sites}, sort_keys=False))
    return path


def plan_of(path: Path):
    raw, secrets = config_of_document(path.read_bytes(), str(path))
    return build_plan(raw, secrets, str(path))


def pin(component="gpuOperator", version="v25.10.0", until="2999-01-01", **extra) -> dict:
    return {"component": component, "version": version, "wave": "gpu-operator-bump", "until": until,
            "reason": "partner maintenance window", **extra}


# --- a shared base with per-site overrides --------------------------------------------------------------------------

def test_a_site_over_a_base_is_the_flat_stack(tmp_path):
    """Ten sites are not ten copies: the base holds the profile defaults, components and tenant defaults; the site
    its name, its tenants' names and what it changes. The plan is the one of the flat stack."""
    flat = site_document("site-a")
    config = flat["config"]
    tenant = config[f"{PROJECT}:tenants"][0]
    shared = {key: value for key, value in config.items() if key.endswith(("components", "endpoints",
                                                                            "inferenceServices", "localDecisions"))}
    base = {"config": {**shared, f"{PROJECT}:site": {k: v for k, v in config[f"{PROJECT}:site"].items() if k != "name"},
                       f"{PROJECT}:tenantDefaults": {k: v for k, v in tenant.items() if k not in ("name", "gpuQuota")}}}
    (tmp_path / "bases").mkdir()
    (tmp_path / "bases" / "lab.yaml").write_text(yaml.safe_dump(base))
    layered = {"config": {f"{PROJECT}:base": "bases/lab.yaml", f"{PROJECT}:site": {"name": "site-a"},
                          f"{PROJECT}:tenants": [{"name": tenant["name"], "gpuQuota": tenant["gpuQuota"]}]}}
    site = plan_of(write_site(tmp_path, "site-a", layered))
    assert site.config == plan_of(write_site(tmp_path, "flat", flat)).config
    assert site.base == "bases/lab.yaml"
    overridden = {"config": {**layered["config"], f"{PROJECT}:site": {"name": "site-a", "gpuNodes": 3}}}
    assert plan_of(write_site(tmp_path, "site-b", overridden)).site.gpu_nodes == 3, "the site's own value wins"


@pytest.mark.parametrize("base, key, words", [
    (None, "ncp-inference:base", "does not exist"),
    ({"config": {f"{PROJECT}:base": "other.yaml"}}, "bases/b.yaml: ncp-inference:base", "one level"),
    ({"config": {f"{PROJECT}:ngcApiKey": {"secure": "v1:abc"}}}, "bases/b.yaml: ncp-inference:ngcApiKey",
     "no secrets"),
    ({"config": {f"{PROJECT}:versionPins": [pin()]}}, "bases/b.yaml: ncp-inference:versionPins", "a site's own"),
    ({"config": {f"{PROJECT}:tenantDefaults": ["x"]}}, "ncp-inference:tenantDefaults", "not a mapping"),
])
def test_a_bad_base_is_refused_naming_the_file_and_key(tmp_path, base, key, words):
    (tmp_path / "bases").mkdir()
    if base is not None:
        (tmp_path / "bases" / "b.yaml").write_text(yaml.safe_dump(base))
    path = write_site(tmp_path, "s", site_document("s", base="bases/b.yaml"))
    with pytest.raises(ConfigError) as error:
        plan_of(path)
    assert str(path) in str(error.value) and key in str(error.value) and words in str(error.value), str(error.value)


def test_a_stack_without_a_base_is_read_as_before():
    raw, secrets = config_of_document((FROZEN_STACKS / "Pulumi.lab.yaml").read_bytes(), "Pulumi.lab.yaml")
    site_plan = build_plan(raw, secrets, "Pulumi.lab.yaml")
    assert site_plan.base is None and site_plan.version_pins == () and site_plan.matrix == load_matrix()


# --- a version pin for the length of a wave -------------------------------------------------------------------------

def test_a_pin_keeps_the_chart_and_its_images_for_the_site(tmp_path):
    site_plan = plan_of(write_site(tmp_path, "s", site_document("s", versionPins=[
        pin(images={"driver": "580.95.05"})])))
    gpu = site_plan.matrix.pin("gpuOperator")
    assert (gpu.version, gpu.images["driver"]) == ("v25.10.0", "580.95.05")
    assert load_matrix().pin("gpuOperator").version != "v25.10.0", "the matrix itself is unchanged"
    assert [p.wave for p in site_plan.version_pins] == ["gpu-operator-bump"]


@pytest.mark.parametrize("environment, until, refused", [
    ("prod", "2020-01-01", True), ("prod", "2999-01-01", False), ("lab", "2020-01-01", False)])
def test_prod_refuses_a_pin_after_the_waves_deadline(tmp_path, environment, until, refused):
    path = write_site(tmp_path, "s", site_document("s", environment, versionPins=[pin(until=until)]))
    if not refused:
        assert plan_of(path).version_pins[0].expired() == (until < NOW.isoformat())
        return
    with pytest.raises(ConfigError) as error:
        plan_of(path)
    text = str(error.value)
    assert str(path) in text and "ncp-inference:versionPins[0].until" in text and "ended 2020-01-01" in text, text


@pytest.mark.parametrize("entry, key, words", [
    (pin(component="nope"), "versionPins[0].component", "not a chart of the compatibility matrix"),
    (pin(until="soon"), "versionPins[0].until", "not a date"),
    ({**pin(), "reason": ""}, "versionPins[0].reason", "is required"),
    (pin(images={"kernel": "1"}), "versionPins[0].images.kernel", "pins no image"),
    (pin(colour="red"), "versionPins[0].colour", "not a pin field"),
])
def test_a_bad_pin_names_its_key(tmp_path, entry, key, words):
    path = write_site(tmp_path, "s", site_document("s", versionPins=[entry]))
    with pytest.raises(ConfigError) as error:
        plan_of(path)
    assert key in str(error.value) and words in str(error.value), str(error.value)


# --- fleet status ---------------------------------------------------------------------------------------------------

def evidence(index: Path, keys, stack: str, created: datetime, passed: bool = True, run: str = "r1") -> None:
    """A signed record and its index entry, as `ncp evidence` writes them."""
    fields = {"stack": stack, "endpoint": "chat-small", "runId": run, "createdAt": created.isoformat(),
              "passed": passed}
    location, sha256 = write_signed(open_store(index.parent / "records"), f"{stack}/{run}", dict(fields),
                                    lambda signature: "record", [], "chat-small", keys.signer)
    append_index(signed_entry(fields, "endpoint", location, sha256, keys.signer), index)


@pytest.fixture()
def three_sites(tmp_path, evidence_keys):
    """lab (canary, with an expired pin and passing evidence), staging, prod: each trusting the test key."""
    trusted = {"trustedKeys": str(evidence_keys.trusted)}
    documents = {"site-lab": site_document("site-lab", versionPins=[pin(until="2020-01-01")]),
                 "site-stg": site_document("site-stg", "staging"), "site-prod": site_document("site-prod", "prod")}
    for stack, document in documents.items():
        site = document["config"][f"{PROJECT}:site"]
        site["validationEvidence"] = {**site["validationEvidence"], "path": f"evidence/{stack}/", **trusted}
        write_site(tmp_path, stack, document)
    index = tmp_path / "evidence" / "index.yaml"
    evidence(index, evidence_keys, "site-lab", NOW - timedelta(days=1))
    sites = [{"stack": s, "evidenceIndex": "evidence/index.yaml", **({"canary": True} if s == "site-lab" else {})}
             for s in documents]
    return write_fleet(tmp_path, sites, waveSize=2)


def test_status_lists_every_site_with_versions_policy_and_evidence(three_sites, capsys):
    assert main(["status", "--fleet", str(three_sites), "--jobs", "2"]) == 0
    table = capsys.readouterr().out
    rows = {line.split()[0]: line for line in table.splitlines()[1:4]}
    assert set(rows) == {"site-lab", "site-stg", "site-prod"}, table
    assert "gpuOperator v25.10.0 (pin to 2020-01-01, EXPIRED)" in rows["site-lab"]
    assert "passed" in rows["site-lab"] and "1.0d" in rows["site-lab"]
    assert " staging " in rows["site-stg"] and "matrix" in rows["site-stg"] and " none " in rows["site-stg"]
    assert main(["status", "--fleet", str(three_sites), "--json", "--stack", "site-lab"]) == 0
    report = json.loads(capsys.readouterr().out)
    site = report["sites"][0]
    assert (site["profile"], site["environment"], site["policy"]["mandatory"]) == ("lab", "lab", 0)
    gpu = next(row for row in site["versions"] if row["component"] == "gpuOperator")
    assert (gpu["site"], gpu["matrix"], gpu["pin"]["expired"]) == ("v25.10.0", load_matrix().pin(
        "gpuOperator").version, True)
    assert site["evidence"]["verdict"] == "passed" and site["evidence"]["age_days"] == 1.0
    assert set(site["timings"]) >= {"plan", "compose", "policy", "evidence", "total"}


def test_status_exits_1_when_a_site_is_out_of_policy(three_sites, tmp_path, capsys):
    """The lab site judged by the prod pack config (a pack directory whose lab.json is prod's): its tag-pinned
    images are mandatory violations there."""
    pack = tmp_path / "pack"
    (pack / "config").mkdir(parents=True)
    for name in ("ncp_guardrails", "PulumiPolicy.yaml"):
        (pack / name).symlink_to(ROOT / "policy" / name)
    shutil.copy(ROOT / "policy" / "config" / "prod.json", pack / "config" / "lab.json")
    assert main(["status", "--fleet", str(three_sites), "--stack", "site-lab", "--policy-pack", str(pack)]) == 1
    out = capsys.readouterr().out
    assert "FAILED (" in out and "[mandatory] image-references" in out, out


def test_status_exits_2_on_a_site_that_is_not_valid_input(tmp_path, capsys):
    broken = site_document("broken")
    broken["config"][f"{PROJECT}:site"]["gpuNodes"] = 0
    write_site(tmp_path, "broken", broken)
    assert main(["status", "--fleet", str(write_fleet(tmp_path, [{"stack": "broken"}]))]) == 2
    out = capsys.readouterr().out
    assert "INVALID" in out and "ncp-inference:site.gpuNodes" in out, out


@pytest.mark.parametrize("fleet, words", [
    ({"sites": [{"stack": "x", "file": "missing.yaml"}]}, "sites[0].file"),
    ({"sites": [{"stack": "x", "colour": 1}]}, "sites[0].colour"),
    ({"sites": []}, "has no `sites:` list"),
    ({"waveSize": 0, "sites": [{"stack": "x"}]}, "waveSize"),
])
def test_a_bad_fleet_file_is_exit_2_naming_the_key(tmp_path, capsys, fleet, words):
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    assert main(["status", "--fleet", str(path)]) == 2
    assert words in capsys.readouterr().err


def _node(name: str, **labels) -> dict:
    return {"metadata": {"name": name, "labels": {"nvidia.com/gpu.present": "true", **labels}}}


def test_gpu_layer_drift_driver_mig_and_labels(tmp_path):
    site_plan = plan_of(write_site(tmp_path, "s", site_document("s")))
    expected = {**expected_gpu_state(site_plan), "driver": "595.91.07", "migConfig": "ncp-layout"}
    product = site_plan.profile.gpu.product_label
    good = {"nvidia.com/gpu.product": product, "nvidia.com/mig.config": "ncp-layout",
            "nvidia.com/mig.config.state": "success", "nvidia.com/cuda.driver-version.full": "595.91.07"}
    nodes = [_node(f"gpu-{i}", **good) for i in range(site_plan.site.gpu_nodes)]
    assert gpu_layer_problems(nodes, expected) == []
    nodes[0]["metadata"]["labels"]["nvidia.com/cuda.driver-version.full"] = "580.95.05"
    nodes[-1]["metadata"]["labels"].update({"nvidia.com/mig.config": "all-1g.10gb",
                                            "nvidia.com/gpu.product": "NVIDIA-A100"})
    problems = gpu_layer_problems(nodes + [_node("gpu-extra", **good)], expected)
    assert any("driver-version.full=580.95.05; the stack pins driver 595.91.07" in p for p in problems), problems
    assert any("mig.config=all-1g.10gb; the stack's MIG layout is ncp-layout" in p for p in problems), problems
    assert any("gpu.product=NVIDIA-A100" in p for p in problems), problems
    assert any("the stack declares site.gpuNodes" in p for p in problems), problems


# --- plan-upgrade ---------------------------------------------------------------------------------------------------

def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture()
def fleet_repo(tmp_path, evidence_keys):
    """A git repository of five sites (two lab, two staging, one prod) and a branch `bump` that raises the GPU
    Operator chart."""
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    matrix = (ROOT / "data" / "compatibility-matrix.yaml").read_text()
    (repo / "data" / "compatibility-matrix.yaml").write_text(matrix)
    environments = {"lab-a": "lab", "lab-b": "lab", "stg-a": "staging", "stg-b": "staging", "prod-a": "prod"}
    for stack, environment in environments.items():
        document = site_document(stack, environment)
        document["config"][f"{PROJECT}:site"]["validationEvidence"]["trustedKeys"] = str(evidence_keys.trusted)
        write_site(repo, stack, document)
    sites = [{"stack": s, "evidenceIndex": "evidence/index.yaml", "risk": 1 if s == "stg-a" else 0}
             for s in environments]
    write_fleet(repo, sites, waveSize=2)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fleet")
    current = load_matrix().pin("gpuOperator").version
    _git(repo, "checkout", "-qb", "bump")
    (repo / "data" / "compatibility-matrix.yaml").write_text(matrix.replace(f"version: {current}",
                                                                            "version: v99.1.0", 1))
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "bump the GPU Operator")
    _git(repo, "checkout", "-q", "main")
    return repo


def test_waves_start_with_the_canary_and_keep_environments_apart(fleet_repo, capsys):
    fleet = str(fleet_repo / "fleet.yaml")
    assert main(["plan-upgrade", "--fleet", fleet, "--to", "bump", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["changes"][0]["component"] == "gpuOperator" and plan["changes"][0]["to"] == "v99.1.0"
    assert [w["sites"] for w in plan["waves"]] == [["lab-a"], ["lab-b"], ["stg-b", "stg-a"], ["prod-a"]]
    assert plan["waves"][1]["gate"] == {"state": "closed", "after": 1,
                                        "reasons": ["lab-a: wave 1 not applied there yet"]}
    assert main(["plan-upgrade", "--fleet", fleet, "--to", "bump", "--wave-size", "1", "--json"]) == 0
    assert [w["sites"] for w in json.loads(capsys.readouterr().out)["waves"]][2:4] == [["stg-b"], ["stg-a"]]


def test_the_next_wave_opens_on_fresh_passing_evidence_after_the_apply(fleet_repo, evidence_keys, capsys):
    fleet = str(fleet_repo / "fleet.yaml")
    commit = _git(fleet_repo, "rev-parse", "bump").strip()
    applied = NOW - timedelta(hours=2)
    record = fleet_repo / ".fleet" / f"upgrade-{commit[:12]}.json"
    record.parent.mkdir()
    record.write_text(json.dumps({"to": commit, "waves": {"1": {"lab-a": {
        "appliedAt": applied.isoformat(), "result": "succeeded", "message": ""}}}}))
    index = fleet_repo / "evidence" / "index.yaml"

    def gate() -> dict:
        assert main(["plan-upgrade", "--fleet", fleet, "--to", "bump", "--json"]) == 0
        return json.loads(capsys.readouterr().out)["waves"][1]["gate"]

    assert gate()["reasons"] == ["lab-a: evidence none"]
    evidence(index, evidence_keys, "lab-a", applied - timedelta(hours=1), run="before")
    assert "predates the apply" in gate()["reasons"][0]
    evidence(index, evidence_keys, "lab-a", applied + timedelta(hours=1), passed=False, run="failed")
    assert gate()["reasons"][0].startswith("lab-a: evidence failed")
    evidence(index, evidence_keys, "lab-a", applied + timedelta(hours=1, minutes=5), run="after")
    assert gate() == {"state": "open", "after": 1, "reasons": []}
    assert main(["plan-upgrade", "--fleet", fleet, "--to", "bump", "--wave", "3", "--apply"]) == 1
    assert "gated on wave 2" in capsys.readouterr().out, "wave 3 waits for wave 2: nothing was run"


@pytest.mark.parametrize("argv, words", [
    (["--to", "no-such-branch"], "not a commit of the repository"),
    (["--to", "bump", "--apply"], "--apply runs one wave"),
    (["--to", "bump", "--wave-size", "0"], "at least one site"),
])
def test_plan_upgrade_bad_input_is_exit_2(fleet_repo, capsys, argv, words):
    assert main(["plan-upgrade", "--fleet", str(fleet_repo / "fleet.yaml"), *argv]) == 2
    assert words in capsys.readouterr().err


def test_status_over_the_example_stacks_lists_each_and_exits_0(tmp_path, capsys):
    """The issue's bar: every example stack (their frozen copies) checked offline, each listed, exit 0."""
    from tests.conftest import EXAMPLE_STACKS
    sites = [{"stack": stack, "file": str(FROZEN_STACKS / f"Pulumi.{stack}.yaml")} for stack in EXAMPLE_STACKS]
    assert main(["status", "--fleet", str(write_fleet(tmp_path, sites)), "--jobs", "2"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:len(EXAMPLE_STACKS) + 1]]
    assert listed == list(EXAMPLE_STACKS)


class CountedEntry(dict):
    """An index entry that counts how often its stack is looked at (class-wide)."""
    stack_reads = 0

    def get(self, key, default=None):
        if key == "stack":
            CountedEntry.stack_reads += 1
        return super().get(key, default)


def test_the_shared_index_is_read_and_grouped_once_for_the_whole_fleet(tmp_path, evidence_keys, monkeypatch):
    """Sites share one evidence index: a fleet of n sites reads it once and looks at each entry's stack once, not n
    times (the per-site scan made `ncp fleet status`'s cost grow with the square of its sites; counted, not timed)."""
    from ncp.fleet import evidence_state as state

    document = site_document("site-00")
    site = document["config"][f"{PROJECT}:site"]
    site["validationEvidence"] = {**site["validationEvidence"], "trustedKeys": str(evidence_keys.trusted)}
    site_plan = plan_of(write_site(tmp_path, "site-00", document))
    index, stacks = tmp_path / "index.yaml", [f"site-{n:02d}" for n in range(12)]
    for stack in stacks:
        evidence(index, evidence_keys, stack, NOW - timedelta(hours=2))
    reads = []
    real_read = state.read_index

    def counted_read(location):
        reads.append(location)
        return [CountedEntry(entry) for entry in real_read(location)]

    monkeypatch.setattr(state, "read_index", counted_read)
    monkeypatch.setattr(CountedEntry, "stack_reads", 0)
    state._index_by_stack.cache_clear()
    verdicts = [state.evidence_state(stack, site_plan, str(index), NOW)["verdict"] for stack in stacks]
    assert verdicts == ["passed"] * len(stacks)
    assert reads == [str(index)], "the shared index is read once for every site"
    assert CountedEntry.stack_reads == len(stacks), "each entry's stack is looked at once, not once per site"
    evidence(index, evidence_keys, "site-00", NOW - timedelta(hours=1), passed=False, run="r2")
    assert state.evidence_state("site-00", site_plan, str(index), NOW)["verdict"] == "failed", \
        "a rewritten index is read again"
    assert len(reads) == 2
