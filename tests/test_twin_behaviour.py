"""Startup and failure evidence from the serving twin (#28 item 3, #24): the rendered chat-dense graph's real Dynamo
1.5.0 frontend and mocker workers are started cold and warm and one worker is killed under client load
(ncp/evidence/twin_behaviour.py, ncp/twin/behaviour.py); the startup.json and failure.json they produce, with the
endpoint's
AIPerf export, go through evidence -> signed record -> promotion gate unchanged. One run passes; the same
measurements against thresholds the twin cannot meet fail the startup and failure phases and name their owners.

The twin's Python is .venv-twin (scripts/setup.sh). NCP_TWIN_PORT_BASE moves its ports (this module: base + 300)."""
import json
import os
from pathlib import Path

import pytest
import yaml

from ncp.evidence.twin_behaviour import main as twin_behaviour_main, record_twin_behaviour
from tests.test_twin import (CHAT, SMALL, _evidence, benchmark_outputs, prod_models, rendered, small_sizing,
                             stack)
from ncp.twin.behaviour import served_requests
from ncp.twin.graph import PortPool

PORTS = PortPool(int(os.environ.get("NCP_TWIN_PORT_BASE", "21000")) + 300)
MET = {"timeToFirstTokenP95Ms": 5000, "interTokenLatencyP95Ms": 1000, "outputTokenThroughputMin": 1,
       "errorRateMax": 0}
# Generous for a 2-core CI machine shared with other jobs; what the twin measures is far below (tools/bench/twin.py).
STARTUP = {"coldFirstTokenSeconds": 90, "warmFirstTokenSeconds": 90, "coldModelLoadedSeconds": 90,
           "warmContainerReadySeconds": 90, "warmCacheHit": True}
# No client error when one worker of two is lost: the frontend migrates the requests in flight on it (the rendered
# DYN_MIGRATION_LIMIT, data/dynamo-backends.yaml frontend.migrationLimit); without it they fail with HTTP 500.
FAILURE = {"recoverySeconds": 60, "clientErrorRateMax": 0}
UNMEETABLE = {"startup": {**STARTUP, "coldFirstTokenSeconds": 0.01}, "failure": {**FAILURE, "recoverySeconds": 0.001}}


@pytest.fixture(scope="module")
def model_root(tmp_path_factory) -> Path:
    return prod_models(tmp_path_factory.mktemp("models"))


def _keyed(slo: dict, sizing: str, keys) -> tuple:
    from tests.evidence_keys import with_keys
    raw, secrets = stack(slo=slo, endpoints=(CHAT,), sizing=sizing)
    return with_keys(raw, keys), secrets


def test_the_twin_writes_startup_and_failure_evidence_that_the_gate_judges(model_root, tmp_path, monkeypatch,
                                                                          evidence_keys):
    from ncp.evidence.record import read_index
    from ncp.offline.policy_check import PACK_DIR, read_pack_config
    from tests.evidence_keys import gate_config
    from tests.policy_helpers import violations
    sizing = small_sizing(tmp_path, SMALL["isl"], SMALL["osl"])
    raw, secrets = _keyed({**SMALL, "thresholds": MET, "startup": STARTUP, "failure": FAILURE}, sizing, evidence_keys)
    recording, graphs = rendered(raw, secrets)
    outputs = tmp_path / "outputs"
    written = record_twin_behaviour(graphs[CHAT], outputs, run_id="twin-test", ports=PORTS)
    assert [p.name for p in written] == ["startup.json", "failure.json"]
    startup = json.loads((outputs / CHAT / "startup.json").read_text())
    failure = json.loads((outputs / CHAT / "failure.json").read_text())
    cold, warm = startup["starts"]
    assert (cold["start"], cold["cacheHit"], warm["start"], warm["cacheHit"]) == ("cold", False, "warm", True)
    for start in (cold, warm):  # the first token needs the model registered; not every worker ready (the last
        assert 0 < start["modelLoadedSeconds"] <= start["firstTokenSeconds"]  # replica may come up after it)
        assert start["containerReadySeconds"] > 0
    assert failure["killedPod"] == "chat-dense-trtllmworker-0" and failure["recoverySeconds"] is not None
    assert failure["clientRequests"] > 0 and failure["clientErrors"] == sum(failure["errorKinds"].values())
    assert failure["errorKinds"] == {}, "requests in flight on the killed worker must migrate, not fail"
    assert "DynamoGraphDeployment tenant-acme-chat/chat-dense, run twin-test" in startup["source"]

    assert benchmark_outputs(recording, graphs[CHAT], model_root, tmp_path) == outputs
    promotion = read_pack_config(PACK_DIR / "config" / "prod-promotion.json")
    passing = tmp_path / "pass" / "index.yaml"
    assert _evidence(monkeypatch, raw, secrets, outputs, passing) == 0
    [entry] = read_index(passing)
    record = yaml.safe_load(Path(entry["record"]).read_text())
    phases = {p["name"]: p["status"] for p in record["phases"]}
    assert phases["startup"] == phases["failure"] == "PASS"
    assert record["startup"]["observed"]["starts"][0]["firstTokenSeconds"] == cold["firstTokenSeconds"]
    assert record["failure"]["observed"]["recoverySeconds"] == failure["recoverySeconds"]
    assert [v.message for v in violations(recording, gate_config(promotion, passing, evidence_keys),
                                          "promotion-evidence")] == []

    unmeetable = _keyed({**SMALL, "thresholds": MET, **UNMEETABLE}, sizing, evidence_keys)
    failing = tmp_path / "fail" / "index.yaml"
    assert _evidence(monkeypatch, *unmeetable, outputs, failing) == 1
    [entry] = read_index(failing)
    record = yaml.safe_load(Path(entry["record"]).read_text())
    failed = {c["metric"]: c["owner"] for phase in ("startup", "failure") for c in record[phase]["checks"]
              if c["status"] == "FAIL"}
    assert failed == {"startup.cold.firstToken": "Inference Serving Layer",
                      "failure.recovery": "Inference Serving Layer"}
    assert record["failingLayers"] == ["Inference Serving Layer"]
    assert "chat-dense: no passed, signed and fresh evidence record" in "\n".join(
        v.message for v in violations(recording, gate_config(promotion, failing, evidence_keys),
                                      "promotion-evidence"))


def test_the_command_refuses_an_endpoint_without_a_graph(tmp_path, capsys):
    assert twin_behaviour_main(["--stack", "prod", "--endpoint", "no-such-endpoint", "--outputs",
                                str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Pulumi.prod.yaml endpoints: no endpoint 'no-such-endpoint'" in err and "chat-dense" in err


def test_served_requests_reads_only_the_generate_endpoint_counter(tmp_path):
    """Recovery is judged on the restarted worker's own `generate` counter; its KV-query endpoint's does not count."""
    import http.server
    import threading
    body = ('dynamo_component_requests_total{dynamo_endpoint="worker_kv_query_source_1",worker_id="a"} 5\n'
            'dynamo_component_requests_total{dynamo_endpoint="generate",worker_id="a"} 2\n').encode()

    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert served_requests(server.server_address[1]) == 2
    finally:
        server.shutdown()
    assert served_requests(server.server_address[1]) == 0, "a worker that does not answer has served nothing"
