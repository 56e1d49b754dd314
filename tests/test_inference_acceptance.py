"""Acceptance of an inference service: the real aiperf (pinned 0.8.0) runs the command line
acceptance.aiperf_args.kserve_command builds against a local KServe v2 stub (Triton's HTTP inference protocol) on
127.0.0.1, and acceptance.check judges its real export."""
import json
import subprocess
import time

import pytest
import yaml

from ncp.plan.aiperf_args import KSERVE_FLAGS, kserve_command
from ncp.acceptance.check import check, load_export
from tests.aiperf_stub import AIPERF, JsonHandler, offline_env, serving
from tests.test_acceptance import tokenizer_dir  # noqa: F401 (fixture)

MODEL, INPUTS, OUTPUT, DALI = "resnet50_trt", {"data": [3, 8, 8]}, "logits", "resnet50_dali"
REQUESTS, CONCURRENCY, DELAY_S = 12, 2, 0.02
PREPROCESS_US = 2500  # the stub's DALI compute time per request, as Triton counts it


class _KServe(JsonHandler):
    """POST /v2/models/<model>/infer: checks the request is a KServe v2 tensor of the declared shape, answers one
    FP32 output after DELAY_S; anything else is a 400 the run counts as an error."""
    seen: list = []

    def do_GET(self):
        if self.path == "/metrics":  # Triton's exposition (docs/user_guide/metrics.md @v2.68.0): counters per model
            served = sum(type(self).seen)
            labels = f'{{model="{DALI}",version="1"}}'
            text = (f"# TYPE nv_inference_request_success counter\nnv_inference_request_success{labels} {served}\n"
                    f"# TYPE nv_inference_compute_infer_duration_us counter\n"
                    f"nv_inference_compute_infer_duration_us{labels} {served * PREPROCESS_US}\n").encode()
            return self.send_body(200, text, "text/plain; version=0.0.4")
        self.send_json(200 if self.path in ("/v2/health/ready", "/v2") else 404, {})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        (tensor,) = body.get("inputs", [{}])
        size = 1
        for dim in tensor.get("shape", [0]):
            size *= dim
        valid = (self.path == f"/v2/models/{MODEL}/infer" and tensor.get("name") == "data"
                 and tensor.get("shape") == [1, *INPUTS["data"]] and tensor.get("datatype") == "FP32"
                 and len(tensor.get("data", [])) == size)
        type(self).seen.append(valid)
        if not valid:
            return self.send_json(400, {"error": "not a KServe v2 request for the model's input"})
        time.sleep(DELAY_S)
        self.send_json(200, {"model_name": MODEL, "model_version": "1",
                         "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [1, 4], "data": [0.1] * 4}]})


@pytest.fixture(scope="module")
def kserve_run(tokenizer_dir, tmp_path_factory):  # noqa: F811 (the imported fixture)
    work = tmp_path_factory.mktemp("kserve")
    _KServe.seen.clear()
    with serving(_KServe) as url, offline_env() as env:
        argv = kserve_command(url=url, model=MODEL, inputs=INPUTS, concurrency=CONCURRENCY, request_count=REQUESTS,
                              artifact_dir=str(work / "artifacts"), tokenizer=str(tokenizer_dir),
                              warmup_request_count=2, server_metrics=f"{url}/metrics")
        proc = subprocess.run([AIPERF, *argv[1:]], cwd=work, env=env, capture_output=True, text=True,
                              timeout=240, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    return {"artifacts": work / "artifacts", "seen": list(_KServe.seen)}


def _thresholds(tmp_path, values: dict):
    path = tmp_path / "thresholds.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_kserve_flags_exist_in_pinned_aiperf():
    with offline_env() as env:
        proc = subprocess.run([AIPERF, "profile", "--help"], env=env, capture_output=True, text=True, timeout=120)
    listed = proc.stdout.replace("│", " ").split()
    assert not [flag for flag in KSERVE_FLAGS if flag not in listed]
    assert "template" in proc.stdout, "the template endpoint type is in the pinned aiperf"


def test_real_aiperf_sends_kserve_tensors_and_the_checker_judges_them(kserve_run, tmp_path):
    assert kserve_run["seen"] and all(kserve_run["seen"]), "every request was a valid KServe v2 tensor"
    export = load_export(kserve_run["artifacts"])
    assert export["request_count"]["avg"] == REQUESTS and "error_request_count" not in export
    assert export["request_latency"]["p50"] >= DELAY_S * 1000
    passing = {"requestLatencyP95Ms": 5000, "requestThroughputMin": 0.5, "requestCountMin": REQUESTS,
               "preprocessingTimeAvgMs": 5, "preprocessingModel": DALI}
    accepted, rows = check(kserve_run["artifacts"], _thresholds(tmp_path, passing))
    assert accepted, rows
    preprocessing = next(r for r in rows if r.metric == "preprocessing_time")
    assert preprocessing.measured == PREPROCESS_US / 1000, "the run's counter increases, as AIPerf exported them"
    strict = {"requestLatencyP95Ms": DELAY_S * 1000 / 2, "requestThroughputMin": 1e6,
              "preprocessingTimeAvgMs": 1, "preprocessingModel": DALI}
    accepted, rows = check(kserve_run["artifacts"], _thresholds(tmp_path, strict))
    assert not accepted and {r.metric for r in rows if r.status == "FAIL"} == {"request_latency",
                                                                              "request_throughput",
                                                                              "preprocessing_time"}
    other = {"requestLatencyP95Ms": 5000, "preprocessingTimeAvgMs": 5, "preprocessingModel": "another_dali"}
    accepted, rows = check(kserve_run["artifacts"], _thresholds(tmp_path, other))
    assert not accepted and next(r for r in rows if r.metric == "preprocessing_time").status == "MISSING"


def test_requests_the_server_rejects_fail_acceptance(tokenizer_dir, tmp_path):  # noqa: F811
    """A command for another input shape gets 400s from the stub: the checker reports the error rate."""
    with serving(_KServe) as url, offline_env() as env:
        argv = kserve_command(url=url, model=MODEL, inputs={"data": [3, 4, 4]}, concurrency=1, request_count=4,
                              artifact_dir=str(tmp_path / "artifacts"), tokenizer=str(tokenizer_dir),
                              warmup_request_count=1)
        proc = subprocess.run([AIPERF, *argv[1:]], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    accepted, rows = check(tmp_path / "artifacts", _thresholds(tmp_path, {"requestLatencyP95Ms": 5000}))
    error_rate = next(r for r in rows if r.metric == "error_rate")
    assert not accepted and error_rate.status == "FAIL" and error_rate.measured == 1.0, rows
