"""Evidence in an S3-compatible bucket (validationEvidence.path s3://...): records and the index are written through
boto3 and the promotion gate reads the index from the bucket. Against moto's server mode, a local S3 stand-in
speaking the S3 HTTP API (no internet)."""
import socket

import pytest

boto3 = pytest.importorskip("boto3", reason="boto3 is pinned in pyproject.toml (scripts/setup.sh installs it)")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is pinned in pyproject.toml")

from ncp.evidence import cli as evidence_cli  # noqa: E402
from ncp.evidence.record import read_index  # noqa: E402
from ncp.plan.site_plan import build_plan  # noqa: E402
from ncp.plan.sources import read_stack_file  # noqa: E402
from tests.evidence_keys import gate_config, with_keys  # noqa: E402
from tests.policy_helpers import violations  # noqa: E402
from tests.test_evidence import MET, PROMOTION, _outputs  # noqa: E402

BUCKET = "ncp-evidence"


@pytest.fixture(scope="module")
def s3_endpoint():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    for key, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def _plan_in_bucket(monkeypatch, bucket_path: str, keys):
    raw, secrets = read_stack_file("prod")
    with_keys(raw, keys)
    raw["site"]["validationEvidence"]["path"] = bucket_path
    for endpoint in raw["endpoints"]:
        endpoint["slo"]["thresholds"] = MET
    site_plan = build_plan(raw, secrets, "Pulumi.prod.yaml")
    monkeypatch.setattr(evidence_cli, "plan_from_stack_file", lambda stack: site_plan)
    return site_plan


def _gate(recording, index: str, keys) -> str:
    config = gate_config(PROMOTION, index, keys)
    return "\n".join(v.message for v in violations(recording, config, "promotion-evidence"))


def test_records_and_index_go_to_the_bucket_and_the_gate_reads_them(prod, bucket, tmp_path, monkeypatch,
                                                                    evidence_keys):
    index = f"s3://{BUCKET}/sites/east-1/index.yaml"
    assert "no passed, signed" in _gate(prod, index, evidence_keys), "an empty bucket holds no evidence"
    site_plan = _plan_in_bucket(monkeypatch, f"s3://{BUCKET}/sites/east-1/", evidence_keys)
    outputs = _outputs(tmp_path / "out", site_plan)
    assert evidence_cli.main(["--stack", "prod", "--outputs", str(outputs), "--cache-state", "warm",
                              "--run-id", "r1"]) == 0
    keys = {item["Key"] for item in bucket.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {"sites/east-1/index.yaml", *(f"sites/east-1/{e.endpoint.name}/r1.{suffix}"
                                                 for e in site_plan.endpoints
                                                 for suffix in ("json", "md", "junit.xml", "ctrf.json"))}
    entries = read_index(index)
    assert {e["record"] for e in entries} == {f"s3://{BUCKET}/sites/east-1/{e.endpoint.name}/r1.json"
                                              for e in site_plan.endpoints}
    assert _gate(prod, index, evidence_keys) == "", "the gate reads and verifies the signed records in the bucket"
    record = f"sites/east-1/{site_plan.endpoints[0].endpoint.name}/r1.json"
    text = bucket.get_object(Bucket=BUCKET, Key=record)["Body"].read().decode()
    bucket.put_object(Bucket=BUCKET, Key=record, Body=text.replace('"passed": false', '"passed": true').replace(
        '"tests": 3', '"tests": 4').encode())
    assert "tampered: its record" in _gate(prod, index, evidence_keys), "a record edited in the bucket is refused"


def test_unreachable_bucket_is_bad_input_and_blocks_the_gate(prod, bucket, tmp_path, monkeypatch, capsys,
                                                             evidence_keys):
    site_plan = _plan_in_bucket(monkeypatch, "s3://no-such-bucket/site/", evidence_keys)
    outputs = _outputs(tmp_path / "out", site_plan)
    assert evidence_cli.main(["--stack", "prod", "--outputs", str(outputs), "--cache-state", "warm"]) == 2
    assert "s3://no-such-bucket/site/" in capsys.readouterr().err
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # nothing listens there
    assert "the evidence index cannot be read" in _gate(prod, f"s3://{BUCKET}/index.yaml", evidence_keys)
