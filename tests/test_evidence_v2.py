"""Evidence v2 (#28): signed and fresh evidence, like-for-like keys, Triton services gated, the concurrency sweep and
its knee, `compare` catching a regression, JUnit/CTRF beside each record, startup and failure behaviour judged, and
the owning layer of every check. Records are written and signed as `ncp evidence` writes them; the gate is the
policy pack run by pulumi-policy's analyzer on recorded stacks."""
import copy
import json
import shutil
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from ncp.evidence import cli as evidence_cli
from ncp.evidence.behaviour import FAILURE_FILE, STARTUP_FILE, judge_failure, judge_startup
from ncp.evidence.collect import build_records, read_junit
from ncp.evidence.owners import OWNERS_FILE, check_owner
from ncp.evidence.record import EvidenceRecord, append_index, index_entry, read_index, write_record
from ncp.evidence.signing import KEY_ENV, SigningKeyError, key_path
from ncp.evidence.store import open_store
from ncp.evidence.sweep import SweepPoint, knee
from ncp.readmodel.recorder import run_stack_config, run_stack_file
from ncp.plan.behaviour_thresholds import FailureThresholds, StartupThresholds
from ncp.plan.catalog import ROOT
from ncp.plan.config import ValidationEvidence
from ncp.plan.site_plan import build_plan
from ncp.plan.sources import read_stack_file
from tests.evidence_keys import gate_config, make_keys, with_keys
from tests.policy_helpers import clone, find, set_inputs, violations
from tests.test_evidence import EXPORT, MET, PROMOTION, VERSIONS, _outputs

SWEEP = ROOT / "tests" / "fixtures" / "evidence" / "sweep"


def _plan(stack: str = "prod", keys=None, **slo):
    raw, secrets = read_stack_file(stack)
    for endpoint in raw.get("endpoints", []):
        endpoint["slo"].update({"thresholds": MET, **slo})
    return build_plan(with_keys(raw, keys) if keys else raw, secrets, f"Pulumi.{stack}.yaml")


def _write(tmp_path, site_plan, keys, run_id="r1", now=None, outputs=None, cache_state="warm") -> Path:
    """Judge a run's outputs and write signed records and entries as `ncp evidence` does; the index path."""
    index = tmp_path / "index.yaml"
    outputs = outputs or _outputs(tmp_path / f"out-{run_id}", site_plan)
    for record in build_records("prod", site_plan, VERSIONS, outputs, cache_state, run_id=run_id, now=now):
        location, sha256 = write_record(record, open_store(tmp_path / "records"), keys.signer)
        append_index(index_entry(record, location, sha256, keys.signer), index)
    return index


def _gate(recording, index, keys, policy="promotion-evidence", **extra) -> str:
    return "\n".join(v.message for v in violations(recording, gate_config(PROMOTION, index, keys, policy, **extra),
                                                   policy))


def _edit_index(index: Path, edit) -> None:
    data = yaml.safe_load(index.read_text())
    for entry in data["records"]:
        edit(entry)
    index.write_text(yaml.safe_dump(data, sort_keys=False))


# --- 1. signed, fresh evidence ----------------------------------------------------------------------------------------

def test_keygen_keeps_the_key_out_of_the_repository(tmp_path, monkeypatch, capsys):
    settings = ValidationEvidence(path="e/", owner="o", trusted_keys=str(tmp_path / "trusted.yaml"))
    monkeypatch.setenv(KEY_ENV, str(ROOT / "evidence" / "site.signing-key.pem"))
    with pytest.raises(SigningKeyError, match="must not live inside the repository"):
        key_path("east", settings)
    with pytest.raises(ValueError, match="inside the repository"):
        ValidationEvidence(path="e/", owner="o", signing_key="evidence/site.pem")
    monkeypatch.delenv(KEY_ENV)
    keys = make_keys(tmp_path)
    assert keys.key.stat().st_mode & 0o777 == 0o600, "the private key is readable by its owner only"
    assert keys.signer.key_id in yaml.safe_load(keys.trusted.read_text())["keys"]
    assert "PRIVATE KEY" not in keys.trusted.read_text(), "only the public half is in the trusted keys file"
    raw, secrets = read_stack_file("prod")
    site_plan = build_plan(with_keys(raw, keys), secrets, "Pulumi.prod.yaml")
    monkeypatch.setattr(evidence_cli, "plan_from_stack_file", lambda stack: site_plan)
    monkeypatch.setenv(KEY_ENV, str(keys.key))
    assert evidence_cli.main(["keygen", "--stack", "prod"]) == 2, "an existing key is never overwritten"
    assert "already there" in capsys.readouterr().err


