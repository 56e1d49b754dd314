"""Benchmark acceptance: the real aiperf (pinned version) runs the command line acceptance.aiperf_args builds against
a local OpenAI-compatible streaming stub on 127.0.0.1, with a tokenizer built in the test's tmp dir (no Hub access),
and acceptance.check judges its real profile_export_aiperf.json."""
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ncp.plan.aiperf_args import FLAGS, aiperf_command
from ncp.acceptance.check import EXPORT_NAME, ExportError, check, load_export
from ncp.plan.thresholds import UNITS, AcceptanceThresholds, ThresholdsFileError, load_thresholds
from tests.aiperf_stub import AIPERF, JsonHandler, build_tokenizer, offline_env, serving

ROOT = Path(__file__).resolve().parents[1]
MODEL, ISL, OSL, CONCURRENCY, REQUESTS, WARMUP = "stub-model", 32, 16, 2, 8, 2
FIRST_TOKEN_DELAY_S, TOKEN_DELAY_S = 0.02, 0.005
WORDS = "alpha beta gamma delta epsilon zeta eta theta".split()


# ---- a deterministic OpenAI-compatible chat completions stub (SSE streaming) ---------------------------------------

class _Handler(JsonHandler):
    requests: list = []

    def _chunk(self, payload: str) -> None:
        data = payload.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_GET(self):
        if self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path != "/v1/chat/completions":
            return self.send_json(404, {"error": {"message": f"no route {self.path}"}})
        type(self).requests.append({k: v for k, v in body.items() if k != "messages"})
        tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or OSL)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        time.sleep(FIRST_TOKEN_DELAY_S)
        for i in range(tokens):
            delta = {"content": ("" if i == 0 else " ") + WORDS[i % len(WORDS)]}
            if i == 0:
                delta["role"] = "assistant"
            event = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            self._chunk(f"data: {json.dumps(event)}\n\n")
            time.sleep(TOKEN_DELAY_S)
        done = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
        self._chunk(f"data: {json.dumps(done)}\n\n")
        self._chunk("data: [DONE]\n\n")
        self._chunk("")


@pytest.fixture(scope="module")
def stub_url():
    with serving(_Handler) as url:
        yield url


# ---- a local tokenizer: built with `tokenizers`, never downloaded -------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    return build_tokenizer(tmp_path_factory.mktemp("tokenizer"), WORDS)


@pytest.fixture(scope="module")
def aiperf_run(stub_url, tokenizer_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("aiperf")
    argv = aiperf_command(model=MODEL, url=stub_url, tokenizer=str(tokenizer_dir), isl=ISL, osl=OSL,
                          concurrency=CONCURRENCY, request_count=REQUESTS, warmup_request_count=WARMUP,
                          random_seed=7, artifact_dir=str(work / "artifacts"), server_metrics=False)
    assert argv[:2] == ["aiperf", "profile"]
    _Handler.requests.clear()
    started = time.monotonic()
    with offline_env() as env:
        proc = subprocess.run([AIPERF, *argv[1:]], cwd=work, env=env, capture_output=True, text=True, timeout=240,
                              stdin=subprocess.DEVNULL)
    log = work / "artifacts" / "logs" / "aiperf.log"
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:], log.read_text()[-3000:] if log.exists()
                                  else "")
    return {"artifacts": work / "artifacts", "argv": argv, "seconds": time.monotonic() - started,
            "requests": list(_Handler.requests), "stdout": proc.stdout}


def _thresholds(tmp_path: Path, name: str, values: dict) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return path


def _check_cli(export, thresholds) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ncp", "acceptance", "--export", str(export), "--thresholds",
                           str(thresholds)], cwd=ROOT, capture_output=True, text=True, timeout=60)


PASSING = {"timeToFirstTokenP95Ms": 2000, "interTokenLatencyP95Ms": 500, "requestLatencyP99Ms": 10000,
           "outputTokenThroughputMin": 1, "requestThroughputMin": 0.1, "requestCountMin": REQUESTS,
           "errorRateMax": 0.0}


# ---- tests ----------------------------------------------------------------------------------------------------------

