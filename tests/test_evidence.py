"""Evidence records from one run's outputs (recorded real AIPerf export + JUnit XML), the `ncp evidence` exit
codes, and the prod promotion gate reading the evidence index those records are appended to."""
import json
import shutil
from pathlib import Path

import pytest

from ncp.evidence import cli as evidence_cli
from ncp.evidence.collect import OutputsError, build_records, read_junit
from ncp.evidence.record import EvidenceRecord, read_index, render_markdown, sha256_of
from ncp.offline.policy_check import PACK_DIR, read_pack_config
from ncp.plan.catalog import ROOT
from ncp.plan.site_plan import build_plan
from ncp.plan.sources import read_stack_file
from tests.evidence_keys import gate_config, with_keys
from tests.policy_helpers import violations

EXPORT = ROOT / "tests" / "fixtures" / "evidence" / "profile_export_aiperf.json"
PROMOTION = read_pack_config(PACK_DIR / "config" / "prod-promotion.json")
# Thresholds the recorded stub run meets (TTFT p95 ~50 ms, ITL p95 ~4 ms, ~283 output tokens/s, no errors).
MET = {"timeToFirstTokenP95Ms": 200, "interTokenLatencyP95Ms": 20, "outputTokenThroughputMin": 100}
VERSIONS = {"gpuOperator": "v26.7.0", "dynamoPlatform": "1.5.0"}
JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="k8s" tests="3" failures="{failures}" errors="0" skipped="0">
<testcase classname="K8sGpuOperatorPodsCheck" name="test_pods_ready"/>
<testcase classname="K8sMigConfigCheck" name="test_mig"/>
<testcase classname="K8sNodeCheck" name="test_gpu_nodes">{failure}</testcase>
</testsuite></testsuites>"""


def _prod(thresholds: dict, keys=None):
    raw, secrets = read_stack_file("prod")
    for endpoint in raw["endpoints"]:
        endpoint["slo"]["thresholds"] = thresholds
    return build_plan(with_keys(raw, keys) if keys else raw, secrets, "Pulumi.prod.yaml")


def _outputs(root: Path, site_plan, failures: int = 0) -> Path:
    (root / "validation").mkdir(parents=True)
    failure = '<failure message="1 GPU node NotReady"/>' if failures else ""
    (root / "validation" / "junit.xml").write_text(JUNIT.format(failures=failures, failure=failure))
    for endpoint_plan in site_plan.endpoints:
        (root / endpoint_plan.endpoint.name).mkdir()
        shutil.copy(EXPORT, root / endpoint_plan.endpoint.name / EXPORT.name)
    return root


# RA: Validation Methodology: "record the model, tokenizer, backend, container image, hardware, driver"
# RA: Known Limitations: "Benchmark results must be tied to the model, hardware, backend, traffic profile"
def test_passed_record_carries_the_environment(tmp_path):
    site_plan = _prod(MET)
    records = build_records("prod", site_plan, VERSIONS, _outputs(tmp_path, site_plan), "warm", run_id="run1")
    assert [r.endpoint for r in records] == [e.endpoint.name for e in site_plan.endpoints]
    for record, endpoint_plan in zip(records, site_plan.endpoints, strict=True):
        endpoint = endpoint_plan.endpoint
        assert record.passed and record.failing_layers == []
        env = record.environment
        assert env.model_revision == endpoint.model.revision and env.model_source == endpoint.model.source
        assert env.sizing.sha256 == sha256_of(ROOT / endpoint.sizing)
        assert env.backend == endpoint.backend
        assert env.backend_version == site_plan.matrix.workload("dynamoRuntime").version
        assert env.images["serving"] == endpoint_plan.image and env.cache_state == "warm"
        assert env.component_versions == VERSIONS
        assert env.network_mode.startswith(endpoint_plan.mode)
        assert record.key["gpuDriver"] == env.gpu_driver and record.key["cacheState"] == "warm"
        assert [p.name for p in record.phases] == ["validation", "benchmark", "startup", "failure"]
        assert {p.name: p.status for p in record.phases}["startup"] == "NOT RUN", "no startup thresholds: not judged"
        assert {row.status for row in record.benchmark.checks} == {"PASS"}
        assert record.validation.tests == 3 and record.validation.passed
        # the JSON is the schema: it reads back to the same record
        assert EvidenceRecord.model_validate(json.loads(record.to_json())) == record
        markdown = render_markdown(record)
        assert "**PASSED**" in markdown and endpoint.model.revision in markdown and "cache state" in markdown.lower()


def test_missed_threshold_and_failed_suite_name_their_layer(tmp_path):
    site_plan = _prod({**MET, "outputTokenThroughputMin": 3500})
    record = build_records("prod", site_plan, VERSIONS, _outputs(tmp_path, site_plan, failures=1), "cold")[0]
    assert not record.passed
    assert record.failing_layers == ["Cluster baseline (validation suite)", "Inference Serving Layer"]
    assert record.validation.failed_cases == ["K8sNodeCheck.test_gpu_nodes"]
    failed = [row for row in record.benchmark.checks if row.status == "FAIL"]
    assert [row.metric for row in failed] == ["output_token_throughput"]
    assert "**FAILED**" in render_markdown(record)


def test_missing_or_broken_junit_is_bad_input(tmp_path):
    with pytest.raises(OutputsError, match="no JUnit XML"):
        read_junit(tmp_path)
    (tmp_path / "junit.xml").write_text("<testsuite")
    with pytest.raises(OutputsError, match="not valid JUnit XML"):
        read_junit(tmp_path)


def _cli(tmp_path, outputs, *extra) -> int:
    return evidence_cli.main(["--stack", "prod", "--outputs", str(outputs), "--cache-state", "warm", "--evidence-dir",
                              str(tmp_path / "evidence"), "--index", str(tmp_path / "index.yaml"), *extra])


def test_cli_exit_codes_and_index(tmp_path, monkeypatch, evidence_keys):
    site_plan = _prod(MET, evidence_keys)
    outputs = _outputs(tmp_path / "out", site_plan)
    monkeypatch.setattr(evidence_cli, "plan_from_stack_file", lambda stack: site_plan)
    assert _cli(tmp_path, outputs, "--run-id", "r1") == 0
    entries = read_index(tmp_path / "index.yaml")
    assert {e["endpoint"] for e in entries} == {"chat-dense", "reasoning-large"} and all(e["passed"] for e in entries)
    for entry in entries:
        record = Path(entry["record"])
        assert record.is_file() and all(record.with_suffix(suffix).is_file()
                                        for suffix in (".md", ".junit.xml", ".ctrf.json"))
        assert entry["signature"]["keyId"] == evidence_keys.signer.key_id and entry["expiresAt"] > entry["createdAt"]
    missed = _prod({**MET, "outputTokenThroughputMin": 3500}, evidence_keys)
    monkeypatch.setattr(evidence_cli, "plan_from_stack_file", lambda stack: missed)
    assert _cli(tmp_path, outputs, "--run-id", "r2") == 1, "a missed threshold fails the gate"
    assert _cli(tmp_path, tmp_path / "nowhere") == 2, "missing outputs are bad input"
    (outputs / "chat-dense" / EXPORT.name).write_text("{}")
    assert _cli(tmp_path, outputs) == 2, "an export that is not AIPerf's is bad input"


def test_unsupported_remote_evidence_location_is_bad_input(tmp_path, capsys, monkeypatch):
    raw, secrets = read_stack_file("prod")
    raw["site"]["validationEvidence"]["path"] = "gs://evidence-bucket/site/"
    monkeypatch.setattr(evidence_cli, "plan_from_stack_file",
                        lambda stack: build_plan(raw, secrets, "Pulumi.prod.yaml"))
    code = evidence_cli.main(["--stack", "prod", "--outputs", str(tmp_path), "--cache-state", "warm",
                              "--index", str(tmp_path / "index.yaml")])
    assert code == 2 and "only local paths and s3:// buckets" in capsys.readouterr().err


# --- the promotion gate -----------------------------------------------------------------------------------------------

def _index(tmp_path, site_plan, keys, **change) -> dict:
    """Records of a run written and signed as `ncp evidence` does; `change` edits a record before signing
    (evidence measured for something else), so only the key decides."""
    from ncp.evidence.record import append_index, index_entry, write_record
    from ncp.evidence.store import open_store
    path = tmp_path / "index.yaml"
    outputs = _outputs(tmp_path / "out", site_plan)
    for record in build_records("prod", site_plan, VERSIONS, outputs, "warm", run_id="r1"):
        record = record.model_copy(update={k: v for k, v in change.items() if k != "key"}
                                   | {"key": {**record.key, **change.get("key", {})}})
        location, sha256 = write_record(record, open_store(tmp_path / "records"), keys.signer)
        append_index(index_entry(record, location, sha256, keys.signer), path)
    return gate_config(PROMOTION, path, keys)


def _gate(recording, config) -> str:
    return "\n".join(v.message for v in violations(recording, config, "promotion-evidence"))


# RA: Design Alternatives And Tradeoffs: "final acceptance still requires measured workload behavior"
def test_promotion_gate_needs_a_passed_matching_record(prod, tmp_path, evidence_keys):
    text = _gate(prod, gate_config(PROMOTION, tmp_path / "none.yaml", evidence_keys))
    assert "chat-dense: no passed, signed and fresh evidence record" in text and "reasoning-large" in text
    site_plan = _prod(MET)
    assert _gate(prod, _index(tmp_path / "ok", site_plan, evidence_keys)) == ""


@pytest.mark.parametrize("change", [
    {"passed": False}, {"stack": "staging"}, {"key": {"modelRevision": "0" * 40}}, {"key": {"sizingSha256": "f" * 64}},
    {"key": {"image": "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:1.4.0"}}, {"key": {"gpuDriver": "580.95.05"}},
    {"key": {"kubernetesVersion": "1.33"}}, {"key": {"networkMode": "aggregated over RDMA rails"}},
    {"key": {"cacheState": "cold"}}])
# RA: Serving Performance: "Reject comparisons that omit backend version, model artifact revision"
def test_promotion_gate_refuses_evidence_for_something_else(prod, tmp_path, change, evidence_keys):
    config = _index(tmp_path, _prod(MET), evidence_keys, **change)
    text = _gate(prod, config)
    assert "no passed, signed and fresh evidence record" in text
    for name, value in change.get("key", {}).items():
        assert f"{name} {value!r} ->" in text, "the message names the key field that differs"


def test_promotion_gate_is_off_in_lab_and_plain_prod(prod, tmp_path):
    assert _gate(prod, read_pack_config(PACK_DIR / "config" / "lab.json")) == ""
    assert _gate(prod, read_pack_config(PACK_DIR / "config" / "prod.json")) == ""


def test_promotion_gate_refuses_a_sizing_file_edited_after_the_key_was_stamped(prod, tmp_path, evidence_keys):
    """The pack learns the sizing files' bytes through its config (ncp.offline.policy_check.project_inputs fills
    `sizingFiles` from the project): a hash that is not the stamped one is drift, whatever the evidence says."""
    config = _index(tmp_path, _prod(MET), evidence_keys)
    assert _gate(prod, config) == ""
    edited = {**config["promotion-evidence"], "sizingFiles": {"sites/prod/sizing/chat-dense.yaml": "e" * 64}}
    text = _gate(prod, {**config, "promotion-evidence": edited})
    assert "chat-dense: its evidence key" in text and "sites/prod/sizing/chat-dense.yaml changed since" in text
    assert "reasoning-large: its evidence key" not in text