def test_signed_record_verifies_and_the_gate_accepts_it(prod, tmp_path, evidence_keys, monkeypatch, capsys):
    index = _write(tmp_path, _plan(), evidence_keys)
    assert _gate(prod, index, evidence_keys) == ""
    record = Path(read_index(index)[0]["record"])
    assert f"Signed (ed25519, key `{evidence_keys.signer.key_id}`)" in record.with_suffix(".md").read_text()
    assert json.loads(record.read_text())["signature"]["keyId"] == evidence_keys.signer.key_id
    monkeypatch.setattr(evidence_cli, "plan_from_stack_file", lambda stack: _plan(keys=evidence_keys))
    assert evidence_cli.main(["verify", "--stack", "prod", "--index", str(index)]) == 0
    out = capsys.readouterr().out
    assert out.count("VERIFIED endpoint prod/") == 2 and "2 of 2 entries" in out


# RA: Validation Methodology: "The RA should be enforced as an executable acceptance bar."
@pytest.mark.parametrize("tamper, reason", [
    (lambda e: e.update(passed=True, runId="r9"), "tampered: the signature does not match the content"),
    (lambda e: e["key"].update(gpuDriver="580.95.05"), "tampered: the signature does not match the content"),
    (lambda e: e.pop("signature"), "unsigned"),
    (lambda e: e.update(expiresAt="2999-01-01T00:00:00+00:00"), "tampered: the signature does not match"),
])
def test_tampered_or_unsigned_entry_is_refused_with_the_reason(prod, tmp_path, evidence_keys, tamper, reason):
    index = _write(tmp_path, _plan(), evidence_keys)
    _edit_index(index, tamper)
    text = _gate(prod, index, evidence_keys)
    assert "chat-dense: no passed, signed and fresh evidence record" in text and f"({reason}" in text


def test_a_record_changed_after_signing_is_refused(prod, tmp_path, evidence_keys, monkeypatch, capsys):
    index = _write(tmp_path, _plan(), evidence_keys)
    record = Path(read_index(index)[0]["record"])
    record.write_text(record.read_text().replace('"failures": 0', '"failures": 0 '))
    assert f"tampered: its record {record} changed since the entry was signed" in _gate(prod, index, evidence_keys)
    monkeypatch.setattr(evidence_cli, "plan_from_stack_file", lambda stack: _plan(keys=evidence_keys))
    assert evidence_cli.main(["verify", "--stack", "prod", "--index", str(index)]) == 1
    assert "REFUSED  endpoint prod/chat-dense run r1" in capsys.readouterr().out