def test_every_flag_exists_in_pinned_aiperf():
    with offline_env() as env:
        proc = subprocess.run([AIPERF, "profile", "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    missing = [flag for flag in FLAGS if flag not in proc.stdout.replace("│", " ").split()]
    assert not missing, f"aiperf profile --help does not list {missing}"
    argv = aiperf_command(model="m", url="http://m:8000", tokenizer="/models/m", isl=1, osl=1, concurrency=1,
                          request_count=1, artifact_dir="/results/m", gpu_telemetry="http://dcgm:9400/metrics",
                          server_metrics=False, request_timeout_seconds=600)
    assert {a for a in argv if a.startswith("--")} <= set(FLAGS)


def test_command_line_for_a_job():
    argv = aiperf_command(model="Qwen/Qwen3-32B", url="http://chat-frontend.team-a.svc:8000",
                          tokenizer="/models/Qwen/Qwen3-32B", isl=4000, osl=500, concurrency=64, request_count=640,
                          artifact_dir="/results/chat")
    text = " ".join(argv)
    assert text.startswith("aiperf profile --model Qwen/Qwen3-32B --url http://chat-frontend.team-a.svc:8000 "
                           "--endpoint-type chat --streaming --ui none --tokenizer /models/Qwen/Qwen3-32B "
                           "--concurrency 64 --isl 4000 --isl-stddev 0 --osl 500 --osl-stddev 0 --request-count 640 "
                           "--warmup-request-count 128 --random-seed 100 --artifact-dir /results/chat")
    assert argv[argv.index("--extra-inputs") + 1] == '{"ignore_eos":true}'
    assert "--no-gpu-telemetry" in argv and "--no-server-metrics" not in argv
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        aiperf_command(model="m", url="u", tokenizer="t", isl=1, osl=1, concurrency=0, request_count=1,
                       artifact_dir="a")


def test_real_aiperf_run_against_stub(aiperf_run):
    assert aiperf_run["seconds"] < 120
    export = load_export(aiperf_run["artifacts"])
    assert export["aiperf_version"] == "0.8.0"
    # The real metric tags and units the thresholds rely on.
    for tag, unit in UNITS.items():
        assert export[tag]["unit"] == unit, tag
    assert export["request_count"]["avg"] == REQUESTS and "error_request_count" not in export
    assert export["output_sequence_length"]["avg"] == OSL and export["input_sequence_length"]["avg"] == ISL
    assert export["time_to_first_token"]["p50"] >= FIRST_TOKEN_DELAY_S * 1000
    # Everything AIPerf sent is what the Job asks for: streaming, OSL via max_completion_tokens, ignore_eos.
    sent = aiperf_run["requests"]
    assert len(sent) == REQUESTS + WARMUP
    assert all(r["stream"] and r["max_completion_tokens"] == OSL and r["ignore_eos"] is True
               and "nvext" not in r for r in sent)


def test_passing_thresholds(aiperf_run, tmp_path):
    proc = _check_cli(aiperf_run["artifacts"], _thresholds(tmp_path, "pass.yaml", PASSING))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["metric", "stat", "unit", "measured", "threshold", "result"]
    assert lines[-1] == "ACCEPTED: 7 checks passed"
    assert any(line.split()[:2] == ["time_to_first_token", "p95"] and line.endswith("PASS") for line in lines)


# RA: Validation Methodology: "The RA should be enforced as an executable acceptance bar."
def test_failing_thresholds_exit_nonzero(aiperf_run, tmp_path):
    # The stub cannot deliver 1 ms TTFT or a million tokens/s; the export file path works as well as the directory.
    failing = {**PASSING, "timeToFirstTokenP95Ms": 1, "outputTokenThroughputMin": 1_000_000}
    proc = _check_cli(aiperf_run["artifacts"] / EXPORT_NAME, _thresholds(tmp_path, "fail.yaml", failing))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = {tuple(line.split()[:2]): line for line in proc.stdout.splitlines()}
    assert rows[("time_to_first_token", "p95")].endswith("FAIL")
    assert rows[("output_token_throughput", "avg")].endswith("FAIL")
    assert rows[("inter_token_latency", "p95")].endswith("PASS")
    assert proc.stdout.splitlines()[-1] == "REJECTED: 2 of 7 checks failed"


def test_missing_metric_fails(aiperf_run, tmp_path):
    # A non-streaming run has no inter-token latency: a threshold on it must fail, not pass silently.
    export = json.loads((aiperf_run["artifacts"] / EXPORT_NAME).read_text())
    del export["inter_token_latency"]
    (tmp_path / EXPORT_NAME).write_text(json.dumps(export))
    proc = _check_cli(tmp_path, _thresholds(tmp_path, "pass.yaml", PASSING))
    assert proc.returncode == 1
    assert "MISSING" in proc.stdout and "metric 'inter_token_latency' is not in the export" in proc.stdout
    assert "only with --streaming" in proc.stdout


def test_error_rate(aiperf_run, tmp_path):
    # AIPerf adds error_request_count and error_summary only when requests failed (shape seen in a real 0.8.0 run).
    export = copy.deepcopy(load_export(aiperf_run["artifacts"]))
    export["request_count"]["avg"] = 6.0
    export["error_request_count"] = {"unit": "requests", "avg": 2.0}
    export["error_summary"] = [{"error_details": {"code": 500, "type": "Internal Server Error", "message": "x"},
                                "count": 2}]
    (tmp_path / EXPORT_NAME).write_text(json.dumps(export))
    passed, rows = check(tmp_path, _thresholds(tmp_path, "t.yaml", {**PASSING, "requestCountMin": 1,
                                                                      "errorRateMax": 0.1}))
    error = next(r for r in rows if r.metric == "error_rate")
    assert not passed and error.status == "FAIL" and error.measured == 0.25
    assert "2 of 8 requests failed: 2 x 500 Internal Server Error" in error.detail
    passed, _ = check(tmp_path, _thresholds(tmp_path, "t.yaml", {**PASSING, "requestCountMin": 1,
                                                                  "errorRateMax": 0.25}))
    assert passed


def test_missing_files_exit_2(aiperf_run, tmp_path):
    thresholds = _thresholds(tmp_path, "pass.yaml", PASSING)
    proc = _check_cli(tmp_path / "no-such-run", thresholds)
    assert proc.returncode == 2 and f"{tmp_path / 'no-such-run'}: not found" in proc.stderr
    (tmp_path / "empty-run").mkdir()
    proc = _check_cli(tmp_path / "empty-run", thresholds)
    assert proc.returncode == 2 and f"has no {EXPORT_NAME}" in proc.stderr and "logs/aiperf.log" in proc.stderr
    proc = _check_cli(aiperf_run["artifacts"], tmp_path / "none.yaml")
    assert proc.returncode == 2 and "none.yaml: thresholds file not found" in proc.stderr


def test_invalid_files_exit_2(aiperf_run, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / EXPORT_NAME).write_text("{not json")
    proc = _check_cli(tmp_path / "run", _thresholds(tmp_path, "pass.yaml", PASSING))
    assert proc.returncode == 2 and "is not valid JSON" in proc.stderr
    with pytest.raises(ExportError, match="is not an AIPerf profile_export_aiperf.json"):
        (tmp_path / "run" / EXPORT_NAME).write_text(json.dumps({"hello": "world"}))
        load_export(tmp_path / "run")
    proc = _check_cli(aiperf_run["artifacts"], _thresholds(tmp_path, "typo.yaml", {"timeToFirstTokenP95": 100}))
    assert proc.returncode == 2
    assert "typo.yaml: is not a valid thresholds file (timeToFirstTokenP95: Extra inputs are not permitted)" in \
        proc.stderr and "fix: use only: timeToFirstTokenP50Ms" in proc.stderr


def test_thresholds_model():
    # Keys are the AIPerf tags (camelCase in YAML, snake_case accepted); each names its stat, direction and unit.
    thresholds = AcceptanceThresholds(time_to_first_token_p95_ms=800, interTokenLatencyP99Ms=40,
                                      output_token_throughput_min=1200, request_count_min=100)
    checks = {(c.tag, c.stat, c.op, c.unit, c.limit) for c in thresholds.checks()}
    assert checks == {("time_to_first_token", "p95", "<=", "ms", 800), ("inter_token_latency", "p99", "<=", "ms", 40),
                      ("output_token_throughput", "avg", ">=", "tokens/sec", 1200),
                      ("request_count", "avg", ">=", "requests", 100)}
    assert thresholds.error_rate_max == 0.0
    with pytest.raises(ValueError, match="set at least one latency, throughput or request-count threshold"):
        AcceptanceThresholds(error_rate_max=0.1)
    with pytest.raises(ValueError, match="less than or equal to 1"):
        AcceptanceThresholds(request_latency_p99_ms=1, error_rate_max=2)


def test_thresholds_file_error_on_non_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ThresholdsFileError, match="must be a YAML mapping of thresholds, got list"):
        load_thresholds(path)


# RA: Performance Guidance: "measure token latency, request latency, throughput, and concurrency behavior"
def test_real_aiperf_sweep_with_length_spread_feeds_the_knee(stub_url, tokenizer_dir, tmp_path_factory):
    """The rendered sweep command (#28), run by the pinned aiperf against the stub: one artifact directory per level
    where evidence.sweep reads them, ISL/OSL spread around the profile's, and a knee among the levels."""
    from ncp.plan.aiperf_args import judged_artifacts
    from ncp.evidence.sweep import read_sweep
    work = tmp_path_factory.mktemp("sweep")
    argv = aiperf_command(model=MODEL, url=stub_url, tokenizer=str(tokenizer_dir), isl=ISL, osl=OSL,
                          concurrency=CONCURRENCY, request_count=REQUESTS, warmup_request_count=WARMUP,
                          random_seed=7, artifact_dir=str(work / "artifacts"), server_metrics=False, isl_stddev=4,
                          osl_stddev=2, sweep=[1, 4])
    _Handler.requests.clear()
    with offline_env() as env:
        proc = subprocess.run([AIPERF, *argv[1:]], cwd=work, env=env, capture_output=True, text=True, timeout=600,
                              stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    judged = load_export(judged_artifacts(str(work / "artifacts"), CONCURRENCY, [1, 4]))
    assert judged["input_sequence_length"]["std"] > 0, "lengths spread around the profile's ISL"
    sweep = read_sweep(work / "artifacts", CONCURRENCY, [1, 4])
    assert [p.concurrency for p in sweep.levels] == [1, 2, 4] and sweep.knee in (1, 2, 4)
    assert all(p.output_token_throughput and p.errors == 0 for p in sweep.levels)
    assert len(_Handler.requests) == 3 * (REQUESTS + WARMUP), "every level ran its requests and warm-up"