def test_evidence_signed_by_an_untrusted_key_is_refused(prod, tmp_path, evidence_keys, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    stranger = make_keys(tmp_path / "stranger", "stranger")
    index = _write(tmp_path, _plan(), stranger)
    assert f"signed by key {stranger.signer.key_id}, which the trusted keys file does not hold" in _gate(
        prod, index, evidence_keys)


# RA: Known Limitations: "Benchmark results must be tied to the model, hardware, backend, traffic profile"
def test_stale_evidence_is_refused_and_ttl_comes_from_the_stack(prod, tmp_path, evidence_keys, monkeypatch, capsys):
    old = datetime.now(timezone.utc) - timedelta(days=31)
    index = _write(tmp_path, _plan(), evidence_keys, now=old)
    entry = read_index(index)[0]
    assert datetime.fromisoformat(entry["expiresAt"]) - datetime.fromisoformat(entry["createdAt"]) == timedelta(30)
    assert f"(stale: expired at {entry['expiresAt']})" in _gate(prod, index, evidence_keys)
    monkeypatch.setattr(evidence_cli, "plan_from_stack_file", lambda stack: _plan(keys=evidence_keys))
    assert evidence_cli.main(["verify", "--stack", "prod", "--index", str(index)]) == 1
    assert "stale: expired" in capsys.readouterr().out
    assert evidence_cli.main(["verify", "--stack", "prod", "--index", str(index),
                              "--now", (old + timedelta(days=1)).isoformat()]) == 0, "fresh on the day after"
    # A date without an offset is UTC, not a crash (exit 3) comparing naive and aware times; a bad one is bad input.
    assert evidence_cli.main(["verify", "--stack", "prod", "--index", str(index),
                              "--now", (old + timedelta(days=1)).date().isoformat()]) == 0
    with pytest.raises(SystemExit) as refused:
        evidence_cli.main(["verify", "--stack", "prod", "--index", str(index), "--now", "next tuesday"])
    assert refused.value.code == 2 and "is not an ISO date or time" in capsys.readouterr().err
    raw, secrets = read_stack_file("prod")
    raw["site"]["validationEvidence"]["ttlDays"] = {"endpoint": 45}
    longer = build_plan(with_keys(raw, evidence_keys), secrets, "Pulumi.prod.yaml")
    from ncp.evidence.signing import Signer
    signer = Signer.load("test-site", longer.site.validation_evidence)
    assert signer.expires_at("endpoint", "2026-01-01T00:00:00+00:00") == "2026-02-15T00:00:00+00:00"
    assert signer.expires_at("readiness", "2026-01-01T00:00:00+00:00") == "2026-04-01T00:00:00+00:00"


def test_unreadable_trusted_keys_file_blocks_the_gate(prod, tmp_path, evidence_keys):
    index = _write(tmp_path, _plan(), evidence_keys)
    evidence_keys.trusted.write_text("keys: {abc: {publicKey: '!!!'}}\n")
    assert "the trusted evidence keys cannot be read" in _gate(prod, index, evidence_keys)


def test_each_site_keeps_its_own_evidence_index_and_keys(prod, tmp_path, evidence_keys):
    """Two sites' evidence never mixes: the index and trusted keys default to the stack's own site folder
    (sites/<stack>/evidence/), in the program and in the pack (`{stack}` filled from the resources' URNs)."""
    from ncp.evidence.record import index_file
    from ncp.evidence.signing import trusted_keys_path
    from ncp.plan.names import EVIDENCE_INDEX, TRUSTED_KEYS
    from ncp_guardrails.evidence_index import INDEX_CONFIG
    assert (INDEX_CONFIG["evidenceIndex"]["default"], INDEX_CONFIG["trustedKeys"]["default"]) \
        == (EVIDENCE_INDEX, TRUSTED_KEYS), "the pack's defaults are the program's site files"
    assert index_file("prod") == ROOT / "sites" / "prod" / "evidence" / "index.yaml"
    assert index_file("lab").parent != index_file("prod").parent
    assert trusted_keys_path(None, "lab") == ROOT / "sites" / "lab" / "evidence" / "trusted-keys.yaml"
    sites = tmp_path / "sites"
    (sites / "prod" / "evidence").mkdir(parents=True)
    shutil.move(_write(tmp_path, _plan(), evidence_keys), sites / "prod" / "evidence" / "index.yaml")
    shutil.copy(evidence_keys.trusted, sites / "prod" / "evidence" / "trusted-keys.yaml")
    per_site = {"requirePassedEvidence": True, "evidenceIndex": f"{sites}/{{stack}}/evidence/index.yaml",
                "trustedKeys": f"{sites}/{{stack}}/evidence/trusted-keys.yaml"}
    gate = {**PROMOTION, "promotion-evidence": per_site}
    assert violations(prod, gate, "promotion-evidence") == [], "prod reads its own folder's index and keys"
    raw, secrets = read_stack_file("prod")
    west = run_stack_config(raw, secrets, "prod-west")
    text = "\n".join(v.message for v in violations(west, gate, "promotion-evidence"))
    assert f"no passed, signed and fresh evidence record in {sites}/prod-west/evidence/index.yaml" in text, \
        "another site reads its own (empty) folder, not prod's index"
    shutil.copytree(sites / "prod", sites / "prod-west")  # prod's records in west's folder are still prod's
    text = "\n".join(v.message for v in violations(west, gate, "promotion-evidence"))
    assert f"no passed, signed and fresh evidence record in {sites}/prod-west/evidence/index.yaml" in text


# --- 2. like-for-like keys, Triton gated ------------------------------------------------------------------------------

# RA: Validation Methodology: "record the model, tokenizer, backend, container image, hardware, driver"
def test_a_driver_change_invalidates_evidence(tmp_path, evidence_keys):
    index = _write(tmp_path, _plan(), evidence_keys)  # measured under the matrix's managed driver
    raw, secrets = read_stack_file("prod")
    raw["components"].setdefault("gpuOperator", {})["driver"] = "preinstalled"
    changed = run_stack_config(raw, secrets, "prod")
    text = _gate(changed, index, evidence_keys)
    driver = _plan().matrix.pin("gpuOperator").images["driver"]
    assert f"gpuDriver '{driver}' -> 'preinstalled (node image)'" in text
    assert "chat-dense" in text and "reasoning-large" in text


def test_the_program_stamps_the_key_the_records_carry(prod, tmp_path):
    site_plan = _plan()
    graphs = {r.wire_inputs["metadata"]["name"]: r.wire_inputs for r in prod.resources
              if r.wire_inputs.get("kind") == "DynamoGraphDeployment"}
    records = build_records("prod", site_plan, VERSIONS, _outputs_for(site_plan, tmp_path), "warm")
    for record in records:
        stamped = json.loads(graphs[record.endpoint]["metadata"]["annotations"]["ncp-inference.io/evidence-key"])
        assert {**stamped, "cacheState": "warm"} == record.key


def test_a_stamped_key_that_is_not_the_deployments_is_refused(prod, tmp_path, evidence_keys):
    index = _write(tmp_path, _plan(), evidence_keys)
    edited = clone(prod)
    graph = find(edited, "DynamoGraphDeployment", "chat-dense")
    inputs = copy.deepcopy(graph.wire_inputs)
    for service in inputs["spec"]["services"].values():
        container = service.get("extraPodSpec", {}).get("mainContainer", {})
        if "image" in container:
            container["image"] = "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:1.4.0"
    set_inputs(graph, inputs)
    text = _gate(edited, index, evidence_keys)
    assert "chat-dense: its evidence key (ncp-inference.io/evidence-key) is not the deployment's: image" in text
    assert "reasoning-large" not in text, "the other endpoint's key still matches its evidence"


def _outputs_for(site_plan, root):
    return _outputs(Path(root) / "out", site_plan)


def _vision(keys):
    raw, secrets = read_stack_file("vision")
    for service in raw["inferenceServices"]:
        service["slo"]["thresholds"] = {"requestLatencyP95Ms": 10000, "requestThroughputMin": 1}
    return build_plan(with_keys(raw, keys), secrets, "Pulumi.vision.yaml")


def test_triton_services_are_recorded_and_gated_like_endpoints(tmp_path, evidence_keys):
    vision = run_stack_file("vision")
    site_plan = _vision(evidence_keys)
    names = [s.name for s in site_plan.inference_services]
    assert names and all(f"{name}: no passed, signed and fresh evidence record" in _gate(
        vision, tmp_path / "none.yaml", evidence_keys) for name in names), "no evidence: every service refused"
    outputs = tmp_path / "out"
    (outputs / "validation").mkdir(parents=True)
    (outputs / "validation" / "junit.xml").write_text(
        '<testsuite name="k8s" tests="1" failures="0" errors="0" skipped="0"><testcase name="ok"/></testsuite>')
    for name in names:
        (outputs / name).mkdir()
        shutil.copy(EXPORT, outputs / name / EXPORT.name)
    records = build_records("vision", site_plan, VERSIONS, outputs, "warm", run_id="v1")
    assert [(r.kind, r.endpoint, r.passed) for r in records] == [("inferenceService", n, True) for n in names]
    assert records[0].key["image"] == site_plan.inference_services[0].server_image
    index = tmp_path / "index.yaml"
    for record in records:
        location, sha256 = write_record(record, open_store(tmp_path / "records"), evidence_keys.signer)
        append_index({**index_entry(record, location, sha256, evidence_keys.signer)}, index)
    assert _gate(vision, index, evidence_keys) == ""
    _edit_index(index, lambda e: e["key"].update(image="nvcr.io/nvidia/tritonserver:25.01-py3"))
    assert "tampered" in _gate(vision, index, evidence_keys)


def test_cold_cache_evidence_is_asked_for_when_the_gate_wants_it(prod, tmp_path, evidence_keys):
    index = _write(tmp_path, _plan(), evidence_keys)
    text = _gate(prod, index, evidence_keys, cacheStates=["warm", "cold"])
    assert "for cold cache under its key" in text and "for warm cache" not in text
    _write(tmp_path, _plan(), evidence_keys, run_id="r2", cache_state="cold")
    assert _gate(prod, index, evidence_keys, cacheStates=["warm", "cold"]) == ""


# --- 4. realistic workload: sweep, knee, compare ----------------------------------------------------------------------

def test_knee_is_the_lowest_level_near_the_best_throughput():
    points = [SweepPoint(concurrency=c, output_token_throughput=t) for c, t in ((1, 100), (4, 190), (16, 200),
                                                                              (64, 205))]
    assert knee(points) == 4
    assert knee([SweepPoint(concurrency=1)]) is None


# RA: Performance Guidance: "measure token latency, request latency, throughput, and concurrency behavior"
def test_sweep_of_a_real_aiperf_run_is_recorded_with_its_knee(tmp_path, evidence_keys):
    site_plan = _plan(concurrency=2, concurrencySweep=[1, 4], islStddev=4, oslStddev=2)
    outputs = tmp_path / "out"
    _outputs(outputs, site_plan)
    for endpoint in site_plan.endpoints:
        shutil.rmtree(outputs / endpoint.name)
        shutil.copytree(SWEEP, outputs / endpoint.name)
    record = build_records("prod", site_plan, VERSIONS, outputs, "warm")[0]
    assert record.workload.concurrency_sweep == [1, 2, 4] and record.workload.isl_stddev == 4
    assert [p.concurrency for p in record.sweep.levels] == [1, 2, 4]
    best = max(p.output_token_throughput for p in record.sweep.levels)
    assert record.sweep.knee == min(p.concurrency for p in record.sweep.levels
                                    if p.output_token_throughput >= 0.9 * best)
    assert record.benchmark.source.endswith("concurrency_2"), "thresholds are judged at the profile's concurrency"
    assert "## Concurrency sweep" in _markdown(record) and "(knee)" in _markdown(record)


def _markdown(record):
    from ncp.evidence.record import render_markdown
    return render_markdown(record)


def test_the_benchmark_job_renders_the_sweep_and_distributions():
    from ncp.plan.aiperf_args import aiperf_command, judged_artifacts
    argv = aiperf_command(model="m", url="http://m:8000", tokenizer="/models/m", isl=512, osl=128, concurrency=16,
                          request_count=100, artifact_dir="/results/chat", isl_stddev=64, osl_stddev=16,
                          sweep=[1, 4, 64])
    flags = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert argv[argv.index("--concurrency") + 1] == "1,4,16,64"
    assert argv[argv.index("--isl-stddev") + 1] == "64" and argv[argv.index("--osl-stddev") + 1] == "16"
    assert argv[argv.index("--warmup-request-count") + 1] == "128", "warm-up covers the highest level"
    assert judged_artifacts("/results/chat", 16, [1, 4, 64]) == "/results/chat/concurrency_16"
    assert judged_artifacts("/results/chat", 16, []) == "/results/chat" and flags


def _compare_setup(tmp_path, keys, monkeypatch, factor: float, latency: float = 1.0, **record_change):
    """A passed baseline r1 from the recorded export, then r2 whose output throughput is `factor` of it and whose
    request latency (no threshold bounds it) is `latency` times it."""
    site_plan = _plan(keys=keys)
    monkeypatch.setattr(evidence_cli, "plan_from_stack_file", lambda stack: site_plan)
    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    index = _write(tmp_path, site_plan, keys, run_id="r1", now=start)
    outputs = _outputs(tmp_path / "out-r2", site_plan)
    for endpoint in site_plan.endpoints:
        export = json.loads(EXPORT.read_text())
        export["output_token_throughput"]["avg"] *= factor
        export["request_latency"]["p99"] *= latency
        (outputs / endpoint.name / EXPORT.name).write_text(json.dumps(export))
    _write(tmp_path, site_plan, keys, run_id="r2", now=start + timedelta(hours=1), outputs=outputs,
           **record_change)
    return index, [e["record"] for e in read_index(index) if e["runId"] == "r2"][0]


def test_compare_catches_a_regression_beyond_the_margin(tmp_path, evidence_keys, monkeypatch, capsys):
    index, current = _compare_setup(tmp_path, evidence_keys, monkeypatch, 0.7)
    assert evidence_cli.main(["compare", "--stack", "prod", "--record", current, "--index", str(index)]) == 1
    out = capsys.readouterr().out
    assert "against r1" in out and "outputTokenThroughput" in out and "-30.0% worse" in out
    assert "REGRESSED: 1 metric" in out
    index, current = _compare_setup(tmp_path / "slow", evidence_keys, monkeypatch, 1.0, latency=1.25)
    assert evidence_cli.main(["compare", "--stack", "prod", "--record", current, "--index", str(index)]) == 1
    assert "requestLatencyP99Ms" in capsys.readouterr().out, "a figure without a threshold is compared too"
    Path(current).write_text(Path(current).read_text().replace('"passed": true', '"passed": false', 1))
    assert evidence_cli.main(["compare", "--stack", "prod", "--record", current, "--index", str(index)]) == 1
    assert "tampered" in capsys.readouterr().out, "a tampered record is not compared"


def test_records_inside_the_project_are_indexed_project_relative(tmp_path):
    assert open_store(ROOT / "evidence" / "records" / "prod").location("chat/r1.json") == \
        "evidence/records/prod/chat/r1.json", "a committed index must read the same on every checkout"
    assert open_store(tmp_path).location("r1.json") == str(tmp_path / "r1.json")


def test_compare_passes_within_the_margin_and_without_a_baseline(tmp_path, evidence_keys, monkeypatch, capsys):
    index, current = _compare_setup(tmp_path, evidence_keys, monkeypatch, 0.95)
    assert evidence_cli.main(["compare", "--stack", "prod", "--record", current, "--index", str(index)]) == 0
    assert "no regression beyond the margin" in capsys.readouterr().out
    index, current = _compare_setup(tmp_path / "cold", evidence_keys, monkeypatch, 0.5, cache_state="cold")
    _edit_index(index, lambda e: e.update(passed=e["passed"]))  # untouched: r1 is warm, r2 cold
    assert evidence_cli.main(["compare", "--stack", "prod", "--record", current, "--index", str(index)]) == 0
    assert "nothing to compare" in capsys.readouterr().out, "a cold run is never compared with a warm one"
    assert evidence_cli.main(["compare", "--stack", "prod", "--record", str(tmp_path / "nope.json"),
                              "--index", str(index)]) == 2


# --- 5. outputs CI systems read ---------------------------------------------------------------------------------------

def test_junit_and_ctrf_sit_beside_the_record(tmp_path, evidence_keys):
    index = _write(tmp_path, _plan_with(outputTokenThroughputMin=3500), evidence_keys)
    record = Path(read_index(index)[0]["record"])
    junit = record.with_suffix(".junit.xml")
    root = ElementTree.parse(junit).getroot()
    assert root.tag == "testsuites" and {s.get("name") for s in root} >= {"validation", "benchmark"}
    failed = [c for c in root.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["output_token_throughput avg"]
    assert "owner: Inference Serving Layer" in failed[0].find("failure").get("message")
    (tmp_path / "ci").mkdir()
    shutil.copy(junit, tmp_path / "ci" / "evidence.xml")
    totals = read_junit(tmp_path / "ci")  # the project's own JUnit reader (the validation suite's) reads it back
    assert totals.failures == 1 and totals.failed_cases == ["chat-dense.benchmark.output_token_throughput avg"]
    ctrf = json.loads(record.with_suffix(".ctrf.json").read_text())
    # ctrf-io/ctrf schema/ctrf.schema.json: required members and the test status enum
    assert ctrf["reportFormat"] == "CTRF" and ctrf["specVersion"] == "1.0.0"
    summary = ctrf["results"]["summary"]
    assert set(summary) >= {"tests", "passed", "failed", "skipped", "pending", "other", "start", "stop"}
    assert summary["failed"] == 1 and summary["tests"] == len(ctrf["results"]["tests"])
    assert all({"name", "status", "duration"} <= set(t) and t["status"] in
               ("passed", "failed", "skipped", "pending", "other") for t in ctrf["results"]["tests"])


def _plan_with(**thresholds):
    raw, secrets = read_stack_file("prod")
    for endpoint in raw["endpoints"]:
        endpoint["slo"]["thresholds"] = {**MET, **thresholds}
    return build_plan(raw, secrets, "Pulumi.prod.yaml")


# --- 3. startup and failure behaviour (the serving twin's hook) -------------------------------------------------------

STARTUP = StartupThresholds(cold_first_token_seconds=900, warm_first_token_seconds=120, cold_model_loaded_seconds=800,
                            warm_container_ready_seconds=30)
FAILURE = FailureThresholds(recovery_seconds=120, client_error_rate_max=0.01)
STARTS = {"source": "twin run t1", "starts": [
    {"start": "cold", "downloadSeconds": 412.0, "cacheHit": False, "containerReadySeconds": 35.2,
     "modelLoadedSeconds": 530.1, "firstTokenSeconds": 561.9},
    {"start": "warm", "downloadSeconds": 0, "cacheHit": True, "containerReadySeconds": 12.0,
     "modelLoadedSeconds": 60.3, "firstTokenSeconds": 75.0}]}
KILL = {"source": "twin run t1", "killedPod": "chat-dense-worker-0", "killedAtSeconds": 30.0, "recoverySeconds": 48.2,
        "clientRequests": 1200, "clientErrors": 6, "errorKinds": {"503": 6}}


def _inputs(tmp_path, starts=STARTS, kill=KILL) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    if starts is not None:
        (tmp_path / STARTUP_FILE).write_text(json.dumps(starts))
    if kill is not None:
        (tmp_path / FAILURE_FILE).write_text(json.dumps(kill))
    return tmp_path


def test_startup_and_failure_are_judged_against_their_thresholds(tmp_path):
    startup, failure = judge_startup(_inputs(tmp_path), STARTUP), judge_failure(_inputs(tmp_path), FAILURE)
    assert startup.status == "PASS" and failure.status == "PASS"
    assert [c.metric for c in startup.checks] == ["startup.cold.firstToken", "startup.warm.firstToken",
                                                  "startup.cold.modelLoaded", "startup.warm.containerReady",
                                                  "startup.warm.cacheHit"]
    slow = copy.deepcopy(STARTS)
    slow["starts"][1].update(cacheHit=False, downloadSeconds=300, firstTokenSeconds=420)
    result = judge_startup(_inputs(tmp_path / "slow", starts=slow), STARTUP)
    failed = {c.metric: c.owner for c in result.checks if c.status == "FAIL"}
    assert failed == {"startup.warm.firstToken": "Inference Serving Layer",
                      "startup.warm.cacheHit": "Model Data And Memory Layer (storage tiers)"}
    lost = judge_failure(_inputs(tmp_path / "lost", kill={**KILL, "recoverySeconds": None, "clientErrors": 120}),
                         FAILURE)
    assert {c.metric: c.status for c in lost.checks} == {"failure.recovery": "FAIL", "failure.clientErrorRate": "FAIL"}
    assert "never recovered" in lost.checks[0].detail and "120 of 1200 requests failed (6 x 503)" in \
        lost.checks[1].detail


def test_missing_twin_inputs_fail_loudly_when_thresholds_are_set(tmp_path, evidence_keys):
    missing = judge_startup(tmp_path, STARTUP)
    assert missing.status == "MISSING" and all("serving twin" in c.detail for c in missing.checks)
    site_plan = _plan(startup=STARTUP.model_dump(by_alias=True, exclude_none=True),
                      failure=FAILURE.model_dump(by_alias=True))
    outputs = _outputs(tmp_path / "out", site_plan)
    record = build_records("prod", site_plan, VERSIONS, outputs, "cold")[0]
    assert not record.passed and {p.name: p.status for p in record.phases}["startup"] == "MISSING"
    _inputs(outputs / record.endpoint)
    record = build_records("prod", site_plan, VERSIONS, outputs, "cold")[0]
    assert record.passed and record.startup.observed["starts"][0]["firstTokenSeconds"] == 561.9
    assert EvidenceRecord.model_validate(json.loads(record.to_json())) == record
    (outputs / record.endpoint / FAILURE_FILE).write_text("{}")
    with pytest.raises(Exception, match="not a valid failure.json"):
        build_records("prod", site_plan, VERSIONS, outputs, "cold")


# --- 6. owners -----------------------------------------------------------------------------------------------

def test_every_check_has_a_documented_owner():
    owners = yaml.safe_load(OWNERS_FILE.read_text())
    layers = set(owners["phases"].values()) | set(owners["checks"].values())
    emitted = ["startup.cold.firstToken", "startup.warm.cacheHit", "startup.warm.containerReady",
               "startup.cold.modelLoaded", "failure.recovery", "failure.clientErrorRate", "ncclAllReduceBusBandwidth",
               "ncclOutOfBoundsValues", "storageRead.modelCache", "ncclRailBusBandwidth.rail-0"]
    assert all(check_owner("readiness", metric) in layers for metric in emitted)
    assert check_owner("readiness", "storageRead.kvOffload").startswith("Model Data")
    assert check_owner("readiness", "ncclRailBusBandwidth.rail-3").startswith("Networking")
